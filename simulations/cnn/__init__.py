"""Two-layer ReLU CNN under the signal-plus-noise model (contract §6).

Chain made computable end to end: data (:mod:`.data`) → the network, the model
:class:`rmt.models.ReLUCNN` with exact per-sample gradients (weights, losses and GD training in
:mod:`.network`) → per-sample Gauss–Newton curvature as a factor-backed
:class:`rmt.HessianSet` → coherence, closed form (:mod:`.closed_form`) and sampled → real
nonlinear unlearning runs through :func:`rmt.models.unlearn` (:mod:`.unlearning`) → escape
heatmaps with the linear frontier
(:mod:`.heatmap`: one cell protocol, :class:`HeatmapCell`; :func:`heatmap` returns an
``xarray.Dataset`` over (snr, alpha | batch)).

Sign convention: :data:`rmt.verdict.SIGN_CONVENTION`.
"""

from .closed_form import ClosedFormCoherence, closed_form_coherence, sampled_coherence
from .data import SignalNoiseData, make_data, split_forget
from .heatmap import HeatmapCell, HeatmapResult, heatmap, plot_heatmap
from .network import CNN, TrainResult, gauss_newton_hessians, init_cnn, train
from .unlearning import UnlearningRun, linear_prediction, unlearn

__all__ = [
    "SignalNoiseData",
    "make_data",
    "split_forget",
    "CNN",
    "init_cnn",
    "train",
    "TrainResult",
    "gauss_newton_hessians",
    "ClosedFormCoherence",
    "closed_form_coherence",
    "sampled_coherence",
    "HeatmapCell",
    "HeatmapResult",
    "heatmap",
    "plot_heatmap",
    "UnlearningRun",
    "unlearn",
    "linear_prediction",
]
