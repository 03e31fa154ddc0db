"""rmt — checkable linear-stability theory of gradient-based machine unlearning.

Sign convention everywhere: "diverges" = the iterates escape w* = the model **forgets**;
"converges" = the model **resists** unlearning. See docs/contract.md for the mathematical contract.
"""

from . import ensembles, io, models, validation
from .coherence import CoherenceResult, coherence
from .dynamics import Dynamics, SetTerm
from .affine import AffineMoments, StationaryResult, affine_moments, stationary
from .forecast import ForecastResult, ForgettingCost, forecast, forgetting_cost
from .horizon import HorizonCritical, horizon_critical, out_of_span_share
from .hessians import HessianSet
from . import verdict
from .meansquare import *  # noqa: F403 (every name of rmt.meansquare.__all__)
from .meansquare import __all__ as _MEANSQUARE
from .schedule import Schedule
from .certificates import Certificate, CertificateError, certify, certify_critical, load_certificate
from .montecarlo import affine_paths, lyapunov, lyapunov_spectrum, moment_growth, simulate

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # rmt.asymptotics (random-matrix limits; scipy.integrate, 0.7 s) is imported on first use,
    # not with rmt: `rmt analyze` and the other entry points never need it
    if name == "asymptotics":
        import importlib

        return importlib.import_module(".asymptotics", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "certify",
    "certify_critical",
    "Certificate",
    "CertificateError",
    "load_certificate",
    "HessianSet",
    "Schedule",
    "Dynamics",
    "SetTerm",
    "affine_moments",
    "AffineMoments",
    "stationary",
    "StationaryResult",
    "forecast",
    "ForecastResult",
    "horizon_critical",
    "HorizonCritical",
    "out_of_span_share",
    "ForgettingCost",
    "forgetting_cost",
    "asymptotics",
    "io",
    "ensembles",
    "models",
    "validation",
    "coherence",
    "CoherenceResult",
    "affine_paths",
    "lyapunov",
    "lyapunov_spectrum",
    "moment_growth",
    "simulate",
    *_MEANSQUARE,
]
