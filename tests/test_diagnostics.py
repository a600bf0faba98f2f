import numpy as np
import pytest
from conftest import make_noisy_problem
from sklearn.metrics import roc_auc_score

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.diagnostics import suspicious_examples


@pytest.fixture(scope="module")
def noisy_fit():
    X, y, Xc, yc, flipped = make_noisy_problem(noise=0.3)
    net = ReweightedNeuralNetClassifier(max_epochs=6, lr=3e-3, batch_size=64, random_state=0)
    return net.fit(X, y, X_clean=Xc, y_clean=yc), X, y, flipped


def test_flipped_labels_rank_first_and_the_verdicts_beat_the_mean_weight(noisy_fit):
    net, X, y, flipped = noisy_fit
    issues = suspicious_examples(net, X, y)
    k = int(flipped.sum())
    assert flipped[issues.index[:k]].mean() > 0.8  # 30% flipped: a random ranking finds 0.3
    assert np.all(np.diff(issues.score) <= 0)
    rejection_rate, mean_weight = np.empty(len(y)), np.empty(len(y))
    rejection_rate[issues.index], mean_weight[issues.index] = issues.rejection_rate, issues.mean_weight
    # the share of rejections is a better detector than the size of the weights
    assert roc_auc_score(flipped, rejection_rate) > roc_auc_score(flipped, -mean_weight)
    # the score is the rejection rate plus the model's disbelief in the label
    np.testing.assert_allclose(issues.score, issues.rejection_rate + 1 - issues.given_label_proba, rtol=1e-6)
    assert net.suspicious_examples(X, y).index.tolist() == issues.index.tolist()


def test_rejection_rate_counts_the_visits_of_the_last_epochs(noisy_fit):
    net, X, y, _ = noisy_fit
    alignments = net.sample_alignments_[-2:]
    issues = suspicious_examples(net, X, y, last_epochs=2)
    expected = (alignments <= 0).sum(axis=0) / (~np.isnan(alignments)).sum(axis=0)
    np.testing.assert_allclose(issues.rejection_rate, expected[issues.index])


def test_wrong_rows_are_refused(noisy_fit):
    net, X, y, _ = noisy_fit
    with pytest.raises(ValueError, match="pass the training data given to fit"):
        suspicious_examples(net, X[:10], y[:10])


def test_rows_of_X_and_y_and_last_epochs_are_each_checked(noisy_fit):
    net, X, y, _ = noisy_fit
    with pytest.raises(ValueError, match="X has 10 rows but the model was trained on"):
        suspicious_examples(net, X[:10], y)
    with pytest.raises(ValueError, match="y has 10 rows"):
        suspicious_examples(net, X, y[:10])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=f"last_epochs={bad!r} must be an int >= 1"):
            suspicious_examples(net, X, y, last_epochs=bad)


def test_the_ranking_is_a_table_indexed_by_row(noisy_fit):
    import pandas as pd

    net, X, y, _ = noisy_fit
    issues = suspicious_examples(net, X, y)
    assert isinstance(issues, pd.DataFrame) and issues.index.name == "row"
    assert list(issues.columns) == ["given_label", "predicted_label", "rejection_rate", "mean_weight",
                                    "given_label_proba", "score"]
    top = issues.head(5)  # slices like any table; rows keep their place in X
    assert len(top) == 5 and (top.given_label.to_numpy() == y[top.index]).all()
    assert sorted(issues.index) == list(range(len(y)))
