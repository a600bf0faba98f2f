"""Training/clean datasets that feed encoded labels to torch."""
import mmap

import numpy as np
import torch
from skorch.dataset import Dataset

from ._stacking import as_float32

#: bytes of a read-only memmap read in order between two releases of its pages (see PageReleaser)
RELEASE_EVERY = 64 * 2**20


def read_only_mapping(X):
    """The ``mmap`` behind a read-only numpy memmap (or a view of one) when it can be released, else ``None``.

    Copy-on-write memmaps (``mode='c'``) hold private changes in their pages:
    those are never released.
    """
    while X is not None:
        if isinstance(X, np.memmap):
            mapping = getattr(X, "_mmap", None)
            return mapping if X.mode == "r" and hasattr(mapping, "madvise") and \
                hasattr(mmap, "MADV_DONTNEED") else None
        X = getattr(X, "base", None)
    return None


def spread_rows(n_rows, total=10_000, blocks=10):
    """At most ``total`` row indices in ``blocks`` contiguous runs spread evenly over ``n_rows``.

    A sample of a large table that touches few pages of a memmap (every k-th
    row would touch them all).

    Examples
    --------
    >>> from sk_reweight._dataset import spread_rows
    >>> spread_rows(100, total=6, blocks=3).tolist()
    [0, 1, 49, 50, 98, 99]
    """
    if n_rows <= total:
        return np.arange(n_rows)
    size = total // blocks
    starts = np.linspace(0, n_rows - size, blocks).astype(int)
    return (starts[:, None] + np.arange(size)).ravel()


class PageReleaser:
    """Keeps a read-only memmap's file pages from piling up in the process's resident memory.

    Reading a memmapped file maps its pages into the process: after one pass
    they all count in its resident set, though they are page cache the kernel
    could reclaim. Every ``window`` bytes read (default :data:`RELEASE_EVERY`)
    the pages are released (``madvise(MADV_DONTNEED)``; a later read maps
    them again from the page cache, without reading the disk). Anything but a
    read-only memmap: no-op. Used by the passes that read a memmap in order
    (the NaN check of ``fit``, prediction); training draws random rows, each of
    which maps the cached pages around it, so releasing there bounds nothing.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight._dataset import PageReleaser
    >>> PageReleaser(np.zeros((3, 2))).mapping is None  # in memory: nothing to release
    True
    """

    def __init__(self, X, window=None):
        self.mapping = read_only_mapping(X)
        self.window = RELEASE_EVERY if window is None else window
        self.read = 0

    def count(self, nbytes):
        """Count ``nbytes`` more read; release the pages once a window is full."""
        if self.mapping is None:
            return
        self.read += nbytes
        if self.read >= self.window:
            self.mapping.madvise(mmap.MADV_DONTNEED)
            self.read = 0


class EncodedLabelDataset(Dataset):
    """Yields ``(X_i, class_index_i)``; ``.y`` keeps the user's labels.

    skorch's scoring callbacks read ``dataset.y`` and compare it with
    ``net.predict``, which returns the user's labels; the loss needs class
    indices. Keeping both makes ``EpochScoring('accuracy')`` and friends
    correct for any label type.
    """

    def __init__(self, X, y_encoded, classes):
        super().__init__(X, y_encoded)
        self.y_encoded = np.asarray(y_encoded)
        self.y = np.asarray(classes)[self.y_encoded]

    def __getitem__(self, i):
        return as_float32(self.X[i]), self.y_encoded[i]

    def __getitems__(self, indices):
        # a whole batch in one indexing operation (DataLoader's batched fetch), converted to
        # float32 here: a float64 memmap is never copied whole. Its pages are not released:
        # a batch of random rows maps most of the file anyway (the kernel maps the cached
        # pages around each one read)
        return as_float32(self.X[indices]), self.y_encoded[indices]


class ArrayDataset(torch.utils.data.Dataset):
    """Unlabelled rows, a whole batch per fetch (for prediction on large X)."""

    def __init__(self, X):
        self.X = X
        self.pages = PageReleaser(X)

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return as_float32(self.X[i]), 0

    def __getitems__(self, indices):
        X = self.X[indices]
        self.pages.count(X.nbytes)
        return as_float32(X), np.zeros(len(indices), dtype=np.int64)


def collate_batch(batch):
    """Collate for :meth:`EncodedLabelDataset.__getitems__`: already one batch."""
    X, y = batch
    return torch.as_tensor(X), torch.as_tensor(y)


class DatasetRows:
    """A map-style torch ``Dataset`` of ``(x, y)`` items, seen as an array of float32 rows.

    Indexing with an int, a slice or an array of ints loads those items and
    stacks their inputs, so the estimator trains on a Dataset a batch at a
    time, as on an array, and never loads it whole. ``shape`` comes from
    the first item.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        Items ``(x, y)`` (or bare ``x``) with ``__len__``; ``x`` a tensor or
        an array of one shape for every item.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from sk_reweight._dataset import DatasetRows
    >>> rows = DatasetRows(TensorDataset(torch.arange(12.).reshape(6, 2), torch.tensor([0, 1] * 3)))
    >>> rows.shape, rows[[0, 5]].tolist(), rows.labels().tolist()
    ((6, 2), [[0.0, 1.0], [10.0, 11.0]], [0, 1, 0, 1, 0, 1])
    """

    dtype = np.dtype(np.float32)

    def __init__(self, dataset):
        self.dataset = dataset
        if len(dataset) == 0:
            raise ValueError("The Dataset is empty (len 0); it needs at least one example.")
        self.shape = (len(dataset), *self._input(0).shape)
        self.ndim = len(self.shape)

    def __len__(self):
        return self.shape[0]

    def _item(self, i):
        item = self.dataset[int(i)]
        return item if isinstance(item, (tuple, list)) else (item,)

    def _input(self, i):
        x = self._item(i)[0]
        return np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float32)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self._input(index)
        indices = range(len(self))[index] if isinstance(index, slice) else np.asarray(index).reshape(-1)
        inputs = [self._item(i)[0] for i in indices]
        for i, x in zip(indices, inputs):
            if tuple(np.shape(x)) != self.shape[1:]:
                raise ValueError(f"Item {int(i)} of the Dataset has inputs of shape {tuple(np.shape(x))}, "
                                 f"item 0 {self.shape[1:]}; every item needs the same shape.")
        if inputs and all(torch.is_tensor(x) for x in inputs):  # one copy, as DataLoader's collate does
            rows = torch.stack(inputs).detach().cpu().numpy().astype(np.float32, copy=False)
        else:
            rows = np.empty((len(indices), *self.shape[1:]), dtype=np.float32)
            for row, x in enumerate(inputs):
                rows[row] = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float32)
        if not np.isfinite(rows).all():
            bad = indices[int(np.flatnonzero(~np.isfinite(rows.reshape(len(rows), -1)).all(1))[0])]
            raise ValueError(f"Item {int(bad)} of the Dataset has NaN or infinite inputs; "
                             "every example needs finite features.")
        return rows

    def labels(self):
        """Every item's label: ``dataset.targets`` when it has them (torchvision's), else read item by item."""
        targets = getattr(self.dataset, "targets", None)
        if targets is None:
            items = (self._item(i) for i in range(len(self)))
            targets = [item[1] if len(item) > 1 else None for item in items]
            if any(t is None for t in targets):
                raise ValueError("The Dataset's items have no label; give fit the labels as y.")
            targets = [t.item() if torch.is_tensor(t) else t for t in targets]
        return np.asarray(targets.cpu() if torch.is_tensor(targets) else targets)


def dataset_rows(X, y, name, whole=False, labels=True):
    """``(X, y)`` with a torch ``Dataset`` ``X`` as :class:`DatasetRows` (its labels as ``y`` unless given).

    Anything else comes back unchanged. ``whole``: load the rows into an array
    (for the small clean set); ``labels=False``: leave ``y`` as given (prediction).
    """
    if isinstance(X, torch.utils.data.IterableDataset):
        raise TypeError(
            f"{name} is an IterableDataset: learning to reweight keeps a weight per example "
            "and draws its own batches, so it needs a map-style Dataset (with __len__ and "
            "__getitem__) or an array; a numpy memmap serves data larger than memory."
        )
    if not isinstance(X, torch.utils.data.Dataset):
        return X, y
    rows = DatasetRows(X)
    y = rows.labels() if y is None and labels else y
    return (rows[:] if whole else rows), y
