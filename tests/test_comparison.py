"""compare() and paired_summary(): the user's head-to-head comparison in a few lines."""
import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import make_pipeline as make_imb_pipeline
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_reweight.baselines import BASELINE_NAMES, CleanSetBaseline, make_baselines
from sk_reweight.comparison import compare, paired_summary


def _table(n, seed):
    """A mixed-type table: a numeric and a categorical column, string labels, 15% 'yes'."""
    rng = np.random.RandomState(seed)
    frame = pd.DataFrame({"income": rng.gamma(2, 10, n),
                          "region": rng.choice(["north", "south", "east"], n)})
    score = (frame["income"] - 30) / 10 + (frame["region"] == "south")
    y = np.where(score + 0.3 * rng.randn(n) > 0.6, "yes", "no")
    return frame, y


def _preprocessing():
    return make_column_transformer((StandardScaler(), ["income"]), (OneHotEncoder(), ["region"]))


def test_every_baseline_trains_on_a_raw_dataframe_with_string_labels():
    X, y = _table(500, 0)
    X_test, y_test = _table(300, 1)
    mask = np.zeros(len(X), bool)
    mask[np.random.RandomState(2).choice(len(X), 60, replace=False)] = True
    methods = make_baselines(preprocessing=_preprocessing(), lr=0.05, max_epochs=2, batch_size=64,
                             module_params=dict(hidden_units=(16,)))
    assert set(methods) >= set(BASELINE_NAMES) - {"cleanlab"}
    out = compare(methods, X, y, clean_mask=mask, X_test=X_test, y_test=y_test, seeds=[0])
    results = out.results
    assert list(results["method"]) == list(methods)
    assert results[["balanced_accuracy", "accuracy", "f1_macro"]].notna().all().all()
    assert (results["fit_seconds"] > 0).all()
    # predictions come back as the user's labels
    fitted = methods["glc"].fit(X, y, method__clean_mask=mask)
    assert set(fitted.predict(X_test)) <= {"yes", "no"}


def test_compare_is_reproducible_and_seeds_reach_nested_random_states():
    X, y = _table(300, 0)
    X_clean, y_clean = _table(40, 3)
    X_test, y_test = _table(200, 1)
    methods = make_baselines(preprocessing=_preprocessing(), lr=0.05, max_epochs=2,
                             include=["smote", "reweight"])
    first = compare(methods, X, y, X_clean=X_clean, y_clean=y_clean, X_test=X_test, y_test=y_test,
                    seeds=[0, 1]).results
    again = compare(methods, X, y, X_clean=X_clean, y_clean=y_clean, X_test=X_test, y_test=y_test,
                    seeds=[0, 1]).results
    cols = ["balanced_accuracy", "accuracy", "f1_macro"]
    pd.testing.assert_frame_equal(first[cols], again[cols])
    by_seed = first.set_index(["method", "seed"])["accuracy"]
    assert by_seed["reweight", 0] != by_seed["reweight", 1]


def test_compare_takes_tabular_baselines_and_the_clean_set_either_way():
    X, y = _table(400, 0)
    X_test, y_test = _table(200, 1)
    prep = _preprocessing()
    methods = {
        "logreg_balanced": make_pipeline(prep, CleanSetBaseline(LogisticRegression(class_weight="balanced"))),
        "smote_logreg": make_pipeline(prep, CleanSetBaseline(make_imb_pipeline(SMOTE(), LogisticRegression()))),
        "reweight": make_baselines(preprocessing=prep, lr=0.05, max_epochs=2, include=["reweight"])["reweight"],
    }
    mask = np.arange(len(X)) >= 350  # X_clean is appended after X: the same rows in the same order
    by_mask = compare(methods, X, y, clean_mask=mask, X_test=X_test, y_test=y_test).results
    by_arrays = compare(methods, X[~mask], y[~mask], X_clean=X[mask], y_clean=y[mask],
                        X_test=X_test, y_test=y_test).results
    cols = ["method", "seed", "balanced_accuracy", "accuracy", "f1_macro"]
    pd.testing.assert_frame_equal(by_mask[cols], by_arrays[cols])
    assert by_mask.set_index("method").loc["logreg_balanced", "balanced_accuracy"] > 0.7


def test_compare_explains_bad_calls():
    X, y = _table(50, 0)
    with pytest.raises(TypeError, match="non-empty dict"):
        compare([], X, y, clean_mask=np.arange(50) < 5, X_test=X, y_test=y)
    with pytest.raises(ValueError, match="X_clean and y_clean, or clean_mask"):
        compare({"a": None}, X, y, X_test=X, y_test=y)
    with pytest.raises(ValueError, match="one way"):
        compare({"a": None}, X, y, X_clean=X, y_clean=y, clean_mask=np.arange(50) < 5, X_test=X, y_test=y)


def test_paired_summary_counts_and_sign_test_by_hand():
    rows = []
    for dataset in ("d1", "d2"):
        for seed in range(5):
            rows.append({"dataset": dataset, "seed": seed, "method": "ref", "score": 0.8})
            # the other method loses 9 cells and ties one
            rows.append({"dataset": dataset, "seed": seed, "method": "other",
                         "score": 0.8 if (dataset, seed) == ("d1", 0) else 0.7})
    summary = paired_summary(pd.DataFrame(rows), reference="ref", metric="score")
    row = summary.iloc[0]
    assert (row["method"], row["n_cells"], row["wins"], row["ties"], row["losses"]) == ("other", 10, 9, 1, 0)
    assert row["p_value"] == pytest.approx(2 * 0.5 ** 9)  # two-sided: 9 of 9 decided cells
    assert row["mean_difference"] == pytest.approx(0.09)
    with pytest.raises(ValueError, match="reference 'nope' is not among"):
        paired_summary(pd.DataFrame(rows), reference="nope", metric="score")
