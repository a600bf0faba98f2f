"""Label noise, imbalance and clean-set splits."""
from pathlib import Path

import numpy as np
import pytest

from sk_reweight.corruption import (
    flip_labels_background,
    flip_labels_transition,
    flip_labels_uniform,
    long_tailed_counts,
    make_imbalanced,
    train_clean_split,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


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


def test_draw_clean_mask_is_class_balanced_and_train_clean_split_keeps_dataframes():
    import pandas as pd

    from sk_reweight.corruption import draw_clean_mask, train_clean_split

    y = np.array(["a"] * 30 + ["b"] * 10)
    mask = draw_clean_mask(y, 7, random_state=0)
    assert mask.sum() == 7 and sorted(np.unique(y[mask], return_counts=True)[1]) == [3, 4]
    assert np.array_equal(mask, draw_clean_mask(y, 7, random_state=0))
    frame = pd.DataFrame({"v": np.arange(40), "c": ["x"] * 40})
    X_train, X_clean, y_train, y_clean = train_clean_split(frame, y, 6, random_state=0)
    assert isinstance(X_clean, pd.DataFrame) and len(X_clean) == 6 and len(X_train) == 34
    assert np.array_equal(frame.loc[X_clean.index, "v"].to_numpy(), X_clean["v"].to_numpy())
    with pytest.raises(ValueError, match="needs more examples of some class"):
        draw_clean_mask(y, 30)
