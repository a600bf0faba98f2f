"""Dynamic loss scaling for float16 training, decided on the step's one copy to the host.

float16 gradients underflow below about 6e-8: the engines backpropagate the
loss times a scale factor and divide the gradients by it again before they
reach ``.grad`` (``loss_scale`` of ``reweighted_backward``). The factor follows
:class:`torch.amp.GradScaler`'s rule (same defaults): halve it and skip the
step when a gradient or an alignment overflowed, double it after
``growth_interval`` steps in a row without overflow. ``GradScaler`` itself
asks the device whether a gradient overflowed inside ``step`` (one more
synchronisation per step); here the answer rides in the copy the estimator
makes anyway.
"""
import math

import numpy as np
import torch


class LossScale:
    """The loss scale of a float16 fit (``autocast_dtype=torch.float16``).

    Parameters
    ----------
    init_scale : float, default=2.0**16
    growth_factor : float, default=2.0
    backoff_factor : float, default=0.5
    growth_interval : int, default=2000
        As in :class:`torch.amp.GradScaler`.

    Attributes
    ----------
    factor : float
        The scale the next step backpropagates with.
    overflows : int
        Steps skipped because a scaled gradient or alignment overflowed.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight._host_step import HostStep
    >>> from sk_reweight._loss_scale import LossScale
    >>> scale = LossScale(init_scale=8.0)
    >>> bad = HostStep(np.ones(2), np.array([np.inf, 1.0]), 0.7, 0.5, True)
    >>> scale.overflowed(bad), scale.factor
    (True, 4.0)
    """

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        self.factor = float(init_scale)
        self.growth_factor, self.backoff_factor = growth_factor, backoff_factor
        self.growth_interval = growth_interval
        self.overflows = self._good_steps = 0

    def overflowed(self, host):
        """Whether the step overflowed (skip it: the factor was just lowered); else count it.

        An overflow with a finite loss is the scale's fault while the scale
        is above 1; at 1 or below it is the model's, and the divergence
        check that follows reports it.
        """
        finite = np.isfinite(host.alignment).all() and host.gradients_finite is not False
        if not finite and math.isfinite(float(host.loss)) and self.factor > 1:
            self.factor *= self.backoff_factor
            self.overflows += 1
            self._good_steps = 0
            return True
        self._good_steps += 1
        if self._good_steps == self.growth_interval:
            self.factor *= self.growth_factor
            self._good_steps = 0
        return False

    def __repr__(self):
        return f"LossScale(factor={self.factor:g}, overflows={self.overflows})"


def loss_scale_for(autocast_dtype, current=None):
    """The loss scale a fit with ``autocast_dtype`` trains with: ``current`` carried on
    (``partial_fit``, warm start) or a new one for float16, ``None`` otherwise."""
    if autocast_dtype is not torch.float16:
        return None
    return current if current is not None else LossScale()
