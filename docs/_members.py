"""Which members of a public class the API page shows, and the numpydoc test validates.

A class's page shows the public methods and properties defined in sk_reweight (``__call__``
included), except overrides of
hooks that skorch, scikit-learn or torch call (``fit_loop``, ``on_epoch_end``, ``forward``, ...),
and, for a skorch net, the inherited methods users call (``fit``, ``predict``, ``save_params``, ...),
in our wording where we override them.
"""
import inspect

from sklearn.model_selection import BaseCrossValidator
from skorch import NeuralNet

# the members of an outside base class that users of ours call, by base
USER_CALLED = {
    NeuralNet: ("fit", "partial_fit", "initialize", "predict", "predict_proba", "score", "get_params",
                "set_params", "save_params", "load_params"),
    BaseCrossValidator: ("split", "get_n_splits"),
}


def _ours(klass):
    return klass.__module__.split(".")[0] == "sk_reweight"


def _is_member(attr):
    if isinstance(attr, (staticmethod, classmethod)):
        attr = attr.__func__
    return isinstance(attr, property) or inspect.isfunction(attr)


def api_members(cls):
    """``{"methods": [...], "attributes": [...]}``: the names of the members ``cls``'s page shows."""
    called = {name for base, names in USER_CALLED.items() if issubclass(cls, base) for name in names}
    try:  # e.g. ``device``: documented as a parameter
        parameters = set(inspect.signature(cls).parameters)
    except ValueError:  # an exception class
        parameters = set()
    methods, attributes = [], []
    for name in sorted(dir(cls)):
        if (name.startswith("_") and name != "__call__") or name in parameters:
            continue
        owners = [k for k in cls.__mro__ if name in vars(k) and _is_member(vars(k)[name])]
        if not owners:
            continue
        if name not in called and (not _ours(owners[0]) or not all(map(_ours, owners))):
            continue  # an outside base's member, or a hook of theirs that we override
        (attributes if isinstance(vars(owners[0])[name], property) else methods).append(name)
    return {"methods": methods, "attributes": attributes}


def documented_owner(cls, name):
    """The class of ours whose ``name`` the page shows: ``None`` for an outside base's member.

    An override without a docstring shows its base's, when that base is ours; an override of an
    outside member needs a docstring of its own (the owner returned is the override).
    """
    first = None
    for klass in cls.__mro__:
        attr = vars(klass).get(name)
        if attr is None:
            continue
        if not _ours(klass):
            return first
        first = first or klass
        if getattr(attr, "__func__", attr).__doc__:
            return klass
    return first
