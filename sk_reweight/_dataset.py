"""Training/clean datasets that feed encoded labels to torch."""
import numpy as np
import torch
from skorch.dataset import Dataset


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
        return self.X[i], self.y_encoded[i]

    def __getitems__(self, indices):
        # a whole batch in one indexing operation (DataLoader's batched fetch)
        return self.X[indices], self.y_encoded[indices]


class ArrayDataset(torch.utils.data.Dataset):
    """Unlabelled rows, a whole batch per fetch (for prediction on large X)."""

    def __init__(self, X):
        self.X = X

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], 0

    def __getitems__(self, indices):
        return self.X[indices], np.zeros(len(indices), dtype=np.int64)


def collate_batch(batch):
    """Collate for :meth:`EncodedLabelDataset.__getitems__`: already one batch."""
    X, y = batch
    return torch.as_tensor(X), torch.as_tensor(y)
