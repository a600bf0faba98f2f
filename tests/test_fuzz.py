"""Generated inputs and parameters: every fit ends in a correct model or in one of our clear errors.

The fast tier runs the first 200 of the derandomised examples; the slow tier
(``-m slow``) runs ``SK_REWEIGHT_FUZZ_EXAMPLES`` of them (default 2,000; a
long run: ``SK_REWEIGHT_FUZZ_EXAMPLES=20000 python -m pytest -m slow
tests/test_fuzz.py``). An error counts as clear when it is one of the
documented types and is raised by sk_reweight's or scikit-learn's input
checks, not from deep inside torch or numpy.
"""
import os
import traceback
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sk_reweight import ReweightedNeuralNetClassifier, TrainingDivergedError

EXAMPLES = int(os.environ.get("SK_REWEIGHT_FUZZ_EXAMPLES", "2000"))
DOCUMENTED = (ValueError, TypeError, TrainingDivergedError)
# where a clear error may come from: our checks, and scikit-learn's input validation
CHECKING_CODE = ("sk_reweight", os.path.join("sklearn", "utils"), os.path.join("sklearn", "preprocessing"))
LABELS = {"int": np.array([5, -2, 11, 0]), "str": np.array(["a", "b", "c", "d"]),
          "bool": np.array([True, False, True, False]), "float": np.array([0.5, 1.5, -3.0, 2.0])}


def _raised_by_a_check(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and any(part in frames[-1].filename for part in CHECKING_CODE)


FAST_EXAMPLES = 200
INPUTS = dict(
    n_samples=st.integers(0, 24),
    sample_shape=st.lists(st.integers(0, 3), min_size=1, max_size=3),
    n_classes=st.integers(1, 4),
    n_clean=st.integers(0, 6),
    dtype=st.sampled_from([np.float32, np.float64, np.int64, np.float16, bool]),
    label_kind=st.sampled_from(sorted(LABELS)),
    scale=st.sampled_from([1.0, 1e3, 1e30]),
    as_mask=st.booleans(),
    params=st.fixed_dictionaries({}, optional={
        "batch_size": st.sampled_from([1, 3, 100, -1, 0]),
        "max_epochs": st.integers(0, 2),
        "lr": st.sampled_from([1e-3, 0.1, 10.0, 1e20]),
        "clean_batch_size": st.sampled_from([None, 1, 2, 50]),
        "weight_smoothing": st.sampled_from([0.0, 0.5, 0.99]),
        "weight_shrinkage": st.sampled_from([0.0, 0.5, 1.0]),
        "zero_weights": st.sampled_from(["skip", "uniform"]),
        "clean_weight": st.sampled_from([0.0, 1.0]),
        "finetune_epochs": st.integers(0, 2),
        "weighting": st.sampled_from(["alignment", "meta_net"]),
        "meta_engine": st.sampled_from(["auto", "layerwise", "jvp"]),
        "clean_sampling": st.sampled_from(["cycle", "stratified"]),
        "on_divergence": st.sampled_from(["raise", "skip"]),
        "optimizer": st.sampled_from([torch.optim.SGD, torch.optim.Adam]),
    }),
    seed=st.integers(0, 2**16),
)


def _fit_gives_a_correct_model_or_a_clear_error(n_samples, sample_shape, n_classes, n_clean, dtype,
                                                label_kind, scale, as_mask, params, seed):
    rng = np.random.RandomState(seed)
    shape = tuple(sample_shape)
    X = (rng.randn(n_samples, *shape) * scale).astype(dtype)
    X_clean = (rng.randn(n_clean, *shape) * scale).astype(dtype)
    labels = LABELS[label_kind][:n_classes]
    y, y_clean = labels[rng.randint(0, n_classes, n_samples)], labels[rng.randint(0, n_classes, n_clean)]
    net = ReweightedNeuralNetClassifier(random_state=0, module__hidden_units=(4,),
                                        **{"max_epochs": 1, **params})
    if as_mask:
        X, y = np.concatenate([X, X_clean]), np.concatenate([y, y_clean])
        clean = {"clean_mask": np.arange(len(y)) >= n_samples}
    else:
        clean = {"X_clean": X_clean, "y_clean": y_clean}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            net.fit(X, y, **clean)
        except DOCUMENTED as exc:
            assert _raised_by_a_check(exc), "".join(traceback.format_exception(exc))
            return
    X_train = X[~clean["clean_mask"]] if as_mask else X
    proba = net.predict_proba(X_train)
    assert proba.shape == (len(X_train), len(net.classes_))
    assert np.isfinite(proba).all() and np.allclose(proba.sum(1), 1, atol=1e-3)
    assert set(net.predict(X_train)) <= set(net.classes_)
    if len(net.sample_weights_):  # max_epochs=0 records no epoch
        assert net.sample_weights_.shape[1] == len(X)


def _fuzz(examples):
    return settings(max_examples=examples, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])(
        given(**INPUTS)(_fit_gives_a_correct_model_or_a_clear_error))


test_fit_gives_a_correct_model_or_a_clear_error = pytest.mark.slow(_fuzz(EXAMPLES))
test_the_first_examples_give_a_correct_model_or_a_clear_error = _fuzz(FAST_EXAMPLES)
