"""Searches on clusters: joblib's Dask and Ray backends give what n_jobs=1 gives, quietly."""
import builtins
import pickle

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.baselines import BaselineNet

GRID = {"lr": [1e-3, 1e-2], "max_epochs": [1, 3]}


@pytest.fixture(scope="module")
def problem():
    X, y = make_classification(n_samples=240, n_features=8, random_state=0)
    X = X.astype(np.float32)
    return X[20:], y[20:], X[:20], y[:20]


def search(problem, backend=None, **backend_kwargs):
    X, y, X_clean, y_clean = problem
    gs = GridSearchCV(ReweightedNeuralNetClassifier(random_state=0, batch_size=32), GRID, cv=3,
                      n_jobs=1 if backend is None else 2)
    if backend is None:
        return gs.fit(X, y, X_clean=X_clean, y_clean=y_clean)
    with joblib.parallel_backend(backend, **backend_kwargs):
        return gs.fit(X, y, X_clean=X_clean, y_clean=y_clean)


@pytest.fixture(scope="module")
def reference(problem):
    return search(problem)


def check_same_search(gs, reference):
    assert gs.best_params_ == reference.best_params_
    np.testing.assert_array_equal(gs.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"])
    pickle.loads(pickle.dumps(gs.best_estimator_))


def test_print_log_is_quiet_and_picklable_while_print_is_patched(problem, monkeypatch, capsys):
    X, y, X_clean, y_clean = problem
    printed = []
    monkeypatch.setattr(builtins, "print", lambda *args, **kwargs: printed.append(args))  # as Ray does
    for net in (ReweightedNeuralNetClassifier(max_epochs=2, verbose=0),
                BaselineNet(max_epochs=2, train_split=None, verbose=0)):
        net.fit(X, y, X_clean=X_clean, y_clean=y_clean) if hasattr(net, "weighting") else net.fit(X, y)
        pickle.loads(pickle.dumps(net))
    assert printed == []
    ReweightedNeuralNetClassifier(max_epochs=1, verbose=1).fit(X, y, X_clean=X_clean, y_clean=y_clean)
    assert len(printed) == 3  # header, rule, one epoch: verbose still prints, through print as it is now


@pytest.mark.slow
def test_grid_search_on_a_dask_local_cluster(problem, reference, capsys):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        gs = search(problem, "dask")
    check_same_search(gs, reference)
    assert "epoch" not in capsys.readouterr().out


@pytest.mark.slow
def test_grid_search_on_a_local_ray_instance(problem, reference, capsys, monkeypatch):
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    # Ray replaces builtins.print for good; put it back for the tests that follow
    monkeypatch.setattr(builtins, "print", builtins.print)
    ray.init(num_cpus=2, include_dashboard=False)  # default settings: Ray patches print
    try:
        register_ray()
        gs = search(problem, "ray")
        check_same_search(gs, reference)
        assert "epoch" not in capsys.readouterr().out  # the refit runs here, with print patched
    finally:
        ray.shutdown()
