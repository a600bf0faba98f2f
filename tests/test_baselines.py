"""The baseline factory: every method with one interface."""
import numpy as np
import pytest
from sklearn.base import clone

from sk_reweight.baselines import BASELINE_NAMES, make_baselines
from sk_reweight.modules import MLP


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


def _two_blobs(n=400, seed=0):
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 2, n)
    X = (rng.randn(n, 2) + 3 * y[:, None]).astype(np.float32)
    return X, y


def test_gold_loss_correction_undoes_a_systematic_flip():
    """Every untrusted label swapped: C is estimated as the swap, and the corrected net is right."""
    X, y = _two_blobs()
    methods = make_baselines(MLP, module_params=dict(n_features=2, n_classes=2), lr=0.05,
                             optimizer_params=dict(momentum=0.9), max_epochs=15, batch_size=32,
                             include=["plain", "glc"])
    X_clean, y_clean, X_train, y_swapped = X[:20], y[:20], X[20:300], 1 - y[20:300]
    for est in methods.values():
        est.fit(X_train, y_swapped, X_clean=X_clean, y_clean=y_clean)
    assert methods["glc"].corruption_[0, 1] > 0.8 and methods["glc"].corruption_[1, 0] > 0.8
    np.testing.assert_allclose(methods["glc"].corruption_.sum(axis=1), 1, rtol=1e-5)
    assert (methods["glc"].predict(X[300:]) == y[300:]).mean() > 0.9
    assert (methods["plain"].predict(X[300:]) == y[300:]).mean() < 0.1  # learned the swap


def test_random_weights_ignore_the_clean_set():
    X, y = _two_blobs()
    control = make_baselines(MLP, module_params=dict(n_features=2, n_classes=2), max_epochs=2,
                             batch_size=50, include=["random_weights"])["random_weights"]
    first = control.fit(X[40:], y[40:], X_clean=X[:20], y_clean=y[:20]).sample_weights_.copy()
    second = control.fit(X[40:], y[40:], X_clean=X[20:40], y_clean=1 - y[20:40]).sample_weights_
    np.testing.assert_array_equal(first, second)  # same seed, other clean set: same weights
    assert (first == 0).mean() > 0.3 and (first > 0).mean() > 0.3  # rectified Gaussians


def test_meta_weight_net_is_its_own_row():
    est = make_baselines(MLP, module_params=dict(n_features=2, n_classes=2),
                         include=["meta_weight_net", "reweight"])
    params = est["meta_weight_net"].get_params()
    # Meta-Weight-Net as published: the meta-net policy without stages
    assert type(params["weighting"].policy).__name__ == "MetaNetWeighting" and not params["weighting"].stages
    assert est["reweight"].get_params()["weighting"] == "cross_fit"


def test_baseline_net_sizes_the_default_mlp_from_the_data_and_takes_any_table():
    import scipy.sparse

    from sk_reweight.baselines import BaselineNet

    X = np.random.RandomState(0).randn(60, 5)  # float64
    y = (X[:, 0] > 0).astype(np.int64)
    net = BaselineNet(module__hidden_units=(8,), max_epochs=2, train_split=None, verbose=0).fit(X, y)
    assert net.module_.layers[0].in_features == 5 and net.module_.layers[0].out_features == 8
    assert net.predict_proba(scipy.sparse.csr_matrix(X)).shape == (60, 2)
    with pytest.raises(ValueError, match="module__n_features cannot be set with module=None"):
        BaselineNet(module__n_features=5, max_epochs=1, verbose=0).fit(X, y)


@pytest.mark.parametrize("name", ["concat", "finetune", "glc", "reweight"])
def test_baselines_take_the_clean_set_as_a_mask_with_the_same_result(name):
    X = np.random.RandomState(0).randn(200, 4).astype(np.float32)
    y = np.where(X[:, 0] > 0, "b", "a")
    mask = np.arange(200) >= 170
    method = make_baselines(lr=0.05, max_epochs=2, include=[name])[name]
    by_mask = clone(method).fit(X, y, clean_mask=mask)
    by_arrays = clone(method).fit(X[~mask], y[~mask], X_clean=X[mask], y_clean=y[mask])
    np.testing.assert_array_equal(by_mask.predict_proba(X), by_arrays.predict_proba(X))
    with pytest.raises(ValueError, match="one way"):
        clone(method).fit(X, y, X_clean=X[mask], y_clean=y[mask], clean_mask=mask)


def test_clean_only_gets_the_optimizer_steps_of_the_training_set():
    X = np.random.RandomState(0).randn(430, 3).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    method = make_baselines(MLP, module_params=dict(n_features=3, n_classes=2), max_epochs=3,
                            batch_size=100, include=["clean_only"])["clean_only"]
    fitted = clone(method).fit(X[30:], y[30:], X_clean=X[:30], y_clean=y[:30])
    # 3 epochs of 400 rows in batches of 100 = 12 steps; the clean set is one batch
    assert len(fitted.estimator_.history) == 12
    own = clone(method).set_params(clean_only_steps="epochs").fit(X[30:], y[30:], X_clean=X[:30], y_clean=y[:30])
    assert len(own.estimator_.history) == 3


def _optimizer_steps(method):
    net = method.estimator_[-1] if hasattr(method.estimator_, "steps") else method.estimator_
    return sum(len(batches) for batches in net.history[:, "batches"])


@pytest.mark.parametrize("name", ["random_over", "random_under", "smote"])
def test_samplers_get_the_step_budget_of_the_rows_they_were_given(name):
    rng = np.random.RandomState(0)
    X = rng.randn(300, 4).astype(np.float32)
    y = (np.arange(300) < 30).astype(int)  # 10% positives: over-sampling doubles the rows
    kwargs = dict(module_params=dict(n_features=4, n_classes=2), max_epochs=4, batch_size=32)
    methods = make_baselines(MLP, include=["plain", name], **kwargs)
    for method in methods.values():
        method.fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])
    # 300 rows (training + clean): 10 batches an epoch, 40 steps; matched up to one resampled epoch
    n_resampled = len(methods[name].estimator_[-1].history[-1, "batches"])
    assert _optimizer_steps(methods["plain"]) == 4 * 9  # 280 training rows
    assert 40 <= _optimizer_steps(methods[name]) < 40 + n_resampled
    epochs = clone(methods[name]).set_params(sampler_steps="epochs").fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])
    assert len(epochs.estimator_[-1].history) == 4
    assert len(methods[name].estimator_[-1].history) != 4


def test_steps_matched_epochs_rounds_up():
    from sk_reweight.baselines import steps_matched_epochs

    assert steps_matched_epochs(10, 100, n_reference=1000, n_fit=2000) == 5
    assert steps_matched_epochs(10, 100, n_reference=1000, n_fit=300) == 34  # 100 steps / 3 a epoch
    assert steps_matched_epochs(3, -1, n_reference=10, n_fit=99) == 3  # one batch an epoch either way


@pytest.mark.parametrize("param", ["clean_only_steps", "sampler_steps"])
def test_step_budget_options_are_checked(param):
    method = make_baselines(MLP, module_params=dict(n_features=4, n_classes=2), include=["smote"])["smote"]
    X = np.random.RandomState(0).randn(40, 4).astype(np.float32)
    with pytest.raises(ValueError, match=f"{param}='steps' must be"):
        method.set_params(**{param: "steps"}).fit(X[8:], np.arange(32) % 2, X_clean=X[:8], y_clean=np.arange(8) % 2)
