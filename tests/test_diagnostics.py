import numpy as np
import pytest

from sk_reweight import PAPER_EXACT, ReweightedNeuralNetClassifier
from sk_reweight.diagnostics import suspicious_examples

from conftest import make_noisy_problem


def test_flipped_labels_rank_first():
    X, y, Xc, yc, flipped = make_noisy_problem(noise=0.3)
    net = ReweightedNeuralNetClassifier(max_epochs=6, lr=3e-3, batch_size=64, random_state=0, **PAPER_EXACT)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    issues = suspicious_examples(net, X, y)
    k = int(flipped.sum())
    assert flipped[issues.index[:k]].mean() > 2 * flipped.mean()  # far better than chance
    assert np.all(np.diff(issues.score) <= 0)
    assert net.suspicious_examples(X, y).index.tolist() == issues.index.tolist()
    with pytest.raises(ValueError, match="pass the training data given to fit"):
        suspicious_examples(net, X[:10], y[:10])
