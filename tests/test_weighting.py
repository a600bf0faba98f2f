"""Weighting policies and stages: each does what its docstring says."""
import copy
import io

import numpy as np
import pytest
import torch
from conftest import RejectAll, make_noisy_problem

from sk_reweight import PAPER_EXACT, ReweightedNeuralNetClassifier, _weight_stages
from sk_reweight.engines._reference import reference_weights
from sk_reweight.modules import MLP
from sk_reweight.weighting import (
    AlignmentWeighting,
    CrossFitTrust,
    MetaNetWeighting,
    Shrinkage,
    Smoothing,
    UnlearningGuard,
    Weighting,
)

LOSSES = torch.tensor([0.5, 0.5])  # what the engines pass along; unused by alignment weighting
LOSSES3 = torch.tensor([0.5, 0.5, 0.5])


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


def test_clean_weight_trains_even_when_every_weight_is_zero(small_data):
    X, y, Xc, yc = small_data
    before = ReweightedNeuralNetClassifier(max_epochs=1, random_state=0, clean_weight=1.0,
                                           weighting=RejectAll())
    net = before.fit(X, y, X_clean=Xc, y_clean=yc)
    assert net.history[-1, "skipped_batches"] == 0
    assert np.all(net.sample_weights_ == 0)


def test_weight_smoothing_is_a_moving_average_per_example():
    policy = Weighting(AlignmentWeighting(), [Smoothing(0.75)])
    policy.start(n_train=4, device="cpu")
    first = policy(torch.tensor([1.0, 3.0]), LOSSES, np.array([0, 1]))
    torch.testing.assert_close(first, torch.tensor([0.25, 0.75]))  # first visit: as the paper
    # second visit of example 1 with a new partner (example 2, first visit)
    second = policy(torch.tensor([1.0, 1.0]), LOSSES, np.array([1, 2]))
    s1 = 0.75 * 1.5 + 0.25 * 1.0  # scaled: 1.0 is uniform
    s2 = 1.0
    torch.testing.assert_close(second, torch.tensor([s1, s2]) / (s1 + s2))
    torch.testing.assert_close(policy.stages[0].averages[:3], torch.tensor([0.5, s1, s2]))
    assert torch.isnan(policy.stages[0].averages[3])


def test_smoothing_never_averages_a_rejection_away():
    """Smoothing damps the sizes; the clean set's verdict of this step decides who trains."""
    policy = Weighting(AlignmentWeighting(), [Smoothing(0.5)])
    policy.start(n_train=3, device="cpu")
    policy(torch.tensor([1.0, 1.0, 1.0]), LOSSES3, np.array([0, 1, 2]))
    w = policy(torch.tensor([-1.0, 3.0, 1.0]), LOSSES3, np.array([0, 1, 2]))
    assert w[0] == 0  # rejected now: not trained, however welcome before
    averages = policy.stages[0].averages
    assert 0 < averages[0] < 1  # but remembered, down-weighted, for its next visit
    # the accepted ones get their averages (0.5 * 1 + 0.5 * 2.25, 0.5 * 1 + 0.5 * 0.75), not 3:1
    torch.testing.assert_close(w[1:], torch.tensor([1.625, 0.875]) / 2.5)
    # an all-rejected batch stays all-zero: with clean_weight=0 it is skipped, as in the paper
    assert not policy(torch.tensor([-1.0, -1.0, -2.0]), LOSSES3, np.array([0, 1, 2])).any()


def test_smoothed_weights_survive_partial_fit_and_saving(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(module=MLP, module__n_features=6, module__n_classes=2,
                                        max_epochs=1, weight_smoothing=0.9, random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    smoothed = net.weighting_.stages[0].averages.clone()
    assert not torch.isnan(smoothed).any()
    buffer = io.BytesIO()
    net.save_params(f_weighting=buffer)
    net.partial_fit(X, y, X_clean=Xc, y_clean=yc)
    assert not torch.equal(net.weighting_.stages[0].averages, smoothed)  # continued, not restarted

    buffer.seek(0)
    loaded = ReweightedNeuralNetClassifier(module=MLP, module__n_features=6, module__n_classes=2,
                                           weight_smoothing=0.9).initialize()
    loaded.load_params(f_weighting=buffer)
    torch.testing.assert_close(loaded.weighting_.stages[0].averages, smoothed)
    # into an estimator whose options build other parts: a clear error, nothing half-loaded
    buffer.seek(0)
    other = ReweightedNeuralNetClassifier(module=MLP, module__n_features=6, module__n_classes=2).initialize()
    with pytest.raises(ValueError, match=r"belongs to \['AlignmentWeighting', 'Smoothing', 'UnlearningGuard', "
                       r"'CrossFitTrust'\], but this estimator's weighting has \['AlignmentWeighting', "
                       r"'UnlearningGuard', 'CrossFitTrust'\]"):
        other.load_params(f_weighting=buffer)


def test_unlearning_guard_needs_classes():
    weighting = Weighting(AlignmentWeighting(), [UnlearningGuard(0.1)])
    weighting.start(n_train=2, device="cpu")  # no targets
    with pytest.raises(ValueError, match="needs the class of every training example"):
        weighting(torch.tensor([1.0, 1.0]), torch.tensor([0.1, 0.1]), positions=[0, 1])


def test_guard_fits_saves_and_continues(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(module=MLP, module__n_features=6, module__n_classes=2,
                                        max_epochs=3, unlearning_tolerance=0.0, random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    guard = net.weighting_.stages[0]
    assert isinstance(guard, UnlearningGuard) and guard.guarded.shape == (2,)
    # its mean weights are those the weight history recorded before the guard changed them
    assert not torch.isnan(guard.mean_weights).any()
    buffer = io.BytesIO()
    net.save_params(f_weighting=buffer)
    visits = guard.state_dict()["visits"].clone()
    net.partial_fit(X, y, X_clean=Xc, y_clean=yc)
    assert (net.weighting_.stages[0].state_dict()["visits"] == visits + 3).all()  # continued: three more epochs
    buffer.seek(0)
    loaded = ReweightedNeuralNetClassifier(module=MLP, module__n_features=6, module__n_classes=2,
                                           unlearning_tolerance=0.0).initialize()
    loaded.load_params(f_weighting=buffer)
    torch.testing.assert_close(loaded.weighting_.stages[0].mean_weights, guard.mean_weights)


def _guard_over_steps(pending_steps, monkeypatch):
    """What a guard returns and holds over four epochs of steps of two batch sizes (some rows twice in a
    batch, some values not finite, magnitudes far apart: sums in another order would round otherwise),
    adding ``pending_steps`` steps at a time; the caller reuses its buffers."""
    monkeypatch.setattr(_weight_stages, "PENDING_STEPS", pending_steps)
    g = torch.Generator().manual_seed(1)
    guard = UnlearningGuard(tolerance=0.0)  # guards a class at any rise of its loss
    guard.start(n_train=300, device="cpu")
    guard.set_targets(torch.randint(0, 3, (300,), generator=g))
    returned, read = [], []
    for epoch in range(4):
        # the first epoch (unguarded: its weights are added in batches) draws its rows with replacement,
        # and goes on into the second: a row in several steps added together
        order = torch.randint(0, 300, (300,), generator=g) if epoch == 0 else torch.randperm(300, generator=g)
        for first in range(0, 300, 7):
            positions = order[first:first + 7].numpy().copy()
            if first == 14:
                positions[-1] = positions[0]  # a row twice in a batch counts twice
            scale = 10.0 ** torch.randint(-8, 8, (len(positions),), generator=g)
            losses = torch.rand(len(positions), generator=g, dtype=torch.float64) * scale * (1 + epoch)
            w = torch.rand(len(positions), generator=g, dtype=torch.float64) * scale
            w = (w / w.sum()).float() if first % 2 else w / w.sum()  # float32 and float64 weights
            if first == 28:
                losses[0], w[1] = float("nan"), float("inf")
            where = torch.as_tensor(positions) if first % 3 == 0 else positions  # tensors and arrays
            guard.observe(losses, where)
            returned.append(guard(w, where).clone())
            losses.fill_(0.0), w.fill_(0.0), positions.fill(0)  # reused buffers: the guard kept copies
            if first == 140:  # read in the middle of an epoch
                read.append((guard.mean_weights, guard.guarded))
            if epoch == 0 and first == 70:  # started again in the middle of an epoch: the sums keep every step
                targets = guard._targets
                guard.start(n_train=300, device="cpu")
                guard.set_targets(targets)
        if epoch != 0:
            guard.end_epoch()
    return returned, read, guard.state_dict()


def test_the_guard_adds_steps_together_bit_for_bit(monkeypatch):
    returned, read, state = _guard_over_steps(64, monkeypatch)
    alone = _guard_over_steps(1, monkeypatch)  # each step added as it comes
    assert all(torch.equal(a.nan_to_num(), b.nan_to_num()) and torch.equal(a.isnan(), b.isnan())
               for a, b in zip(returned, alone[0]))
    for (mean, guarded), (mean_alone, guarded_alone) in zip(read, alone[1]):
        torch.testing.assert_close(mean, mean_alone, rtol=0, atol=0, equal_nan=True)
        assert torch.equal(guarded, guarded_alone)
    assert state.keys() == alone[2].keys()
    for key, value in state.items():
        assert torch.equal(value, alone[2][key]) if torch.is_tensor(value) else value == alone[2][key]
    assert not read[0][1].any() and read[-1][1].all()  # unguarded, then guarding


def test_the_guard_and_the_trust_are_on_by_default_and_off_in_paper_exact():
    stages = ReweightedNeuralNetClassifier()._make_weighting().stages
    assert [type(s) for s in stages] == [UnlearningGuard, CrossFitTrust] and stages[0].tolerance == 0.1
    assert ReweightedNeuralNetClassifier(**PAPER_EXACT)._make_weighting().stages == []
    unguarded = ReweightedNeuralNetClassifier(weighting="alignment", unlearning_tolerance=None)
    assert unguarded._make_weighting().stages == []


def test_weight_shrinkage_mixes_uniform_weights_into_the_learned_ones():
    policy = Weighting(AlignmentWeighting(), [Shrinkage(0.25)])
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


def test_zero_weights_uniform_trains_all_zero_batches_uniformly(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=1, batch_size=50, zero_weights="uniform",
                                        weighting=RejectAll(),
                                        random_state=0).fit(X, y, X_clean=Xc, y_clean=yc)
    assert net.history[-1, "skipped_batches"] == 0
    np.testing.assert_allclose(net.sample_weights_[0], 1.0, rtol=1e-6)


def test_stratified_sampling_trains_in_a_fit(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=1, clean_batch_size=10, clean_sampling="stratified",
                                        random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    assert np.isfinite(net.history[-1, "train_loss"])


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


def test_meta_net_learns_to_weigh_the_losses_the_clean_set_agrees_with():
    torch.manual_seed(0)
    policy = MetaNetWeighting(lr=1e-2)
    policy.start(n_train=4, device="cpu")
    net = policy.net
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
    meta_net = net.weighting_.policy
    with torch.no_grad():  # the learned function: low loss, high weight
        low, high = meta_net.net(torch.tensor([0.05, 3.0]))
    assert low > high

    def adam_steps(net):
        return net.weighting_.policy.optimizer.state_dict()["state"][0]["step"].item()

    steps = adam_steps(net)  # one per training step
    net.partial_fit(X, y, X_clean=Xc, y_clean=yc)
    assert adam_steps(net) == 2 * steps  # continued, not re-created
    assert adam_steps(net.fit(X, y, X_clean=Xc, y_clean=yc)) == steps
    assert not {id(p) for p in net.weighting_.policy.net.parameters()} & {
        id(p) for g in net.optimizer_.param_groups for p in g["params"]}


def test_weighting_must_be_a_name_or_a_policy(small_data):
    X, y, Xc, yc = small_data
    with pytest.raises(ValueError, match="WeightingPolicy instance"):
        ReweightedNeuralNetClassifier(weighting=lambda alignment, losses: alignment).fit(X, y, X_clean=Xc, y_clean=yc)
