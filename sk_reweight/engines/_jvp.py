"""Forward-mode engine: exact for any module, train-mode batch norm included."""
import threading

import torch
import torch.autograd.forward_ad as fwAD
from torch.func import functional_call

from ._base import (
    MetaGradientEngine,
    MetaStep,
    add_clean_gradient,
    class_weighted,
    clean_gradient,
    eager_module,
    frozen_state,
    trainable_parameters,
    weigh_batch,
    weighted_backward,
)
from ._trimming import (
    balanced_folds,
    capped,
    capped_direction,
    fold_alignments,
    group_clean_gradients,
    group_norms,
    trimmed_alignment,
    weighted_clean_gradients,
)

# torch's forward-AD levels are process-wide: one JVP pass at a time, whatever the thread
_FORWARD_AD = threading.Lock()


class ForwardModeEngine(MetaGradientEngine):
    """Exact engine for any module: one forward-mode Jacobian-vector product.

    Computes ``g = grad L_clean`` by backprop on the clean batch, then the
    directional derivative of the per-example training losses along ``g``
    with forward-mode autodiff (dual numbers through
    :func:`torch.func.functional_call`), which is exactly the alignment.
    Handles modules that couple examples (train-mode batch norm). A plain
    forward/backward on the weighted loss then produces the update.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines import ForwardModeEngine
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    >>> ForwardModeEngine().supports(net), ForwardModeEngine().name
    (True, 'jvp')
    """

    name = "jvp"

    def unsupported_reason(self, module):
        return None

    def reweighted_backward(self, module, loss_fn, X, y, X_clean, y_clean, weigh, clean_weight=0.0,
                            loss_scale=None, clean_trim=0, clean_cap=None, clean_folds=0, clean_class_weight=None):
        eager = eager_module(module)
        clean_loss_fn = class_weighted(loss_fn, clean_class_weight)
        params = trainable_parameters(eager)
        folds = None
        with frozen_state(eager):
            if clean_folds and not clean_trim and clean_cap is None:  # the whole batch's JVP and each fold's
                row_weights, layout = _fold_row_weights(y_clean, clean_folds, X_clean.device)
                clean_loss, directions = weighted_clean_gradients(eager, clean_loss_fn, X_clean, y_clean, params,
                                                                  row_weights, loss_scale)
                columns = [_alignment(eager, loss_fn, X, y, params, d, loss_scale) for d in directions]
                losses = columns[0][0]
                alignment, direction, folds = _read_fold_columns(columns, directions, layout, clean_folds)
            elif clean_trim or clean_folds:  # one JVP per clean group (folds here: with clean_cap)
                clean_loss, direction, group_directions, sizes = group_clean_gradients(
                    eager, clean_loss_fn, X_clean, y_clean, params, loss_scale)
                columns = [_alignment(eager, loss_fn, X, y, params, d, loss_scale) for d in group_directions]
                losses = columns[0][0]
                per_group = capped(torch.stack([c[1] for c in columns], 1), group_norms(group_directions), clean_cap)
                alignment = trimmed_alignment(per_group, sizes, clean_trim)
                folds = fold_alignments(per_group, sizes, clean_folds)
            elif clean_cap is not None:  # the capped clean loss's gradient: one JVP
                clean_loss, direction, group_directions, sizes = group_clean_gradients(
                    eager, clean_loss_fn, X_clean, y_clean, params, loss_scale)
                losses, alignment = _alignment(eager, loss_fn, X, y, params,
                                               capped_direction(group_directions, sizes, clean_cap), loss_scale)
            else:
                clean_loss, direction = clean_gradient(eager, clean_loss_fn, X_clean, y_clean, params, loss_scale)
                losses, alignment = _alignment(eager, loss_fn, X, y, params, direction, loss_scale)
        weights = weigh_batch(weigh, alignment, losses, folds)
        y_pred, losses = weighted_backward(eager, loss_fn, X, y, weights, loss_scale)
        # the clean gradient, computed above with batch statistics of the clean batch
        add_clean_gradient(params, direction, clean_weight, loss_scale)
        return MetaStep(y_pred, losses.detach(), alignment, weights, clean_loss)


def _fold_row_weights(y_clean, folds, device):
    """The clean rows' weights of each loss the default needs a JVP along, one column each, and
    their layout: ``"partition"`` (each class's rows split evenly: the folds' losses average to the
    mean loss exactly, which needs no pass of its own), ``"mean"`` (no class has a row for every
    fold: nothing to hold out, zero fold alignments) or ``"both"`` (the mean loss, then the folds')."""
    mean = torch.full((len(y_clean), 1), 1 / len(y_clean), device=device)
    counts = torch.unique(y_clean, return_counts=True)[1]
    if bool((counts % folds == 0).all()):  # from the counts: float rounding can't hide an even split
        return balanced_folds(y_clean, folds).to(device), "partition"
    if not bool((counts >= folds).any()):
        return mean, "mean"
    return torch.cat([mean, balanced_folds(y_clean, folds).to(device)], 1), "both"


def _read_fold_columns(columns, directions, layout, folds):
    """The alignment, the clean gradient and the ``(n, folds)`` fold alignments from the JVPs along
    :func:`_fold_row_weights`' columns."""
    if layout == "partition":
        fold_alignment = torch.stack([c[1] for c in columns], 1)
        return fold_alignment.mean(1), [torch.stack(parts).mean(0) for parts in zip(*directions)], fold_alignment
    alignment = columns[0][1]
    if layout == "mean":
        return alignment, directions[0], alignment.new_zeros(len(alignment), folds)
    return alignment, directions[0], torch.stack([c[1] for c in columns[1:]], 1)


def _alignment(module, loss_fn, X, y, params, direction, loss_scale):
    """The training losses and their directional derivatives along ``direction``."""
    tangents, factor = _tangents(direction, loss_scale)
    # The JVP pass needs no autograd graph; log-softmax's forward-AD
    # formula also cannot share one with a later backward.
    with _FORWARD_AD, torch.no_grad(), fwAD.dual_level():
        duals = {n: fwAD.make_dual(p, t) for (n, p), t in zip(params.items(), tangents)}
        losses = loss_fn(functional_call(module, duals, (X,)), y)
        losses, alignment = fwAD.unpack_dual(losses)
    if alignment is None:  # losses do not depend on any parameter
        alignment = torch.zeros_like(losses)
    elif factor is not None:
        alignment = alignment * factor
    return losses, alignment


def _tangents(direction, loss_scale):
    """The JVP's tangents and the factor that turns its output into the alignments.

    Without loss scaling the tangents are the clean gradient itself. With
    it (float16) they are the scaled clean gradient divided by its norm: in
    float16 the forward tangents would overflow at the scale or underflow
    without it; a unit direction keeps them near the activations' size.
    """
    if loss_scale is None:
        return direction, None
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(d.float()) for d in direction]))
    norm = norm.clamp_min(torch.finfo(torch.float32).tiny)
    return [d / norm.to(d.dtype) for d in direction], norm / loss_scale
