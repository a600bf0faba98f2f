"""The options beyond the paper: each does what its docstring says, and fails clearly."""
import copy
import io

import numpy as np
import pytest
import torch

import sk_reweight._weighting as weighting_module
from sk_reweight import PAPER_EXACT, ReweightedNeuralNetClassifier
from sk_reweight._reference import reference_weights
from sk_reweight._sampling import StratifiedCleanBatchCycler
from sk_reweight._weighting import LossWeightNet, MetaNetWeights, WeightPolicy
from sk_reweight.modules import MLP

from conftest import make_noisy_problem

LOSSES = torch.tensor([0.5, 0.5])  # what the engines pass along; unused by alignment weighting


def test_clean_weight_adds_the_clean_loss_to_the_step():
    X, y, Xc, yc, _ = make_noisy_problem(n_samples=200)
    module = MLP(n_features=10, n_classes=4)
    initial = copy.deepcopy(module)
    lr, clean_weight = 0.1, 0.7
    net = ReweightedNeuralNetClassifier(module=module, max_epochs=1, batch_size=len(X), lr=lr,
                                        optimizer=torch.optim.SGD, clean_weight=clean_weight,
                                        random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)

    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    X_t, y_t, Xc_t, yc_t = map(torch.as_tensor, (X, y, Xc, yc))
    w = reference_weights(initial, loss_fn, X_t, y_t, Xc_t, yc_t)
    objective = (w * loss_fn(initial(X_t), y_t)).sum() + clean_weight * loss_fn(initial(Xc_t), yc_t).mean()
    grads = torch.autograd.grad(objective, list(initial.parameters()))
    for p_net, p0, g in zip(net.module_.parameters(), initial.parameters(), grads):
        torch.testing.assert_close(p_net.detach(), p0.detach() - lr * g, rtol=1e-4, atol=1e-6)


def test_clean_weight_trains_even_when_every_weight_is_zero(small_data, monkeypatch):
    X, y, Xc, yc = small_data
    monkeypatch.setattr(weighting_module, "normalize_weights",
                        lambda alignment, sample_weight=None: torch.zeros_like(alignment))
    before = ReweightedNeuralNetClassifier(max_epochs=1, random_state=0, clean_weight=1.0)
    net = before.fit(X, y, X_clean=Xc, y_clean=yc)
    assert net.history[-1, "skipped_batches"] == 0
    assert np.all(net.sample_weights_ == 0)


def test_weight_smoothing_is_a_moving_average_per_example():
    policy = WeightPolicy(n_train=4, smoothing=0.75)
    first = policy(torch.tensor([1.0, 3.0]), LOSSES, np.array([0, 1]))
    torch.testing.assert_close(first, torch.tensor([0.25, 0.75]))  # first visit: as the paper
    # second visit of example 1 with a new partner (example 2, first visit)
    second = policy(torch.tensor([1.0, 1.0]), LOSSES, np.array([1, 2]))
    s1 = 0.75 * 1.5 + 0.25 * 1.0  # scaled: 1.0 is uniform
    s2 = 1.0
    torch.testing.assert_close(second, torch.tensor([s1, s2]) / (s1 + s2))
    torch.testing.assert_close(policy.smoothed[:3], torch.tensor([0.5, s1, s2]))
    assert torch.isnan(policy.smoothed[3])


def test_smoothing_keeps_a_rejected_example_down_weighted_not_zeroed():
    policy = WeightPolicy(n_train=2, smoothing=0.5)
    policy(torch.tensor([1.0, 1.0]), LOSSES, np.array([0, 1]))
    w = policy(torch.tensor([-1.0, 1.0]), LOSSES, np.array([0, 1]))
    assert 0 < w[0] < w[1]


def test_smoothed_weights_survive_partial_fit_and_saving(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(module=MLP, module__n_features=6, module__n_classes=2,
                                        max_epochs=1, weight_smoothing=0.9, random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    smoothed = net.weight_history_.smoothed.clone()
    assert not torch.isnan(smoothed).any()
    buffer = io.BytesIO()
    net.save_params(f_weight_history=buffer)
    net.partial_fit(X, y, X_clean=Xc, y_clean=yc)
    assert not torch.equal(net.weight_history_.smoothed, smoothed)  # continued, not restarted

    buffer.seek(0)
    loaded = ReweightedNeuralNetClassifier(module=MLP, module__n_features=6,
                                           module__n_classes=2).initialize()
    loaded.load_params(f_weight_history=buffer)
    torch.testing.assert_close(loaded.weight_history_.smoothed, smoothed)


def test_weight_shrinkage_mixes_uniform_weights_into_the_learned_ones():
    policy = WeightPolicy(n_train=4, shrinkage=0.25)
    w = policy(torch.tensor([3.0, 1.0, -2.0, 0.0]), LOSSES, np.arange(4))
    learned = torch.tensor([0.75, 0.25, 0.0, 0.0])
    torch.testing.assert_close(w, 0.75 * learned + 0.25 * torch.full((4,), 0.25))
    assert w.sum().item() == pytest.approx(1.0)
    # sample_weight scales both parts: uniform becomes sample_weight, normalised
    sw = torch.tensor([1.0, 1.0, 2.0, 0.0])
    w = policy(torch.tensor([1.0, 1.0, 1.0, 1.0]), LOSSES, np.arange(4), sample_weight=sw)
    torch.testing.assert_close(w, sw / 4)
    # an all-zero batch keeps only the uniform share: a smaller step, not a skipped one
    w = policy(torch.tensor([-1.0, -1.0, 0.0, -3.0]), LOSSES, np.arange(4))
    torch.testing.assert_close(w, torch.full((4,), 0.25 * 0.25))


@pytest.mark.parametrize("shrinkage", [0.0, 1.0])
def test_weight_shrinkage_ends_are_the_learned_weights_and_plain_training(small_data, shrinkage):
    X, y, Xc, yc = small_data
    params = dict(PAPER_EXACT, max_epochs=2, batch_size=50, random_state=0)
    shrunk = ReweightedNeuralNetClassifier(**{**params, "weight_shrinkage": shrinkage})
    shrunk.fit(X, y, X_clean=Xc, y_clean=yc)
    if shrinkage == 0:  # no mixing: exactly the paper's weights
        expected = ReweightedNeuralNetClassifier(**params).fit(X, y, X_clean=Xc, y_clean=yc).sample_weights_
        np.testing.assert_array_equal(shrunk.sample_weights_, expected)
    else:  # all uniform: every example weighs what it would in plain training
        np.testing.assert_allclose(shrunk.sample_weights_, 1.0, rtol=1e-6)
        assert shrunk.history[-1, "skipped_batches"] == 0


def test_zero_weights_uniform_trains_all_zero_batches_uniformly(small_data, monkeypatch):
    X, y, Xc, yc = small_data
    monkeypatch.setattr(weighting_module, "normalize_weights",
                        lambda alignment, sample_weight=None: torch.zeros_like(alignment))
    net = ReweightedNeuralNetClassifier(max_epochs=1, batch_size=50, zero_weights="uniform",
                                        random_state=0).fit(X, y, X_clean=Xc, y_clean=yc)
    assert net.history[-1, "skipped_batches"] == 0
    np.testing.assert_allclose(net.sample_weights_[0], 1.0, rtol=1e-6)


@pytest.mark.parametrize("batch_size", [3, 4, 7, 12])
def test_stratified_clean_batches_cover_the_classes(batch_size):
    labels = torch.tensor([0] * 5 + [1] * 2 + [2] * 8 + [3] * 3)
    torch.manual_seed(0)
    cycler = StratifiedCleanBatchCycler(labels, batch_size)
    seen = torch.zeros(len(labels), dtype=torch.long)
    for _ in range(40):
        batch = cycler.next_indices()
        assert len(set(batch.tolist())) == len(batch)  # no example twice in a batch
        counts = torch.bincount(labels[batch], minlength=4)
        wanted = torch.full((4,), batch_size // 4)
        # every class gets its share (up to one more), capped by what it has
        assert ((counts >= torch.minimum(wanted, torch.bincount(labels))) & (counts <= wanted + 1)).all()
        seen[batch] += 1
    assert (seen > 0).all()


def test_stratified_sampling_trains_in_a_fit(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=1, clean_batch_size=10, clean_sampling="stratified",
                                        random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    assert np.isfinite(net.history[-1, "train_loss"])


@pytest.mark.parametrize("params,message", [
    ({"weight_smoothing": 1.0}, r"weight_smoothing=1.0 must be a number in \[0, 1\)"),
    ({"weight_smoothing": "yes"}, r"weight_smoothing='yes' must be a number"),
    ({"weight_shrinkage": 1.5}, r"weight_shrinkage=1.5 must be a number in \[0, 1\]"),
    ({"weight_shrinkage": None}, r"weight_shrinkage=None must be a number"),
    ({"zero_weights": "retry"}, r"zero_weights='retry' is not one of \['skip', 'uniform'\]"),
    ({"clean_weight": -1}, r"clean_weight=-1 must be a finite number >= 0"),
    ({"clean_weight": float("inf")}, r"clean_weight=inf must be a finite number"),
    ({"weighting": "mwn"}, r"weighting='mwn' is not one of \['alignment', 'meta_net'\]"),
    ({"meta_net_lr": 0}, r"meta_net_lr=0 must be a positive finite number"),
    ({"finetune_epochs": 2.5}, r"finetune_epochs=2.5 must be an int >= 0"),
    ({"clean_sampling": "balanced"}, r"clean_sampling='balanced' is not one of \['cycle', 'stratified'\]"),
])
def test_bad_options_fail_clearly(small_data, params, message):
    X, y, Xc, yc = small_data
    with pytest.raises(ValueError, match=message):
        ReweightedNeuralNetClassifier(max_epochs=1, **params).fit(X, y, X_clean=Xc, y_clean=yc)


def test_paper_exact_setting_gives_algorithm_1_weights():
    X, y, Xc, yc, _ = make_noisy_problem(n_samples=200)
    module = MLP(n_features=10, n_classes=4)
    initial = copy.deepcopy(module)
    net = ReweightedNeuralNetClassifier(module=module, max_epochs=1, batch_size=len(X),
                                        random_state=0, **PAPER_EXACT)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    w_ref = reference_weights(initial, loss_fn, *map(torch.as_tensor, (X, y, Xc, yc)))
    np.testing.assert_allclose(net.sample_weights_[0], w_ref.numpy() * len(X), rtol=1e-4, atol=1e-6)


def test_finetune_epochs_trains_on_the_clean_set_after_the_reweighted_epochs(small_data):
    from sklearn.metrics import log_loss

    X, y, Xc, yc = small_data
    params = dict(max_epochs=2, lr=0.01, random_state=0)
    before = ReweightedNeuralNetClassifier(**params).fit(X, y, X_clean=Xc, y_clean=yc)
    after = ReweightedNeuralNetClassifier(finetune_epochs=30, **params).fit(X, y, X_clean=Xc, y_clean=yc)
    # the same reweighted epochs, then 30 passes over the clean set lower its loss
    np.testing.assert_array_equal(before.sample_weights_, after.sample_weights_)
    assert log_loss(yc, after.predict_proba(Xc)) < 0.8 * log_loss(yc, before.predict_proba(Xc))
    assert after.history[-1, "finetune_loss"] > 0 and "finetune_loss" not in before.history[-1]
    assert len(after.history) == 2  # fine-tuning passes are not epochs of history_


def test_finetune_divergence_is_named(small_data):
    from sk_reweight import TrainingDivergedError

    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=0, finetune_epochs=50, lr=1e12,
                                        optimizer=torch.optim.SGD, random_state=0)
    with pytest.raises(TrainingDivergedError, match="Fine-tuning on the clean set diverged in its epoch"):
        net.fit(X, y, X_clean=Xc, y_clean=yc)


def test_meta_net_learns_to_weigh_the_losses_the_clean_set_agrees_with():
    torch.manual_seed(0)
    net = LossWeightNet()
    policy = MetaNetWeights(net, torch.optim.Adam(net.parameters(), lr=1e-2))
    losses = torch.tensor([0.1, 0.2, 2.0, 3.0])
    alignment = torch.tensor([1.0, 0.5, -1.0, -2.0])  # the clean set likes the low-loss examples
    for _ in range(50):
        w = policy(alignment, losses)
    with torch.no_grad():
        v = net(losses)
    torch.testing.assert_close(w, v / v.sum())  # the step uses the updated net, normalised
    assert w[0] > w[1] > 100 * w[2] > 100 * w[3]


def test_meta_net_weighting_down_weights_flipped_labels_and_continues(small_data):
    X, y, Xc, yc, flipped = make_noisy_problem(noise=0.4)
    net = ReweightedNeuralNetClassifier(max_epochs=6, lr=3e-3, batch_size=64, weighting="meta_net",
                                        random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    w = np.nanmean(net.sample_weights_, axis=0)
    assert w[flipped].mean() < 0.8 * w[~flipped].mean()
    assert (net.sample_weights_[-1] > 0).all()  # a sigmoid never rejects outright
    meta_net = net.meta_net_
    with torch.no_grad():  # the learned function: low loss, high weight
        low, high = meta_net.net(torch.tensor([0.05, 3.0]))
    assert low > high
    net.partial_fit(X, y, X_clean=Xc, y_clean=yc)
    assert net.meta_net_ is meta_net  # continued, not re-created
    assert net.fit(X, y, X_clean=Xc, y_clean=yc).meta_net_ is not meta_net
    assert not {id(p) for p in meta_net.net.parameters()} & {
        id(p) for g in net.optimizer_.param_groups for p in g["params"]}
