"""Clean-batch cycling and training-batch bookkeeping."""
import numpy as np
import pytest
import torch

from sk_reweight._sampling import CleanBatchCycler, RecordingBatchSampler
from sk_reweight._weight_history import WeightHistory


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


def test_weight_history_state_dict_round_trip():
    history = WeightHistory()
    for epoch in range(12):  # more than 9 epochs: keys must sort numerically
        history.new_epoch(3)
        history.record([0, 1, 2], [epoch, 0, 1])
    restored = WeightHistory()
    restored.load_state_dict(history.state_dict())
    np.testing.assert_array_equal(restored.to_array(), history.to_array())
    history.new_epoch(5)
    with pytest.raises(ValueError, match="different sizes"):
        history.to_array()
