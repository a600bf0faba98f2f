"""Which engine computes the meta-gradient for a module."""
import warnings
import weakref

import torch

from .._random import preserved_random_state
from ._base import MetaGradientEngine, autocast_off, frozen_state
from ._jvp import ForwardModeEngine
from ._layerwise import LayerwiseEngine
from ._reference import ReferenceEngine

#: engines by name; ``'auto'`` tries the first two in this order (fastest first)
ENGINES = {engine.name: engine for engine in (LayerwiseEngine, ForwardModeEngine, ReferenceEngine)}
AUTO_ORDER = (LayerwiseEngine, ForwardModeEngine)

# 'auto''s verdict per module, so that a run of partial_fit calls (an epoch each)
# checks once: {module: (its parameters, the engine class chosen)}
_CHECKED = weakref.WeakKeyDictionary()


def get_engine(spec, module):
    """Return the engine for ``spec`` and ``module``.

    ``'auto'`` returns the first of :class:`LayerwiseEngine` and
    :class:`ForwardModeEngine` that supports ``module``; a name or instance
    that cannot handle it is an error.

    Parameters
    ----------
    spec : {'auto', 'layerwise', 'jvp', 'reference'} or MetaGradientEngine
        A name or an engine instance (returned as it is if it supports ``module``).
    module : torch.nn.Module
        The network to train.

    Returns
    -------
    MetaGradientEngine
        The engine.

    Raises
    ------
    ValueError
        For an unknown name, or an engine that cannot handle ``module``.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines import get_engine
    >>> get_engine("auto", torch.nn.Linear(3, 2)).name
    'layerwise'
    >>> get_engine("auto", torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))).name
    'jvp'
    """
    if isinstance(spec, MetaGradientEngine):
        engine = spec
    elif spec == "auto":
        return next(cls() for cls in AUTO_ORDER if cls().supports(module))
    elif isinstance(spec, str) and spec in ENGINES:
        engine = ENGINES[spec]()
    else:
        raise ValueError(
            f"meta_engine={spec!r} is not available; choose 'auto', one of {sorted(ENGINES)} "
            "or a MetaGradientEngine instance."
        )
    if not engine.supports(module):
        raise ValueError(
            f"meta_engine={spec!r} cannot handle this module: {engine.unsupported_reason(module)}; "
            "use meta_engine='auto'."
        )
    return engine


def select_engine(spec, module, loss_fn, batch, clean_batch):
    """:func:`get_engine`, and for ``'auto'`` a check of the fast engine on one batch.

    When the fast engine disagrees with the generic one (a parameter used
    outside its layer, such as tied weights), warns and returns
    :class:`ForwardModeEngine`. The check runs once per module: later calls
    for the same module, with the same parameters, reuse its verdict (and do
    not warn again).

    Parameters
    ----------
    spec : {'auto', 'layerwise', 'jvp', 'reference'} or MetaGradientEngine
        As for :func:`get_engine`.
    module : torch.nn.Module
        The network to train.
    loss_fn : callable
        The per-example loss, ``loss_fn(module(X), y)``.
    batch : tuple of torch.Tensor
        ``(X, y)``, a training batch for the check.
    clean_batch : tuple of torch.Tensor
        ``(X_clean, y_clean)``, a clean batch for the check.

    Returns
    -------
    MetaGradientEngine
        The engine.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines import select_engine
    >>> module, loss_fn = torch.nn.Linear(3, 2), torch.nn.CrossEntropyLoss(reduction="none")
    >>> batch = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    >>> select_engine("auto", module, loss_fn, batch, batch).name
    'layerwise'
    """
    engine = get_engine(spec, module)
    if spec != "auto" or isinstance(engine, ForwardModeEngine):
        return engine
    # the verdict holds while the module keeps the same parameter objects (tying
    # weights by hand replaces one and brings the check back)
    parameters = tuple((id(p), p.shape) for p in module.parameters())
    checked = _CHECKED.get(module)
    if checked is not None and checked[0] == parameters:
        return checked[1]()
    if agrees_with_generic_engine(engine, module, loss_fn, *batch, *clean_batch):
        _CHECKED[module] = (parameters, type(engine))
        return engine
    _CHECKED[module] = (parameters, ForwardModeEngine)
    warnings.warn(
        f"The {engine.name!r} meta-gradient engine disagrees with the exact generic one "
        f"on this {type(module).__name__} (a parameter used outside its layer, such "
        "as tied weights?); using meta_engine='jvp'. Pass meta_engine='jvp' to skip this check.",
        UserWarning,
        stacklevel=5,
    )
    return ForwardModeEngine()


def agrees_with_generic_engine(engine, module, loss_fn, X, y, X_clean, y_clean, rtol=1e-3):
    """Check ``engine`` against :class:`ForwardModeEngine` on one batch.

    Catches what a structural check cannot see, such as a parameter also
    used outside its layer's forward (tied weights). Runs in eval mode (so
    dropout masks agree) without touching gradients or module state. Non-finite
    alignments (e.g. from inputs of a huge scale) cannot be compared: they
    count as agreement, and the first training step stops with
    ``TrainingDivergedError``.
    """
    was_training = module.training
    grads = [(p, p.grad) for p in module.parameters()]
    module.eval()
    try:  # in full precision: autocast's rounding is not a disagreement
        with frozen_state(module), preserved_random_state(), autocast_off(X.device.type):
            alignments = []
            for candidate in (engine, ForwardModeEngine()):
                seen = {}

                def weigh(alignment, losses, seen=seen):
                    seen["a"] = alignment.detach()
                    return torch.zeros_like(alignment)

                candidate.reweighted_backward(module, loss_fn, X, y, X_clean, y_clean, weigh)
                alignments.append(seen["a"])
    except RuntimeError:
        return False
    finally:
        module.train(was_training)
        for p, grad in grads:
            p.grad = grad
    fast, generic = alignments
    if not torch.isfinite(generic).all():
        return True
    scale = generic.abs().max()
    return bool((fast - generic).abs().max() <= rtol * scale + torch.finfo(generic.dtype).tiny)
