"""The per-epoch record of the weights."""
import numpy as np
import pytest

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
