"""Trimmed and capped alignments: no single clean example can veto a training example, or steer them all.

Algorithm 1's alignment is the mean over the clean batch of
``<grad l_j, grad f_i>``. With a clean set of a few examples, one that the
network cannot fit dominates that mean: every step then gives all weight to
the training examples that help it and none to the rest, and a network
trained this way for long unlearns what the rejected examples taught (on the
paper's MNIST task at 90% and 98% nines, the test accuracy decays by several
points). With ``clean_trim=k`` the engines split the clean batch into groups,
take each training example's alignment with each group's mean-loss gradient,
and average them (weighted by group size) after leaving out the ``k`` groups
most opposed to that example: an example is rejected only when the rest of
the clean batch, too, speaks against it. ``k=0`` is Algorithm 1.

Capping (``clean_cap=c``) acts on the clean side instead: the alignments are
taken with the gradient of a weighted clean loss in which no group's gradient
counts more than ``c`` times the median group's norm, so that one or two clean
examples the network cannot fit no longer steer every batch. Both are exact
lookahead meta-gradients of a modified clean loss (``tests/test_trimming.py``).
"""
import numpy as np
import torch

from ._base import scaled

#: the clean batch is split into at most this many groups: alignments cost one
#: pass of the alignment computation per group (each example its own group up to this size)
MAX_CLEAN_GROUPS = 10


def clean_groups(n_clean, device=None):
    """Index tensors splitting ``range(n_clean)`` into at most :data:`MAX_CLEAN_GROUPS` near-equal groups.

    Examples
    --------
    >>> from sk_reweight.engines._trimming import clean_groups
    >>> [g.tolist() for g in clean_groups(3)]
    [[0], [1], [2]]
    >>> [len(g) for g in clean_groups(25)]
    [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]
    """
    return list(torch.arange(n_clean, device=device).tensor_split(min(n_clean, MAX_CLEAN_GROUPS)))


def balanced_folds(y_clean, folds):
    """``(n_clean, folds)`` row weights: column ``k`` gives fold ``k``'s clean loss, class-balanced.

    Each class's rows (in batch order) are dealt into ``folds`` near-equal
    runs, one per fold; a row of class ``c`` in fold ``k`` weighs
    ``share_c / n_ck``, ``share_c`` the class's share of the batch among
    the classes with at least ``folds`` rows (the others take no part), so
    every fold's loss holds each class in the same share whatever the
    batch's split. Without that, a class count that does not divide by
    ``folds`` sets the folds apart along the class-prior direction, which
    early in training outweighs the rest (on MNIST 4-vs-9 one fold of ten
    clean images then asks for fours, the other for nines). Each column
    sums to 1 (all zero when no class has ``folds`` rows).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines._trimming import balanced_folds
    >>> balanced_folds(torch.tensor([4, 9, 4, 9, 4]), 2)
    tensor([[0.3000, 0.0000],
            [0.4000, 0.0000],
            [0.3000, 0.0000],
            [0.0000, 0.4000],
            [0.0000, 0.6000]])
    """
    # on the host: a few dozen labels, dealt out by NumPy in a few microseconds where as many
    # tiny tensor operations cost a tenth of a small network's step (and a device synchronises
    # for torch.unique and for each count read anyway)
    labels = y_clean.detach().cpu().numpy()
    if labels.dtype.kind in "iu" and (labels.size == 0 or 0 <= labels.min() <= labels.max() <= 8 * labels.size):
        row_class, counts = labels, np.bincount(labels)  # class indices: counted directly (classes absent: 0)
    else:  # any other labels (negative, float, bool): their ranks among the distinct values
        _, row_class, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.argsort(row_class, kind="stable")  # each row's rank among its class's rows, in batch order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(row_class)) - (np.cumsum(counts) - counts)[row_class[order]]
    count = counts[row_class]  # tensor_split's runs: the first count % folds hold one row more
    size, extra = count // folds, count % folds
    longer = extra * (size + 1)
    fold = np.where(rank < longer, rank // (size + 1), extra + (rank - longer) // np.maximum(size, 1))
    usable = count >= folds
    part = np.where(fold < extra, size + 1, size)[usable]
    weights = np.zeros((len(row_class), folds))
    weights[usable, fold[usable]] = count[usable] / counts[counts >= folds].sum() / part
    return torch.from_numpy(weights).to(y_clean.device, torch.get_default_dtype())


def fold_alignments(per_group, sizes, folds):
    """The ``(n, folds)`` alignments with the mean-loss gradient of each of ``folds`` contiguous
    runs of the groups (``None`` when ``folds`` is 0): the clean batch's cross-fitting folds.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines._trimming import fold_alignments
    >>> fold_alignments(torch.tensor([[1.0, 3.0, 4.0]]), [1, 1, 2], 2)
    tensor([[2., 4.]])
    """
    if not folds:
        return None
    sizes = torch.as_tensor(sizes, dtype=per_group.dtype, device=per_group.device)
    columns = []
    for idx in torch.arange(len(sizes), device=per_group.device).tensor_split(min(folds, len(sizes))):
        columns.append(per_group[:, idx] @ sizes[idx] / sizes[idx].sum())
    return torch.stack(columns, 1).detach()


def trimmed_alignment(per_group, sizes, trim):
    """Each row's size-weighted mean over the groups, without its ``trim`` lowest.

    Parameters
    ----------
    per_group : torch.Tensor of shape (n, n_groups)
        ``<grad mean-loss of group k, grad f_i>`` for training example ``i``.
    sizes : sequence of int
        Examples in each group; with ``trim=0`` the result is the alignment
        with the whole clean batch's mean-loss gradient.
    trim : int
        Groups left out per row, those most opposed to it (``0 <= trim <
        n_groups``).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines._trimming import trimmed_alignment
    >>> per_group = torch.tensor([[-9.0, 1.0, 2.0], [3.0, 3.0, -3.0]])
    >>> trimmed_alignment(per_group, [1, 1, 1], 0)
    tensor([-2.,  1.])
    >>> trimmed_alignment(per_group, [1, 1, 1], 1)
    tensor([1.5000, 3.0000])
    """
    sizes = torch.as_tensor(sizes, dtype=per_group.dtype, device=per_group.device)
    if not trim:
        return per_group @ sizes / sizes.sum()
    keep = per_group.argsort(dim=1, stable=True)[:, trim:]
    kept_sizes = sizes[keep]
    trimmed = (per_group.gather(1, keep) * kept_sizes).sum(1) / kept_sizes.sum(1)
    # a non-finite alignment must not be trimmed away: it stops training
    return torch.where(torch.isfinite(per_group).all(1), trimmed, per_group.sum(1) * float("nan"))


def group_norms(group_directions):
    """The norm of each group's clean gradient (a list of per-parameter tensors per group)."""
    return torch.stack([torch.sqrt(sum(g.pow(2).sum() for g in d)) for d in group_directions])


def cap_factors(norms, cap):
    """Each group's factor ``min(1, cap * median / norms[k])`` in the capped clean loss.

    The median is over the groups with a non-zero gradient (the lower middle
    value for an even count): a group the network fits exactly pulls with
    nothing and must not set the scale. A non-finite norm gives factors of 1
    (a non-finite alignment must reach the divergence check).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines._trimming import cap_factors
    >>> cap_factors(torch.tensor([1.0, 2.0, 8.0, 0.0]), 1.0)
    tensor([1.0000, 1.0000, 0.2500, 1.0000])
    """
    # all on the device (no host synchronisation): NaN ceilings compare False
    ceiling = cap * torch.where(norms > 0, norms, float("nan")).nanmedian()
    scale = torch.isfinite(norms).all() & (norms > ceiling)
    return torch.where(scale, ceiling / norms, torch.ones_like(norms))


def capped(per_group, norms, cap):
    """``per_group`` with group ``k``'s column times its :func:`cap_factors`; ``cap=None``: unchanged.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines._trimming import capped
    >>> per_group = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    >>> capped(per_group, torch.tensor([1.0, 2.0, 8.0, 0.0]), 1.0)
    tensor([[1.0000, 1.0000, 0.2500, 1.0000]])
    """
    if cap is None:
        return per_group
    return per_group * cap_factors(norms, cap).to(per_group.dtype)


def capped_direction(group_directions, sizes, cap):
    """The gradient of the capped clean loss: the groups' gradients, each times its
    :func:`cap_factors` and its share of the clean batch. Capping alone only reweights
    the clean loss, so one alignment along this direction is the capped alignment."""
    norms = group_norms(group_directions)
    weights = cap_factors(norms, cap) * torch.as_tensor(sizes, dtype=norms.dtype, device=norms.device) / sum(sizes)
    return [sum(d[j] * w.to(d[j].dtype) for d, w in zip(group_directions, weights))
            for j in range(len(group_directions[0]))]


def group_clean_gradients(module, loss_fn, X_clean, y_clean, params, loss_scale=None):
    """The clean batch's mean loss and, per group of :func:`clean_groups`, the gradient
    of the group's mean loss (times ``loss_scale``), all from one forward.

    Returns ``(clean_loss, direction, group_directions, sizes)``: ``direction``
    is the whole batch's gradient (the size-weighted mean of the groups').
    """
    groups = clean_groups(len(X_clean), X_clean.device)
    sizes = [len(g) for g in groups]
    row_weights = torch.zeros(len(X_clean), len(groups), device=X_clean.device)
    for k, idx in enumerate(groups):
        row_weights[idx, k] = 1 / len(idx)
    clean_loss, group_directions = weighted_clean_gradients(module, loss_fn, X_clean, y_clean, params, row_weights,
                                                            loss_scale)
    direction = [sum(d[j] * (size / len(X_clean)) for d, size in zip(group_directions, sizes))
                 for j in range(len(params))]
    return clean_loss, direction, group_directions, sizes


def weighted_clean_gradients(module, loss_fn, X_clean, y_clean, params, row_weights, loss_scale=None):
    """The clean batch's mean loss and, per column ``w`` of ``row_weights`` (n_clean, k), the
    gradient of ``sum_j w_j l_j`` (times ``loss_scale``), all from one forward."""
    losses = loss_fn(module(X_clean), y_clean)
    row_weights = row_weights.to(losses.device)
    directions = []
    for k in range(row_weights.shape[1]):
        # a sum, not a matrix product: autocast sums in float32 (a float16 product overflows once scaled)
        weighted = (losses * row_weights[:, k].to(losses.dtype)).sum()
        grads = torch.autograd.grad(scaled(weighted, loss_scale), list(params.values()),
                                    allow_unused=True, retain_graph=k < row_weights.shape[1] - 1)
        directions.append([torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads)])
    return losses.mean().detach(), directions
