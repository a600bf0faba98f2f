"""Noise-robust losses of the methods the paper compares with (for :mod:`sk_reweight.baselines`).

Each is a ``torch.nn.CrossEntropyLoss`` subclass taking logits and class
indices, so skorch turns outputs into probabilities with a softmax as
usual, and each reduces to plain cross-entropy at one end of its parameter.
"""
import torch
import torch.nn.functional as F

__all__ = ["FocalLoss", "SoftBootstrappingLoss", "HardBootstrappingLoss", "CorrectedCrossEntropy"]


def _reduce(losses, reduction):
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


class FocalLoss(torch.nn.CrossEntropyLoss):
    """``-(1 - p_t)^gamma log p_t`` (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    Down-weights examples the network already classifies well; ``gamma=0``
    is cross-entropy.

    Parameters
    ----------
    gamma : float, default=2.0
        The focusing exponent.
    reduction : {'mean', 'sum', 'none'}, default='mean'
        How the per-example losses are combined (``'none'``: returned as they are).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.losses import FocalLoss
    >>> logits, y = torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 0])
    >>> FocalLoss(gamma=2.0, reduction="none")(logits, y)
    tensor([0.0018, 1.6501])
    """

    def __init__(self, gamma=2.0, reduction="mean"):
        super().__init__(reduction=reduction)
        self.gamma = gamma

    def forward(self, input, target):
        log_p = F.log_softmax(input, dim=1).gather(1, target[:, None]).squeeze(1)
        return _reduce(-(1 - log_p.exp()) ** self.gamma * log_p, self.reduction)


class SoftBootstrappingLoss(torch.nn.CrossEntropyLoss):
    """Soft bootstrapping (Reed et al., "Training Deep Neural Networks on Noisy Labels with Bootstrapping", 2015).

    The target is ``beta * onehot(y) + (1 - beta) * q`` with ``q`` the
    network's own (detached) prediction: ``-sum_k target_k log q_k``.
    ``beta=1`` is cross-entropy; the paper uses 0.95.

    Parameters
    ----------
    beta : float, default=0.95
        The weight of the given label in the target.
    reduction : {'mean', 'sum', 'none'}, default='mean'
        How the per-example losses are combined (``'none'``: returned as they are).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.losses import SoftBootstrappingLoss
    >>> logits, y = torch.tensor([[2.0, 0.0]]), torch.tensor([1])
    >>> SoftBootstrappingLoss(beta=1.0)(logits, y), torch.nn.functional.cross_entropy(logits, y)
    (tensor(2.1269), tensor(2.1269))
    """

    def __init__(self, beta=0.95, reduction="mean"):
        super().__init__(reduction=reduction)
        self.beta = beta

    def _prediction_target(self, log_q):
        return log_q.exp()

    def forward(self, input, target):
        log_q = F.log_softmax(input, dim=1)
        onehot = F.one_hot(target, input.shape[1]).to(log_q.dtype)
        mixed = self.beta * onehot + (1 - self.beta) * self._prediction_target(log_q.detach())
        return _reduce(-(mixed * log_q).sum(1), self.reduction)


class HardBootstrappingLoss(SoftBootstrappingLoss):
    """Hard bootstrapping (Reed et al., 2015): the prediction enters as ``onehot(argmax q)``.

    ``beta=1`` is cross-entropy; the paper uses 0.8.

    Parameters
    ----------
    beta : float, default=0.8
        The weight of the given label in the target.
    reduction : {'mean', 'sum', 'none'}, default='mean'
        How the per-example losses are combined (``'none'``: returned as they are).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.losses import HardBootstrappingLoss
    >>> logits, y = torch.tensor([[2.0, 0.0]]), torch.tensor([1])
    >>> HardBootstrappingLoss(beta=0.8)(logits, y)  # 0.8 * CE(y=1) + 0.2 * CE(y=argmax=0)
    tensor(1.7269)
    """

    def __init__(self, beta=0.8, reduction="mean"):
        super().__init__(beta=beta, reduction=reduction)

    def _prediction_target(self, log_q):
        return F.one_hot(log_q.argmax(1), log_q.shape[1]).to(log_q.dtype)


class CorrectedCrossEntropy(torch.nn.CrossEntropyLoss):
    """Gold loss correction's loss (Hendrycks et al., NeurIPS 2018).

    From "Using Trusted Data to Train Deep Networks on Labels Corrupted by
    Severe Noise".

    Labels ``0..K-1`` are untrusted: ``-log (softmax(z) @ C)[y]``, with
    ``C[i, j]`` the probability that true class ``i`` is labelled ``j``.
    Labels ``K..2K-1`` mark trusted examples of class ``y - K``: plain
    cross-entropy. An identity ``C`` is cross-entropy throughout.

    Parameters
    ----------
    corruption : array-like of shape (K, K)
        The corruption matrix ``C``, rows summing to 1.
    reduction : {'mean', 'sum', 'none'}, default='mean'
        How the per-example losses are combined (``'none'``: returned as they are).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.losses import CorrectedCrossEntropy
    >>> swap = CorrectedCrossEntropy([[0.0, 1.0], [1.0, 0.0]], reduction="none")  # every label flipped
    >>> logits = torch.tensor([[3.0, 0.0], [3.0, 0.0]])
    >>> swap(logits, torch.tensor([1, 2]))  # untrusted label 1 means class 0; trusted class 0
    tensor([0.0486, 0.0486])
    """

    def __init__(self, corruption, reduction="mean"):
        super().__init__(reduction=reduction)
        self.register_buffer("corruption", torch.as_tensor(corruption, dtype=torch.float32))

    def forward(self, input, target):
        k = input.shape[1]
        trusted = target >= k
        p = F.softmax(input, dim=1)
        noisy = (p @ self.corruption.to(p.dtype)).gather(1, (target % k)[:, None]).squeeze(1)
        clean = p.gather(1, (target % k)[:, None]).squeeze(1)
        likelihood = torch.where(trusted, clean, noisy)
        return _reduce(-torch.log(likelihood.clamp(min=1e-12)), self.reduction)
