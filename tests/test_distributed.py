"""Data-parallel training under torchrun (2 CPU processes, Gloo) against one process."""
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight._dataset import DatasetRows
from sk_reweight._distributed import DataParallel, DataParallelEngine, _fingerprint
from sk_reweight._sampling import RecordingBatchSampler

WORKER = Path(__file__).with_name("distributed_worker.py")
CASES = runpy.run_path(str(WORKER))["CASES"]
# data parallel matches one process with world_size times the batch, except where it cannot:
# batch statistics are per process, unseeded runs draw other initial weights, and float16
# rounds matrix products of other sizes otherwise
PARITY = [name for name in CASES if name not in ("batch_norm", "unseeded", "float16")]
WORLD_SIZE = 2

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for command in ([sys.executable, str(WORKER), str(out), "--alone", str(WORLD_SIZE)],
                    [sys.executable, "-m", "torch.distributed.run", "--standalone",
                     f"--nproc_per_node={WORLD_SIZE}", str(WORKER), str(out)]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    def load(case, who):
        return torch.load(out / f"{case}_{who}.pt", weights_only=False)
    return load


@pytest.mark.parametrize("case", PARITY)
@pytest.mark.slow
def test_two_processes_match_one_process_with_twice_the_batch(runs, case):
    alone, rank0 = runs(case, "alone"), runs(case, "rank0")
    for name, value in alone["params"].items():
        torch.testing.assert_close(rank0["params"][name], value, atol=1e-5, rtol=1e-5, msg=name)
    # weights are on the scale where 1 is uniform; the alignments behind them are sums taken
    # in another order across ranks (measured: within 4e-5)
    np.testing.assert_allclose(rank0["weights"], alone["weights"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rank0["alignments"], alone["alignments"], rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(rank0["train_loss"], alone["train_loss"], rtol=1e-5)
    assert rank0["skipped"] == alone["skipped"]
    np.testing.assert_allclose(rank0["proba"], alone["proba"], atol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.slow
def test_ranks_end_identical_and_record_every_row(runs, case):
    rank0, rank1 = runs(case, "rank0"), runs(case, "rank1")
    for name, value in rank0["params"].items():
        assert torch.equal(rank1["params"][name], value), name
    np.testing.assert_array_equal(rank1["weights"], rank0["weights"])
    np.testing.assert_array_equal(rank1["proba"], rank0["proba"])
    assert rank1["overflows"] == rank0["overflows"]
    trained = rank0["weights"] if case != "mlp_jvp" else rank0["weights"][:, ~np.isnan(rank0["weights"][0])]
    if case == "float16":  # the first steps overflowed on every rank alike and trained no row
        assert rank0["overflows"][0] > 0 and rank0["overflows"][-1] == 0
        trained = trained[-1:]
    assert not np.isnan(trained).any()  # every rank's history covers every training row
    assert rank0["engine"].startswith("DataParallelEngine(")


@pytest.mark.slow
def test_empty_and_all_zero_shares_and_global_skips_were_exercised(runs):
    rank1 = runs("paper_exact_tiny_batches", "rank1")
    steps = rank1["steps"]
    assert any(n == 0 for n, _, _ in steps)  # 41 rows in global batches of 4: rank 1 gets none of the last
    assert any(n > 0 and not nonzero and not skipped for n, nonzero, skipped in steps)
    assert sum(rank1["skipped"]) > 0


@pytest.mark.slow
def test_a_search_under_torchrun_fits_alone_in_its_workers(runs):
    alone, rank0, rank1 = runs("search", "alone"), runs("search", "rank0"), runs("search", "rank1")
    assert rank0["best"] == rank1["best"] == alone["best"]
    np.testing.assert_array_equal(rank0["scores"], alone["scores"])  # the workers' fits: no group
    assert rank0["engine"].startswith("DataParallelEngine(")  # the refit in the launched process


@pytest.mark.slow
def test_ranks_given_different_data_all_fail_with_the_fix(runs):
    assert runs("mismatch", "alone")["message"] is None
    for who in ("rank0", "rank1"):  # both raise (rank 0 too): no rank is left waiting in a collective
        message = runs("mismatch", who)["message"]
        assert "were given different y_clean: rank(s) [1] differ from rank 0" in message, message
        assert "load or generate it the same way on each" in message


@pytest.mark.slow
def test_a_rank_whose_data_fails_validation_stops_every_rank(runs):
    assert runs("invalid", "alone")["message"] is None
    assert "X_clean" in runs("invalid", "rank1")["message"]  # its own error
    message = runs("invalid", "rank0")["message"]
    assert message.startswith("Rank(s) [1] of this data-parallel fit could not start it (rank 1: ValueError: ")
    assert "X_clean" in message


def test_a_failure_on_one_rank_is_raised_on_every_rank(monkeypatch):
    parallel = DataParallel(rank=0, world_size=2, device="cpu")

    def others_failed(out, mine):
        out[:] = [mine, {"failure": "ValueError: bad rows", "arrays": {}}]

    monkeypatch.setattr(torch.distributed, "all_gather_object", others_failed)
    with pytest.raises(ValueError, match=r"Rank\(s\) \[1\] .* \(rank 1: ValueError: bad rows\); every rank stops"):
        parallel.check_same_data(X=np.zeros((3, 2)))
    assert parallel.check_same_data(failure=ValueError("mine")) is None  # this rank raises its own


def test_a_datasets_rows_are_not_loaded_to_compare_them():
    loads = []

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 50

        def __getitem__(self, i):
            loads.append(i)
            return torch.zeros(3), 0

    rows = DatasetRows(Items())
    before = len(loads)  # the first item, for the shape
    assert _fingerprint(rows) == ("DatasetRows", (50, 3)) and len(loads) == before


def test_data_that_differs_between_ranks_is_named(monkeypatch):
    parallel = DataParallel(rank=0, world_size=3, device="cpu")
    X, y = np.arange(4000.0).reshape(2000, 2), np.zeros(2000)
    edited = X.copy()
    edited[1999, 1] = -1.0  # the last row is always among those compared

    def gather_with_rank_2_holding(other):
        def all_gather_object(out, mine):
            out[:] = [mine, mine, {**mine, "arrays": {**mine["arrays"], "X": _fingerprint(other)}}]
        return all_gather_object

    monkeypatch.setattr(torch.distributed, "all_gather_object", gather_with_rank_2_holding(edited))
    with pytest.raises(ValueError, match=r"3 processes .* were given different X: rank\(s\) \[2\] differ"):
        parallel.check_same_data(X=X, y=y, sample_weight=None)
    monkeypatch.setattr(torch.distributed, "all_gather_object", gather_with_rank_2_holding(X.copy()))
    parallel.check_same_data(X=X, y=y, sample_weight=None)  # a copy is the same data: nothing raised
    assert _fingerprint(X[::-1]) != _fingerprint(X) and _fingerprint(X.astype(np.float32)) != _fingerprint(X)
    wide = np.zeros((3, 2**21), dtype=np.float32)  # 8 MiB a row: two rows fit in the 16 MiB compared
    middle, last = wide.copy(), wide.copy()
    middle[1, 0], last[2, 0] = 1.0, 1.0
    assert _fingerprint(middle) == _fingerprint(wide) != _fingerprint(last)  # the first and the last row


def test_a_process_alone_trains_alone():
    assert DataParallel.join() is None
    X = np.random.RandomState(0).randn(40, 3).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    clean = np.r_[np.flatnonzero(y == 0)[:3], np.flatnonzero(y == 1)[:3]]
    net = ReweightedNeuralNetClassifier(max_epochs=1, random_state=0).fit(X, y, X_clean=X[clean], y_clean=y[clean])
    assert not isinstance(net.meta_engine_, DataParallelEngine)


def test_the_sampler_deals_every_world_size_th_row_of_each_global_batch():
    ranks = [DataParallel(rank, 2, "cpu") for rank in range(2)]
    samplers = [RecordingBatchSampler(9, 2, shuffle=False, parallel=p) for p in ranks]
    assert [list(s) for s in samplers] == [[[0, 2], [4, 6], [8]], [[1, 3], [5, 7], []]]
    assert [len(s) for s in samplers] == [3, 3]
    assert samplers[1].pop().tolist() == [0, 1, 2, 3]  # the global batch


def test_accelerate_mixin_is_refused_with_the_fix():
    class Accelerated(ReweightedNeuralNetClassifier):
        accelerator = object()

    X = np.zeros((10, 2), dtype=np.float32)
    y = np.arange(10) % 2
    with pytest.raises(TypeError, match="AccelerateMixin.*torchrun"):
        Accelerated(max_epochs=1).fit(X, y, X_clean=X[:2], y_clean=y[:2])


def test_a_torchrun_rank_joins_nccl_on_the_gpu_of_its_local_rank(monkeypatch):
    # without a GPU here: the calls DataParallel.join makes, recorded
    from sk_reweight import _distributed
    from sk_reweight._device import auto_device

    calls = {}
    monkeypatch.setattr(_distributed, "_launched_by_torchrun", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: calls.update(device=index))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: calls["device"])
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend: calls.update(backend=backend))
    monkeypatch.setattr(torch.distributed, "get_backend", lambda: calls["backend"])
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 4)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 3)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    joined = DataParallel.join()
    assert calls["backend"] == "nccl" and joined.device == torch.device("cuda", 1)
    assert torch.device(auto_device()) == joined.device  # where device='auto' puts the module
