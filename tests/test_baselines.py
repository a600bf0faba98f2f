"""The baseline factory: every method with one interface."""
from pathlib import Path

import numpy as np

from sk_reweight.baselines import BASELINE_NAMES, make_baselines
from sk_reweight.modules import MLP

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_every_baseline_fits_with_the_same_interface():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 4).astype(np.float32)
    y = np.where(X[:, 0] > 0.8, "rare", "common")
    baselines = make_baselines(MLP, module_params=dict(n_features=4, n_classes=2), lr=0.05,
                               max_epochs=3, batch_size=32)
    expected = [n for n in BASELINE_NAMES if n != "cleanlab" or "cleanlab" in baselines]
    assert list(baselines) == expected
    for name, est in baselines.items():
        est.fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])
        assert set(est.predict(X)) <= {"rare", "common"}, name
        assert est.predict_proba(X).shape == (200, 2), name


def test_class_weights_are_computed_inside_fit():
    rng = np.random.RandomState(0)
    X = rng.randn(100, 3).astype(np.float32)
    y = (np.arange(100) < 10).astype(int)
    est = make_baselines(MLP, module_params=dict(n_features=3, n_classes=2), max_epochs=1,
                         include=["class_weight"])["class_weight"]
    est.fit(X, y, X_clean=X[:4], y_clean=y[:4])
    weight = est.estimator_.criterion_.weight.numpy()
    # 14 positives of 104 examples (train + clean): balanced weights n / (2 n_c)
    np.testing.assert_allclose(weight, [104 / (2 * 90), 104 / (2 * 14)], rtol=1e-6)
    assert "criterion__weight" not in est.estimator.get_params()  # the template is untouched


def test_images_go_through_smote():
    rng = np.random.RandomState(0)
    X = rng.rand(60, 1, 28, 28).astype(np.float32)
    y = (np.arange(60) < 10).astype(int)
    from sk_reweight.modules import LeNet
    est = make_baselines(LeNet, module_params=dict(n_classes=2), sample_shape=(1, 28, 28),
                         max_epochs=1, include=["smote"])["smote"]
    est.fit(X, y, X_clean=X[:6], y_clean=y[:6])
    assert est.predict(X).shape == (60,)
