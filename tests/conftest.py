import os

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification

DEVICE_ENV = "SK_REWEIGHT_TEST_DEVICE"


def pytest_addoption(parser):
    parser.addoption("--device", default=None,
                     help=f"torch device of the device-sensitive tests (the `device` fixture): cpu (default), "
                          f"cuda, cuda:1, ...; also ${DEVICE_ENV}. Without CUDA, cuda skips those tests.")


def requested_device(config):
    """The device the ``device`` fixture gives: ``--device``, else ``$SK_REWEIGHT_TEST_DEVICE``, else cpu."""
    name = config.getoption("--device") or os.environ.get(DEVICE_ENV) or "cpu"
    try:
        torch.device(name)
    except RuntimeError as exc:
        raise pytest.UsageError(f"--device {name!r} is not a torch device ({exc}); use cpu, cuda or cuda:N") from None
    return name


def pytest_configure(config):
    requested_device(config)  # a misspelt device is a usage error before anything runs


def pytest_report_header(config):
    return f"sk_reweight test device: {requested_device(config)}"


@pytest.fixture(scope="session")
def device(request):
    """The device of the device-sensitive tests; skips them when CUDA is asked for but absent."""
    name = requested_device(request.config)
    kind = torch.device(name)
    if kind.type == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"device {name!r} requested (--device / ${DEVICE_ENV}) but CUDA is not available")
    if kind.type == "cuda" and kind.index is not None and kind.index >= torch.cuda.device_count():
        pytest.skip(f"device {name!r} requested but this machine has {torch.cuda.device_count()} GPU(s)")
    return name


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
