"""CleanSetKFold: searches and cross-validation scored on trusted rows only."""
import numpy as np
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.model_selection import CleanSetKFold


def _problem(n=300, n_trusted=40, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 4).astype(np.float32)
    y = np.where(X[:, 0] + 0.3 * X[:, 1] > 0, "pos", "neg")
    mask = np.zeros(n, bool)
    mask[rng.choice(n, n_trusted, replace=False)] = True
    return X, y, mask


@pytest.mark.parametrize("shuffle", [False, True])
def test_test_folds_hold_trusted_rows_only_and_each_once(shuffle):
    X, y, mask = _problem()
    splits = list(CleanSetKFold(4, shuffle=shuffle, random_state=0).split(X, y, clean_mask=mask))
    assert len(splits) == 4
    tested = np.concatenate([test for _, test in splits])
    assert mask[tested].all()
    assert np.array_equal(np.sort(tested), np.flatnonzero(mask))
    for train, test in splits:
        # every untrusted row and the other folds' trusted rows
        assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(X)))
        assert (~mask[train]).sum() == (~mask).sum()
        # stratified: each fold has both classes in the trusted rows' proportion
        share = (y[test] == "pos").mean()
        assert abs(share - (y[mask] == "pos").mean()) <= 0.15


def test_shuffle_depends_on_random_state():
    X, y, mask = _problem()
    first = [test for _, test in CleanSetKFold(4, shuffle=True, random_state=0).split(X, y, clean_mask=mask)]
    again = [test for _, test in CleanSetKFold(4, shuffle=True, random_state=0).split(X, y, clean_mask=mask)]
    other = [test for _, test in CleanSetKFold(4, shuffle=True, random_state=1).split(X, y, clean_mask=mask)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def _net():
    return ReweightedNeuralNetClassifier(max_epochs=3, random_state=0, verbose=0)


class _RecordingScorer:
    """Accuracy that remembers the rows it was asked to score."""

    def __init__(self):
        self.rows = []

    def __call__(self, estimator, X, y):
        self.rows.append(np.asarray(X).copy())
        return float((estimator.predict(X) == y).mean())


def _scored_rows_are_trusted(scorer, X, mask):
    trusted = {row.tobytes() for row in X[mask]}
    # scaled rows in a Pipeline are scored as given: compare the raw inputs
    return all(row.tobytes() in trusted for rows in scorer.rows for row in rows)


def test_grid_search_scores_every_candidate_on_trusted_rows():
    X, y, mask = _problem()
    scorer = _RecordingScorer()
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler(), _net().set_fit_request(clean_mask=True))
        search = GridSearchCV(pipe, {"reweightedneuralnetclassifier__lr": [0.01, 0.1]},
                              cv=CleanSetKFold(4), scoring=scorer)
        search.fit(X, y, clean_mask=mask)
    assert len(scorer.rows) == 8 and _scored_rows_are_trusted(scorer, X, mask)
    # the refit model kept the trusted rows as its clean set
    assert np.isnan(search.best_estimator_[-1].sample_weights_[:, mask]).all()


def test_cross_validate_with_the_mask_as_a_param():
    X, y, mask = _problem()
    with sklearn.config_context(enable_metadata_routing=True):
        result = cross_validate(_net().set_fit_request(clean_mask=True), X, y, cv=CleanSetKFold(4),
                                params={"clean_mask": mask}, return_indices=True)
    assert all(mask[test].all() for test in result["indices"]["test"])
    assert len(result["test_score"]) == 4


def test_without_routing_the_error_says_how_to_pass_the_mask():
    X, y, mask = _problem()
    search = GridSearchCV(_net(), {"lr": [0.01, 0.1]}, cv=CleanSetKFold(4))
    with pytest.raises(ValueError, match="enable_metadata_routing=True.*set_fit_request"):
        search.fit(X, y, clean_mask=mask)


@pytest.mark.parametrize("n_splits, n_trusted, message", [
    (1, 40, "n_splits must be an integer >= 2"),
    (2.5, 40, "n_splits must be an integer >= 2"),
    (5, 4, "needs at least 5 trusted rows; clean_mask marks 4"),
])
def test_bad_settings_are_explained(n_splits, n_trusted, message):
    X, y, mask = _problem(n_trusted=n_trusted)
    with pytest.raises(ValueError, match=message):
        next(CleanSetKFold(n_splits).split(X, y, clean_mask=mask))


def test_without_labels_the_trusted_rows_are_split_unstratified():
    X, _, mask = _problem()
    tests = [test for _, test in CleanSetKFold(5).split(X, clean_mask=mask)]
    assert sorted(len(t) for t in tests) == [8] * 5 and CleanSetKFold(5).get_n_splits() == 5


def test_request_clean_mask_reaches_the_last_step_of_nested_pipelines():
    from sklearn.linear_model import LogisticRegression

    from sk_reweight.baselines import CleanSetBaseline
    from sk_reweight.model_selection import request_clean_mask

    X, y, mask = _problem()
    with sklearn.config_context(enable_metadata_routing=True):
        inner = make_pipeline(StandardScaler(), CleanSetBaseline(LogisticRegression()))
        pipe = request_clean_mask(make_pipeline(StandardScaler(), inner))
        result = cross_validate(pipe, X, y, cv=CleanSetKFold(4), params={"clean_mask": mask})
        assert (result["test_score"] > 0.8).all()
        with pytest.raises(TypeError, match="takes no clean_mask; wrap it in .*CleanSetBaseline"):
            request_clean_mask(make_pipeline(StandardScaler(), LogisticRegression()))
