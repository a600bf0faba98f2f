"""Trusted rows inside X: ``fit(X, y, clean_mask=...)``."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import make_column_transformer
from sklearn.model_selection import cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from skorch.dataset import ValidSplit

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight._clean_mask import check_clean_mask, split_clean_rows


def _interleaved(small_data):
    """The small problem with its trusted rows spread through X."""
    X_train, y_train, X_clean, y_clean = small_data
    X, y = np.concatenate([X_train, X_clean]), np.concatenate([y_train, y_clean])
    order = np.random.RandomState(1).permutation(len(X))
    mask = np.zeros(len(X), bool)
    mask[len(X_train):] = True
    return X[order], y[order], mask[order]


def _net(**params):
    return ReweightedNeuralNetClassifier(max_epochs=3, lr=0.05, batch_size=32, random_state=0,
                                         verbose=0, **params)


@pytest.mark.parametrize("extra", [{}, {"train_split": ValidSplit(5, stratified=True)},
                                   {"weight_smoothing": 0.9}])
@pytest.mark.parametrize("with_sample_weight", [False, True])
def test_same_rows_either_way_give_the_same_fit(small_data, extra, with_sample_weight):
    X, y, mask = _interleaved(small_data)
    weight = np.random.RandomState(2).uniform(0.5, 2, len(X)) if with_sample_weight else None
    by_mask = _net(**extra).fit(X, y, clean_mask=mask, sample_weight=weight)
    by_arrays = _net(**extra).fit(X[~mask], y[~mask], X_clean=X[mask], y_clean=y[mask],
                                  sample_weight=None if weight is None else weight[~mask])
    for a, b in zip(by_mask.module_.parameters(), by_arrays.module_.parameters()):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(by_mask.predict_proba(X), by_arrays.predict_proba(X))
    # the history has a column per row of X: trusted rows were never trained on
    assert by_mask.sample_weights_.shape == (3, len(X))
    assert np.isnan(by_mask.sample_weights_[:, mask]).all()
    np.testing.assert_array_equal(by_mask.sample_weights_[:, ~mask], by_arrays.sample_weights_)
    np.testing.assert_array_equal(by_mask.sample_alignments_[:, ~mask], by_arrays.sample_alignments_)
    # suspicious_examples takes the X given to fit and ranks rows never trained on last
    issues = by_mask.suspicious_examples(X, y)
    trained = ~np.isnan(by_mask.sample_weights_).all(axis=0)
    assert not trained[mask].any()
    assert set(issues.index[:trained.sum()]) == set(np.flatnonzero(trained))


def test_partial_fit_with_a_mask_appends_columns_per_row_of_X(small_data):
    X, y, mask = _interleaved(small_data)
    net = _net().fit(X, y, clean_mask=mask).partial_fit(X, y, clean_mask=mask)
    assert net.sample_weights_.shape == (6, len(X))


def test_mask_in_a_pipeline_is_transformed_with_X_without_routing():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"size": rng.randn(400), "colour": rng.choice(["red", "green", "blue"], 400)})
    y = np.where((frame["size"] > 0) ^ (frame["colour"] == "red"), "yes", "no")
    mask = np.zeros(400, bool)
    mask[rng.choice(400, 40, replace=False)] = True
    prep = make_column_transformer((StandardScaler(), ["size"]), (OneHotEncoder(), ["colour"]))
    net = ReweightedNeuralNetClassifier(max_epochs=30, lr=0.05, random_state=0, verbose=0)
    pipe = make_pipeline(prep, net).fit(frame, y, reweightedneuralnetclassifier__clean_mask=mask)
    assert (pipe.predict(frame) == y).mean() > 0.9
    assert pipe[-1].sample_weights_.shape == (30, 400)


def test_cross_validation_slices_the_mask_with_X(small_data):
    X, y, mask = _interleaved(small_data)
    result = cross_validate(_net(), X, y, cv=3, params={"clean_mask": mask}, return_estimator=True,
                            return_indices=True)
    for est, train in zip(result["estimator"], result["indices"]["train"]):
        assert est.sample_weights_.shape == (3, len(train))
        np.testing.assert_array_equal(np.isnan(est.sample_weights_[0]), mask[train])


def test_clean_mask_and_clean_arrays_together_are_refused(small_data):
    X, y, mask = _interleaved(small_data)
    with pytest.raises(ValueError, match="one way: either X_clean and y_clean, or clean_mask"):
        _net().fit(X, y, X_clean=X[mask], y_clean=y[mask], clean_mask=mask)


@pytest.mark.parametrize("mask, error, message", [
    (np.ones(10, int), TypeError, "must be a boolean array.*np.zeros"),
    (np.zeros(9, bool), ValueError, r"shape \(9,\) but X has 10 rows"),
    (np.zeros((10, 1), bool), ValueError, "one entry per row"),
    (np.zeros(10, bool), ValueError, "marks no row as trusted"),
    (np.ones(10, bool), ValueError, "marks every row as trusted"),
])
def test_bad_masks_are_explained(mask, error, message):
    with pytest.raises(error, match=message):
        check_clean_mask(mask, 10)


def test_mismatched_labels_or_weights_are_explained():
    X, mask = np.zeros((10, 2)), np.arange(10) < 3
    with pytest.raises(ValueError, match="y has 9 rows but X has 10"):
        split_clean_rows(X, np.zeros(9), mask)
    with pytest.raises(ValueError, match="sample_weight has 4 rows"):
        split_clean_rows(X, np.zeros(10), mask, sample_weight=np.ones(4))


def test_split_keeps_dataframes_and_reports_the_training_rows():
    frame = pd.DataFrame({"a": np.arange(5.0)}, index=list("vwxyz"))
    X_train, y_train, X_clean, y_clean, _, rows = split_clean_rows(
        frame, pd.Series(list("abcde"), index=frame.index), np.array([0, 1, 0, 0, 1], bool))
    assert isinstance(X_train, pd.DataFrame) and list(X_clean.index) == ["w", "z"]
    assert list(y_train) == ["a", "c", "d"] and rows.tolist() == [0, 2, 3]


def test_a_clean_set_that_skipped_the_preprocessing_is_explained(small_data):
    X_train, y_train, _, y_clean = small_data
    raw_clean = pd.DataFrame({"colour": ["red"] * len(y_clean)})
    with pytest.raises(ValueError, match="skipped the preprocessing.*clean_mask.*transform_input"):
        _net().fit(X_train, y_train, X_clean=raw_clean.to_numpy(), y_clean=y_clean)


def test_a_sampler_before_the_network_is_explained(small_data):
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.pipeline import make_pipeline as make_imb_pipeline

    X, y, mask = _interleaved(small_data)
    y = np.where(np.arange(len(y)) % 5 == 0, 1, 0)  # imbalanced, so the sampler adds rows
    pipe = make_imb_pipeline(RandomOverSampler(random_state=0), _net())
    with pytest.raises(ValueError, match="misaligns the mask.*CleanSetBaseline"):
        pipe.fit(X, y, reweightedneuralnetclassifier__clean_mask=mask)
