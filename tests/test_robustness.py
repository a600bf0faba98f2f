"""Interruption, divergence, persistence across devices, determinism, fuzzing."""
import pickle

import numpy as np
import pytest
import sklearn
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback, EarlyStopping

from sk_reweight import ReweightedNeuralNetClassifier, TrainingDivergedError


class InterruptAt(Callback):
    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training and len(net.history) == self.epoch and len(net.history[-1, "batches"]) == self.batch:
            raise KeyboardInterrupt


def test_keyboard_interrupt_mid_epoch_leaves_a_usable_model(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=5, batch_size=50, random_state=0,
                                        callbacks=[InterruptAt(epoch=2, batch=3)])
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    W = net.sample_weights_
    assert W.shape == (2, len(X))  # the interrupted epoch is kept ...
    assert not np.isnan(W[0]).any()
    assert np.isnan(W[1]).sum() == len(X) - 3 * 50  # ... with NaN for examples not reached
    assert net.predict(X).shape == (len(X),)
    net.partial_fit(X, y, X_clean=Xc, y_clean=yc)  # and training can go on
    assert net.sample_weights_.shape == (2 + 5, len(X))


def test_early_stopping_keeps_whole_epochs(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=50, random_state=0,
                                        callbacks=[EarlyStopping(patience=1, threshold=0.5)])
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    assert net.sample_weights_.shape[0] == len(net.history) < 50
    assert not np.isnan(net.sample_weights_).any()


def test_divergence_keeps_the_last_state_with_a_finite_loss(small_data):
    X, y, Xc, yc = small_data
    snapshots = []

    class Snapshot(Callback):
        def on_batch_begin(self, net, batch=None, training=False, **kwargs):
            if training:
                snapshots.append([p.detach().clone() for p in net.module_.parameters()])

    # zero_weights='uniform': every batch steps, so the state saved last is from before the previous step
    net = ReweightedNeuralNetClassifier(max_epochs=5, lr=1e12, optimizer=torch.optim.SGD, batch_size=16,
                                        zero_weights="uniform", random_state=0, callbacks=[Snapshot()])
    with pytest.raises(TrainingDivergedError, match=r"epoch (\d+), batch (\d+)") as info:
        net.fit(X * 1e3, y, X_clean=Xc * 1e3, y_clean=yc)
    assert len(snapshots) >= 2
    for before, now in zip(snapshots[-2], net.module_.parameters()):
        assert torch.equal(before, now)
    assert np.isfinite(net.predict_proba(X)).all()
    import re
    epoch = int(re.search(r"epoch (\d+)", str(info.value)).group(1))
    assert net.sample_weights_.shape[0] == epoch == len(net.history)


def test_model_trained_with_device_auto_on_cuda_loads_without_cuda(small_data, monkeypatch):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=1, random_state=0).fit(X, y, X_clean=Xc, y_clean=yc)
    blob = pickle.dumps(net)
    # unpickling resolves device='auto' on the loading machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = pickle.loads(blob)
    assert loaded.get_params()["device"] == "auto" and loaded.device == "cpu"
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))


def test_bitwise_identical_parameters_and_weights(small_data):
    X, y, Xc, yc = small_data
    nets = [ReweightedNeuralNetClassifier(max_epochs=3, module__dropout=0.1, random_state=4)
            .fit(X, y, X_clean=Xc, y_clean=yc) for _ in range(2)]
    for a, b in zip(nets[0].module_.parameters(), nets[1].module_.parameters()):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(nets[0].sample_weights_, nets[1].sample_weights_)


@pytest.mark.slow
def test_deterministic_inside_grid_search_with_two_jobs(small_data):
    X, y, Xc, yc = small_data

    def search():
        with sklearn.config_context(enable_metadata_routing=True):
            net = ReweightedNeuralNetClassifier(max_epochs=2, random_state=0)
            net.set_fit_request(X_clean=True, y_clean=True)
            gs = GridSearchCV(net, {"lr": [1e-3, 1e-2]}, cv=2, n_jobs=2)
            return gs.fit(X, y, X_clean=Xc, y_clean=yc)

    a, b = search(), search()
    np.testing.assert_array_equal(a.cv_results_["mean_test_score"], b.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(a.best_estimator_.sample_weights_, b.best_estimator_.sample_weights_)


DOCUMENTED_ERRORS = (ValueError, TypeError)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_samples=st.integers(1, 30),
    n_features=st.integers(1, 4),
    n_classes=st.integers(1, 4),
    n_clean=st.integers(0, 8),
    batch_size=st.integers(1, 40),
    dtype=st.sampled_from([np.float32, np.float64, np.int64]),
    label_kind=st.sampled_from(["int", "str", "bool"]),
    seed=st.integers(0, 2**16),
)
def test_fuzz_fit_either_works_or_raises_a_documented_error(
        n_samples, n_features, n_classes, n_clean, batch_size, dtype, label_kind, seed):
    rng = np.random.RandomState(seed)
    X = (rng.randn(n_samples, n_features) * 3).astype(dtype)
    Xc = (rng.randn(n_clean, n_features) * 3).astype(dtype)
    y_idx = rng.randint(0, n_classes, n_samples)
    yc_idx = rng.randint(0, n_classes, n_clean)
    labels = {"int": np.array([5, -2, 11, 0]), "str": np.array(["a", "b", "c", "d"]),
              "bool": np.array([True, False, True, False])}[label_kind]
    y, yc = labels[y_idx], labels[yc_idx]
    net = ReweightedNeuralNetClassifier(max_epochs=1, batch_size=batch_size, random_state=0,
                                        module__hidden_units=(4,))
    try:
        net.fit(X, y, X_clean=Xc, y_clean=yc)
    except DOCUMENTED_ERRORS:
        return
    pred = net.predict(X)
    assert pred.shape == (n_samples,)
    assert set(pred) <= set(net.classes_)
    proba = net.predict_proba(X)
    assert proba.shape == (n_samples, len(net.classes_))
    assert np.allclose(proba.sum(1), 1, atol=1e-5)
    assert net.sample_weights_.shape == (1, n_samples)
