"""Learning to reweight examples (Ren et al., 2018) as a scikit-learn estimator."""
from . import callbacks, comparison, diagnostics, engines, model_selection, modules, weighting
from ._estimator import ReweightedNeuralNetClassifier
from ._random import RandomStream
from ._weight_history import WeightHistory
from .engines import ForwardModeEngine, MetaGradientEngine
from .exceptions import TrainingDivergedError

__version__ = "0.2.0"

__all__ = [
    "ReweightedNeuralNetClassifier",
    "TrainingDivergedError",
    "MetaGradientEngine",
    "ForwardModeEngine",
    "WeightHistory",
    "RandomStream",
    "callbacks",
    "comparison",
    "diagnostics",
    "engines",
    "model_selection",
    "modules",
    "weighting",
]


def __getattr__(name):
    if name == "PAPER_EXACT":  # deprecated since 0.3 (warns): weighting='paper'
        return getattr(weighting, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
