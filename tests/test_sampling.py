"""Clean-batch cycling and training-batch bookkeeping."""
import numpy as np
import pytest
import torch

from sk_reweight._sampling import CleanBatchCycler, RecordingBatchSampler, StratifiedCleanBatchCycler


@pytest.mark.parametrize("n,batch", [(10, 10), (10, 3), (7, 4), (5, 1)])
def test_clean_batches_cover_each_pass_without_repeats(n, batch):
    cycler = CleanBatchCycler(n, batch)
    seen = np.concatenate([cycler.next_indices().numpy() for _ in range(n * 6)])
    batches = seen.reshape(-1, batch)
    assert all(len(set(b)) == batch for b in batches)  # no example twice in a batch
    for start in range(0, len(seen) - n + 1, n):  # every pass holds each example once
        assert sorted(seen[start:start + n]) == list(range(n))


def test_clean_passes_are_reshuffled():
    cycler = CleanBatchCycler(20, 20)
    first, second = cycler.next_indices(), cycler.next_indices()
    assert sorted(first.tolist()) == sorted(second.tolist()) and not torch.equal(first, second)


def test_recording_sampler_reports_batches_in_order_with_positions():
    sampler = RecordingBatchSampler(7, 3, shuffle=True, positions=np.arange(100, 107))
    batches = list(iter(sampler))
    popped = [sampler.pop() for _ in batches]
    for rows, positions in zip(batches, popped):
        np.testing.assert_array_equal(positions, np.asarray(rows) + 100)
    assert sorted(np.concatenate(popped)) == list(range(100, 107))
    assert len(RecordingBatchSampler(7, 3, drop_last=True)) == 2
    assert [len(b) for b in RecordingBatchSampler(7, 3, shuffle=False, drop_last=True)] == [3, 3]


@pytest.mark.parametrize("batch_size", [3, 4, 7, 12])
def test_stratified_clean_batches_cover_the_classes(batch_size):
    labels = torch.tensor([0] * 5 + [1] * 2 + [2] * 8 + [3] * 3)
    torch.manual_seed(0)
    cycler = StratifiedCleanBatchCycler(labels, batch_size)
    seen = torch.zeros(len(labels), dtype=torch.long)
    for _ in range(40):
        batch = cycler.next_indices()
        assert len(set(batch.tolist())) == len(batch)  # no example twice in a batch
        counts = torch.bincount(labels[batch], minlength=4)
        wanted = torch.full((4,), batch_size // 4)
        # every class gets its share (up to one more), capped by what it has
        assert ((counts >= torch.minimum(wanted, torch.bincount(labels))) & (counts <= wanted + 1)).all()
        seen[batch] += 1
    assert (seen > 0).all()
