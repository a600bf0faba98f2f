"""``random_state``: torch's random numbers for one fit, seeded and continued."""
import numbers
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.utils import check_random_state


class RandomStream:
    """Where a seeded training run's random numbers stand between fits.

    Holds torch's CPU random state at the end of the last ``fit`` or
    ``partial_fit`` and the clean-batch order, so that a continued fit
    (``partial_fit``, ``warm_start``, or a model restored with
    ``load_params(f_rng=...)``) draws what an uninterrupted fit would.
    ``state_dict``/``load_state_dict`` let skorch save it
    (``save_params(f_rng=...)``).

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sk_reweight import ReweightedNeuralNetClassifier
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> net = ReweightedNeuralNetClassifier(max_epochs=1, random_state=0)
    >>> net = net.fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])
    >>> sorted(net.rng_.state_dict())
    ['clean_batches', 'torch']
    """

    def __init__(self):
        self.torch_state = None
        self.clean_batches = {}

    def keep(self, torch_state, clean_batches):
        """Where a fit left the random stream (``None`` if unseeded) and the clean batches."""
        self.torch_state = torch_state
        self.clean_batches = clean_batches.state_dict()

    def state_dict(self):
        state = {"clean_batches": self.clean_batches}
        if self.torch_state is not None:
            state["torch"] = self.torch_state
        return state

    def load_state_dict(self, state_dict):
        self.torch_state = state_dict.get("torch")
        if self.torch_state is not None:
            self.torch_state = self.torch_state.cpu()
        self.clean_batches = dict(state_dict.get("clean_batches", {}))


def _base_seed(random_state):
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(2**31))


@contextmanager
def seeded_torch(random_state, resume, epochs_done):
    """Run a fit with torch's global random state seeded, then restore it.

    A fresh fit (``epochs_done == 0``) seeds from ``random_state``; a
    continued one resumes from the state ``resume`` (or, with none saved,
    seeds from ``random_state`` and ``epochs_done``). Yields a function
    that returns the state reached (``None`` when not seeded).
    ``random_state=None`` uses torch's global random state as it is.
    """
    if random_state is None:
        yield lambda: None
        return
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        if epochs_done and resume is not None:
            torch.set_rng_state(resume)
        else:
            seed = np.random.SeedSequence([_base_seed(random_state), epochs_done]).generate_state(1)[0]
            torch.manual_seed(int(seed))
        yield torch.get_rng_state
