"""Training/clean datasets that feed encoded labels to torch."""
import numpy as np
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
