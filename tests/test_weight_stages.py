"""The weighting stages on their own: hand-checked arithmetic and state."""
import pytest
import torch

from sk_reweight._weight_stages import _normalize, _uniform
from sk_reweight.weighting import UnlearningGuard


def _guard_epoch(guard, losses, weights, positions=(0, 1, 2, 3)):
    guard.observe(torch.tensor(losses, dtype=torch.float64), list(positions))
    return guard(torch.tensor(weights), list(positions))


def test_unlearning_guard_gives_a_shut_out_class_its_mean_weights_until_it_recovers():
    guard = UnlearningGuard(tolerance=0.1)
    guard.start(n_train=4, device="cpu")
    guard.set_targets(torch.tensor([0, 0, 1, 1]))  # an epoch is one batch of the four
    # epoch 1: best losses 0.2 (class 0) and 0.3 (class 1); weights as given
    w = _guard_epoch(guard, [0.2, 0.2, 0.3, 0.3], [0.4, 0.0, 0.2, 0.4])
    torch.testing.assert_close(w, torch.tensor([0.4, 0.0, 0.2, 0.4]))
    # epoch 2: class 1 at 0.35 (within 0.1 of its best), class 0 at 0.25: nothing guarded
    w = _guard_epoch(guard, [0.25, 0.25, 0.35, 0.35], [0.0, 0.5, 0.5, 0.0])
    assert not guard.guarded.any()
    torch.testing.assert_close(w, torch.tensor([0.0, 0.5, 0.5, 0.0]))
    # epoch 3: class 1's loss rises to 0.6 > 0.3 + 0.1 while this step shuts it out
    w = _guard_epoch(guard, [0.1, 0.1, 0.6, 0.6], [0.5, 0.5, 0.0, 0.0])
    assert guard.guarded.tolist() == [False, True]
    # class 1 trains with its mean weights over three visits (scale: 1 is uniform):
    # example 2: (0.8 + 2 + 0) / 3, example 3: (1.6 + 0 + 0) / 3; class 0 keeps 2 and 2
    expected = torch.tensor([2.0, 2.0, 2.8 / 3, 1.6 / 3])
    torch.testing.assert_close(w, (expected / expected.sum()).float())
    torch.testing.assert_close(guard.mean_weights, torch.tensor([1.2, 4.0 / 3, 2.8 / 3, 1.6 / 3],
                                                                dtype=torch.float64))
    # epoch 4: the loss is back within the tolerance: the step's own weights again
    w = _guard_epoch(guard, [0.1, 0.1, 0.35, 0.35], [0.25, 0.25, 0.0, 0.5])
    assert not guard.guarded.any()
    torch.testing.assert_close(w, torch.tensor([0.25, 0.25, 0.0, 0.5]))


def test_unlearning_guard_restores_a_class_share_but_keeps_its_zero_weights():
    guard = UnlearningGuard(tolerance=0.1)
    guard.start(n_train=4, device="cpu")
    guard.set_targets(torch.tensor([0, 0, 1, 1]))
    _guard_epoch(guard, [0.2, 0.2, 0.3, 0.3], [0.25, 0.25, 0.25, 0.25])
    # epoch 2: class 1 guarded; this step gives it 1.6 (example 2) and 0 (example 3, e.g. a wrong label)
    w = _guard_epoch(guard, [0.2, 0.2, 0.6, 0.6], [0.3, 0.3, 0.4, 0.0])
    assert guard.guarded.tolist() == [False, True]
    # class 1's usual mass: mean weights (1 + 1.6) / 2 + (1 + 0) / 2 = 1.8, all on example 2
    expected = torch.tensor([1.2, 1.2, 1.8, 0.0])
    torch.testing.assert_close(w, (expected / expected.sum()).float())


def test_unlearning_guard_counts_an_epoch_in_training_rows_and_ignores_trusted_ones():
    guard = UnlearningGuard(tolerance=0.0)
    guard.start(n_train=5, device="cpu")
    guard.set_targets(torch.tensor([0, -1, 1, 0, 1]))  # position 1: a trusted row (clean_mask)
    guard.observe(torch.tensor([0.5, 0.5]), [0, 2])
    guard(torch.tensor([0.5, 0.5]), [0, 2])
    guard.observe(torch.tensor([0.5, 0.5]), [3, 4])  # four training rows: the epoch closes here
    guard(torch.tensor([0.5, 0.5]), [3, 4])
    guard.observe(torch.tensor([0.6, 0.5]), [0, 2])
    guard.observe(torch.tensor([0.6, 0.5]), [3, 4])  # class 0 at 0.6 > 0.5 + 0
    assert guard.guarded.tolist() == [True, False]


def test_unlearning_guard_ignores_non_finite_losses_and_weights():
    # a step that diverges under on_divergence='skip' still passed through the weighting
    guard = UnlearningGuard(tolerance=0.1)
    guard.start(n_train=2, device="cpu")
    guard.set_targets(torch.tensor([0, 1]))
    _guard_epoch(guard, [0.3, 0.3], [0.5, 0.5], positions=(0, 1))
    guard.observe(torch.tensor([float("nan"), 0.3]), [0, 1])  # class 0's epoch mean: no finite loss
    guard(torch.tensor([float("nan"), 1.0]), [0, 1])
    assert not guard.guarded.any()
    _guard_epoch(guard, [0.9, 0.3], [1.0, 0.0], positions=(0, 1))  # class 0 still compares with 0.3
    assert guard.guarded.tolist() == [True, False]
    torch.testing.assert_close(guard.mean_weights, torch.tensor([1.5, 1.0], dtype=torch.float64))


def test_a_loaded_or_retargeted_guard_reads_its_guarded_classes_again():
    # the guard reads on the host, once an epoch, whether any class is guarded; a state loaded into
    # a guard that has already run, or new targets, must not leave that reading stale
    guard = UnlearningGuard(tolerance=0.1)
    guard.start(n_train=4, device="cpu")
    guard.set_targets(torch.tensor([0, 0, 1, 1]))
    _guard_epoch(guard, [0.1, 0.1, 0.3, 0.3], [0.25, 0.25, 0.25, 0.25])
    _guard_epoch(guard, [0.1, 0.1, 0.6, 0.6], [0.5, 0.5, 0.0, 0.0])  # class 1 guarded from here
    expected = guard(torch.tensor([0.5, 0.5, 0.0, 0.0]), [0, 1, 2, 3])
    assert expected[2:].sum() > 0  # restored

    fresh = UnlearningGuard(tolerance=0.1)
    fresh.start(n_train=4, device="cpu")
    fresh.set_targets(torch.tensor([0, 0, 1, 1]))
    _guard_epoch(fresh, [0.1, 0.1, 0.3, 0.3], [0.25, 0.25, 0.25, 0.25])  # it has read "none guarded"
    fresh.load_state_dict(guard.state_dict())
    assert fresh(torch.tensor([0.5, 0.5, 0.0, 0.0]), [0, 1, 2, 3])[2:].sum() > 0  # restored too


def test_the_guards_state_handed_out_is_a_copy():
    guard = UnlearningGuard(tolerance=0.1)
    guard.start(n_train=4, device="cpu")
    guard.set_targets(torch.tensor([0, 0, 1, 1]))
    _guard_epoch(guard, [0.1, 0.1, 0.3, 0.3], [0.25, 0.25, 0.25, 0.25])
    guard.guarded[:] = True  # writing to what the property returned changes nothing
    saved = guard.state_dict()
    assert not guard.guarded.any()
    _guard_epoch(guard, [0.1, 0.1, 0.6, 0.6], [0.5, 0.5, 0.0, 0.0])  # training goes on
    assert saved["visits"].tolist() == [1.0, 1.0, 1.0, 1.0] and not saved["guarded"].any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniform_weights_are_normalised_ones_bit_for_bit(dtype):
    # the two-operation path must give the bits that normalising ones gives (the trust's comparisons
    # with the learned weights tie exactly where they are the same)
    for n in [0, 1, 2, 3, 7, 100, 255, 256, 257, 1000, 2049, 4099, 65537]:
        w = torch.zeros(n, dtype=dtype)
        assert torch.equal(_uniform(w, None), _normalize(torch.ones_like(w)))
    sample_weight = torch.tensor([1.0, 3.0, 0.5])
    assert torch.equal(_uniform(torch.zeros(3, dtype=dtype), sample_weight), _normalize(sample_weight.to(dtype)))
