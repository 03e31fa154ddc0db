"""Real models in: Gauss–Newton factors, reference models, training, nonlinear unlearning.

This package turns a trained model into the :class:`~rmt.hessians.HessianSet` the theory needs
(contract §1, §8) and runs the *actual nonlinear* unlearning update that the linearised
:class:`~rmt.dynamics.Dynamics` describes, so that forecasts can be checked against real runs.

==========================  ====================================================================
module                      holds
==========================  ====================================================================
:mod:`.losses`              per-sample losses, output gradients and curvature factors,
                            :func:`gauss_newton` (the loss table)
:mod:`.base`                the :class:`Model` interface, shared checks, :func:`fitted_fraction`
:mod:`.reference`           linear / logistic / softmax regression and the smooth :class:`MLP`
:mod:`.cnn`                 the two-layer ReLU CNN of contract §6 (:class:`ReLUCNN`)
:mod:`.training`            :func:`train` (L-BFGS + Newton polish) and :class:`TrainResult`
:mod:`.curvature`           :func:`hessian_set`, :func:`loss_gradients`; Gauss–Newton vs true
                            Hessian and weight decay
:mod:`.unlearning`          :func:`unlearn` (the one nonlinear loop), :func:`draw_indicators`,
                            :class:`UnlearnResult`
:mod:`.digits`              scikit-learn digits helpers and :func:`forget_set`
==========================  ====================================================================
"""

from .base import Model, fitted_fraction
from .cnn import ReLUCNN
from .curvature import hessian_set, loss_gradients
from .digits import FORGET_KINDS, DigitsData, forget_set, load_digits, load_digits_binary
from .losses import (
    LOSSES,
    _check_targets,  # noqa: F401 (rmt.adapters.jax)
    gauss_newton,
    output_curvature_factor,
    output_gradient,
    per_sample_loss,
)
from .reference import MLP, LinearModel, LinearRegression, LogisticRegression, SoftmaxRegression
from .training import TrainResult, train
from .unlearning import UnlearnResult, draw_indicators, unlearn

__all__ = [
    "LOSSES",
    "per_sample_loss",
    "output_gradient",
    "output_curvature_factor",
    "gauss_newton",
    "fitted_fraction",
    "Model",
    "LinearModel",
    "LinearRegression",
    "LogisticRegression",
    "SoftmaxRegression",
    "MLP",
    "ReLUCNN",
    "TrainResult",
    "train",
    "loss_gradients",
    "hessian_set",
    "UnlearnResult",
    "unlearn",
    "draw_indicators",
    "DigitsData",
    "load_digits",
    "load_digits_binary",
    "forget_set",
    "FORGET_KINDS",
]
