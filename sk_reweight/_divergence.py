"""Divergence: the parameters and optimizer state of the last step with a finite loss, kept and restored.

A non-finite loss at step ``t`` shows that the parameters the step ``t - 1``
update produced are bad; the state from before that update is the last one
that gave a finite loss. :class:`LastFiniteState` copies it, in place, before
every optimizer step (one fused copy of the parameters and of the
optimizer's state tensors), so a diverged model is put back to it.
"""
import math

import numpy as np
import torch

from ._dataset import spread_rows
from .exceptions import TrainingDivergedError

DIVERGENCE_POLICIES = ("raise", "skip")


class LastFiniteState:
    """Parameters and optimizer state from before the latest optimizer step."""

    def __init__(self):
        self._params = self._state = None

    def save(self, module, optimizer):
        params = [p.detach() for p in module.parameters()]
        state = _state_tensors(optimizer)
        if self._params is None or not _same_layout(self._params, params) or not _same_layout(self._state, state):
            self._params = [p.clone() for p in params]
            self._state = [t.clone() for t in state]
            self._groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
            return
        torch._foreach_copy_(self._params, params)
        if state:
            torch._foreach_copy_(self._state, state)
        for saved, group in zip(self._groups, optimizer.param_groups):
            saved.update({k: v for k, v in group.items() if k != "params"})

    def restore(self, module, optimizer):
        """Put the saved state back; ``False`` when nothing was saved (no step taken yet)."""
        if self._params is None:
            return False
        params = [p.detach() for p in module.parameters()]
        state = _state_tensors(optimizer)
        with torch.no_grad():
            torch._foreach_copy_(params, self._params)
            if state and _same_layout(self._state, state):
                torch._foreach_copy_(state, self._state)
        for saved, group in zip(self._groups, optimizer.param_groups):
            group.update(saved)
        return True


def _state_tensors(optimizer):
    return [value for param_state in optimizer.state.values() for value in param_state.values()
            if torch.is_tensor(value)]


def _same_layout(saved, current):
    return len(saved) == len(current) and all(
        a.shape == b.shape and a.dtype == b.dtype and a.device == b.device for a, b in zip(saved, current))


def check_step_is_finite(loss, alignment, epoch, batch):
    """Raise :class:`TrainingDivergedError` when the loss or an alignment (on the host) is not finite."""
    if not (math.isfinite(float(loss)) and np.isfinite(alignment).all()):
        raise TrainingDivergedError(
            f"Training diverged in epoch {epoch}, batch {batch}: the training loss is "
            f"{float(loss)} (or the meta-gradient is not finite)."
        )


def final_outputs_error(net, X_train, X_clean, epoch, n_rows=2048):
    """After the last step, which no later loss checks: a :class:`TrainingDivergedError`
    when the network's outputs on the clean set ``X_clean`` or the training data (at most
    ``n_rows`` rows, in runs spread over it) are not finite, else ``None``.

    Every fit and partial_fit pays for it: 10,000 rows cost a fifth of a
    LeNet epoch on 5,000 images (CPU), 2,048 rows a twentieth.
    """
    if len(X_train) > n_rows:  # in runs: a memmap reads few pages
        X_train = X_train[spread_rows(len(X_train), n_rows, blocks=8)]
    # copies: a read-only array (pandas copy-on-write) would make torch warn
    checks = [X_clean] + [torch.tensor(X_train[i:i + 1024], dtype=torch.float32)
                                         for i in range(0, len(X_train), 1024)]
    module = net.module_
    training = module.training
    module.eval()
    try:
        with torch.no_grad():
            finite = all(bool(torch.isfinite(module(X.to(net.device))).all()) for X in checks if len(X))
    finally:
        module.train(training)
    if finite:
        return None
    return TrainingDivergedError(
        f"Training diverged in the last step (epoch {epoch}): the network's outputs on "
        "the training or clean data are not finite."
    )


def check_finite_predictions(proba):
    """A clear error rather than NaN probabilities (outputs overflowed on these inputs)."""
    bad = ~np.isfinite(proba).all(axis=1)
    if bad.any():
        raise ValueError(
            f"The network's outputs are not finite for {int(bad.sum())} of {len(proba)} rows "
            f"(first: row {int(np.flatnonzero(bad)[0])}): the inputs lie far outside the "
            "training data's range, or the model diverged. Scale the inputs as in training."
        )
    return proba


class DivergenceGuard:
    """The states a diverged fit goes back to: before the last optimizer step, or the fit's start."""

    def __init__(self):
        self.last_step = LastFiniteState()
        self.fit_start = LastFiniteState()

    def start(self, net, X_clean):
        self.X_clean = X_clean
        self.fit_start.save(net.module_, net.optimizer_)

    def before_step(self, net):
        self.last_step.save(net.module_, net.optimizer_)

    def restore(self, net, X_train=None):
        """Put back the state from before the last optimizer step (the last with a finite loss).

        After the last step (``X_train`` given) the state must also give finite
        outputs on the data, else the fit's starting state is put back.
        Returns ``'last step'``, ``'fit start'`` or ``None`` (no such state).
        """
        if self.last_step.restore(net.module_, net.optimizer_) and (
                X_train is None or final_outputs_error(net, X_train, self.X_clean, 0) is None):
            return "last step"
        if X_train is not None and self.fit_start.restore(net.module_, net.optimizer_) and \
                final_outputs_error(net, X_train, self.X_clean, 0) is None:
            return "fit start"
        return None


KEPT = {
    "last step": "The model keeps the parameters and optimizer state from before the last "
                 "optimizer step, the last that gave a finite loss.",
    "fit start": "Even the state before the last optimizer step gives non-finite outputs on the "
                 "training data, so the model keeps the parameters and optimizer state it had "
                 "when this fit started.",
    None: "No earlier state helps: the initial parameters already give a non-finite loss "
          "or non-finite outputs.",
}


def explain(exc, restored):
    """The error's message plus what the model holds now and what to do."""
    return TrainingDivergedError(
        f"{exc} {KEPT[restored]} Lower the learning rate, check the inputs' scale, or pass "
        "on_divergence='skip' to skip such steps and train on."
    )
