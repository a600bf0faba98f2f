import os

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


# ---------------------------------------------------------------------------
# data larger than memory: torch Datasets and memmaps, a batch at a time

import pytest  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from torch.utils.data import IterableDataset, TensorDataset  # noqa: E402

from sk_reweight import ReweightedNeuralNetClassifier  # noqa: E402
from sk_reweight._dataset import DatasetRows, dataset_rows  # noqa: E402


@pytest.fixture(scope="module")
def problem():
    X, y = make_classification(n_samples=300, n_features=6, random_state=0)
    return X[20:], y[20:], X[:20].astype(np.float32), y[:20]


def fit(X, y, **clean):
    return ReweightedNeuralNetClassifier(max_epochs=2, batch_size=32, random_state=0).fit(X, y, **clean)


class CountingDataset(TensorDataset):
    """Counts item loads, to show a fit never loads the whole set at once."""

    loads = 0

    def __getitem__(self, i):
        CountingDataset.loads += 1
        return super().__getitem__(i)


def test_a_torch_dataset_fits_as_its_arrays_do(problem):
    X, y, X_clean, y_clean = problem
    reference = fit(X.astype(np.float32), y, X_clean=X_clean, y_clean=y_clean)
    dataset = TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y))
    clean = TensorDataset(torch.tensor(X_clean), torch.tensor(y_clean))
    for net in (fit(dataset, None, X_clean=X_clean, y_clean=y_clean),  # labels read from the items
                fit(dataset, y, X_clean=clean)):  # or given; a clean Dataset
        np.testing.assert_array_equal(net.predict_proba(dataset), reference.predict_proba(X))
        np.testing.assert_array_equal(net.sample_weights_, reference.sample_weights_)


def test_a_float64_memmap_is_converted_a_batch_at_a_time(problem, tmp_path):
    X, y, X_clean, y_clean = problem
    memmap = np.memmap(tmp_path / "X.f64", dtype=np.float64, mode="w+", shape=X.shape)
    memmap[:] = X
    memmap.flush()
    memmap = np.memmap(tmp_path / "X.f64", dtype=np.float64, mode="r", shape=X.shape)
    net = fit(memmap, y, X_clean=X_clean, y_clean=y_clean)
    reference = fit(X.astype(np.float32), y, X_clean=X_clean, y_clean=y_clean)
    np.testing.assert_array_equal(net.predict_proba(memmap), reference.predict_proba(X))


def test_dataset_rows_load_only_what_is_asked():
    dataset = CountingDataset(torch.arange(20.).reshape(10, 2), torch.arange(10) % 2)
    CountingDataset.loads = 0
    rows = DatasetRows(dataset)
    assert rows.shape == (10, 2) and CountingDataset.loads == 1
    assert rows[[3, 7]].tolist() == [[6.0, 7.0], [14.0, 15.0]] and CountingDataset.loads == 3
    assert rows[8:].shape == (2, 2) and rows[::4].shape == (3, 2)
    assert rows.labels().tolist() == [0, 1] * 5


def test_workers_load_batches_as_the_main_process_does(problem):
    X, y, X_clean, y_clean = problem
    dataset = TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y))
    alone = fit(dataset, None, X_clean=X_clean, y_clean=y_clean)
    net = ReweightedNeuralNetClassifier(max_epochs=2, batch_size=32, random_state=0,
                                        iterator_train__num_workers=2, iterator_train__pin_memory=False)
    net.fit(dataset, None, X_clean=X_clean, y_clean=y_clean)
    np.testing.assert_array_equal(net.sample_weights_, alone.sample_weights_)


def test_what_a_dataset_cannot_do_is_explained(problem):
    X, y, X_clean, y_clean = problem
    dataset = TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y))

    class Stream(IterableDataset):
        def __iter__(self):
            yield from dataset

    with pytest.raises(TypeError, match="IterableDataset.*map-style"):
        fit(Stream(), None, X_clean=X_clean, y_clean=y_clean)
    with pytest.raises(ValueError, match="clean_mask.*Dataset"):
        fit(dataset, None, clean_mask=np.arange(len(X)) < 20)
    with pytest.raises(ValueError, match="no label"):
        dataset_rows(TensorDataset(torch.zeros(3, 2)), None, "X")
    ragged = [(torch.zeros(2), 0), (torch.zeros(3), 1)]  # any sequence of items with __len__

    class Ragged(torch.utils.data.Dataset):
        def __len__(self):
            return len(ragged)

        def __getitem__(self, i):
            return ragged[i]

    with pytest.raises(ValueError, match=r"Item 1 of the Dataset has inputs of shape \(3,\)"):
        DatasetRows(Ragged())[[0, 1]]
    bad = TensorDataset(torch.tensor(np.where(np.arange(len(X))[:, None] == 5, np.nan, X), dtype=torch.float32),
                        torch.tensor(y))
    with pytest.raises(ValueError, match="Item 5 of the Dataset has NaN"):
        fit(bad, None, X_clean=X_clean, y_clean=y_clean)


def test_a_float64_memmap_is_never_copied_whole(tmp_path):
    import tracemalloc

    n, d = 100_000, 50
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    X = np.memmap(tmp_path / "X.f64", dtype=np.float64, mode="w+", shape=(n, d))
    X[:] = rng.standard_normal((n, d)) + y[:, None]
    X.flush()
    X = np.memmap(tmp_path / "X.f64", dtype=np.float64, mode="r", shape=(n, d))
    X_clean, y_clean = np.asarray(X[:20], dtype=np.float32), y[:20]
    net = ReweightedNeuralNetClassifier(max_epochs=1, batch_size=1024, random_state=0)
    net.fit(X[:2000], y[:2000], X_clean=X_clean, y_clean=y_clean).predict(X[:10])  # imports, warmed up
    whole_float32 = n * d * 4
    tracemalloc.start()  # traces numpy's allocations (torch's CPU allocator it does not)
    try:
        net.fit(X, y, X_clean=X_clean, y_clean=y_clean)
        fit_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        net.predict_proba(X)
        predict_peak = tracemalloc.get_traced_memory()[1] - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert fit_peak < whole_float32 / 2 and predict_peak < whole_float32 / 2


def _status_mib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux /proc")
def test_the_in_order_passes_over_a_memmap_release_its_pages(tmp_path, monkeypatch):
    import threading

    import sk_reweight._dataset as dataset_module
    from sk_reweight._validation import check_finite_in_chunks

    n, d = 50_000, 200  # 38 MiB of float32
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    X = np.memmap(tmp_path / "X.f32", dtype=np.float32, mode="w+", shape=(n, d))
    X[:] = rng.standard_normal((n, d), dtype=np.float32) + y[:, None]
    X.flush()
    del X
    X = np.memmap(tmp_path / "X.f32", dtype=np.float32, mode="r", shape=(n, d))
    net = ReweightedNeuralNetClassifier(max_epochs=1, batch_size=256, random_state=0)
    net.fit(np.asarray(X[:3000]), y[:3000], X_clean=np.asarray(X[:20]), y_clean=y[:20])
    net.predict_proba(np.asarray(X[:3000]))  # warm-up: the libraries' pages mapped
    monkeypatch.setattr(dataset_module, "RELEASE_EVERY", 4 * 2**20)
    base, peak, done = _status_mib("RssFile"), [0.0], threading.Event()

    def sample():
        while not done.wait(0.002):
            peak[0] = max(peak[0], _status_mib("RssFile") - base)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        check_finite_in_chunks(X, "X")  # what fit does before training, on a memmap
        net.predict_proba(X)
    finally:
        done.set()
        sampler.join()
    assert peak[0] < n * d * 4 / 2**20 / 2  # without releases: the whole file
    with pytest.raises(ValueError, match="Input X contains NaN or infinity \\(in rows"):
        bad = np.memmap(tmp_path / "bad.f32", dtype=np.float32, mode="w+", shape=(50, 3))
        bad[7, 1] = np.nan
        bad.flush()
        bad = np.memmap(tmp_path / "bad.f32", dtype=np.float32, mode="r", shape=(50, 3))
        fit(bad, np.arange(50) % 2, X_clean=np.zeros((4, 3), np.float32), y_clean=np.arange(4) % 2)
