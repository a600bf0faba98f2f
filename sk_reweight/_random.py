"""``random_state``: the generators a fit draws from, seeded, continued and kept to its thread."""
import functools
import inspect
import numbers
import threading
import zlib
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils import check_random_state
from torch.overrides import TorchFunctionMode


class RandomStream:
    """Where a seeded training run's random numbers stand between fits.

    Holds the state of the estimator's CPU generator at the end of the last
    ``fit`` or ``partial_fit`` and the clean-batch order, so that a continued fit
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


_T = torch.Tensor
# torch's random draws that take a generator but cannot say so in a signature
_DRAWS = frozenset({
    torch.rand, torch.randn, torch.randint, torch.randperm, torch.normal, torch.bernoulli,
    torch.multinomial, torch.poisson, _T.uniform_, _T.normal_, _T.bernoulli_, _T.bernoulli,
    _T.random_, _T.exponential_, _T.geometric_, _T.cauchy_, _T.log_normal_, _T.multinomial,
})
# F.dropoutNd: the input ranks with a batch dimension (the mask is per sample and channel)
_FEATURE_DROPOUT = {F.dropout1d: (3,), F.dropout2d: (3, 4), F.dropout3d: (5,)}


@functools.cache
def _takes_generator(func):
    if func in _DRAWS:
        return True
    try:  # nn.init's functions, and any Python function with the argument
        return "generator" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


class OwnGenerators(TorchFunctionMode):
    """While active on a thread: that thread's random draws come from its own generators.

    Every torch function or ``Tensor`` method that takes a ``generator`` and
    is called without one (``torch.randperm``, ``Tensor.uniform_``, the
    ``torch.nn.init`` functions, a ``DataLoader``'s seed) draws from this
    object's generator for the device concerned, and dropout
    (``F.dropout``, ``F.dropout1d/2d/3d``, hence ``nn.Dropout*``) draws its
    masks from it, so a seeded fit neither reads nor changes torch's global
    random state and other threads cannot perturb it (torch's function modes
    are per thread). Random operations that take no generator
    (``F.alpha_dropout``, ``F.rrelu``, ``F.gumbel_softmax``) still use torch's
    global generator.

    Parameters
    ----------
    seed : int
        Seeds the CPU generator, and each accelerator's (its own seed, drawn
        from ``seed``) when first needed.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight._random import OwnGenerators
    >>> before = torch.get_rng_state()
    >>> with OwnGenerators(0):
    ...     a = torch.rand(2)
    >>> with OwnGenerators(0):
    ...     b = torch.rand(2)
    >>> torch.equal(a, b), torch.equal(torch.get_rng_state(), before)
    (True, True)
    """

    def __init__(self, seed):
        super().__init__()
        self.seed = int(seed)
        self.cpu = torch.Generator().manual_seed(self.seed)
        self.draws = 0  # draws routed so far
        self._generators = {torch.device("cpu"): self.cpu}

    def __enter__(self):
        _active.stack = [*getattr(_active, "stack", []), self]
        return super().__enter__()

    def __exit__(self, *exc):
        _active.stack = _active.stack[:-1]
        return super().__exit__(*exc)

    def generator(self, device):
        """This object's generator for ``device`` (``None`` where torch has none to give)."""
        device = torch.device(device)
        if device.type != "cpu" and device.index is None:
            device = torch.device(device.type, torch.get_device_module(device.type).current_device())
        if device not in self._generators:
            try:
                generator = torch.Generator(device=device)
            except RuntimeError:
                generator = None
            else:
                key = [self.seed, zlib.crc32(device.type.encode()), device.index or 0]
                generator.manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))
            self._generators[device] = generator
        return self._generators[device]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.dropout or func in _FEATURE_DROPOUT:
            return self._dropout(func, *args, **kwargs)
        if kwargs.get("generator") is None and _takes_generator(func):
            generator = self.generator(_device_of(args, kwargs))
            if generator is not None:
                kwargs = {**kwargs, "generator": generator}
                self.draws += 1
        return func(*args, **kwargs)

    def _dropout(self, func, input, p=0.5, training=True, inplace=False):
        generator = self.generator(input.device)
        batched = _FEATURE_DROPOUT.get(func)
        if not training or p == 0 or generator is None or not 0 < p <= 1 or (
                batched is not None and input.dim() not in batched and input.dim() != min(batched) - 1):
            return func(input, p, training, inplace)  # torch's own checks and messages
        shape = input.shape
        if batched is not None:  # one draw per sample and channel
            channels = 2 if input.dim() in batched else 1
            shape = (*input.shape[:channels], *[1] * (input.dim() - channels))
        self.draws += 1
        keep = torch.empty(shape, dtype=input.dtype, device=input.device).bernoulli_(1 - p, generator=generator)
        keep = keep.div_(1 - p) if p < 1 else keep.zero_()
        return input.mul_(keep) if inplace else input * keep


_active = threading.local()  # the OwnGenerators in force on each thread


@contextmanager
def preserved_random_state():
    """Draws made inside leave the random streams where they were.

    Within a seeded fit restores the fit's own CPU generator, elsewhere
    torch's global CPU state: for draws that must not shift a stream (a
    check's trial step, building a network whose weights a file replaces).
    """
    own = (getattr(_active, "stack", None) or [None])[-1]
    if own is None:
        with torch.random.fork_rng(devices=[]):
            yield
        return
    state = own.cpu.get_state()  # the global state is not read: other threads may be drawing
    try:
        yield
    finally:
        own.cpu.set_state(state)


def drawing(generators):
    """Context: random draws on this thread from ``generators`` (``None``: torch's global state)."""
    return nullcontext() if generators is None else generators


def _device_of(args, kwargs):
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.device
    device = kwargs.get("device")
    return torch.get_default_device() if device is None else device


def fit_generators(random_state, resume, epochs_done):
    """The generators of one fit: :class:`OwnGenerators`, or ``None`` when not seeded.

    A fresh fit (``epochs_done == 0``) seeds from ``random_state``; a
    continued one resumes the CPU generator from the state ``resume`` (or,
    with none saved, seeds from ``random_state`` and ``epochs_done``).
    ``random_state=None``: the fit draws from torch's global random state.
    """
    if random_state is None:
        return None
    seed = np.random.SeedSequence([_base_seed(random_state), epochs_done]).generate_state(1)[0]
    generators = OwnGenerators(seed)
    if epochs_done and resume is not None:
        generators.cpu.set_state(resume)
    return generators


class ForwardDraws:
    """Runs a module's training-mode forward passes on a fit's generators, where they draw.

    A function mode costs every torch call some Python, so only forward
    passes that draw (dropout, noise layers) run under it: the first
    training-mode forward pass runs under it and counts its draws; if it drew
    nothing, later ones run without. Hooks on ``module`` (none when
    ``generators`` is ``None``); :meth:`remove`, or leaving the ``with``
    block, takes them off.
    """

    def __init__(self, module, generators):
        self.generators = generators
        self.needed = None  # unknown until the first training-mode forward pass has drawn or not
        self._entered = []
        # a compiled module (compile=True) trains through the module it wraps
        module = getattr(module, "_orig_mod", module)
        self._handles = [] if generators is None else [
            module.register_forward_pre_hook(self._enter),
            module.register_forward_hook(self._exit, always_call=True)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def _enter(self, module, args):
        enter = module.training and self.needed is not False
        if enter:
            self._before = self.generators.draws
            self.generators.__enter__()
        self._entered.append(enter)

    def _exit(self, module, args, output):
        if self._entered.pop():
            self.generators.__exit__(None, None, None)
            if self.needed is None:
                self.needed = self.generators.draws > self._before

    def remove(self):
        for handle in self._handles:
            handle.remove()
