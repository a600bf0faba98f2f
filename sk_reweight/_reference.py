"""Learning to reweight the classic way: the correctness oracle.

A literal transcription of Algorithm 1 of Ren et al. (2018): weights ``eps``
as leaf tensors, a differentiable lookahead step ``theta'`` built with
``create_graph=True``, the clean loss at ``theta'``, and a second backward to
``eps``. Slow (second-order backprop) and kept only to check the engines
against the definition and to serve as the speed baseline.
"""
import torch
from torch.func import functional_call

from ._meta_gradient import frozen_state, trainable_parameters


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
        clean_loss = loss_fn(functional_call(module, lookahead, (X_clean,)), y_clean).mean()
        (eps_grad,) = torch.autograd.grad(clean_loss, eps, allow_unused=True)
    return torch.zeros_like(eps) if eps_grad is None else eps_grad.detach()


def reference_weights(module, loss_fn, X, y, X_clean, y_clean):
    """Algorithm 1's normalised weights ``w = max(-d/d eps, 0) / sum``."""
    w = (-lookahead_eps_gradient(module, loss_fn, X, y, X_clean, y_clean)).clamp(min=0)
    total = w.sum()
    return w / total if total > 0 else w
