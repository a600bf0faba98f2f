import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification


@pytest.fixture(autouse=True)
def seed_everything():
    torch.manual_seed(0)
    np.random.seed(0)


def make_noisy_problem(n_samples=1200, n_classes=4, noise=0.4, n_clean_per_class=10, seed=0):
    """Separable-ish task with uniformly flipped training labels and a clean set."""
    rng = np.random.RandomState(seed)
    X, y = make_classification(
        n_samples=n_samples, n_features=10, n_informative=6, n_classes=n_classes,
        n_clusters_per_class=1, class_sep=2.0, random_state=seed,
    )
    X = X.astype(np.float32)
    clean = np.concatenate([np.flatnonzero(y == c)[:n_clean_per_class] for c in range(n_classes)])
    train = np.setdiff1d(np.arange(n_samples), clean)
    y_train = y[train].copy()
    flipped = rng.rand(len(train)) < noise
    # a real flip: to one of the other classes
    y_train[flipped] = (y_train[flipped] + rng.randint(1, n_classes, flipped.sum())) % n_classes
    return X[train], y_train, X[clean], y[clean], flipped


@pytest.fixture(scope="session")
def small_data():
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, random_state=0)
    X = X.astype(np.float32)
    return X[30:], y[30:], X[:30], y[:30]


class RejectAll:
    """A weighting policy that rejects every example (every batch all-zero)."""

    def __new__(cls):
        from sk_reweight.weighting import WeightingPolicy

        class _RejectAll(WeightingPolicy):
            def weights(self, alignment, losses):
                return torch.zeros_like(alignment)

        return _RejectAll()
