"""device='auto': resolved for torch, kept as the parameter."""

import torch

from sk_reweight import ReweightedNeuralNetClassifier



def test_device_auto_resolves_and_stays_a_parameter(small_data):
    net = ReweightedNeuralNetClassifier()
    assert net.get_params()["device"] == "auto"
    assert net.device == ("cuda" if torch.cuda.is_available() else "cpu")
    net.set_params(device="cpu")
    assert net.get_params()["device"] == "cpu"


def test_auto_device_under_torchrun_takes_the_gpu_of_the_local_rank(monkeypatch):
    from sk_reweight._device import auto_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert auto_device() == "cuda:1"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert auto_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert auto_device() == "cpu"
