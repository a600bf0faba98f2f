"""Divergence at any step leaves the last state with a finite loss, never a model that predicts NaN."""
import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sk_reweight import ReweightedNeuralNetClassifier, TrainingDivergedError
from sk_reweight._divergence import LastFiniteState


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 4).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    return X[20:], y[20:], X[:20], y[:20]


class ParameterLog(Callback):
    """The parameters at the start of every training batch."""

    def __init__(self):
        self.params = []

    def on_batch_begin(self, net, training=False, **kwargs):
        if training:
            self.params.append([p.detach().clone() for p in net.module_.parameters()])


def _assert_restored_to(net, params):
    for saved, now in zip(params, net.module_.parameters()):
        assert torch.equal(saved, now)


@pytest.mark.parametrize("optimizer, lr, epochs", [
    (torch.optim.Adam, 1e38, 3),  # the optimizer itself fails (its step size overflows float)
    (torch.optim.SGD, 1e30, 1),  # the last (only) step leaves non-finite outputs
    (torch.optim.SGD, 1e18, 2),
])
def test_divergence_in_the_last_step_is_caught_and_undone(data, optimizer, lr, epochs, device):
    X, y, Xc, yc = data
    log = ParameterLog()
    net = ReweightedNeuralNetClassifier(optimizer=optimizer, lr=lr, max_epochs=epochs, batch_size=200,
                                        zero_weights="uniform", random_state=0, callbacks=[log], device=device)
    with pytest.raises(TrainingDivergedError, match="last optimizer step, the last that gave a finite loss"):
        net.fit(X, y, X_clean=Xc, y_clean=yc)
    assert np.isfinite(net.predict_proba(X)).all()
    _assert_restored_to(net, log.params[-1])


def test_divergence_before_any_step_says_the_initial_parameters_fail(data, device):
    X, y, Xc, yc = data

    class NaNLoss(torch.nn.CrossEntropyLoss):
        def forward(self, input, target):
            return super().forward(input, target) * float("nan")

    net = ReweightedNeuralNetClassifier(criterion=NaNLoss, max_epochs=1, meta_engine="layerwise",
                                        random_state=0, device=device)
    with pytest.raises(TrainingDivergedError, match="initial parameters already give a non-finite loss"):
        net.fit(X, y, X_clean=Xc, y_clean=yc)


class NaNOnCall(torch.nn.CrossEntropyLoss):
    """Cross-entropy that returns NaN on its ``nan_call``-th call."""

    calls = 0

    def __init__(self, nan_call=5, reduction="mean"):
        super().__init__(reduction=reduction)
        self.nan_call = nan_call

    def forward(self, input, target):
        type(self).calls += 1
        loss = super().forward(input, target)
        return loss * float("nan") if type(self).calls == self.nan_call else loss


def test_skip_policy_skips_the_step_and_trains_on(data, device):
    X, y, Xc, yc = data
    NaNOnCall.calls = 0
    net = ReweightedNeuralNetClassifier(criterion=NaNOnCall, meta_engine="layerwise", on_divergence="skip",
                                        max_epochs=3, batch_size=30, lr=0.05, random_state=0, device=device)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    assert sum(net.history[:, "diverged_steps"]) == 1
    assert np.isfinite(net.predict_proba(X)).all()
    assert (net.predict(X) == y).mean() > 0.8


def test_raise_policy_names_the_step_and_keeps_the_state_before_the_previous_step(data, device):
    X, y, Xc, yc = data
    NaNOnCall.calls = 0
    log = ParameterLog()
    net = ReweightedNeuralNetClassifier(criterion=NaNOnCall, meta_engine="layerwise", zero_weights="uniform",
                                        max_epochs=3, batch_size=30, random_state=0, callbacks=[log],
                                        device=device)
    with pytest.raises(TrainingDivergedError, match="epoch 1, batch 5"):
        net.fit(X, y, X_clean=Xc, y_clean=yc)
    _assert_restored_to(net, log.params[-2])


def test_unknown_policy_is_refused(data):
    X, y, Xc, yc = data
    with pytest.raises(ValueError, match=r"on_divergence='retry' is not one of \['raise', 'skip'\]"):
        ReweightedNeuralNetClassifier(on_divergence="retry").fit(X, y, X_clean=Xc, y_clean=yc)


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.Adam])
def test_last_finite_state_restores_parameters_and_optimizer_state(optimizer):
    module = torch.nn.Linear(3, 2)
    opt = optimizer(module.parameters(), lr=0.1, **({"momentum": 0.9} if optimizer is torch.optim.SGD else {}))
    state = LastFiniteState()
    assert not state.restore(module, opt)  # nothing saved yet
    for _ in range(2):
        opt.zero_grad()
        module(torch.ones(4, 3)).sum().backward()
        state.save(module, opt)
        saved_params = [p.detach().clone() for p in module.parameters()]
        saved_opt = {k: v.clone() for s in opt.state.values() for k, v in s.items() if torch.is_tensor(v)}
        opt.step()
    with torch.no_grad():
        module.weight.fill_(float("nan"))
    assert state.restore(module, opt)
    assert all(torch.equal(a, b) for a, b in zip(saved_params, module.parameters()))
    now = {k: v for s in opt.state.values() for k, v in s.items() if torch.is_tensor(v)}
    assert all(torch.equal(saved_opt[k], now[k]) for k in saved_opt)


def test_predictions_that_overflow_are_an_error_not_nan(data, device):
    X, y, Xc, yc = data
    net = ReweightedNeuralNetClassifier(max_epochs=2, random_state=0, device=device)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    huge = np.full((3, 4), 3e38, dtype=np.float32)
    with pytest.raises(ValueError, match="outputs are not finite for 3 of 3 rows.*far outside the training"):
        net.predict_proba(huge)
    with pytest.raises(ValueError, match="not finite"):
        net.predict(huge)


def test_after_the_last_step_the_kept_state_predicts_every_training_row():
    # found by the fuzz: batches of one row with finite losses while the outputs on
    # other rows overflow; the state before the last step can be as bad
    rng = np.random.RandomState(0)
    X = (rng.randn(6, 1) * 1000).astype(np.float32)
    y, X_clean, y_clean = np.array([5, -2, 11, 5, -2, 11]), X[:1] * 0.5, np.array([5])
    net = ReweightedNeuralNetClassifier(lr=1e20, batch_size=1, on_divergence="skip", max_epochs=1,
                                        random_state=0, module__hidden_units=(4,))
    with pytest.warns(UserWarning):
        try:
            net.fit(X, y, X_clean=X_clean, y_clean=y_clean)
        except TrainingDivergedError as exc:
            assert "when this fit started" in str(exc) or "last optimizer step" in str(exc)
    assert np.isfinite(net.predict_proba(X)).all()
