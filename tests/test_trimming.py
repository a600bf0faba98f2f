"""Trimmed (``clean_trim``) and capped (``clean_cap``) alignments against the literal lookahead definition."""
import copy
import itertools

import numpy as np
import pytest
import torch
from test_engines import NETS, case_batch, make_batch, run_engine
from torch import nn

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.engines import LayerwiseEngine, _jvp, _layer_rules
from sk_reweight.engines._layer_rules import _ConvRule, _LinearRule
from sk_reweight.engines._reference import lookahead_eps_gradient
from sk_reweight.engines._selection import ENGINES
from sk_reweight.engines._trimming import MAX_CLEAN_GROUPS, capped, clean_groups, trimmed_alignment
from sk_reweight.weighting import normalize_weights

loss_fn = nn.CrossEntropyLoss(reduction="none")


def trimmed_step(engine, module, X, y, Xc, yc, trim, **options):
    return run_engine(engine, module, X, y, Xc, yc, clean_trim=trim, **options)


def literal_trimmed(module, X, y, Xc, yc, trim):
    """max over the ways to leave ``trim`` clean examples out of Algorithm 1's literal alignment."""
    alpha, m = 0.1, len(Xc)
    candidates = []
    for left_out in itertools.combinations(range(m), trim):
        keep = [j for j in range(m) if j not in left_out]
        candidates.append(-lookahead_eps_gradient(module, loss_fn, X, y, Xc[keep], yc[keep], alpha=alpha) / alpha)
    return torch.stack(candidates).max(0).values


@pytest.mark.parametrize("trim", [1, 2])
@pytest.mark.parametrize("net", ["mlp", "wide_mlp", "cnn", "conv1d", "strided_conv", "sequence"])
@pytest.mark.parametrize("engine_name", sorted(ENGINES))
def test_trimmed_alignment_is_the_best_leave_trim_out_lookahead(engine_name, net, trim):
    # single-example groups: leaving out the `trim` most opposed examples is the
    # most favourable of all leave-`trim`-out clean sets
    module, (X, y, Xc, yc) = case_batch(net)
    reference = copy.deepcopy(module)
    expected = literal_trimmed(reference, X, y, Xc, yc, trim)

    step, alignment, grads = trimmed_step(ENGINES[engine_name](), module, X, y, Xc, yc, trim)
    torch.testing.assert_close(alignment, expected, rtol=1e-6, atol=1e-9)
    w = normalize_weights(expected)
    assert (w > 0).any() and (w == 0).any(), "test batch should mix kept and dropped"
    torch.testing.assert_close(step.weights, w, rtol=1e-6, atol=1e-9)
    (loss_fn(reference(X), y) * w).sum().backward()  # the update, the plain way
    for name, p in reference.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("options", [{}, {"clean_cap": 1.0}], ids=["trimmed", "trimmed_and_capped"])
@pytest.mark.parametrize("net,rule", [("cnn", _ConvRule), ("conv1d", _ConvRule), ("strided_conv", _ConvRule),
                                      ("mlp", _LinearRule), ("wide_mlp", _LinearRule)])
def test_pair_alignments_and_the_loop_over_groups_agree(net, rule, options, monkeypatch):
    # a layer's pair_alignments (kernel for Linear, per-example gradients for
    # convolutions; with caps also the clean rows' pairs among themselves) and the
    # loop over the clean groups are two routes to the same result
    module, batch = case_batch(net)
    paired = []
    pair_alignments = rule.pair_alignments

    def spy(self, *args):
        paired.append(pair_alignments(self, *args))
        return paired[-1]

    monkeypatch.setattr(rule, "pair_alignments", spy)
    fast = trimmed_step(LayerwiseEngine(), copy.deepcopy(module), *batch, 1, **options)
    assert any(p is not None for p in paired)  # (grouped convolutions loop)
    if rule is _ConvRule:  # past the memory budget a convolution loops over the groups
        monkeypatch.setattr(_layer_rules, "PER_EXAMPLE_BUDGET", 0)
        paired.clear()
        trimmed_step(LayerwiseEngine(), copy.deepcopy(module), *batch, 1, **options)
        assert paired and all(p is None for p in paired)
    monkeypatch.setattr(rule, "pair_alignments", lambda self, *args: None)
    looped = trimmed_step(LayerwiseEngine(), copy.deepcopy(module), *batch, 1, **options)
    torch.testing.assert_close(fast[1], looped[1], rtol=1e-9, atol=1e-12)
    for name in fast[2]:
        torch.testing.assert_close(fast[2][name], looped[2][name], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
def test_large_clean_batches_are_trimmed_by_groups(engine_name):
    module = NETS["mlp"][0]().double()
    X, y, Xc, yc = make_batch((7,), n_clean=25)
    groups = clean_groups(len(Xc))
    assert len(groups) == MAX_CLEAN_GROUPS
    # literal: each group's own lookahead alignment, then the trimmed size-weighted mean
    per_group = torch.stack([-lookahead_eps_gradient(copy.deepcopy(module), loss_fn, X, y, Xc[g], yc[g],
                                                     alpha=0.1) / 0.1 for g in groups], 1)
    sizes = torch.tensor([len(g) for g in groups], dtype=torch.float64)
    keep = per_group.argsort(1)[:, 1:]
    expected = (per_group.gather(1, keep) * sizes[keep]).sum(1) / sizes[keep].sum(1)
    _, alignment, _ = trimmed_step(ENGINES[engine_name](), module, X, y, Xc, yc, 1)
    torch.testing.assert_close(alignment, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("engine_name", ["layerwise", "jvp"])
def test_loss_scaling_leaves_trimmed_alignments_unchanged_in_float64(engine_name):
    build, shape = NETS["cnn"]
    module = build().double()
    X, y, Xc, yc = make_batch(shape)
    _, expected, expected_grads = trimmed_step(ENGINES[engine_name](), copy.deepcopy(module), X, y, Xc, yc, 1)
    _, alignment, grads = trimmed_step(ENGINES[engine_name](), module, X, y, Xc, yc, 1, loss_scale=2.0**12)
    torch.testing.assert_close(alignment, expected, rtol=1e-9, atol=1e-12)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-9, atol=1e-12)


def test_batch_norm_nets_trim_the_groups_of_one_clean_forward():
    # train-mode batch norm: the groups' losses come from one forward of the whole
    # clean batch (its statistics), in the JVP engine as in the double-backprop one
    build, shape = NETS["batchnorm"]
    module = build().double()
    X, y, Xc, yc = make_batch(shape)
    _, expected, expected_grads = trimmed_step(ENGINES["reference"](), copy.deepcopy(module), X, y, Xc, yc, 1)
    _, alignment, grads = trimmed_step(ENGINES["jvp"](), module, X, y, Xc, yc, 1)
    torch.testing.assert_close(alignment, expected, rtol=1e-6, atol=1e-9)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-6, atol=1e-9)


def outlier_case():
    """A linear model: five clean examples agree with the training examples of class 0;
    a sixth, far out and labelled 1 on class 0's side, outweighs them all."""
    module = nn.Linear(2, 2).double()
    with torch.no_grad():
        module.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        module.bias.zero_()
    X = torch.tensor([[1.0, 0.2], [1.5, -0.3], [-1.0, 0.1], [-1.2, 0.4]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    Xc = torch.tensor([[0.2, 0.0], [0.3, 0.1], [-0.2, 0.0], [-0.3, 0.1], [0.25, -0.1], [8.0, 0.0]],
                      dtype=torch.float64)
    return module, X, y, Xc, torch.tensor([0, 0, 1, 1, 0, 1])


def test_one_clean_example_can_no_longer_veto():
    module, X, y, Xc, yc = outlier_case()
    plain = trimmed_step(ENGINES["layerwise"](), copy.deepcopy(module), X, y, Xc, yc, 0)[0].weights
    trimmed = trimmed_step(ENGINES["layerwise"](), copy.deepcopy(module), X, y, Xc, yc, 1)[0].weights
    assert (plain[:2] == 0).all(), "Algorithm 1: the outlier vetoes class 0"
    assert (trimmed > 0).all(), "trimmed: the other five clean examples keep class 0 in"


def test_trimmed_alignment_keeps_non_finite_values():
    per_group = torch.tensor([[-float("inf"), 1.0, 2.0], [float("nan"), 1.0, 1.0], [0.0, 1.0, 2.0]])
    out = trimmed_alignment(per_group, [1, 1, 1], 1)
    assert torch.isnan(out[:2]).all() and out[2] == 1.5


def test_clean_trim_is_checked(small_data):
    X, y, Xc, yc = small_data
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match=r"clean_trim=.* must be an int >= 0"):
            ReweightedNeuralNetClassifier(clean_trim=bad, max_epochs=1).fit(X, y, X_clean=Xc, y_clean=yc)
    with pytest.raises(ValueError, match=r"clean_trim=3 leaves nothing to align with: a clean batch of 3 "):
        ReweightedNeuralNetClassifier(clean_trim=3, clean_batch_size=3, max_epochs=1).fit(
            X, y, X_clean=Xc, y_clean=yc)


@pytest.mark.parametrize("option", [{"clean_trim": 1}, {"clean_cap": 1.0}], ids=["trimmed", "capped"])
@pytest.mark.parametrize("meta_engine", ["layerwise", "jvp"])
def test_a_trimmed_or_capped_fit_is_reproducible_and_differs_from_algorithm_1(small_data, meta_engine, option):
    X, y, Xc, yc = small_data
    params = dict(max_epochs=3, random_state=0, lr=0.05, meta_engine=meta_engine)
    first = ReweightedNeuralNetClassifier(**option, **params).fit(X, y, X_clean=Xc, y_clean=yc)
    again = ReweightedNeuralNetClassifier(**option, **params).fit(X, y, X_clean=Xc, y_clean=yc)
    plain = ReweightedNeuralNetClassifier(**params).fit(X, y, X_clean=Xc, y_clean=yc)
    np.testing.assert_array_equal(first.sample_weights_, again.sample_weights_)
    assert np.isfinite(first.sample_weights_).all()
    assert not np.array_equal(first.sample_weights_, plain.sample_weights_)
    assert option.items() <= first.get_params().items()


def literal_capped(module, X, y, Xc, yc, cap, trim=0):
    """Each group's literal lookahead alignment, times its cap factor from the groups' gradient norms
    at theta (one forward of the whole clean batch, as batch norm sees it), then the trimmed mean."""
    groups = clean_groups(len(Xc))
    per_group = torch.stack([-lookahead_eps_gradient(copy.deepcopy(module), loss_fn, X, y, Xc[g], yc[g],
                                                     alpha=0.1) / 0.1 for g in groups], 1)
    params = [p for p in module.parameters() if p.requires_grad]
    losses = loss_fn(module(Xc), yc)
    norms = []
    for g in groups:
        grads = torch.autograd.grad(losses[g].mean(), params, retain_graph=True, allow_unused=True)
        norms.append(sum(float((t ** 2).sum()) for t in grads if t is not None) ** 0.5)
    norms = np.array(norms)
    ceiling = cap * np.sort(norms[norms > 0])[(np.count_nonzero(norms) - 1) // 2]  # lower median
    factors = torch.tensor(np.minimum(1.0, ceiling / np.where(norms > 0, norms, np.inf)), dtype=per_group.dtype)
    assert (factors < 1).any(), "the test batch should have a group above the cap"
    return trimmed_alignment(per_group * factors, [len(g) for g in groups], trim)


@pytest.mark.parametrize("cap,trim", [(1.0, 0), (0.5, 0), (1.0, 1)])
@pytest.mark.parametrize("net", ["mlp", "wide_mlp", "cnn", "conv1d", "strided_conv", "sequence"])
@pytest.mark.parametrize("engine_name", sorted(ENGINES))
def test_capped_alignment_is_the_lookahead_of_the_capped_clean_loss(engine_name, net, cap, trim):
    module, (X, y, Xc, yc) = case_batch(net)
    reference = copy.deepcopy(module)
    expected = literal_capped(reference, X, y, Xc, yc, cap, trim)
    step, alignment, grads = run_engine(ENGINES[engine_name](), module, X, y, Xc, yc, clean_trim=trim,
                                        clean_cap=cap)
    torch.testing.assert_close(alignment, expected, rtol=1e-6, atol=1e-9)
    w = normalize_weights(expected)
    torch.testing.assert_close(step.weights, w, rtol=1e-6, atol=1e-9)
    reference.zero_grad()
    (loss_fn(reference(X), y) * w).sum().backward()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
def test_large_clean_batches_are_capped_by_groups(engine_name):
    module = NETS["mlp"][0]().double()
    X, y, Xc, yc = make_batch((7,), n_clean=25)
    expected = literal_capped(copy.deepcopy(module), X, y, Xc, yc, 1.0)
    _, alignment, _ = run_engine(ENGINES[engine_name](), module, X, y, Xc, yc, clean_cap=1.0)
    torch.testing.assert_close(alignment, expected, rtol=1e-6, atol=1e-9)


def test_batch_norm_nets_cap_with_the_norms_of_one_clean_forward():
    # as for trimming: the groups' losses and gradients come from one forward of the
    # whole clean batch (its statistics), in the JVP engine as in the double-backprop one
    build, shape = NETS["batchnorm"]
    module = build().double()
    X, y, Xc, yc = make_batch(shape)
    _, uncapped, _ = run_engine(ENGINES["reference"](), copy.deepcopy(module), X, y, Xc, yc)
    _, expected, expected_grads = run_engine(ENGINES["reference"](), copy.deepcopy(module), X, y, Xc, yc,
                                             clean_cap=1.0)
    assert not torch.allclose(expected, uncapped)
    _, alignment, grads = run_engine(ENGINES["jvp"](), module, X, y, Xc, yc, clean_cap=1.0)
    torch.testing.assert_close(alignment, expected, rtol=1e-6, atol=1e-9)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("engine_name,owner,name", [("jvp", _jvp, "_alignment"),
                                                     ("layerwise", _ConvRule, "parameter_jvp")])
def test_capping_alone_costs_one_alignment_pass(engine_name, owner, name, monkeypatch):
    # capping only reweights the clean loss: one alignment along its gradient, not one per clean group
    module, (X, y, Xc, yc) = case_batch("cnn")
    calls, original = [], getattr(owner, name)

    def counted(*args, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    run_engine(ENGINES[engine_name](), copy.deepcopy(module), X, y, Xc, yc)
    uncapped = len(calls)
    run_engine(ENGINES[engine_name](), copy.deepcopy(module), X, y, Xc, yc, clean_cap=1.0)
    assert uncapped > 0 and len(calls) == 2 * uncapped


def test_one_clean_example_no_longer_steers_every_batch():
    # the far-out clean example's gradient dwarfs the others'; capped at the median it no longer decides
    module, X, y, Xc, yc = outlier_case()
    plain = run_engine(ENGINES["layerwise"](), copy.deepcopy(module), X, y, Xc, yc)[0].weights
    capped_weights = run_engine(ENGINES["layerwise"](), copy.deepcopy(module), X, y, Xc, yc, clean_cap=1.0)[0].weights
    assert (plain[:2] == 0).all(), "Algorithm 1: the outlier decides"
    assert (capped_weights[:2] > 0).all(), "capped: the other five clean examples keep class 0 in"


def test_capped_ignores_exactly_fitted_groups_and_keeps_non_finite_values():
    per_group = torch.ones(2, 4)
    torch.testing.assert_close(capped(per_group, torch.tensor([0.0, 1.0, 3.0, 4.0]), 1.0),
                               torch.tensor([[1.0, 1.0, 1.0, 0.75]] * 2))  # the median of 1, 3 and 4
    for norms in ([0.0] * 4, [1.0, float("inf"), 2.0, 3.0], [1.0, float("nan"), 2.0, 3.0]):
        torch.testing.assert_close(capped(per_group, torch.tensor(norms), 1.0), per_group)
    assert capped(per_group, torch.tensor([1.0, 9.0, 9.0, 9.0]), None) is per_group


def test_clean_cap_is_checked(small_data):
    X, y, Xc, yc = small_data
    for bad in (0, -1.0, float("inf"), "1", True):
        with pytest.raises(ValueError, match=r"clean_cap=.* must be a positive finite number or None"):
            ReweightedNeuralNetClassifier(clean_cap=bad, max_epochs=1).fit(X, y, X_clean=Xc, y_clean=yc)
