"""The step's one copy to the host."""
import math

import numpy as np
import torch

from sk_reweight._host_step import copy_to_host
from sk_reweight.engines._base import MetaStep


def test_copy_to_host_reads_everything_in_one_copy_and_checks_the_gradients():
    step = MetaStep(torch.zeros(3, 2), torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, -1.0, 2.0]),
                    torch.tensor([0.2, 0.0, 0.8]), torch.tensor(0.25))
    p, q = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(1))
    p.grad, q.grad = torch.ones(2), torch.tensor([math.inf])
    read = copy_to_host(step, [p, q])
    np.testing.assert_allclose(read.weights, [0.6, 0.0, 2.4], rtol=1e-6)
    np.testing.assert_allclose(read.alignment, [0.5, -1.0, 2.0])
    assert (float(read.loss), float(read.clean_loss), read.gradients_finite) == (2.0, 0.25, False)
    q.grad = torch.zeros(1)
    assert copy_to_host(step, [p, q]).gradients_finite
    assert copy_to_host(step).gradients_finite is None
