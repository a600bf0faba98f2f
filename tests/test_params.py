"""The estimator's own parameters fail clearly."""

import pytest
import torch

from sk_reweight import ReweightedNeuralNetClassifier


LOSSES = torch.tensor([0.5, 0.5])  # what the engines pass along; unused by alignment weighting


@pytest.mark.parametrize("params,message", [
    ({"weight_smoothing": 1.0}, r"weight_smoothing=1.0 must be a number in \[0, 1\)"),
    ({"weight_smoothing": "yes"}, r"weight_smoothing='yes' must be a number"),
    ({"weight_shrinkage": 1.5}, r"weight_shrinkage=1.5 must be a number in \[0, 1\]"),
    ({"weight_shrinkage": None}, r"weight_shrinkage=None must be a number"),
    ({"zero_weights": "retry"}, r"zero_weights='retry' is not one of \['skip', 'uniform'\]"),
    ({"clean_weight": -1}, r"clean_weight=-1 must be a finite number >= 0"),
    ({"clean_weight": float("inf")}, r"clean_weight=inf must be a finite number"),
    ({"weighting": "mwn"}, r"weighting='mwn' is not one of \['alignment', 'meta_net'\]"),
    ({"meta_net_lr": 0}, r"meta_net_lr=0 must be a positive finite number"),
    ({"finetune_epochs": 2.5}, r"finetune_epochs=2.5 must be an int >= 0"),
    ({"clean_sampling": "balanced"}, r"clean_sampling='balanced' is not one of \['cycle', 'stratified'\]"),
])
def test_bad_options_fail_clearly(small_data, params, message):
    X, y, Xc, yc = small_data
    with pytest.raises(ValueError, match=message):
        ReweightedNeuralNetClassifier(max_epochs=1, **params).fit(X, y, X_clean=Xc, y_clean=yc)
