"""Training/clean datasets that feed encoded labels to torch."""
import numpy as np
import torch
from skorch.dataset import Dataset

from ._stacking import as_float32


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
        # float32 here: a float64 memmap is never copied whole
        return as_float32(self.X[indices]), self.y_encoded[indices]


class ArrayDataset(torch.utils.data.Dataset):
    """Unlabelled rows, a whole batch per fetch (for prediction on large X)."""

    def __init__(self, X):
        self.X = X

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return as_float32(self.X[i]), 0

    def __getitems__(self, indices):
        return as_float32(self.X[indices]), np.zeros(len(indices), dtype=np.int64)


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
