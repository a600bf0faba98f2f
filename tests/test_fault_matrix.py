"""The fault and bad-input matrix: every case ends in a clear error or a correct result.

Bad values of every parameter, defective inputs of every kind (arrays,
DataFrames, lists), divergence at the first, a middle and the last step,
interrupts at every stage, failing saves and damaged files. A clear error is
one of the documented types, raised by sk_reweight's or scikit-learn's
checks, with a message naming the problem; a correct result is a model whose
predictions are labels of the training set and finite probabilities.
"""
import os
import traceback
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch
from skorch.callbacks import Callback

from sk_reweight import ReweightedNeuralNetClassifier, TrainingDivergedError

CHECKING_CODE = ("sk_reweight", os.path.join("sklearn", "utils"))
rng = np.random.RandomState(0)
X0 = rng.randn(60, 3).astype(np.float32)
Y0 = np.where(X0[:, 0] > 0, "yes", "no")
TRAIN, CLEAN = slice(10, None), slice(0, 10)


def _clear(exc, *words):
    frames = traceback.extract_tb(exc.__traceback__)
    assert frames and any(part in frames[-1].filename for part in CHECKING_CODE), \
        "".join(traceback.format_exception(exc))
    for word in words:  # a word, or a tuple of alternatives
        assert any(w.lower() in str(exc).lower() for w in ((word,) if isinstance(word, str) else word)), \
            (word, str(exc))


def _correct(net, X):
    proba = net.predict_proba(X)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(1), 1, atol=1e-4)
    assert set(net.predict(X)) <= set(net.classes_)


def _fit(params=None, X=X0[TRAIN], y=Y0[TRAIN], **clean):
    clean = clean or {"X_clean": X0[CLEAN], "y_clean": Y0[CLEAN]}
    net = ReweightedNeuralNetClassifier(**{"max_epochs": 1, "random_state": 0, "batch_size": 16,
                                           "module__hidden_units": (4,), **(params or {})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return net.fit(X, y, **clean)


# ---------------------------------------------------------------- parameters

BAD_PARAMETERS = {
    "batch_size": [0, -2, 2.5, None, True, "8"],
    "max_epochs": [-1, 1.5, None, "3", True],
    "lr": ["0.1", float("inf"), float("nan"), -1.0, 0, None],
    "clean_batch_size": [0, -1, 2.5, "4", 11],
    "weight_smoothing": [-0.1, 1.0, 2, "0.5", None, float("nan")],
    "weight_shrinkage": [-0.1, 1.5, "x", None, float("nan")],
    "zero_weights": ["retry", None, 1],
    "clean_weight": [-1, float("inf"), float("nan"), "1", None],
    "finetune_epochs": [-1, 2.5, "1", None],
    "weighting": ["mwn", None, 3, object()],
    "meta_engine": ["fast", None, 3, object()],
    "clean_sampling": ["balanced", None],
    "on_divergence": ["retry", None, 1],
    "meta_net_lr": [0, -1, float("inf"), "x", None],
    "device": ["gpu0", "cuda:abc", 5],
    "module__hidden_units": ["wide", 2.5],
    "optimizer": [torch.optim.LBFGS],
    "iterator_train__sampler": [torch.utils.data.SequentialSampler(range(3))],
    "iterator_train__batch_sampler": [[[0, 1]]],
}
# the word the error must name, where it is not the parameter's own name
PARAMETER_WORDS = {"module__hidden_units": "hidden_units", "optimizer": "closure",
                   "iterator_train__sampler": "iterator_train__sampler",
                   "iterator_train__batch_sampler": "iterator_train__batch_sampler"}
PARAMETER_CASES = [(name, value) for name, values in BAD_PARAMETERS.items() for value in values]


@pytest.mark.parametrize("name, value", PARAMETER_CASES, ids=[f"{n}={v!r}" for n, v in PARAMETER_CASES])
def test_bad_parameter_values(name, value):
    with pytest.raises((ValueError, TypeError)) as info:
        _fit({name: value})
    _clear(info.value, PARAMETER_WORDS.get(name, f"{name}="))


# ---------------------------------------------------------------- inputs

def _as(kind, X):
    if kind == "frame" and np.ndim(X) == 2:
        return pd.DataFrame(X, columns=[f"f{i}" for i in range(np.shape(X)[1])])
    if kind == "list":
        return np.asarray(X).tolist()
    return X


def _nan_at(X, value=np.nan):
    X = np.array(X, dtype=np.float32)
    X[3, 1] = value
    return X


# (name, fit arguments as a function of the input kind, words the error must contain, or None: must work)
INPUT_CASES = [
    ("nan in X", lambda k: dict(X=_as(k, _nan_at(X0[TRAIN]))), ["NaN"]),
    ("inf in X", lambda k: dict(X=_as(k, _nan_at(X0[TRAIN], np.inf))), ["infinity"]),
    ("strings in X", lambda k: dict(X=_as(k, np.full((50, 3), "a"))), ["numeric"]),
    ("None in X", lambda k: dict(X=_as(k, np.where(np.arange(150).reshape(50, 3) == 4, None, 1.0))),
     [("NaN", "numeric")]),
    ("1-d X", lambda k: dict(X=_as(k, X0[TRAIN, 0])), ["2D"]),
    ("empty X", lambda k: dict(X=_as(k, X0[:0]), y=Y0[:0]), [("0 sample", "got 1D array")]),
    ("y too short", lambda k: dict(y=Y0[11:]), ["inconsistent numbers of samples"]),
    ("nan in y", lambda k: dict(y=np.where(np.arange(50) == 3, np.nan, 1.0)), ["NaN"]),
    ("2-d y", lambda k: dict(y=np.c_[Y0[TRAIN], Y0[TRAIN]]), []),
    ("one class", lambda k: dict(y=np.full(50, "yes")), ["class"]),
    ("mixed label types", lambda k: dict(y=np.array([1, "a"] * 25, dtype=object)), ["mixes label types"]),
    ("nan in X_clean", lambda k: dict(X_clean=_as(k, _nan_at(X0[CLEAN])), y_clean=Y0[CLEAN]), ["NaN"]),
    ("X_clean other features", lambda k: dict(X_clean=_as(k, X0[CLEAN, :2]), y_clean=Y0[CLEAN]),
     [("feature", "columns")]),
    ("empty X_clean", lambda k: dict(X_clean=_as(k, X0[:0]), y_clean=Y0[:0]), [("empty", "1D array")]),
    ("inf in X_clean", lambda k: dict(X_clean=_as(k, _nan_at(X0[CLEAN], np.inf)), y_clean=Y0[CLEAN]),
     ["infinity"]),
    ("strings in X_clean", lambda k: dict(X_clean=np.full((10, 3), "red"), y_clean=Y0[CLEAN]),
     ["skipped the preprocessing"]),
    ("1-d X_clean", lambda k: dict(X_clean=X0[CLEAN, 0], y_clean=Y0[CLEAN]), ["2D"]),
    ("2-d y_clean", lambda k: dict(X_clean=_as(k, X0[CLEAN]), y_clean=np.c_[Y0[CLEAN], Y0[CLEAN]]), []),
    ("nan in y_clean", lambda k: dict(y=(Y0[TRAIN] == "yes").astype(float), X_clean=_as(k, X0[CLEAN]),
                                      y_clean=np.where(np.arange(10) == 2, np.nan, 1.0)), ["NaN"]),
    ("mixed clean label types",
     lambda k: dict(X_clean=_as(k, X0[CLEAN]), y_clean=np.array([1, "yes"] * 5, dtype=object)),
     ["mixes label types"]),
    ("inf sample_weight", lambda k: dict(sample_weight=np.full(50, np.inf)), ["infinity"]),
    ("2-d sample_weight", lambda k: dict(sample_weight=np.ones((50, 2))), ["1D"]),
    ("inputs too large to train", lambda k: dict(X=_as(k, X0[TRAIN] * 1e30), X_clean=_as(k, X0[CLEAN] * 1e30),
                                                 y_clean=Y0[CLEAN]), ["diverged"]),
    ("3-d mask", lambda k: dict(X_clean=None, y_clean=None, clean_mask=np.zeros((50, 1, 1), bool)), ["entry per row"]),
    ("scalar mask", lambda k: dict(X_clean=None, y_clean=None, clean_mask=True), ["entry per row"]),
    ("mask of strings", lambda k: dict(X_clean=None, y_clean=None, clean_mask=np.array(["yes"] * 50)), ["boolean"]),
    ("clean labels of one class only", lambda k: dict(X_clean=_as(k, X0[CLEAN]), y_clean=np.full(10, "yes")), None),
    ("a clean set of one row", lambda k: dict(X_clean=_as(k, X0[:1]), y_clean=Y0[:1]), None),
    ("DataFrame y", lambda k: dict(y=pd.DataFrame({"label": Y0[TRAIN]})), None),
    ("y_clean too short", lambda k: dict(X_clean=_as(k, X0[CLEAN]), y_clean=Y0[:9]), ["inconsistent"]),
    ("unknown clean label", lambda k: dict(X_clean=_as(k, X0[CLEAN]), y_clean=np.full(10, "maybe")),
     ["do not occur in y"]),
    ("no clean set", lambda k: dict(X_clean=None, y_clean=None), ["X_clean and y_clean not given"]),
    ("only X_clean", lambda k: dict(X_clean=_as(k, X0[CLEAN]), y_clean=None), ["y_clean not given"]),
    ("mask and arrays", lambda k: dict(X_clean=_as(k, X0[CLEAN]), y_clean=Y0[CLEAN],
                                       clean_mask=np.arange(50) < 5), ["one way"]),
    ("int mask", lambda k: dict(X_clean=None, y_clean=None, clean_mask=(np.arange(50) < 5).astype(int)),
     ["boolean"]),
    ("short mask", lambda k: dict(X_clean=None, y_clean=None, clean_mask=np.arange(40) < 5), ["rows"]),
    ("all-trusted mask", lambda k: dict(X_clean=None, y_clean=None, clean_mask=np.ones(50, bool)), ["every row"]),
    ("no-trusted mask", lambda k: dict(X_clean=None, y_clean=None, clean_mask=np.zeros(50, bool)), ["no row"]),
    ("negative sample_weight", lambda k: dict(sample_weight=-np.ones(50)), ["negative"]),
    ("zero sample_weight", lambda k: dict(sample_weight=np.zeros(50)), ["zero"]),
    ("short sample_weight", lambda k: dict(sample_weight=np.ones(7)), ["sample_weight"]),
    ("nan sample_weight", lambda k: dict(sample_weight=np.full(50, np.nan)), ["NaN"]),
    ("sparse X", lambda k: dict(X=scipy.sparse.csr_matrix(X0[TRAIN])), ["sparse"]),
    ("3-d X, 0 channels", lambda k: dict(X=np.zeros((50, 0, 4), np.float32), X_clean=np.zeros((10, 0, 4), np.float32),
                                         y_clean=Y0[CLEAN]), ["dimension of size 0"]),
    ("unknown fit keyword", lambda k: dict(weights=np.ones(50)), ["unexpected keyword"]),
    # these must work
    ("float64 X", lambda k: dict(X=_as(k, X0[TRAIN].astype(np.float64))), None),
    ("int X", lambda k: dict(X=_as(k, (X0[TRAIN] * 10).astype(np.int64)),
                             X_clean=_as(k, (X0[CLEAN] * 10).astype(np.int64)), y_clean=Y0[CLEAN]), None),
    ("bool labels", lambda k: dict(y=Y0[TRAIN] == "yes", y_clean=Y0[CLEAN] == "yes",
                                   X_clean=_as(k, X0[CLEAN])), None),
    ("trusted rows as a mask", lambda k: dict(X=_as(k, X0), y=Y0, X_clean=None, y_clean=None,
                                              clean_mask=np.arange(60) < 10), None),
    ("read-only arrays", lambda k: dict(X=_as(k, np.require(X0[TRAIN], requirements="C").copy()
                                              if k != "array" else _readonly(X0[TRAIN]))), None),
]


def _readonly(X):
    X = X.copy()
    X.setflags(write=False)
    return X


@pytest.mark.parametrize("kind", ["array", "frame", "list"])
@pytest.mark.parametrize("name, make, words", INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_defective_inputs(kind, name, make, words):
    args = {"X": _as(kind, X0[TRAIN]), "y": Y0[TRAIN], "X_clean": _as(kind, X0[CLEAN]), "y_clean": Y0[CLEAN]}
    args.update(make(kind))
    X, y = args.pop("X"), args.pop("y")
    clean = {k: v for k, v in args.items() if v is not None}  # None: the argument is left out
    net = ReweightedNeuralNetClassifier(max_epochs=1, random_state=0, batch_size=16, module__hidden_units=(4,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if words is None:
            net.fit(X, y, **clean)
            _correct(net, X)
            return
        with pytest.raises((ValueError, TypeError, TrainingDivergedError)) as info:
            net.fit(X, y, **clean)
    _clear(info.value, *words)


PREDICT_CASES = [
    ("nan", lambda k: _as(k, _nan_at(X0)), ["NaN"]),
    ("other feature count", lambda k: _as(k, X0[:, :2]), ["feature"]),
    ("strings", lambda k: _as(k, np.full((5, 3), "a")), ["numeric"]),
    ("3-d", lambda k: np.zeros((5, 3, 2), np.float32), ["shape"]),
    ("empty", lambda k: _as(k, X0[:0]), [("0 sample", "1D array")]),
    ("inf", lambda k: _as(k, _nan_at(X0, np.inf)), ["infinity"]),
    ("1-d", lambda k: _as(k, X0[:, 0]), ["2D"]),
    ("complex", lambda k: _as(k, X0.astype(np.complex64)), ["complex"]),
]


@pytest.fixture(scope="module")
def fitted():
    return {kind: _fit(X=_as(kind, X0[TRAIN]), X_clean=_as(kind, X0[CLEAN]), y_clean=Y0[CLEAN])
            for kind in ("array", "frame", "list")}


@pytest.mark.parametrize("kind", ["array", "frame", "list"])
@pytest.mark.parametrize("name, make, words", PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES])
@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_defective_inputs_at_predict(fitted, kind, name, make, words, method):
    with pytest.raises((ValueError, TypeError)) as info:
        getattr(fitted[kind], method)(make(kind))
    _clear(info.value, *words)


# ---------------------------------------------------------------- divergence


class NaNLossAt(torch.nn.CrossEntropyLoss):
    """Cross-entropy that is NaN at training step ``step`` (counted by the test)."""

    step = [0]

    def __init__(self, nan_step=1, reduction="mean"):
        super().__init__(reduction=reduction)
        self.nan_step = nan_step

    def forward(self, input, target):
        loss = super().forward(input, target)
        return loss * float("nan") if self.step[0] == self.nan_step else loss


class CountSteps(Callback):
    def on_batch_begin(self, net, training=False, **kwargs):
        if training:
            NaNLossAt.step[0] += 1


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("policy", ["raise", "skip"])
@pytest.mark.parametrize("engine", ["layerwise", "jvp"])
@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.Adam])
def test_divergence_at_every_point(where, policy, engine, optimizer):
    n_steps = 2 * 4  # two epochs of 50 rows in batches of 16
    nan_step = {"first": 1, "middle": 5, "last": n_steps}[where]
    NaNLossAt.step[0] = 0
    params = dict(criterion=NaNLossAt, criterion__nan_step=nan_step, meta_engine=engine, on_divergence=policy,
                  optimizer=optimizer, max_epochs=2, zero_weights="uniform", callbacks=[CountSteps()])
    net = ReweightedNeuralNetClassifier(random_state=0, batch_size=16, module__hidden_units=(4,), **params)
    if policy == "raise" or where == "first":
        with pytest.raises(TrainingDivergedError) as info:
            net.fit(X0[TRAIN], Y0[TRAIN], X_clean=X0[CLEAN], y_clean=Y0[CLEAN])
        _clear(info.value, "diverged")
    else:
        net.fit(X0[TRAIN], Y0[TRAIN], X_clean=X0[CLEAN], y_clean=Y0[CLEAN])
        assert sum(net.history[:, "diverged_steps"]) == 1
    _correct(net, X0)


# ---------------------------------------------------------------- interrupts


class InterruptAt(Callback):
    def __init__(self, epoch, batch):
        self.epoch, self.batch, self.seen = epoch, batch, 0

    def on_batch_begin(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch:
            self.seen += 1
            if self.seen == self.batch:
                raise KeyboardInterrupt


@pytest.mark.parametrize("epoch, batch", [(1, 1), (1, 3), (2, 2), (3, 1), (3, 2)])
def test_interrupt_at_every_stage(epoch, batch):
    # epochs 1-2 reweighted, epoch 3 fine-tuning on the clean set
    net = _fit(dict(max_epochs=2, finetune_epochs=1, callbacks=[InterruptAt(epoch, batch)]))
    assert len(net.history) == epoch
    _correct(net, X0)
    assert net.sample_weights_.shape[0] == min(epoch, 2)


# ---------------------------------------------------------------- saving and loading


@pytest.mark.parametrize("failing_write", [1, 2, 3])
def test_a_save_failing_at_any_file_keeps_the_last_good_set(tmp_path, monkeypatch, failing_write):
    net = _fit()
    files = {k: tmp_path / f"{k}.pt" for k in ("f_params", "f_optimizer", "f_weighting")}
    net.save_params(**files)
    before = {k: p.read_bytes() for k, p in files.items()}
    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == failing_write:
            raise OSError("disk full")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(OSError):
        net.save_params(**files)
    assert {k: p.read_bytes() for k, p in files.items()} == before


@pytest.mark.parametrize("damage", ["empty", "truncated", "text", "other network", "flipped"])
def test_loading_a_bad_file_leaves_the_model_unchanged(tmp_path, damage):
    net = _fit()
    net.save_params(f_params=tmp_path / "p.pt")
    blob = (tmp_path / "p.pt").read_bytes()
    if damage == "other network":
        _fit({"module__hidden_units": (5,)}).save_params(f_params=tmp_path / "p.pt")
    else:
        if damage == "flipped":
            weight = net.module_.layers[0].weight.detach().numpy().tobytes()
            at = blob.find(weight[:8])
            assert at > 0
            blob = blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1:]
        else:
            blob = {"empty": b"", "truncated": blob[:100], "text": b"hello"}[damage]
        (tmp_path / "p.pt").write_bytes(blob)
    target = _fit({"random_state": 1})
    before = [p.detach().clone() for p in target.module_.parameters()]
    with pytest.raises(ValueError) as info:
        target.load_params(f_params=tmp_path / "p.pt")
    _clear(info.value, "unchanged")
    assert all(torch.equal(a, b) for a, b in zip(before, target.module_.parameters()))


def test_the_matrix_has_at_least_300_cases():
    divergence, interrupts, saves, loads = 3 * 2 * 2 * 2, 5, 3, 5
    n = (len(PARAMETER_CASES) + 3 * len(INPUT_CASES) + 3 * 2 * len(PREDICT_CASES)
         + divergence + interrupts + saves + loads)
    assert n >= 300, n
