"""Learning to reweight the classic way: the correctness oracle.

A literal transcription of Algorithm 1 of Ren et al. (2018): weights ``eps``
as leaf tensors, a differentiable lookahead step ``theta'`` built with
``create_graph=True``, the clean loss at ``theta'``, and a second backward to
``eps``. Slow (second-order backprop): it checks the other engines against the
definition and is the speed baseline.
"""
import torch
from torch.func import functional_call

from ._base import (
    MetaGradientEngine,
    MetaStep,
    add_clean_gradient,
    class_weighted,
    clean_gradient,
    frozen_state,
    trainable_parameters,
    weigh_batch,
    weighted_backward,
)
from ._trimming import (
    balanced_folds,
    capped,
    clean_groups,
    fold_alignments,
    group_clean_gradients,
    group_norms,
    trimmed_alignment,
)


def lookahead_eps_gradient(module, loss_fn, X, y, X_clean, y_clean, alpha=1.0):
    """``d L_clean(theta'(eps)) / d eps`` at ``eps = 0``, by double backprop.

    Parameters
    ----------
    module : torch.nn.Module
    loss_fn : callable
        ``loss_fn(output, target)`` returning one loss per example.
    X, y, X_clean, y_clean : torch.Tensor
        Training and clean mini-batches.
    alpha : float, default=1.0
        Lookahead step size.

    Returns
    -------
    torch.Tensor of shape (len(X),)

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines._reference import lookahead_eps_gradient
    >>> module, loss_fn = torch.nn.Linear(3, 2), torch.nn.CrossEntropyLoss(reduction="none")
    >>> X, y = torch.ones(4, 3), torch.tensor([0, 1, 0, 1])
    >>> lookahead_eps_gradient(module, loss_fn, X, y, X, y).shape
    torch.Size([4])
    """
    return _lookahead_eps_gradients(module, loss_fn, X, y, X_clean, y_clean, alpha)[:, 0]


def _lookahead_eps_gradients(module, loss_fn, X, y, X_clean, y_clean, alpha=1.0, groups=None, clean_loss_fn=None):
    """Columns of ``d L_k(theta'(eps)) / d eps`` at ``eps = 0``, all from one lookahead forward.

    ``L_k`` is the lookahead loss of clean group ``k``: the mean over an index
    tensor or slice, or one loss per column of a ``(n_clean, m)`` matrix of row
    weights (``sum_j w_j l_j``); ``groups`` default: one group, the whole clean
    batch. ``clean_loss_fn``: the clean rows' loss (default ``loss_fn``).
    """
    params = trainable_parameters(module)
    with frozen_state(module):
        losses = loss_fn(module(X), y)
        eps = torch.zeros_like(losses, requires_grad=True)
        grads = torch.autograd.grad(
            torch.dot(eps, losses), list(params.values()),
            create_graph=True, allow_unused=True,
        )
        lookahead = {
            n: p if g is None else p - alpha * g for (n, p), g in zip(params.items(), grads)
        }
        clean_losses = (clean_loss_fn or loss_fn)(functional_call(module, lookahead, (X_clean,)), y_clean)
        # a group: an index tensor or slice (its mean loss), or a matrix of row weights (a loss per column)
        losses_of = [clean_losses[g].mean()[None] if not torch.is_tensor(g) or g.dim() == 1
                     else (clean_losses[:, None] * g.to(clean_losses.dtype)).sum(0)
                     for g in ([slice(None)] if groups is None else groups)]
        group_losses = torch.cat(losses_of)
        columns = []
        for i in range(len(group_losses)):
            (eps_grad,) = torch.autograd.grad(group_losses[i], eps, allow_unused=True,
                                              retain_graph=i < len(group_losses) - 1)
            columns.append(torch.zeros_like(eps) if eps_grad is None else eps_grad.detach())
    return torch.stack(columns, 1)


def reference_weights(module, loss_fn, X, y, X_clean, y_clean):
    """Algorithm 1's normalised weights ``w = max(-d/d eps, 0) / sum``.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines._reference import reference_weights
    >>> module, loss_fn = torch.nn.Linear(3, 2), torch.nn.CrossEntropyLoss(reduction="none")
    >>> X, y = torch.eye(3)[[0, 1, 2, 0]], torch.tensor([0, 1, 0, 1])
    >>> w = reference_weights(module, loss_fn, X, y, X[:2], y[:2])
    >>> bool(w.sum() in (0, 1) or abs(float(w.sum()) - 1) < 1e-6)
    True
    """
    w = (-lookahead_eps_gradient(module, loss_fn, X, y, X_clean, y_clean)).clamp(min=0)
    total = w.sum()
    return w / total if total > 0 else w


class ReferenceEngine(MetaGradientEngine):
    """Algorithm 1 by double backprop: the literal lookahead definition.

    The alignment is ``-d L_clean(theta'(eps)) / d eps`` at ``eps = 0`` with
    a lookahead step of size 1, computed with ``create_graph=True``. Exact
    for any module, and several times slower than the other engines: use
    it as the oracle in tests, or to check a new engine or layer rule.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines import ReferenceEngine
    >>> module, loss_fn = torch.nn.Linear(3, 2), torch.nn.CrossEntropyLoss(reduction="none")
    >>> step = ReferenceEngine().reweighted_backward(
    ...     module, loss_fn, torch.ones(4, 3), torch.tensor([0, 1, 0, 1]),
    ...     torch.ones(2, 3), torch.tensor([0, 1]), weigh=lambda a, losses: torch.full_like(a, 0.25))
    >>> step.alignment.shape
    torch.Size([4])
    """

    name = "reference"

    def unsupported_reason(self, module):
        return None

    def reweighted_backward(self, module, loss_fn, X, y, X_clean, y_clean, weigh, clean_weight=0.0,
                            loss_scale=None, clean_trim=0, clean_cap=None, clean_folds=0, clean_class_weight=None):
        params = trainable_parameters(module)
        clean_loss_fn = class_weighted(loss_fn, clean_class_weight)
        groups, folds = [slice(None)], None
        if clean_trim or clean_cap is not None:
            groups = clean_groups(len(X_clean), X_clean.device)
        elif clean_folds:  # the whole batch, then each fold's class-balanced loss
            groups = [slice(None), balanced_folds(y_clean, clean_folds)]
        per_group = -_lookahead_eps_gradients(module, loss_fn, X, y, X_clean, y_clean, groups=groups,
                                              clean_loss_fn=clean_loss_fn)
        if len(groups) <= 2 and isinstance(groups[0], slice):
            alignment, folds = per_group[:, 0], per_group[:, 1:] if len(groups) == 2 else None
        else:
            if clean_cap is not None:  # the groups' gradients at theta set the caps
                with frozen_state(module):
                    group_directions = group_clean_gradients(module, clean_loss_fn, X_clean, y_clean, params)[2]
                per_group = capped(per_group, group_norms(group_directions), clean_cap)
            sizes = [len(g) for g in groups]
            alignment = trimmed_alignment(per_group, sizes, clean_trim)
            folds = fold_alignments(per_group, sizes, clean_folds)
        with frozen_state(module), torch.no_grad():
            losses = loss_fn(module(X), y)
        with frozen_state(module):
            clean_loss, direction = clean_gradient(module, clean_loss_fn, X_clean, y_clean, params, loss_scale)
        weights = weigh_batch(weigh, alignment, losses, folds)
        y_pred, losses = weighted_backward(module, loss_fn, X, y, weights, loss_scale)
        add_clean_gradient(params, direction, clean_weight, loss_scale)
        return MetaStep(y_pred, losses.detach(), alignment, weights, clean_loss)
