import pytest
import torch

import sk_reweight
from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.exceptions import TrainingDivergedError


def test_divergence_error_is_a_floating_point_error_exported_at_the_top():
    assert sk_reweight.TrainingDivergedError is TrainingDivergedError
    assert issubclass(TrainingDivergedError, FloatingPointError)


def test_divergence_names_epoch_and_batch(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=3, lr=1e30, optimizer=torch.optim.SGD, random_state=0)
    with pytest.raises(TrainingDivergedError, match=r"Training diverged in epoch \d+, batch \d+"):
        net.fit(X * 1e20, y, X_clean=Xc * 1e20, y_clean=yc)
