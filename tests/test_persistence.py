"""save_params/load_params: atomic files, complete restores, damaged or foreign files refused."""
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from skorch.callbacks import Callback

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.modules import MLP


def _data():
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.randn(200, 3).astype(np.float32), columns=["a", "b", "c"])
    y = np.where(X["a"] > 0, "yes", "no")
    return X, y


def _fitted(**params):
    X, y = _data()
    net = ReweightedNeuralNetClassifier(**{"max_epochs": 3, "lr": 0.05, "random_state": 0, **params})
    return net.fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])


def _run(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize("module", ["None", "MLP"])
def test_a_model_restored_in_a_fresh_process_predicts_the_same_labels(tmp_path, module):
    net = _fitted(module=None if module == "None" else MLP, **({} if module == "None" else
                                                              {"module__n_features": 3, "module__n_classes": 2}))
    net.save_params(f_params=tmp_path / "params.pt")
    np.save(tmp_path / "expected.npy", net.predict(_data()[0]))
    build = ("ReweightedNeuralNetClassifier()" if module == "None" else
             "ReweightedNeuralNetClassifier(MLP, module__n_features=3, module__n_classes=2).initialize()")
    out = _run(f"""
import numpy as np, pandas as pd
from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.modules import MLP
net = {build}
net.load_params(f_params={str(tmp_path / 'params.pt')!r})
rng = np.random.RandomState(0)
X = pd.DataFrame(rng.randn(200, 3).astype(np.float32), columns=["a", "b", "c"])
assert (net.predict(X) == np.load({str(tmp_path / 'expected.npy')!r})).all()
print(net.classes_.tolist(), net.feature_names_in_.tolist())
""")
    assert out.strip() == "['no', 'yes'] ['a', 'b', 'c']"


def test_parameters_of_another_network_are_refused_and_the_model_is_unchanged(tmp_path):
    _fitted(module=MLP, module__n_features=3, module__n_classes=2).save_params(f_params=tmp_path / "p.pt")
    other = _fitted(module=MLP, module__n_features=3, module__n_classes=2, module__hidden_units=(7,))
    before = [p.detach().clone() for p in other.module_.parameters()]
    with pytest.raises(ValueError, match="parameters of another network.*other shapes.*unchanged"):
        other.load_params(f_params=tmp_path / "p.pt")
    assert all(torch.equal(a, b) for a, b in zip(before, other.module_.parameters()))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_files_are_refused_and_the_model_is_unchanged(tmp_path, damage):
    net = _fitted()
    net.save_params(f_params=tmp_path / "p.pt")
    blob = bytearray((tmp_path / "p.pt").read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    else:  # one bit in the middle of the largest tensor's data
        weight = net.module_.layers[0].weight.detach().numpy().tobytes()
        at = bytes(blob).find(weight[:16])
        assert at > 0  # torch stores tensors uncompressed
        blob[at + 8] ^= 0x10
    (tmp_path / "p.pt").write_bytes(bytes(blob))
    target = _fitted(random_state=1) if damage == "flip" else _fitted()
    before = [p.detach().clone() for p in target.module_.parameters()]
    message = "damaged, incomplete" if damage == "truncate" else "do not match the checksum"
    with pytest.raises(ValueError, match=f"{message}.*unchanged"):
        target.load_params(f_params=tmp_path / "p.pt")
    assert all(torch.equal(a, b) for a, b in zip(before, target.module_.parameters()))


def test_a_failed_load_of_a_later_file_leaves_everything_as_it_was(tmp_path):
    net = _fitted()
    net.save_params(f_params=tmp_path / "p.pt")
    (tmp_path / "opt.pt").write_bytes(b"not a torch file")
    target = _fitted(random_state=1)
    before = [p.detach().clone() for p in target.module_.parameters()]
    history = len(target.history)
    with pytest.raises(ValueError, match="unchanged"):
        target.load_params(f_params=tmp_path / "p.pt", f_optimizer=tmp_path / "opt.pt")
    assert all(torch.equal(a, b) for a, b in zip(before, target.module_.parameters()))
    assert len(target.history) == history


def test_a_failed_save_keeps_the_previous_files_whole(tmp_path, monkeypatch):
    net = _fitted()
    net.save_params(f_params=tmp_path / "p.pt", f_optimizer=tmp_path / "o.pt")
    old = {name: (tmp_path / name).read_bytes() for name in ("p.pt", "o.pt")}
    calls = []
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    with torch.no_grad():
        net.module_.layers[0].weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        net.save_params(f_params=tmp_path / "p.pt", f_optimizer=tmp_path / "o.pt")
    assert {name: (tmp_path / name).read_bytes() for name in ("p.pt", "o.pt")} == old
    assert sorted(os.listdir(tmp_path)) == ["o.pt", "p.pt"]  # no temporary file left


class _Unpicklable(Callback):
    """A callback that fails half-way through pickling a net (after skorch would have emptied the file)."""

    armed = False

    def __reduce__(self):
        if _Unpicklable.armed:
            raise RuntimeError("pickling failed half-way")
        return (_Unpicklable, ())


def test_checkpoint_f_pickle_keeps_the_last_good_checkpoint_when_a_save_fails(tmp_path):
    from sk_reweight.callbacks import Checkpoint

    X, y = _data()
    target = tmp_path / "model.pkl"
    net = ReweightedNeuralNetClassifier(max_epochs=2, random_state=0, callbacks=[
        ("carrying", _Unpicklable()),
        ("checkpoint", Checkpoint(monitor=None, f_params=None, f_optimizer=None, f_criterion=None,
                                  f_history=None, f_pickle=str(target), dirname=str(tmp_path)))])
    _Unpicklable.armed = False
    net.fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])
    good = target.read_bytes()
    _Unpicklable.armed = True
    try:
        with pytest.raises(RuntimeError, match="half-way"):
            net.partial_fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])
    finally:
        _Unpicklable.armed = False
    assert target.read_bytes() == good
    assert os.listdir(tmp_path) == ["model.pkl"]  # no temporary file left
    assert len(pickle.loads(good).history) == 2


def test_skorchs_checkpoint_with_f_pickle_gets_a_warning(tmp_path):
    from skorch.callbacks import Checkpoint

    X, y = _data()
    net = ReweightedNeuralNetClassifier(max_epochs=1, callbacks=[Checkpoint(f_pickle="x.pkl", dirname=str(tmp_path))])
    with pytest.warns(UserWarning, match="sk_reweight.callbacks.Checkpoint"):
        net.fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])


@pytest.mark.slow
def test_a_writer_killed_at_random_points_never_leaves_a_broken_file(tmp_path):
    _fitted().save_params(f_params=tmp_path / "p.pt")
    writer = f"""
import numpy as np, pandas as pd, torch
from sk_reweight import ReweightedNeuralNetClassifier
rng = np.random.RandomState(0)
X = pd.DataFrame(rng.randn(200, 3).astype(np.float32), columns=["a", "b", "c"])
y = np.where(X["a"] > 0, "yes", "no")
net = ReweightedNeuralNetClassifier(max_epochs=1, lr=0.05, random_state=0, module__hidden_units=(512, 512))
net.fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])
print("ready", flush=True)
while True:
    with torch.no_grad():
        net.module_.layers[0].weight.add_(1.0)
    net.save_params(f_params={str(tmp_path / 'p.pt')!r})
"""
    rng = np.random.RandomState(0)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        restored = ReweightedNeuralNetClassifier(module__hidden_units=(512, 512))
        try:
            restored.load_params(f_params=tmp_path / "p.pt")
        except ValueError as exc:  # the first file (before the writer ran) has another shape
            assert "another network" in str(exc)
            continue
        # a whole file, old or new (a killed writer may leave its temporary file beside it)
        assert np.isfinite(restored.predict_proba(_data()[0])).all()


def test_loading_into_an_unfitted_estimator_without_a_description_is_explained(tmp_path):
    torch.save(MLP(3, 2).state_dict(), tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="call initialize\\(\\) first"):
        ReweightedNeuralNetClassifier().load_params(f_params=tmp_path / "plain.pt")


def test_files_saved_together_are_checked_against_each_other(tmp_path):
    first, second = _fitted(), _fitted(random_state=1)
    first.save_params(f_params=tmp_path / "p.pt", f_optimizer=tmp_path / "o.pt", f_weighting=tmp_path / "w.pt")
    second.save_params(f_optimizer=tmp_path / "o2.pt")
    target = _fitted(random_state=2)
    before = [p.detach().clone() for p in target.module_.parameters()]
    with pytest.raises(ValueError, match="f_optimizer=.*o2.pt' is not the file saved with .*mixed set.*unchanged"):
        target.load_params(f_params=tmp_path / "p.pt", f_optimizer=tmp_path / "o2.pt")
    blob = bytearray((tmp_path / "w.pt").read_bytes())
    blob[len(blob) // 2] ^= 1
    (tmp_path / "w.pt").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="f_weighting=.*checksum differs"):
        target.load_params(f_params=tmp_path / "p.pt", f_weighting=tmp_path / "w.pt")
    assert all(torch.equal(a, b) for a, b in zip(before, target.module_.parameters()))
    target.load_params(f_params=tmp_path / "p.pt", f_optimizer=tmp_path / "o.pt")  # the right set loads
    np.testing.assert_array_equal(target.predict_proba(_data()[0]), first.predict_proba(_data()[0]))
