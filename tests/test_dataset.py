import numpy as np
import torch

from sk_reweight._dataset import ArrayDataset, EncodedLabelDataset, collate_batch


def test_datasets_serve_a_whole_batch_per_fetch():
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    dataset = EncodedLabelDataset(X, np.array([0, 1, 1, 0, 1, 0]), np.array(["a", "b"]))
    assert list(dataset.y) == ["a", "b", "b", "a", "b", "a"]  # the user's labels for scoring
    Xb, yb = collate_batch(dataset.__getitems__([4, 1]))
    assert torch.equal(Xb, torch.tensor(X[[4, 1]])) and yb.tolist() == [1, 1]
    Xb, yb = collate_batch(ArrayDataset(X).__getitems__([0, 5]))
    assert torch.equal(Xb, torch.tensor(X[[0, 5]])) and yb.tolist() == [0, 0]
