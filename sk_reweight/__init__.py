"""Learning to reweight examples (Ren et al., 2018) as a scikit-learn estimator."""
from ._estimator import ReweightedNeuralNetClassifier, TrainingDivergedError
from ._meta_gradient import ForwardModeEngine, MetaGradientEngine
from ._weight_history import WeightHistory
from ._weighting import PAPER_EXACT
from . import modules

__version__ = "0.1.0"

__all__ = [
    "ReweightedNeuralNetClassifier",
    "TrainingDivergedError",
    "MetaGradientEngine",
    "ForwardModeEngine",
    "WeightHistory",
    "PAPER_EXACT",
    "modules",
]
