"""Divergence: the parameters and optimizer state of the last step with a finite loss, kept and restored.

A non-finite loss at step ``t`` shows that the parameters the step ``t - 1``
update produced are bad; the state from before that update is the last one
that gave a finite loss. :class:`LastFiniteState` copies it, in place, before
every optimizer step (one fused copy of the parameters and of the
optimizer's state tensors), so a diverged model is put back to it.
"""
import math

import torch

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

    @property
    def saved(self):
        return self._params is not None

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
    """Raise :class:`TrainingDivergedError` when the loss or an alignment is not finite (one host sync)."""
    # a non-finite alignment turns the sum non-finite
    value = (loss + 0 * alignment.sum()).item()
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"Training diverged in epoch {epoch}, batch {batch}: the training loss is "
            f"{loss.item()} (or the meta-gradient is not finite)."
        )


def check_outputs_are_finite(module, X, epoch):
    """After the last step: the network's outputs on ``X`` (the clean set) must be finite."""
    training = module.training
    module.eval()
    try:
        with torch.no_grad():
            finite = bool(torch.isfinite(module(X)).all())
    finally:
        module.train(training)
    if not finite:
        raise TrainingDivergedError(
            f"Training diverged in the last step (epoch {epoch}): the network's outputs "
            "on the clean set are not finite."
        )


def explain(exc, restored):
    """The error's message plus what the model holds now and what to do."""
    kept = ("The model keeps the parameters and optimizer state from before the last "
            "optimizer step, the last that gave a finite loss." if restored else
            "No optimizer step had been taken: the initial parameters already give a "
            "non-finite loss.")
    return TrainingDivergedError(
        f"{exc} {kept} Lower the learning rate, check the inputs' scale, or pass "
        "on_divergence='skip' to skip such steps and train on."
    )
