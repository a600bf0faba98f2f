"""float16 loss scaling: GradScaler's rule, decided on the step's one host copy."""
import math

import numpy as np
import torch

from sk_reweight._host_step import HostStep
from sk_reweight._loss_scale import LossScale


def host(alignment=(1.0, 2.0), loss=0.5, gradients_finite=True):
    return HostStep(np.ones(2), np.array(alignment), torch.tensor(loss), torch.tensor(0.1), gradients_finite)


def test_an_overflow_halves_the_scale_and_is_counted():
    scale = LossScale(init_scale=1024.0)
    assert scale.overflowed(host(alignment=(math.inf, 1.0)))
    assert scale.overflowed(host(gradients_finite=False))
    assert (scale.factor, scale.overflows) == (256.0, 2)


def test_the_scale_grows_after_an_interval_without_overflow():
    scale = LossScale(init_scale=8.0, growth_interval=3)
    assert not any(scale.overflowed(host()) for _ in range(2)) and scale.factor == 8.0
    scale.overflowed(host(alignment=(math.nan, 1.0)))  # halves the scale, restarts the count
    for _ in range(2):
        scale.overflowed(host())
    assert scale.factor == 4.0
    scale.overflowed(host())
    assert scale.factor == 8.0


def test_a_non_finite_loss_or_a_scale_at_one_is_left_to_the_divergence_check():
    scale = LossScale(init_scale=4.0)
    assert not scale.overflowed(host(alignment=(math.inf, 1.0), loss=math.nan))
    one = LossScale(init_scale=1.0)
    assert not one.overflowed(host(gradients_finite=False))
    assert (scale.factor, one.factor, one.overflows) == (4.0, 1.0, 0)
