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
    ({"weighting": "mwn"}, r"weighting='mwn' is not one of \['cross_fit', 'alignment', 'meta_net', 'paper'\]"),
    ({"meta_net_lr": 0}, r"meta_net_lr=0 must be a positive finite number"),
    ({"finetune_epochs": 2.5}, r"finetune_epochs=2.5 must be an int >= 0"),
    ({"clean_sampling": "balanced"}, r"clean_sampling='balanced' is not one of \['cycle', 'stratified'\]"),
    ({"batch_size": 0}, r"batch_size=0 must be an int >= 1, or -1"),
    ({"batch_size": 2.5}, r"batch_size=2.5 must be an int >= 1, or -1"),
    ({"batch_size": None}, r"batch_size=None must be an int >= 1, or -1"),
    ({"batch_size": True}, r"batch_size=True must be an int >= 1, or -1"),
    ({"max_epochs": -1}, r"max_epochs=-1 must be an int >= 0"),
    ({"max_epochs": 1.5}, r"max_epochs=1.5 must be an int >= 0"),
    ({"lr": "0.1"}, r"lr='0.1' must be a positive finite number"),
    ({"lr": float("inf")}, r"lr=inf must be a positive finite number"),
    ({"lr": float("nan")}, r"lr=nan must be a positive finite number"),
    ({"device": "gpu0"}, r"device='gpu0' is not a torch device.*'auto', 'cpu', 'cuda'"),
    ({"on_divergence": "retry"}, r"on_divergence='retry' is not one of \['raise', 'skip'\]"),
    ({"unlearning_tolerance": -0.1}, r"unlearning_tolerance=-0.1 must be a finite number >= 0 or None"),
    ({"unlearning_tolerance": "0.1"}, r"unlearning_tolerance='0.1' must be a finite number >= 0 or None"),
])
def test_bad_options_fail_clearly(small_data, params, message):
    X, y, Xc, yc = small_data
    with pytest.raises(ValueError, match=message):
        ReweightedNeuralNetClassifier(**{"max_epochs": 1, **params}).fit(X, y, X_clean=Xc, y_clean=yc)


def test_cuda_without_cuda_is_explained(small_data, monkeypatch):
    X, y, Xc, yc = small_data
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device='cuda' but CUDA is not available.*device='auto'"):
        ReweightedNeuralNetClassifier(max_epochs=1, device="cuda").fit(X, y, X_clean=Xc, y_clean=yc)


@pytest.mark.parametrize("params", [{"batch_size": -1}, {"max_epochs": 0}, {"lr": 1}, {"device": "cpu"},
                                    {"device": torch.device("cpu")}])
def test_edge_values_that_are_allowed(small_data, params):
    X, y, Xc, yc = small_data
    ReweightedNeuralNetClassifier(**{"max_epochs": 1, **params}).fit(X, y, X_clean=Xc, y_clean=yc)
