"""The engines' weights against the literal definition of Algorithm 1."""
import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call

from sk_reweight._meta_gradient import ENGINES, frozen_state, get_engine, trainable_parameters
from sk_reweight._reference import lookahead_eps_gradient, reference_weights
from sk_reweight._estimator import normalize_weights
from sk_reweight.modules import LeNet, MLP, ResNet32


def mlp():
    return MLP(n_features=7, n_classes=3, hidden_units=(16, 8))


def cnn():
    return LeNet(n_classes=3, in_channels=1, image_size=14)


def batchnorm_net():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 12 * 12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3),
    )


NETS = {"mlp": (mlp, (7,)), "cnn": (cnn, (1, 14, 14)), "batchnorm": (batchnorm_net, (1, 14, 14))}


def make_batch(shape, n=12, n_clean=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    Xc = torch.randn(n_clean, *shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    yc = torch.randint(0, 3, (n_clean,), generator=g)
    return X, y, Xc, yc


loss_fn = nn.CrossEntropyLoss(reduction="none")


def run_engine(engine, module, X, y, Xc, yc):
    seen = {}

    def weigh(alignment):
        seen["alignment"] = alignment
        return normalize_weights(alignment)

    step = engine.reweighted_backward(module, loss_fn, X, y, Xc, yc, weigh)
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    return step, seen["alignment"], grads


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
@pytest.mark.parametrize("net", sorted(NETS))
def test_engine_matches_literal_lookahead(engine_name, net):
    build, shape = NETS[net]
    module = build().double().train()
    X, y, Xc, yc = make_batch(shape)
    reference = copy.deepcopy(module)

    # literal Algorithm 1: d L_clean(theta') / d eps by double backprop
    eps_grad = lookahead_eps_gradient(reference, loss_fn, X, y, Xc, yc, alpha=0.1)
    w_ref = reference_weights(reference, loss_fn, X, y, Xc, yc)
    assert (w_ref > 0).any() and (w_ref == 0).any(), "test batch should mix kept and dropped"

    step, alignment, grads = run_engine(ENGINES[engine_name](), module, X, y, Xc, yc)
    torch.testing.assert_close(alignment, -eps_grad / 0.1, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(step.weights, w_ref, rtol=1e-6, atol=1e-9)

    # the update direction is grad sum_i w_i f_i, computed the plain way
    (loss_fn(reference(X), y) * w_ref).sum().backward()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-6, atol=1e-9)


def test_lookahead_gradient_matches_finite_differences():
    torch.manual_seed(1)
    module = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    X, y = torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 2, (5,))
    Xc, yc = torch.randn(4, 3, dtype=torch.float64), torch.randint(0, 2, (4,))
    params = trainable_parameters(module)
    alpha, h = 0.5, 1e-6

    def clean_loss_after_lookahead(eps):
        grads = torch.autograd.grad(torch.dot(eps, loss_fn(module(X), y)), list(params.values()))
        theta = {n: p - alpha * g for (n, p), g in zip(params.items(), grads)}
        return loss_fn(functional_call(module, theta, (Xc,)), yc).mean().item()

    numeric = torch.zeros(5, dtype=torch.float64)
    for i in range(5):
        e = torch.zeros(5, dtype=torch.float64)
        e[i] = h
        numeric[i] = (clean_loss_after_lookahead(e) - clean_loss_after_lookahead(-e)) / (2 * h)

    literal = lookahead_eps_gradient(module, loss_fn, X, y, Xc, yc, alpha=alpha)
    torch.testing.assert_close(literal, numeric, rtol=1e-5, atol=1e-9)
    _, alignment, _ = run_engine(ENGINES["jvp"](), module, X, y, Xc, yc)
    torch.testing.assert_close(-alpha * alignment, numeric, rtol=1e-5, atol=1e-9)


def test_meta_step_leaves_batchnorm_statistics_as_one_plain_forward():
    module = batchnorm_net().double().train()
    X, y, Xc, yc = make_batch((1, 14, 14))
    plain = copy.deepcopy(module)
    plain(X)  # exactly one training forward's worth of running-stat updates
    run_engine(ENGINES["jvp"](), module, X, y, Xc, yc)
    for got, want in zip(module.buffers(), plain.buffers()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_frozen_state_restores_custom_buffers():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, x):
            self.calls += 1
            return self.lin(x)

    m = Counter()
    with frozen_state(m):
        m(torch.zeros(1, 2))
        m(torch.zeros(1, 2))
    assert m.calls.item() == 0


def test_all_zero_weights_produce_no_gradient():
    module = mlp().double()
    X, y, Xc, yc = make_batch((7,))
    step = ENGINES["jvp"]().reweighted_backward(
        module, loss_fn, X, y, Xc, yc, weigh=lambda a: torch.zeros_like(a)
    )
    assert not step.weights.any()
    assert all(p.grad is None for p in module.parameters())


def test_frozen_parameters_take_no_part():
    module = mlp().double()
    module.layers[0].weight.requires_grad_(False)
    X, y, Xc, yc = make_batch((7,))
    ref = reference_weights(copy.deepcopy(module), loss_fn, X, y, Xc, yc)
    step, _, _ = run_engine(ENGINES["jvp"](), module, X, y, Xc, yc)
    torch.testing.assert_close(step.weights, ref, rtol=1e-6, atol=1e-9)
    assert module.layers[0].weight.grad is None


def test_resnet32_forward_shape_and_engine_runs():
    module = ResNet32(n_classes=4).train()
    X, Xc = torch.randn(4, 3, 32, 32), torch.randn(3, 3, 32, 32)
    y, yc = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2])
    step, _, _ = run_engine(get_engine("auto", module), module, X, y, Xc, yc)
    assert step.y_pred.shape == (4, 4)
    assert torch.isclose(step.weights.sum(), torch.tensor(1.0)) or not step.weights.any()


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(ValueError, match="meta_engine='nope' is not available"):
        get_engine("nope", mlp())
