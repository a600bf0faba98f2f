"""Checks of the estimator's own parameters, run at fit (clear errors, no silent fallback)."""
import inspect
import numbers
import warnings

import torch
from skorch.callbacks import Checkpoint

from ._divergence import DIVERGENCE_POLICIES
from .engines import MetaGradientEngine
from .engines._trimming import MAX_CLEAN_GROUPS
from .weighting import WEIGHTINGS, Weighting, WeightingPolicy

ZERO_WEIGHT_POLICIES = ("skip", "uniform")
CLEAN_SAMPLINGS = ("cycle", "stratified")


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_training_params(estimator):
    """Clear errors for the skorch parameters every fit depends on (skorch checks them late or not at all)."""
    batch_size = estimator.batch_size
    if not _is_int(batch_size) or not (batch_size >= 1 or batch_size == -1):
        raise ValueError(
            f"batch_size={batch_size!r} must be an int >= 1, or -1 for the whole training set in one batch."
        )
    epochs = estimator.max_epochs
    if not _is_int(epochs) or epochs < 0:
        raise ValueError(f"max_epochs={epochs!r} must be an int >= 0: passes over the training set.")
    lr = estimator.lr
    if not _is_real(lr) or not 0 < lr < float("inf"):
        raise ValueError(f"lr={lr!r} must be a positive finite number (the optimizer's learning rate).")
    check_device(estimator.__dict__.get("device", estimator.device))
    for callback in estimator.callbacks or []:
        callback = callback[1] if isinstance(callback, tuple) else callback
        if type(callback) is Checkpoint and callback.f_pickle:
            warnings.warn(
                "skorch's Checkpoint writes f_pickle in place: a crash while it saves destroys the "
                "last checkpoint. Use sk_reweight.callbacks.Checkpoint (same parameters), which "
                "replaces it atomically.", UserWarning, stacklevel=4)


def check_device(device):
    if isinstance(device, str) and device == "auto":
        return
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu', 'cuda', 'cuda:1', 'mps' "
            "or a torch.device."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available on this machine; use device='auto' "
            "(CUDA when present, else the CPU) or device='cpu'."
        )


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_autocast_params(net):
    """Clear errors for ``autocast_dtype`` and for a fit started under an open ``torch.autocast``."""
    dtype = net.autocast_dtype
    if dtype is not None and dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(
            f"autocast_dtype={dtype!r}: use torch.bfloat16, torch.float16 (with loss scaling) or None."
        )
    device_type = torch.device(net.device).type
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        raise RuntimeError(
            "fit() was called inside torch.autocast: autocast keeps its low-precision copies of "
            "the weights while the context is open, so every step would see the weights of the "
            "first. Call fit() outside it and pass autocast_dtype=torch.bfloat16 (or torch.float16) instead."
        )


def check_reweighting_params(estimator):
    """Clear errors for the parameters ``ReweightedNeuralNetClassifier`` adds to skorch's (and skorch's own)."""
    check_training_params(estimator)
    check_autocast_params(estimator)
    if hasattr(estimator, "accelerator"):  # skorch's AccelerateMixin
        raise TypeError(
            f"{type(estimator).__name__} does not work with skorch's AccelerateMixin: its engines "
            "write the weighted gradients themselves, which DistributedDataParallel would not "
            "all-reduce. Drop AccelerateMixin and launch the script with torchrun: the estimator "
            "trains data-parallel by itself (see the user guide's 'Scaling' page)."
        )
    if estimator.on_divergence not in DIVERGENCE_POLICIES:
        raise ValueError(
            f"on_divergence={estimator.on_divergence!r} is not one of {list(DIVERGENCE_POLICIES)}."
        )
    if estimator.clean_sampling not in CLEAN_SAMPLINGS:
        raise ValueError(
            f"clean_sampling={estimator.clean_sampling!r} is not one of {list(CLEAN_SAMPLINGS)}."
        )
    weighting = estimator.weighting
    if not isinstance(weighting, (WeightingPolicy, Weighting)) and not (
            isinstance(weighting, str) and weighting in WEIGHTINGS):
        raise ValueError(
            f"weighting={weighting!r} is not one of {list(WEIGHTINGS)}, a "
            "sk_reweight.weighting.WeightingPolicy instance or a sk_reweight.weighting.Weighting."
        )
    engine = estimator.meta_engine
    if not isinstance(engine, (str, MetaGradientEngine)):
        raise ValueError(
            f"meta_engine={engine!r} must be an engine name or a "
            "sk_reweight.engines.MetaGradientEngine instance."
        )


def check_legacy_params(legacy):
    """Clear errors for the deprecated weight parameters that were set (``legacy``: name -> value)."""
    get = legacy.get
    smoothing = get("weight_smoothing", 0.0)
    if not _is_real(smoothing) or not 0 <= smoothing < 1:
        raise ValueError(
            f"weight_smoothing={smoothing!r} must be a number in [0, 1): the share of an "
            "example's previous (averaged) weight kept at each visit; 0 turns smoothing off."
        )
    shrinkage = get("weight_shrinkage", 0.0)
    if not _is_real(shrinkage) or not 0 <= shrinkage <= 1:
        raise ValueError(
            f"weight_shrinkage={shrinkage!r} must be a number in [0, 1]: the share of uniform "
            "weights mixed into each step's weights; 0 uses the learned weights alone."
        )
    zero_weights = get("zero_weights", "skip")
    if zero_weights not in ZERO_WEIGHT_POLICIES:
        raise ValueError(f"zero_weights={zero_weights!r} is not one of {list(ZERO_WEIGHT_POLICIES)}.")
    lr = get("meta_net_lr", 1e-3)
    if not _is_real(lr) or not 0 < lr < float("inf"):
        raise ValueError(f"meta_net_lr={lr!r} must be a positive finite number.")
    epochs = get("finetune_epochs", 0)
    if not _is_int(epochs) or epochs < 0:
        raise ValueError(
            f"finetune_epochs={epochs!r} must be an int >= 0: passes over the clean set "
            "after the reweighted epochs; 0 turns fine-tuning off."
        )
    trim = get("clean_trim", 0)
    if not _is_int(trim) or trim < 0:
        raise ValueError(
            f"clean_trim={trim!r} must be an int >= 0: the clean groups most opposed to a "
            "training example that its alignment leaves out; 0 is Algorithm 1."
        )
    tolerance = get("unlearning_tolerance")
    if tolerance is not None and (not _is_real(tolerance) or not 0 <= tolerance < float("inf")):
        raise ValueError(
            f"unlearning_tolerance={tolerance!r} must be a finite number >= 0 or None: how far "
            "(in loss units) a class's epoch mean training loss may rise above its best before the "
            "class trains with its mean weights; None turns the guard off (the paper)."
        )
    cap = get("clean_cap")
    if cap is not None and (not _is_real(cap) or not 0 < cap < float("inf")):
        raise ValueError(
            f"clean_cap={cap!r} must be a positive finite number or None: no clean group's "
            "gradient counts more than clean_cap times the median group's; None is Algorithm 1."
        )
    clean_weight = get("clean_weight", 0.0)
    if not _is_real(clean_weight) or not 0 <= clean_weight < float("inf"):
        raise ValueError(
            f"clean_weight={clean_weight!r} must be a finite number >= 0: the weight of the "
            "clean mini-batch's mean loss in each training step; 0 uses the clean set only "
            "to steer the weights."
        )


def resolve_clean_batch_size(clean_batch_size, n_clean, batch_size):
    """``clean_batch_size``, with ``None`` meaning the clean set up to ``batch_size``."""
    if clean_batch_size is None:
        return min(n_clean, batch_size)
    if not isinstance(clean_batch_size, numbers.Integral) or not 1 <= clean_batch_size <= n_clean:
        raise ValueError(
            f"clean_batch_size={clean_batch_size!r} must be an int between 1 and the "
            f"clean set size ({n_clean}); use None for the default."
        )
    return int(clean_batch_size)


def check_clean_trim(clean_trim, clean_batch_size):
    """``clean_trim`` must leave each alignment at least one group of the clean batch."""
    n_groups = min(clean_batch_size, MAX_CLEAN_GROUPS)
    if clean_trim >= n_groups:
        raise ValueError(
            f"clean_trim={clean_trim} leaves nothing to align with: a clean batch of "
            f"{clean_batch_size} example(s) forms {n_groups} group(s). Use clean_trim < {n_groups}, "
            "or a larger clean set or clean_batch_size."
        )


def check_optimizer_needs_no_closure(optimizer):
    step = inspect.signature(type(optimizer).step).parameters.get("closure")
    if step is not None and step.default is inspect.Parameter.empty:
        raise ValueError(
            f"optimizer={type(optimizer).__name__} needs a closure that re-evaluates "
            "the loss during its step; each evaluation of a reweighted loss would draw "
            "new weights. Use an optimizer whose step() needs no closure (SGD, Adam, "
            "AdamW, RMSprop, ...)."
        )
