"""Adapters from machine-learning frameworks to the toolkit's input.

Each adapter turns a trained model of some framework into the arrays
:meth:`rmt.HessianSet.from_factors` expects — per-sample Gauss–Newton factors and per-sample loss
gradients — reusing :func:`rmt.models.gauss_newton` for the loss curvature, so that there is one
definition of a factor in the package (``docs/models.md``).

* :mod:`rmt.adapters.jax` — JAX (optional extra: ``pip install -e ".[jax]"``).
* :mod:`rmt.adapters.torch` — PyTorch ``nn.Module`` via ``torch.func`` (optional extra:
  ``pip install -e ".[torch]"``; the training weight decay as shared curvature).
* :mod:`rmt.adapters.sklearn` — fitted scikit-learn ``LogisticRegression``, ``Ridge``,
  ``LinearRegression``, ``MLPClassifier``, ``MLPRegressor`` (their L2 penalty as shared
  curvature).

Every bridge checks that w* is a stationary point of the trained objective (data loss + penalty,
:mod:`rmt.stationarity`) and reports it as ``hs.stationarity``.

Adapters are imported explicitly (``from rmt.adapters import jax as rj``); importing this package
does not import any framework.
"""

__all__: list[str] = []
