"""random_state: the fit's own generators, isolated from torch's global state and other threads."""
import threading
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import make_classification

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight._random import ForwardDraws, OwnGenerators, RandomStream, fit_generators, preserved_random_state


def test_fit_generators_seed_resume_and_leave_torch_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    generators = fit_generators(0, None, epochs_done=0)
    with generators:
        first = torch.rand(3)
        saved = generators.cpu.get_state()
        second = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), before)
    with fit_generators(0, saved, epochs_done=1):  # continued: where the last fit stood
        assert torch.equal(torch.rand(3), second)
    with fit_generators(0, None, epochs_done=0):
        assert torch.equal(torch.rand(3), first)
    assert fit_generators(None, None, 0) is None  # unseeded: torch's global stream


def test_own_generators_cover_init_functions_and_dropout_masks():
    def draws():
        layer = torch.nn.Linear(6, 4)
        torch.nn.init.xavier_normal_(layer.weight)
        x = torch.ones(5, 3, 4, 4)
        return [layer.weight, F.dropout(x, 0.5), F.dropout2d(x, 0.5), torch.randperm(7).float()]

    with OwnGenerators(3) as own:
        first = draws()
    assert own.draws == 6  # kaiming + uniform in Linear, xavier, two masks, randperm
    torch.manual_seed(0)
    before = torch.get_rng_state()
    with OwnGenerators(3):
        again = draws()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    plain, channel = first[1], first[2]
    assert set(plain.unique().tolist()) == {0.0, 2.0}  # inverted dropout: kept values scaled by 1/(1-p)
    assert (channel.amax((2, 3)) == channel.amin((2, 3))).all()  # dropout2d drops whole channels
    assert 0.3 < (plain == 0).float().mean() < 0.7


def test_dropout_keeps_torch_semantics():
    x = torch.randn(4, 5)
    with OwnGenerators(0):
        assert torch.equal(F.dropout(x, 0.5, training=False), x)
        assert torch.equal(F.dropout(x, 0.0), x)
        assert torch.equal(F.dropout(x, 1.0), torch.zeros_like(x))
        with pytest.raises(ValueError, match="dropout probability"):
            F.dropout(x, 1.5)
        y = x.clone()
        out = F.dropout(y, 0.5, inplace=True)
        assert out is y


def test_forward_draws_only_when_the_forward_pass_draws():
    with_dropout = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5))
    hooks = ForwardDraws(with_dropout, OwnGenerators(0))
    with_dropout(torch.ones(2, 3))
    with_dropout(torch.ones(2, 3))
    assert hooks.needed is True and hooks.generators.draws == 2
    hooks.remove()
    without = torch.nn.Linear(3, 3)
    hooks = ForwardDraws(without, OwnGenerators(0))
    without(torch.ones(2, 3))
    assert hooks.needed is False


def test_preserved_random_state_restores_the_fit_stream_not_the_global_one():
    with OwnGenerators(0) as own:
        state = own.cpu.get_state()
        with preserved_random_state():
            torch.rand(3)
        assert torch.equal(own.cpu.get_state(), state)


def _fit(X, y, **params):
    net = ReweightedNeuralNetClassifier(max_epochs=3, random_state=0, module__dropout=0.3, **params)
    return net.fit(X[60:], y[60:], X_clean=X[:60], y_clean=y[:60]).predict_proba(X)


@pytest.mark.parametrize("params", [
    {}, {"weighting": "meta_net", "finetune_epochs": 1, "clean_sampling": "stratified"}])
def test_seeded_fits_are_identical_while_another_thread_draws(params):
    X, y = make_classification(n_samples=400, n_features=10, random_state=0)
    X = X.astype(np.float32)
    alone = _fit(X, y, **params)
    stop = threading.Event()

    def draw():
        while not stop.is_set():
            torch.rand(50)
            torch.nn.functional.dropout(torch.ones(50), 0.5)

    thread = threading.Thread(target=draw)
    torch.manual_seed(1)
    before = torch.get_rng_state()
    thread.start()
    try:
        together = _fit(X, y, **params)
    finally:
        stop.set()
        thread.join()
    assert np.array_equal(alone, together)
    torch.manual_seed(1)
    _fit(X, y, **params)
    assert torch.equal(torch.get_rng_state(), before)  # neither read nor changed


@pytest.mark.parametrize("engine", ["auto", "jvp"])
def test_two_seeded_fits_in_threads_match_their_sequential_runs(engine):
    # 'auto' checks the layer-wise engine against the JVP one at the start of each fit, and
    # torch's forward-AD levels are process-wide: concurrent JVP passes must take turns
    X, y = make_classification(n_samples=400, n_features=10, random_state=1)
    X = X.astype(np.float32)

    def fit(seed):
        net = ReweightedNeuralNetClassifier(max_epochs=2, random_state=seed, module__dropout=0.2,
                                            meta_engine=engine)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # no fallback to another engine
            return net.fit(X[60:], y[60:], X_clean=X[:60], y_clean=y[:60]).predict_proba(X)

    sequential = {seed: fit(seed) for seed in (0, 1)}
    results = {}

    def run(seed):
        results[seed] = fit(seed)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(results[s], sequential[s]) for s in (0, 1))


def test_random_stream_round_trips_its_state():
    stream = RandomStream()
    stream.torch_state = torch.get_rng_state()
    stream.clean_batches = {"n_samples": 3, "queue": torch.tensor([2, 0])}
    copy = RandomStream()
    copy.load_state_dict(stream.state_dict())
    assert torch.equal(copy.torch_state, stream.torch_state)
    assert torch.equal(copy.clean_batches["queue"], torch.tensor([2, 0]))
