"""Training behaviour, weight history, persistence and reproducibility."""
import copy
import pickle

import numpy as np
import pytest
import torch
from conftest import RejectAll, make_noisy_problem
from sklearn.metrics import balanced_accuracy_score
from skorch.callbacks import Callback, Checkpoint, EarlyStopping, EpochScoring, LRScheduler
from skorch.dataset import ValidSplit

from sk_reweight import PAPER_EXACT, ReweightedNeuralNetClassifier
from sk_reweight.engines._reference import lookahead_eps_gradient, reference_weights
from sk_reweight.modules import MLP, LeNet


@pytest.fixture(scope="module")
def noisy_fit():
    torch.manual_seed(0)
    X, y, Xc, yc, flipped = make_noisy_problem(noise=0.4)
    net = ReweightedNeuralNetClassifier(max_epochs=8, lr=3e-3, batch_size=64, random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    return net, flipped


def test_flipped_labels_get_less_than_half_the_weight(noisy_fit):
    net, flipped = noisy_fit
    w = np.nanmean(net.sample_weights_, axis=0)
    assert w[flipped].mean() < 0.5 * w[~flipped].mean()


def test_minority_examples_get_more_weight_at_98_to_2():
    rng = np.random.RandomState(0)
    n_major, n_minor = 1470, 30
    X = np.vstack([rng.normal(0, 1, (n_major, 5)), rng.normal(1.0, 1, (n_minor, 5))]).astype(np.float32)
    y = np.r_[np.zeros(n_major, int), np.ones(n_minor, int)]
    Xc = np.vstack([rng.normal(0, 1, (10, 5)), rng.normal(1.0, 1, (10, 5))]).astype(np.float32)
    yc = np.r_[np.zeros(10, int), np.ones(10, int)]
    net = ReweightedNeuralNetClassifier(max_epochs=5, batch_size=100, random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    w = np.nanmean(net.sample_weights_, axis=0)
    assert w[y == 1].mean() > w[y == 0].mean()


def test_recorded_weights_equal_the_literal_definition():
    X, y, Xc, yc, _ = make_noisy_problem(n_samples=200)
    module = MLP(n_features=10, n_classes=4)
    initial = copy.deepcopy(module)
    # one batch holding all of X and the whole clean set: one meta step
    net = ReweightedNeuralNetClassifier(module=module, max_epochs=1, batch_size=len(X),
                                        optimizer=torch.optim.SGD, random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    w_ref = reference_weights(initial, loss_fn, torch.as_tensor(X), torch.as_tensor(y),
                              torch.as_tensor(Xc), torch.as_tensor(yc))
    np.testing.assert_allclose(net.sample_weights_[0], w_ref.numpy() * len(X), rtol=1e-4, atol=1e-6)
    # the recorded alignments are the meta-gradient itself, -d L_clean(theta') / d eps
    eps_grad = lookahead_eps_gradient(initial, loss_fn, torch.as_tensor(X), torch.as_tensor(y),
                                      torch.as_tensor(Xc), torch.as_tensor(yc))
    np.testing.assert_allclose(net.sample_alignments_[0], -eps_grad.numpy(), rtol=1e-4,
                               atol=1e-6 * float(eps_grad.abs().max()))


class ParamsPerBatch(Callback):
    def initialize(self):
        self.snapshots = []
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            self.before = [p.detach().clone() for p in net.module_.parameters()]

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training:
            after = [p.detach().clone() for p in net.module_.parameters()]
            self.snapshots.append(all(torch.equal(a, b) for a, b in zip(self.before, after)))


@pytest.mark.parametrize("optimizer,kwargs", [
    (torch.optim.SGD, {"optimizer__momentum": 0.9, "optimizer__weight_decay": 1e-3}),
    (torch.optim.Adam, {}),
])
def test_all_zero_weight_batches_change_nothing(small_data, optimizer, kwargs):
    X, y, Xc, yc = small_data
    recorder = ParamsPerBatch()
    # the paper's rule (no smoothing carries earlier weights into an all-zero batch)
    net = ReweightedNeuralNetClassifier(max_epochs=2, batch_size=50, optimizer=optimizer,
                                        callbacks=[("params", recorder)], random_state=0,
                                        **PAPER_EXACT, **kwargs)
    net.fit(X, y, X_clean=Xc, y_clean=yc)  # builds momentum / Adam state
    assert not any(recorder.snapshots)
    state_before = copy.deepcopy(net.optimizer_.state_dict())

    net.set_params(weighting=RejectAll())
    recorder.snapshots = []
    net.partial_fit(X, y, X_clean=Xc, y_clean=yc)
    assert recorder.snapshots and all(recorder.snapshots)
    state_after = net.optimizer_.state_dict()
    for key, value in state_before["state"].items():
        for name, tensor in value.items():
            assert torch.equal(torch.as_tensor(tensor), torch.as_tensor(state_after["state"][key][name]))
    n_batches = int(np.ceil(len(X) / 50))
    assert net.history[-1, "skipped_batches"] == n_batches
    assert np.all(net.sample_weights_[-1] == 0)


def test_sample_weights_history_and_summaries(noisy_fit):
    net, _ = noisy_fit
    W = net.sample_weights_
    assert W.shape == (8, len(net.weight_history_.epoch(0)))
    assert not np.isnan(W).any()
    assert (W >= 0).all()
    # 1.0 is the uniform weight: within an epoch the scaled weights average to 1
    assert net.history[-1, "weight_mean"] == pytest.approx(np.mean(W[-1]), rel=1e-5)
    assert net.history[-1, "weight_zero_frac"] == pytest.approx(np.mean(W[-1] == 0))
    for key in ("valid_loss", "valid_acc", "train_loss", "skipped_batches"):
        assert len(net.history[:, key]) == 8
    assert net.history[-1, "valid_acc"] > 0.5  # clean-set accuracy


def test_train_split_marks_held_out_examples_nan(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=2, train_split=ValidSplit(5, stratified=True),
                                        random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    W = net.sample_weights_
    held_out = np.isnan(W[0])
    assert held_out.sum() == pytest.approx(len(X) / 5, abs=2)
    assert np.array_equal(held_out, np.isnan(W[1]))
    assert "valid_acc" in net.history[-1]


def test_sample_weight_multiplies_learned_weights(small_data):
    X, y, Xc, yc = small_data
    sw = np.ones(len(X))
    sw[:40] = 0
    net = ReweightedNeuralNetClassifier(max_epochs=2, random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc, sample_weight=sw)
    assert np.all(net.sample_weights_[:, :40] == 0)
    assert np.nanmean(net.sample_weights_[:, 40:]) > 1.0


def test_same_random_state_gives_identical_results(small_data):
    X, y, Xc, yc = small_data
    kw = dict(max_epochs=3, module__dropout=0.2, random_state=7)
    a = ReweightedNeuralNetClassifier(**kw).fit(X, y, X_clean=Xc, y_clean=yc)
    torch.manual_seed(123)  # the global state must not matter
    b = ReweightedNeuralNetClassifier(**kw).fit(X, y, X_clean=Xc, y_clean=yc)
    np.testing.assert_array_equal(a.sample_weights_, b.sample_weights_)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    c = ReweightedNeuralNetClassifier(**{**kw, "random_state": 8}).fit(X, y, X_clean=Xc, y_clean=yc)
    assert not np.array_equal(a.sample_weights_, c.sample_weights_)


def test_random_state_leaves_global_torch_rng_alone(small_data):
    X, y, Xc, yc = small_data
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    ReweightedNeuralNetClassifier(max_epochs=1, random_state=0).fit(X, y, X_clean=Xc, y_clean=yc)
    assert torch.equal(torch.rand(3), expected)


def test_partial_fit_appends_epochs(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=2, random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    first = net.sample_weights_.copy()
    net.partial_fit(X, y, X_clean=Xc, y_clean=yc)
    assert net.sample_weights_.shape == (4, len(X))
    np.testing.assert_array_equal(net.sample_weights_[:2], first)
    assert len(net.history) == 4
    # fit starts over unless warm_start
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    assert net.sample_weights_.shape == (2, len(X))
    net.set_params(warm_start=True).fit(X, y, X_clean=Xc, y_clean=yc)
    assert net.sample_weights_.shape == (4, len(X))


def test_pickle_round_trip_keeps_model_and_weight_history(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=2, random_state=0).fit(X, y, X_clean=Xc, y_clean=yc)
    loaded = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(loaded.sample_weights_, net.sample_weights_)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    assert loaded.get_params()["device"] == "auto"
    loaded.partial_fit(X, y, X_clean=Xc, y_clean=yc)
    assert loaded.sample_weights_.shape == (4, len(X))


def test_save_params_and_checkpoint_persist_weight_history(small_data, tmp_path):
    X, y, Xc, yc = small_data
    cp = Checkpoint(monitor=None, dirname=str(tmp_path), f_weight_history="weights.pt")
    module = MLP(n_features=X.shape[1], n_classes=2)
    net = ReweightedNeuralNetClassifier(module=module, max_epochs=3, callbacks=[cp], random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)

    fresh = ReweightedNeuralNetClassifier(module=MLP(n_features=X.shape[1], n_classes=2)).initialize()
    fresh.load_params(checkpoint=cp)
    np.testing.assert_array_equal(fresh.sample_weights_, net.sample_weights_)
    assert len(fresh.history) == 3

    net.save_params(f_params=tmp_path / "p.pt", f_weight_history=tmp_path / "w.pt")
    other = ReweightedNeuralNetClassifier(module=MLP(n_features=X.shape[1], n_classes=2)).initialize()
    other.load_params(f_params=tmp_path / "p.pt", f_weight_history=tmp_path / "w.pt")
    np.testing.assert_array_equal(other.sample_weights_, net.sample_weights_)


def test_skorch_callbacks_work_on_the_clean_set(small_data, tmp_path):
    X, y, Xc, yc = small_data
    labels = np.array(["no", "yes"])
    net = ReweightedNeuralNetClassifier(
        max_epochs=60, random_state=0,
        callbacks=[
            LRScheduler(policy="StepLR", step_size=1, gamma=0.9),
            EpochScoring("f1_macro", name="valid_f1", lower_is_better=False),
            EpochScoring("accuracy", name="train_acc", on_train=True, lower_is_better=False),
            EarlyStopping(monitor="valid_loss", patience=3, threshold=0.01),
        ],
    )
    net.fit(X, labels[y], X_clean=Xc, y_clean=labels[yc])
    assert len(net.history) < 60  # early stopping fired
    # scoring compares predict() with the user's string labels
    expected = np.mean(net.predict(Xc) == labels[yc])
    assert net.history[-1, "valid_acc"] == pytest.approx(expected)
    assert 0 <= net.history[-1, "valid_f1"] <= 1
    assert net.history[-1, "train_acc"] > 0.3  # labels compared undecoded would score 0
    assert net.optimizer_.param_groups[0]["lr"] < 1e-3


@pytest.mark.parametrize("optimizer,kwargs", [
    (torch.optim.SGD, {"lr": 0.05}),
    (torch.optim.SGD, {"lr": 0.05, "optimizer__momentum": 0.9}),
    (torch.optim.Adam, {"lr": 0.005}),
])
def test_optimizers_learn(small_data, optimizer, kwargs):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(optimizer=optimizer, max_epochs=10, random_state=0, **kwargs)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    assert net.score(X, y) > 0.8


def test_image_input_with_lenet():
    rng = np.random.RandomState(0)
    X = rng.rand(120, 1, 16, 16).astype(np.float32)
    y = (X[:, 0, :8].mean(axis=(1, 2)) > X[:, 0, 8:].mean(axis=(1, 2))).astype(int)
    net = ReweightedNeuralNetClassifier(
        module=LeNet, module__n_classes=2, module__image_size=16,
        max_epochs=2, batch_size=32, random_state=0,
    )
    net.fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])
    assert net.n_features_in_ == 1
    assert net.sample_shape_ == (1, 16, 16)
    assert net.predict_proba(X[:5]).shape == (5, 2)
    with pytest.raises(ValueError, match=r"per-example shape \(1, 12, 12\)"):
        net.predict(rng.rand(3, 1, 12, 12))


def test_default_module_is_an_mlp_sized_from_the_data(small_data):
    X, y, Xc, yc = small_data
    y3 = np.where(X[:, 0] > 1, 2, y)  # three classes
    yc3 = np.where(Xc[:, 0] > 1, 2, yc)
    net = ReweightedNeuralNetClassifier(max_epochs=1, module__hidden_units=(8, 4)).fit(
        X, y3, X_clean=Xc, y_clean=yc3)
    assert isinstance(net.module_, MLP)
    linears = [m for m in net.module_.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6, 8), (8, 4), (4, 3)]
    with pytest.raises(ValueError, match="module=None builds an MLP"):
        ReweightedNeuralNetClassifier().initialize()


def test_initialize_load_params_then_partial_fit_continues(small_data, tmp_path):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(module=MLP(n_features=6, n_classes=2), max_epochs=2,
                                        random_state=0).fit(X, y, X_clean=Xc, y_clean=yc)
    net.save_params(f_params=tmp_path / "p.pt")
    fresh = ReweightedNeuralNetClassifier(module=MLP(n_features=6, n_classes=2), max_epochs=1,
                                          random_state=0).initialize()
    fresh.load_params(f_params=tmp_path / "p.pt")
    np.testing.assert_allclose(fresh.module_(torch.as_tensor(X)).detach(),
                               net.module_(torch.as_tensor(X)).detach())
    fresh.partial_fit(X, y, X_clean=Xc, y_clean=yc)  # continues from the loaded parameters
    assert fresh.n_features_in_ == 6 and list(fresh.classes_) == [0, 1]
    assert fresh.score(X, y) >= net.score(X, y) - 0.1


# ----------------------------------------------------------------------
# persistence: every learned part, through skorch's save_params / Checkpoint

PARTS = ("f_params", "f_optimizer", "f_weight_history", "f_weighting", "f_rng")


def _persistence_params(weighting):
    # smoothing and the clean loss on: every kind of learned state must come back
    return dict(module=MLP, module__n_features=6, module__n_classes=2, module__dropout=0.2,
                batch_size=64, weighting=weighting, weight_smoothing=0.9, clean_weight=1.0, random_state=0)


def _assert_same_fit(a, b, X):
    np.testing.assert_array_equal(a.sample_weights_, b.sample_weights_)
    np.testing.assert_array_equal(a.sample_alignments_, b.sample_alignments_)
    for (name, p), q in zip(a.module_.named_parameters(), b.module_.parameters()):
        assert torch.equal(p, q), name
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize("weighting", ["alignment", "meta_net"])
def test_fit_then_partial_fit_equals_one_longer_fit(small_data, weighting):
    X, y, Xc, yc = small_data
    params = _persistence_params(weighting)
    full = ReweightedNeuralNetClassifier(max_epochs=5, **params).fit(X, y, X_clean=Xc, y_clean=yc)
    part = ReweightedNeuralNetClassifier(max_epochs=3, **params).fit(X, y, X_clean=Xc, y_clean=yc)
    part.set_params(max_epochs=2).partial_fit(X, y, X_clean=Xc, y_clean=yc)
    _assert_same_fit(part, full, X)


@pytest.mark.parametrize("weighting", ["alignment", "meta_net"])
def test_saved_model_continues_as_the_uninterrupted_fit(small_data, tmp_path, weighting):
    X, y, Xc, yc = small_data
    params = _persistence_params(weighting)
    full = ReweightedNeuralNetClassifier(max_epochs=5, **params).fit(X, y, X_clean=Xc, y_clean=yc)
    part = ReweightedNeuralNetClassifier(max_epochs=3, **params).fit(X, y, X_clean=Xc, y_clean=yc)
    files = {part_name: tmp_path / f"{part_name}.pt" for part_name in PARTS}
    part.save_params(**files, f_history=tmp_path / "history.json")
    # a fresh estimator, as in a new process
    restored = ReweightedNeuralNetClassifier(max_epochs=2, **params).initialize()
    restored.load_params(**files, f_history=tmp_path / "history.json")
    restored.partial_fit(X, y, X_clean=Xc, y_clean=yc)
    _assert_same_fit(restored, full, X)
    assert len(restored.history) == 5


def test_checkpoint_saves_the_weighting_state(small_data, tmp_path):
    X, y, Xc, yc = small_data
    checkpoint = Checkpoint(dirname=tmp_path, monitor=None, f_weighting="weighting.pt",
                            f_rng="rng.pt", f_weight_history="weights.pt")
    net = ReweightedNeuralNetClassifier(max_epochs=2, callbacks=[checkpoint],
                                        **_persistence_params("meta_net"))
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    restored = ReweightedNeuralNetClassifier(**_persistence_params("meta_net")).initialize()
    restored.load_params(checkpoint=checkpoint)
    for (name, a), b in zip(net.weighting_.state_dict()["stage_0"].items(),
                            restored.weighting_.state_dict()["stage_0"].values()):
        assert torch.equal(a, b), name
    policy, loaded = net.weighting_.policy.net.state_dict(), restored.weighting_.policy.net.state_dict()
    assert all(torch.equal(policy[k], loaded[k]) for k in policy)
    np.testing.assert_array_equal(restored.sample_weights_, net.sample_weights_)


# ----------------------------------------------------------------------
# the weights keep their signal for the whole run

class BalancedAccuracyPerEpoch(Callback):
    def __init__(self, X, y):
        self.X, self.y = X, y

    def on_epoch_end(self, net, **kwargs):
        net.history.record("test_bacc", balanced_accuracy_score(self.y, net.predict(self.X)))


def _extreme_imbalance(seed=0):
    rng = np.random.RandomState(seed)

    def draw(n0, n1):
        X = np.concatenate([rng.randn(n0, 10), rng.randn(n1, 10) + 1.0]).astype(np.float32)
        return X, np.r_[np.zeros(n0, int), np.ones(n1, int)]

    return draw(1990, 10), draw(5, 5), draw(500, 500)  # train 99.5:0.5, clean, balanced test


@pytest.mark.parametrize("params", [{}, PAPER_EXACT, {"weight_smoothing": 0.9}, {"clean_cap": 1.0}],
                         ids=["default", "paper", "smoothing", "cap"])
def test_weights_keep_rejecting_the_majority_for_the_whole_run(params):
    (X, y), (Xc, yc), (Xt, yt) = _extreme_imbalance()
    net = ReweightedNeuralNetClassifier(max_epochs=60, batch_size=100, lr=1e-2, optimizer=torch.optim.SGD,
                                        optimizer__momentum=0.9, random_state=0,
                                        callbacks=[BalancedAccuracyPerEpoch(Xt, yt)], **params)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    last = net.sample_weights_[-10:]
    # the clean set still turns most of the majority down (averaging rejections away would not)
    assert np.mean(net.history[-10:, "weight_zero_frac"]) > 0.3
    assert np.nanmean(last[:, y == 1]) > 10 * np.nanmean(last[:, y == 0])
    # and the test curve does not decay: the last 10 epochs are within a point of the best 10
    curve = np.array(net.history[:, "test_bacc"])
    windows = np.convolve(curve, np.ones(10) / 10, mode="valid")
    assert windows[-1] > windows.max() - 0.01 and windows[-1] > 0.8
