"""The host's view of a reweighted step: what it copies from the device, in one transfer.

The estimator decides on the host whether the optimizer steps (a skipped
batch must not move momentum), whether the loss is finite and, with float16,
whether the scaled gradients overflowed; the weight history is kept there.
One copy per step carries all of it.
"""
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class HostStep:
    """What the host learns from one reweighted step (one device-to-host copy).

    ``weights`` on the scale where 1 is uniform; ``gradients_finite`` is
    ``None`` unless the copy was asked to check the gradients.
    """

    weights: np.ndarray
    alignment: np.ndarray
    loss: torch.Tensor
    clean_loss: torch.Tensor
    gradients_finite: bool = None


def copy_to_host(step, gradients=None):
    """The step's weights, alignments and both losses in one copy; with
    ``gradients``, also whether all of them are finite."""
    n, dtype = len(step.weights), step.weights.dtype  # data parallel: the global batch
    losses = torch.stack([step.losses.mean(), torch.as_tensor(step.clean_loss, device=step.losses.device)])
    parts = [step.weights * n, step.alignment.to(dtype), losses.detach().to(dtype)]
    if gradients is not None:  # inf or NaN anywhere makes the sum of norms non-finite
        grads = [p.grad for p in gradients if p.grad is not None]
        parts.append(torch.stack(torch._foreach_norm(grads)).sum().to(dtype).view(1) if grads
                     else losses.new_zeros(1, dtype=dtype))
    host = torch.cat(parts).cpu()
    finite = None if gradients is None else bool(torch.isfinite(host[-1]))
    return HostStep(host[:n].numpy(), host[n:2 * n].numpy(), host[2 * n], host[2 * n + 1], finite)
