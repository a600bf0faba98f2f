"""Learning to reweight examples (Ren et al., 2018) as a scikit-learn estimator."""
import warnings as _warnings

from . import callbacks, comparison, diagnostics, engines, model_selection, modules, weighting
from ._estimator import ReweightedNeuralNetClassifier
from .exceptions import TrainingDivergedError

__version__ = "0.3.0.dev0"

# the engines are in sk_reweight.engines, the type of ``weight_history_`` in sk_reweight.diagnostics;
# ``rng_`` (sk_reweight._random.RandomStream) is opaque state for save_params(f_rng=...)
__all__ = [
    "ReweightedNeuralNetClassifier",
    "TrainingDivergedError",
    "callbacks",
    "comparison",
    "diagnostics",
    "engines",
    "model_selection",
    "modules",
    "weighting",
]


def __getattr__(name):
    if name == "PAPER_EXACT":  # deprecated since 0.3: weighting='paper'
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", FutureWarning)
            paper_exact = weighting.PAPER_EXACT
        _warnings.warn("sk_reweight.PAPER_EXACT is deprecated since 0.3 and will be removed in 0.4: use "
                      "ReweightedNeuralNetClassifier(weighting='paper') (or weighting=weighting.paper_weighting()), "
                      "Algorithm 1 as published.", FutureWarning, stacklevel=2)
        return paper_exact
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
