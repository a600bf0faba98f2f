"""Mini-batch index bookkeeping for training and clean batches."""
from collections import deque

import numpy as np
import torch


class RecordingBatchSampler(torch.utils.data.Sampler):
    """Batch sampler that remembers which dataset rows each batch holds.

    A ``DataLoader`` delivers batches in the order its batch sampler yields
    them (also with worker processes), so the consumer pops the rows of
    the batch it is training on with :meth:`pop`. Training batches stay plain
    ``(X, y)`` tuples and every skorch callback keeps working on them.

    Parameters
    ----------
    n_samples : int
    batch_size : int
    shuffle : bool
        Draw a new permutation at every epoch.
    drop_last : bool
    positions : array-like of int or None
        Maps dataset rows to positions in the user's training data (for a
        ``Subset`` produced by ``train_split``); ``None`` is the identity.
    parallel : DataParallel or None
        In data-parallel training ``batch_size`` is per process: the global
        batches hold ``world_size * batch_size`` rows, this rank yields its
        share of each (possibly none of a short last batch) and :meth:`pop`
        returns the whole global batch.
    generator : torch.Generator or None
        Draws the permutations (``None``: torch's global random state).
    """

    def __init__(self, n_samples, batch_size, shuffle=True, drop_last=False, positions=None,
                 parallel=None, generator=None):
        self.n_samples = n_samples
        self.batch_size = batch_size if parallel is None else batch_size * parallel.world_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.positions = None if positions is None else np.asarray(positions)
        self.parallel = parallel
        self.generator = generator
        self._pending = deque()

    def __iter__(self):
        self._pending.clear()
        if self.shuffle:
            order = torch.randperm(self.n_samples, generator=self.generator)
        else:
            order = torch.arange(self.n_samples)
        for start in range(0, self.n_samples, self.batch_size):
            rows = order[start:start + self.batch_size]
            if self.drop_last and len(rows) < self.batch_size:
                break
            rows = rows.tolist()
            self._pending.append(rows)
            yield rows if self.parallel is None else self.parallel.shard(rows)

    def __len__(self):
        if self.drop_last:
            return self.n_samples // self.batch_size
        return -(-self.n_samples // self.batch_size)

    def pop(self):
        """Positions in the training data of the oldest (global) batch not yet popped."""
        rows = np.asarray(self._pending.popleft())
        return rows if self.positions is None else self.positions[rows]


class CleanBatchCycler:
    """Endless clean mini-batches: each pass covers every clean example once.

    Each pass is a fresh permutation. A batch that straddles two passes is
    completed from examples not already in it, so no batch repeats an example.

    Parameters
    ----------
    n_samples : int
    batch_size : int
        At most ``n_samples``.
    generator : torch.Generator or None
        Draws the permutations (``None``: torch's global random state).
    """

    def __init__(self, n_samples, batch_size, generator=None):
        self.n_samples = n_samples
        self.batch_size = batch_size
        self.generator = generator
        self._queue = torch.empty(0, dtype=torch.long)

    def next_indices(self, size=None):
        """The next batch (of ``size`` examples, at most ``n_samples``; default ``batch_size``)."""
        size = self.batch_size if size is None else size
        if len(self._queue) < size:
            tail = self._queue
            rest = torch.ones(self.n_samples, dtype=torch.bool)
            rest[tail] = False
            others = rest.nonzero().flatten()
            # tail first (finishes the old pass), its examples end the new pass
            self._queue = torch.cat([
                tail, others[torch.randperm(len(others), generator=self.generator)],
                tail[torch.randperm(len(tail), generator=self.generator)],
            ])
        batch, self._queue = self._queue[:size], self._queue[size:]
        return batch

    def state_dict(self):
        return {"n_samples": self.n_samples, "queue": self._queue.clone()}

    def load_state_dict(self, state_dict):
        """Continue an earlier clean-batch order (ignored if the clean set changed size)."""
        if state_dict.get("n_samples") == self.n_samples:
            self._queue = state_dict["queue"].clone()


class StratifiedCleanBatchCycler:
    """Clean mini-batches that hold every class in (near) equal numbers.

    Each class cycles through its own examples (as :class:`CleanBatchCycler`);
    a batch takes ``batch_size // n_classes`` from each class, the remainder
    one each from classes chosen at random, and never more than a class has.

    Parameters
    ----------
    labels : torch.Tensor of int
        Encoded labels of the clean set.
    batch_size : int
    generator : torch.Generator or None
        Draws the permutations (``None``: torch's global random state).
    """

    def __init__(self, labels, batch_size, generator=None):
        labels = torch.as_tensor(labels).cpu()
        self.members = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels)]
        self.batch_size = batch_size
        self.generator = generator
        self.cyclers = [CleanBatchCycler(len(m), len(m), generator) for m in self.members]

    def next_indices(self):
        n_classes = len(self.members)
        shares = torch.full((n_classes,), self.batch_size // n_classes)
        shares[torch.randperm(n_classes, generator=self.generator)[:self.batch_size % n_classes]] += 1
        parts = []
        for members, cycler, share in zip(self.members, self.cyclers, shares.tolist()):
            if share:
                parts.append(members[cycler.next_indices(min(share, len(members)))])
        return torch.cat(parts)

    def state_dict(self):
        return {f"class_{i}": cycler.state_dict() for i, cycler in enumerate(self.cyclers)}

    def load_state_dict(self, state_dict):
        if len(state_dict) == len(self.cyclers):
            for i, cycler in enumerate(self.cyclers):
                cycler.load_state_dict(state_dict.get(f"class_{i}", {}))
