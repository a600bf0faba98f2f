"""device='auto': resolved for torch, kept as the parameter; mixed-precision fits on the test device
(``--device`` / ``$SK_REWEIGHT_TEST_DEVICE``, see tests/conftest.py)."""

import numpy as np
import pytest
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


def _blobs():
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=400, n_features=20, random_state=0)
    return X.astype("float32"), y


@pytest.mark.parametrize("engine", ["layerwise", "jvp"])
def test_a_bfloat16_fit_follows_the_float32_fit(engine, device):
    X, y = _blobs()
    fits = [ReweightedNeuralNetClassifier(max_epochs=5, random_state=0, meta_engine=engine, autocast_dtype=dtype,
                                          device=device)
            .fit(X[40:], y[40:], X_clean=X[:40], y_clean=y[:40]) for dtype in (None, torch.bfloat16)]
    full, low = fits
    assert all(p.dtype == torch.float32 for p in low.module_.parameters())
    # the parameters move (autocast's weight cache is dropped after every step)
    assert len(set(low.history[:, "train_loss"])) == 5
    weights_full, weights_low = full.sample_weights_.ravel(), low.sample_weights_.ravel()
    assert np.corrcoef(weights_full, weights_low)[0, 1] > 0.95
    assert abs(full.score(X, y) - low.score(X, y)) <= 0.03


def test_fit_inside_torch_autocast_is_refused():
    X, y = _blobs()
    net = ReweightedNeuralNetClassifier(max_epochs=1, random_state=0)
    with torch.autocast("cpu", dtype=torch.bfloat16), \
            pytest.raises(RuntimeError, match="autocast_dtype=torch.bfloat16"):
        net.fit(X[40:], y[40:], X_clean=X[:40], y_clean=y[:40])


@pytest.mark.parametrize("dtype", ["bf16", torch.float32, torch.float64])
def test_autocast_dtype_other_than_a_half_type_is_a_clear_error(dtype):
    X, y = _blobs()
    with pytest.raises(ValueError, match="use torch.bfloat16, torch.float16"):
        net = ReweightedNeuralNetClassifier(max_epochs=1, autocast_dtype=dtype)
        net.fit(X[40:], y[40:], X_clean=X[:40], y_clean=y[:40])


@pytest.mark.parametrize("engine", ["layerwise", "jvp"])
def test_a_float16_fit_scales_its_loss_and_follows_the_float32_fit(engine, device):
    X, y = _blobs()
    fits = [ReweightedNeuralNetClassifier(max_epochs=5, random_state=0, meta_engine=engine, autocast_dtype=dtype,
                                          device=device)
            .fit(X[40:], y[40:], X_clean=X[:40], y_clean=y[:40]) for dtype in (None, torch.float16)]
    full, low = fits
    assert full.loss_scale_ is None and low.loss_scale_.factor == 2.0**16
    assert low.history[:, "overflow_steps"] == [0] * 5
    assert len(set(low.history[:, "train_loss"])) == 5
    assert np.corrcoef(full.sample_weights_.ravel(), low.sample_weights_.ravel())[0, 1] > 0.95
    assert abs(full.score(X, y) - low.score(X, y)) <= 0.03


def test_float16_overflow_lowers_the_scale_and_skips_the_step(monkeypatch, device):
    from sk_reweight._loss_scale import LossScale

    # every scaled gradient overflows float16 at first
    monkeypatch.setattr("sk_reweight._loss_scale.LossScale", lambda: LossScale(init_scale=2.0**30))
    X, y = _blobs()
    net = ReweightedNeuralNetClassifier(max_epochs=3, batch_size=16, random_state=0, autocast_dtype=torch.float16,
                                        device=device)
    net.fit(X[40:], y[40:], X_clean=X[:40], y_clean=y[:40])
    overflows = net.history[:, "overflow_steps"]
    assert overflows[0] >= 5 and overflows[-1] == 0 and sum(overflows) == net.loss_scale_.overflows
    assert net.loss_scale_.factor == 2.0 ** (30 - sum(overflows))
    weights = net.sample_weights_
    assert np.isnan(weights[0]).sum() >= 8 * overflows[0]  # a skipped step trained nobody
    assert np.isfinite(weights[-1]).all() and np.isfinite(net.predict_proba(X)).all()
    assert net.history[-1, "train_loss"] < net.history[0, "train_loss"]  # it trains once the scale fits


def test_switching_to_float16_between_partial_fits_brings_loss_scaling(device):
    X, y = _blobs()
    net = ReweightedNeuralNetClassifier(max_epochs=1, random_state=0, device=device)
    net.partial_fit(X[40:], y[40:], X_clean=X[:40], y_clean=y[:40])
    assert net.loss_scale_ is None
    net.set_params(autocast_dtype=torch.float16).partial_fit(X[40:], y[40:], X_clean=X[:40], y_clean=y[:40])
    scale = net.loss_scale_
    assert scale is not None and net.history[-1, "overflow_steps"] == 0
    net.partial_fit(X[40:], y[40:], X_clean=X[:40], y_clean=y[:40])
    assert net.loss_scale_ is scale  # carried on, not restarted
    net.set_params(autocast_dtype=None).partial_fit(X[40:], y[40:], X_clean=X[:40], y_clean=y[:40])
    assert net.loss_scale_ is None


@pytest.mark.parametrize("params", [{}, {"weighting": "paper"}], ids=["default", "paper_exact"])
def test_a_fit_trains_on_the_test_device_and_predicts_on_the_host(params, device):
    X, y = _blobs()
    net = ReweightedNeuralNetClassifier(max_epochs=2, random_state=0, device=device, **params)
    net.fit(X[40:], y[40:], X_clean=X[:40], y_clean=y[:40])
    assert all(p.device.type == torch.device(device).type for p in net.module_.parameters())
    assert np.isfinite(net.sample_weights_).all() and net.score(X, y) > 0.6
    proba = net.predict_proba(X)
    assert isinstance(proba, np.ndarray) and np.allclose(proba.sum(1), 1, atol=1e-5)


def test_the_test_device_option_skips_without_cuda_and_refuses_a_bad_name():
    import os
    import subprocess
    import sys
    from pathlib import Path

    def pytest_run(*args, **env):
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
                              cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", **env})

    test = "tests/test_device.py::test_a_fit_trains_on_the_test_device_and_predicts_on_the_host"
    done = pytest_run(test, SK_REWEIGHT_TEST_DEVICE="cuda")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "2 skipped" in done.stdout and "'cuda' requested" in done.stdout and "CUDA is not available" in done.stdout
    bad = pytest_run(test, "--device", "gpu0", SK_REWEIGHT_TEST_DEVICE="cpu")  # the option wins
    assert bad.returncode == pytest.ExitCode.USAGE_ERROR and "'gpu0' is not a torch device" in bad.stderr
