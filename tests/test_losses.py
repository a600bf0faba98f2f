import pytest
import torch
import torch.nn.functional as F

from sk_reweight.losses import CorrectedCrossEntropy, FocalLoss, HardBootstrappingLoss, SoftBootstrappingLoss

LOGITS, Y = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("loss", [FocalLoss(gamma=0.0), SoftBootstrappingLoss(beta=1.0),
                                  HardBootstrappingLoss(beta=1.0),
                                  CorrectedCrossEntropy(torch.eye(3))])
def test_each_loss_is_cross_entropy_at_one_end(loss):
    torch.testing.assert_close(loss(LOGITS, Y), F.cross_entropy(LOGITS, Y))
    loss.reduction = "none"
    torch.testing.assert_close(loss(LOGITS, Y), F.cross_entropy(LOGITS, Y, reduction="none"))


def test_focal_loss_by_hand():
    p = torch.tensor([0.8, 0.1])  # probability of the true class
    logits = torch.log(torch.tensor([[0.8, 0.2], [0.9, 0.1]]))
    expected = -(1 - p) ** 2 * torch.log(p)
    torch.testing.assert_close(FocalLoss(2.0, reduction="none")(logits, torch.tensor([0, 1])), expected)


def test_bootstrapping_targets_by_hand():
    q = torch.tensor([[0.7, 0.2, 0.1]])
    logits, y = torch.log(q), torch.tensor([1])
    soft = -(0.95 * torch.tensor([0.0, 1.0, 0.0]) + 0.05 * q[0]) @ torch.log(q[0])
    torch.testing.assert_close(SoftBootstrappingLoss(0.95)(logits, y), soft)
    hard = -(0.8 * torch.log(q[0, 1]) + 0.2 * torch.log(q[0, 0]))  # argmax is class 0
    torch.testing.assert_close(HardBootstrappingLoss(0.8)(logits, y), hard)


def test_corrected_cross_entropy_by_hand():
    C = torch.tensor([[0.6, 0.4], [0.0, 1.0]])  # class 0 labelled 1 four times in ten
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    loss = CorrectedCrossEntropy(C, reduction="none")
    # untrusted label 1: P(label 1) = 0.5 * 0.4 + 0.5 * 1.0; trusted class 0 (label 2): p_0
    got = loss(torch.log(p), torch.tensor([1, 2]))
    torch.testing.assert_close(got, -torch.log(torch.tensor([0.7, 0.9])))
