import pytest
import torch

from sk_reweight.modules import MLP, LeNet, ResNet32


@pytest.mark.parametrize("module,shape", [(MLP(n_features=5, n_classes=3), (4, 5)),
                                          (LeNet(n_classes=3), (4, 1, 28, 28)),
                                          (ResNet32(n_classes=3), (4, 3, 32, 32))])
def test_modules_return_one_logit_per_class(module, shape):
    assert module(torch.randn(shape)).shape == (4, 3)
