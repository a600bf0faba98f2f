"""The per-epoch record of the weights."""
import numpy as np
import pytest
import torch

from sk_reweight._weight_history import WeightHistory


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


def test_alignments_round_trip_and_older_files_load_without_them():
    history = WeightHistory()
    for epoch in range(11):
        history.new_epoch(2)
        history.record([0, 1], [1.0, 0.0], alignments=[epoch, -1.0])
    restored = WeightHistory()
    restored.load_state_dict(history.state_dict())
    np.testing.assert_array_equal(restored.to_array("alignments"), history.to_array("alignments"))
    assert restored.to_array("alignments")[10, 0] == 10  # numeric, not lexical, order
    # a file saved before alignments were recorded (with the old smoothing key)
    old = {k: v for k, v in history.state_dict().items() if k.startswith("epoch_")}
    old["smoothed"] = torch.ones(2)
    legacy = WeightHistory()
    legacy.load_state_dict(old)
    np.testing.assert_array_equal(legacy.to_array(), history.to_array())
    assert np.isnan(legacy.to_array("alignments")).all()
