"""Learning to reweight examples (Ren et al., 2018) as a scikit-learn estimator."""
from . import callbacks, comparison, diagnostics, engines, model_selection, modules, weighting
from ._estimator import ReweightedNeuralNetClassifier
from ._random import RandomStream
from ._weight_history import WeightHistory
from .engines import ForwardModeEngine, MetaGradientEngine
from .exceptions import TrainingDivergedError
from .weighting import PAPER_EXACT

__version__ = "0.2.0"

__all__ = [
    "ReweightedNeuralNetClassifier",
    "TrainingDivergedError",
    "MetaGradientEngine",
    "ForwardModeEngine",
    "WeightHistory",
    "RandomStream",
    "PAPER_EXACT",
    "callbacks",
    "comparison",
    "diagnostics",
    "engines",
    "model_selection",
    "modules",
    "weighting",
]
