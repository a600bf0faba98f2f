"""Learning to reweight examples (Ren et al., 2018) as a scikit-learn estimator."""
from . import callbacks, comparison, diagnostics, engines, model_selection, modules, weighting
from ._estimator import ReweightedNeuralNetClassifier
from .exceptions import TrainingDivergedError
from .weighting import PAPER_EXACT

__version__ = "0.2.0"

# the engines are in sk_reweight.engines, the type of ``weight_history_`` in sk_reweight.diagnostics;
# ``rng_`` (sk_reweight._random.RandomStream) is opaque state for save_params(f_rng=...)
__all__ = [
    "ReweightedNeuralNetClassifier",
    "TrainingDivergedError",
    "PAPER_EXACT",
    "callbacks",
    "comparison",
    "diagnostics",
    "engines",
    "model_selection",
    "modules",
    "weighting",
]
