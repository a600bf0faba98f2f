"""device='auto': resolved for torch, kept as the parameter."""

import torch

from sk_reweight import ReweightedNeuralNetClassifier



def test_device_auto_resolves_and_stays_a_parameter(small_data):
    net = ReweightedNeuralNetClassifier()
    assert net.get_params()["device"] == "auto"
    assert net.device == ("cuda" if torch.cuda.is_available() else "cpu")
    net.set_params(device="cpu")
    assert net.get_params()["device"] == "cpu"
