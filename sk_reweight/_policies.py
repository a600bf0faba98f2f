"""Weighting policies: from one batch's alignments and losses to the weights its step uses.

Re-exported by :mod:`sk_reweight.weighting`; the learned policy of Meta-Weight-Net is in ``_meta_net``.
"""

import torch

from ._weight_stages import _normalize, _Part


def _times(w, sample_weight):
    return w if sample_weight is None else w * sample_weight


def normalize_weights(alignment, sample_weight=None):
    """Algorithm 1's weights: ``max(a, 0)`` (times ``sample_weight``), summing to 1.

    An all-zero result means the batch is skipped.

    Parameters
    ----------
    alignment : torch.Tensor of shape (batch_size,)
        Each example's alignment ``<grad L_clean, grad f_i>``.
    sample_weight : torch.Tensor of shape (batch_size,) or None, default=None
        Non-negative multipliers of the clipped alignments.

    Returns
    -------
    torch.Tensor of shape (batch_size,)
        The normalised weights, summing to 1 (all zero when no alignment is positive).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import normalize_weights
    >>> normalize_weights(torch.tensor([3.0, -1.0, 1.0]))
    tensor([0.7500, 0.0000, 0.2500])
    """
    return _normalize(_times(alignment.clamp(min=0), sample_weight))


class WeightingPolicy(_Part):
    """Base class of the policies that turn alignments into weights.

    Subclasses implement :meth:`weights`. A policy with learned state also
    overrides :meth:`start`, :meth:`state_dict` and :meth:`load_state_dict`
    so that ``partial_fit``, ``save_params`` and ``Checkpoint`` keep it.
    A policy that draws random numbers draws them from :attr:`generator`,
    so that ``random_state`` fixes them.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import WeightingPolicy
    >>> class Agreeing(WeightingPolicy):
    ...     def weights(self, alignment, losses):
    ...         return (alignment > 0).float()
    >>> Agreeing()(torch.tensor([2.0, -1.0, 0.5, 1.0]), torch.zeros(4))
    tensor([0.3333, 0.0000, 0.3333, 0.3333])
    """

    _generator = None

    @property
    def generator(self):
        """The fit's CPU ``torch.Generator`` (``None``: torch's global random state).

        Set by the estimator at the start of every fit: the estimator's own
        generator when ``random_state`` is set.
        """
        return self._generator

    def weights(self, alignment, losses):
        """Non-negative, unnormalised weights of one batch.

        Parameters
        ----------
        alignment : torch.Tensor of shape (batch_size,)
            ``<grad L_clean, grad f_i>``: positive when a step on example
            ``i`` would lower the clean loss.
        losses : torch.Tensor of shape (batch_size,)
            The examples' training losses (detached).

        Returns
        -------
        torch.Tensor of shape (batch_size,)
            The weights before normalisation (the caller normalises them).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement weights(alignment, losses).")

    def __call__(self, alignment, losses, sample_weight=None):
        """The batch's weights times ``sample_weight``, normalised to sum to 1 (or all 0).

        Parameters
        ----------
        alignment : torch.Tensor of shape (batch_size,)
            ``<grad L_clean, grad f_i>`` of each example.
        losses : torch.Tensor of shape (batch_size,)
            The examples' training losses (detached).
        sample_weight : torch.Tensor of shape (batch_size,) or None, default=None
            Non-negative multipliers of the weights.

        Returns
        -------
        torch.Tensor of shape (batch_size,)
            The normalised weights (all zero: the batch is skipped).
        """
        return _normalize(_times(self.weights(alignment, losses), sample_weight))


class AlignmentWeighting(WeightingPolicy):
    """Algorithm 1: ``w_i = max(a_i, 0) / sum_j max(a_j, 0)`` (``weighting='alignment'``).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import AlignmentWeighting
    >>> AlignmentWeighting()(torch.tensor([1.0, -2.0, 3.0]), torch.zeros(3))
    tensor([0.2500, 0.0000, 0.7500])
    """

    def weights(self, alignment, losses):
        return alignment.clamp(min=0)


class RandomWeighting(WeightingPolicy):
    """The paper's control: random weights, rectified and normalised like Algorithm 1's.

    Each example gets ``max(z, 0)`` with ``z`` standard normal (drawn on
    the CPU from :attr:`generator`, so ``random_state`` fixes them), whatever the
    clean set says: what reweighting gains over this is what the clean
    set's steering adds (Ren et al., 2018, Section 5).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import RandomWeighting
    >>> _ = torch.manual_seed(0)
    >>> RandomWeighting()(torch.ones(4), torch.zeros(4))
    tensor([0.7305, 0.0000, 0.0000, 0.2695])
    """

    def weights(self, alignment, losses):
        z = torch.randn(alignment.shape, dtype=alignment.dtype, generator=self.generator)
        return z.to(alignment.device).clamp(min=0)
