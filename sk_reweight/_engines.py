"""Registry of meta-gradient engines and the choice among them."""
import torch

from ._layerwise import LayerwiseEngine
from ._meta_gradient import ForwardModeEngine, frozen_state

# preference order for 'auto': the fastest exact engine first
ENGINES = {engine.name: engine for engine in (LayerwiseEngine, ForwardModeEngine)}


def get_engine(name, module):
    """Return the engine instance for ``name``; ``'auto'``: the first that supports ``module``."""
    if name == "auto":
        for engine_cls in ENGINES.values():
            engine = engine_cls()
            if engine.supports(module):
                return engine
    if name not in ENGINES:
        raise ValueError(
            f"meta_engine={name!r} is not available; choose 'auto' or one of {sorted(ENGINES)}."
        )
    engine = ENGINES[name]()
    if not engine.supports(module):
        raise ValueError(
            f"meta_engine={name!r} cannot handle this module: {engine.unsupported_reason(module)}; "
            "use meta_engine='auto'."
        )
    return engine


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
    module.eval()
    try:
        with frozen_state(module), torch.random.fork_rng(devices=[]):
            alignments = []
            for candidate in (engine, ForwardModeEngine()):
                seen = {}

                def weigh(alignment, losses):
                    seen["a"] = alignment.detach()
                    return torch.zeros_like(alignment)

                candidate.reweighted_backward(module, loss_fn, X, y, X_clean, y_clean, weigh)
                alignments.append(seen["a"])
    except RuntimeError:
        return False
    finally:
        module.train(was_training)
    fast, generic = alignments
    if not torch.isfinite(generic).all():
        return True
    scale = generic.abs().max()
    return bool((fast - generic).abs().max() <= rtol * scale + torch.finfo(generic.dtype).tiny)
