"""The estimator's deprecated weight parameters (0.3; removed in 0.4) and nested ``weighting__`` parameters.

Each deprecated parameter defaults to the sentinel ``"deprecated"``; one that
was set warns at fit (scikit-learn's convention) and is translated into the
:class:`~sk_reweight.weighting.Weighting` it stands for, which gives the same
fit bit for bit.
"""
import warnings

from ._params import check_legacy_params, check_reweighting_params
from .weighting import make_weighting

DEPRECATED = "deprecated"

#: each deprecated parameter -> what replaces it
REPLACEMENTS = {
    "meta_net_lr": "MetaNetWeighting(lr=...) as the policy (set_params(weighting__policy__lr=...))",
    "clean_trim": "Weighting(..., clean_trim=...)",
    "clean_cap": "Weighting(..., clean_cap=...)",
    "weight_shrinkage": "the stage Shrinkage(amount=...)",
    "weight_smoothing": "the stage Smoothing(momentum=...)",
    "zero_weights": "the stage UniformIfAllZero() (zero_weights='uniform')",
    "unlearning_tolerance": "the stage UnlearningGuard(tolerance=...) (None: a Weighting without it, "
                            "e.g. weighting='paper')",
    "clean_weight": "the stage CleanLoss(weight=...)",
    "finetune_epochs": "callbacks=[sk_reweight.callbacks.FineTuneOnClean(epochs=...)]",
}


def legacy_params(estimator):
    """The deprecated parameters that were set: name -> value."""
    return {name: getattr(estimator, name) for name in REPLACEMENTS
            if not (isinstance(getattr(estimator, name), str) and getattr(estimator, name) == DEPRECATED)}


def build_weighting(estimator):
    """Check the parameters and build the fit's :class:`~sk_reweight.weighting.Weighting`;
    a FutureWarning for each deprecated parameter that was set, naming its replacement."""
    check_reweighting_params(estimator)
    legacy = legacy_params(estimator)
    check_legacy_params(legacy)
    weighting = make_weighting(estimator.weighting, legacy)
    for name, value in legacy.items():
        if name == "meta_net_lr" and type(weighting.policy).__name__ != "MetaNetWeighting":
            warnings.warn(f"meta_net_lr={value!r} has no effect: the policy is {weighting.policy!r}, not "
                          "MetaNetWeighting.", UserWarning, stacklevel=4)
        equivalent = "" if name == "finetune_epochs" else f" Here: weighting={weighting!r}."
        warnings.warn(f"{name} is deprecated since 0.3 and will be removed in 0.4; use {REPLACEMENTS[name]}."
                      f"{equivalent}", FutureWarning, stacklevel=4)
    return weighting


class WeightingParamsMixin:
    """``set_params`` that reaches into a :class:`~sk_reweight.weighting.Weighting` given as
    ``weighting`` (``weighting__trust__memory=0.5``), and the deprecated ``fit_state_``."""

    def set_params(self, **kwargs):
        """Set the parameters of this estimator, ``weighting__`` ones included.

        Parameters
        ----------
        **kwargs : dict
            Parameter names and values, as in skorch's ``set_params``; a
            name ``weighting__<name>`` sets ``<name>`` of the
            :class:`~sk_reweight.weighting.Weighting` given as ``weighting``
            (``weighting__trust__memory=0.5``).

        Returns
        -------
        object
            The estimator.

        Raises
        ------
        ValueError
            A ``weighting__`` parameter is given but ``weighting`` is not a
            ``Weighting`` (e.g. a preset's name).
        """
        nested = {k[len("weighting__"):]: v for k, v in kwargs.items() if k.startswith("weighting__")}
        rest = {k: v for k, v in kwargs.items() if not k.startswith("weighting__")}
        if rest:
            super().set_params(**rest)
        if nested:
            if not hasattr(self.weighting, "set_params"):
                raise ValueError(
                    f"weighting={self.weighting!r} has no parameters to set ({sorted(nested)}): give "
                    "weighting a sk_reweight.weighting.Weighting (e.g. weighting=default_weighting()).")
            self.weighting.set_params(**nested)
        return self

    @property
    def fit_state_(self):
        """Deprecated alias of ``fit_context_`` (since 0.3, removed in 0.4); warns ``FutureWarning``."""
        warnings.warn("fit_state_ is deprecated since 0.3 and will be removed in 0.4; use fit_context_ "
                      "(a documented sk_reweight.callbacks.FitContext).", FutureWarning, stacklevel=2)
        return self.fit_context_
