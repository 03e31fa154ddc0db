"""Does coherence order forgettability? The paper's central claim tested across real data sets
and architectures (``rmt reproduce --only coherence-study``; ``docs/coherence_study.md``).

==================  ============================================================================
module              holds
==================  ============================================================================
:mod:`.data`        data sets (scikit-learn's bundled ones, signal-plus-noise at several SNRs,
                    :class:`ArrayDataset` for a researcher's own arrays) and their protocol
:mod:`.models`      the models (linear, three MLP widths up to d ≥ 10⁴, a JAX CNN through
                    ``rmt.adapters.jax``) and cached training to a documented minimum
:mod:`.predictors`  σ_F, σ_cross, σ_R, curvature ratio, leave-one-out margin; Spearman ρ with
                    bootstrap intervals, pooled within groups
:mod:`.experiment`  one unit (data set × model, forget kind, seed) → predictors and the actual
                    nonlinear unlearning outcome; the resumable sweep; :func:`run_study`
:mod:`.report`      analysis, figure, the generated page
==================  ============================================================================
"""

from .data import DATASETS, ArrayDataset
from .experiment import FORGET_KINDS, SIZES, experiment_coherence_study, run_study, run_unit
from .models import MODELS
from .report import analyse, write_page

__all__ = ["DATASETS", "MODELS", "FORGET_KINDS", "SIZES", "ArrayDataset", "run_study",
           "run_unit", "experiment_coherence_study", "analyse", "write_page"]
