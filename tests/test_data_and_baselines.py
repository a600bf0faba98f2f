"""Dataset loaders, corruption tools and the baseline factory."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from sk_reweight.baselines import BASELINE_NAMES, make_baselines
from sk_reweight.corruption import (
    flip_labels_background, flip_labels_transition, flip_labels_uniform, long_tailed_counts,
    make_imbalanced, train_clean_split,
)
from sk_reweight.datasets import load_fashion_mnist, load_mnist, read_idx
from sk_reweight.modules import MLP

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_idx(path, array):
    dtype_code = {np.dtype(np.uint8): 0x08}[array.dtype]
    header = bytes([0, 0, dtype_code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def test_read_idx_round_trip_and_errors(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x.gz", images)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), images)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


def test_loader_reads_a_directory_and_environment(tmp_path, monkeypatch):
    rng = np.random.RandomState(0)
    for split, n in (("train", 5), ("t10k", 3)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.randint(0, 256, (n, 28, 28)).astype(np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.randint(0, 10, n).astype(np.uint8))
    X, y = load_mnist(tmp_path, split="test")
    assert X.shape == (3, 1, 28, 28) and X.dtype == np.float32 and 0 <= X.min() <= X.max() <= 1
    assert y.dtype == np.int64
    monkeypatch.setenv("SK_REWEIGHT_FASHION_MNIST", str(tmp_path))
    assert load_fashion_mnist(split="train")[0].shape == (5, 1, 28, 28)


def test_loader_says_what_to_do_when_files_are_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("SK_REWEIGHT_MNIST", raising=False)
    monkeypatch.delenv("SK_REWEIGHT_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match=r"not found in .*pass path=\.\.\. or set \$SK_REWEIGHT_MNIST"):
        load_mnist(tmp_path, download_if_missing=False)


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="real MNIST files not present")
def test_real_mnist_and_fashion_mnist():
    X, y = load_mnist(SHARED / "mnist", split="test", download_if_missing=False)
    assert X.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(y), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert X.mean() * 255 == pytest.approx(33.791, abs=1e-3)
    X, y = load_fashion_mnist(SHARED / "fashion-mnist", split="test", download_if_missing=False)
    np.testing.assert_array_equal(np.bincount(y), [1000] * 10)


def test_uniform_flip_always_changes_the_label():
    y = np.repeat(np.arange(4), 250)
    y_noisy, flipped = flip_labels_uniform(y, 0.4, random_state=0)
    assert flipped.sum() == 400
    assert np.all(y_noisy[flipped] != y[flipped]) and np.all(y_noisy[~flipped] == y[~flipped])
    # targets spread over the other classes
    assert len(np.unique(y_noisy[flipped & (y == 0)])) == 3
    again, _ = flip_labels_uniform(y, 0.4, random_state=0)
    np.testing.assert_array_equal(again, y_noisy)


def test_background_and_transition_flips():
    y = np.repeat(np.arange(3), 100)
    y_noisy, flipped = flip_labels_background(y, 0.4, target_class=2, random_state=0)
    assert flipped.sum() == 120 and np.all(y_noisy[flipped] == 2) and np.all(y[flipped] != 2)
    T = np.array([[0.6, 0.4, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    y_noisy, flipped = flip_labels_transition(np.repeat(np.arange(3), 2000), T, random_state=0)
    assert np.all(y_noisy[flipped] == 1)
    assert flipped[:2000].mean() == pytest.approx(0.4, abs=0.03) and not flipped[2000:].any()
    with pytest.raises(ValueError, match="row-stochastic"):
        flip_labels_transition(y, np.ones((3, 3)))


def test_imbalance_by_proportions_and_factor():
    X = np.arange(2000).reshape(-1, 1)
    y = np.repeat([4, 9], 1000)
    Xk, yk, kept = make_imbalanced(X, y, proportions={9: 0.99, 4: 0.01}, random_state=0)
    assert np.mean(yk == 9) == pytest.approx(0.99, abs=1e-3)
    np.testing.assert_array_equal(Xk[:, 0], kept)
    counts = long_tailed_counts([100] * 5, 100)
    assert counts[0] == 100 and counts[-1] == 1 and np.all(np.diff(counts) <= 0)


def test_clean_set_is_balanced_and_disjoint():
    X = np.arange(300).reshape(-1, 1)
    y = np.repeat([0, 1, 2], 100)
    X_train, X_clean, y_train, y_clean = train_clean_split(X, y, 10, random_state=0)
    assert sorted(np.bincount(y_clean)) == [3, 3, 4]
    assert not set(X_clean[:, 0]) & set(X_train[:, 0])
    assert len(X_train) + len(X_clean) == 300


def test_every_baseline_fits_with_the_same_interface():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 4).astype(np.float32)
    y = np.where(X[:, 0] > 0.8, "rare", "common")
    baselines = make_baselines(MLP, module_params=dict(n_features=4, n_classes=2), lr=0.05,
                               max_epochs=3, batch_size=32)
    expected = [n for n in BASELINE_NAMES if n != "cleanlab" or "cleanlab" in baselines]
    assert list(baselines) == expected
    for name, est in baselines.items():
        est.fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])
        assert set(est.predict(X)) <= {"rare", "common"}, name
        assert est.predict_proba(X).shape == (200, 2), name


def test_class_weights_are_computed_inside_fit():
    rng = np.random.RandomState(0)
    X = rng.randn(100, 3).astype(np.float32)
    y = (np.arange(100) < 10).astype(int)
    est = make_baselines(MLP, module_params=dict(n_features=3, n_classes=2), max_epochs=1,
                         include=["class_weight"])["class_weight"]
    est.fit(X, y, X_clean=X[:4], y_clean=y[:4])
    weight = est.estimator_.criterion_.weight.numpy()
    # 14 positives of 104 examples (train + clean): balanced weights n / (2 n_c)
    np.testing.assert_allclose(weight, [104 / (2 * 90), 104 / (2 * 14)], rtol=1e-6)
    assert "criterion__weight" not in est.estimator.get_params()  # the template is untouched


def test_images_go_through_smote():
    rng = np.random.RandomState(0)
    X = rng.rand(60, 1, 28, 28).astype(np.float32)
    y = (np.arange(60) < 10).astype(int)
    from sk_reweight.modules import LeNet
    est = make_baselines(LeNet, module_params=dict(n_classes=2), sample_shape=(1, 28, 28),
                         max_epochs=1, include=["smote"])["smote"]
    est.fit(X, y, X_clean=X[:6], y_clean=y[:6])
    assert est.predict(X).shape == (60,)
