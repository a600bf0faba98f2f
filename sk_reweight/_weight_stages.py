"""The stages after a weighting policy: each adjusts a batch's normalised weights.

:class:`WeightStage` is their base; the options beyond the paper are stages
(:class:`Shrinkage`, :class:`Smoothing`, :class:`UnlearningGuard`,
:class:`UniformIfAllZero`, :class:`CleanLoss`; 0.2's estimator parameters
``weight_shrinkage``, ``weight_smoothing``, ``unlearning_tolerance``,
``zero_weights='uniform'`` and ``clean_weight``). Also here: what
stages and policies share (:class:`_Part`, :func:`_normalize`). Public
through :mod:`sk_reweight.weighting`.
"""
import inspect
import numbers

import numpy as np
import torch

#: steps a stage may gather before adding them to its running sums (or evidence) in one go
PENDING_STEPS = 64


def _own(positions):
    """A copy of a step's training positions (the caller's array or tensor may be reused)."""
    return positions.detach().clone() if torch.is_tensor(positions) else np.array(positions, dtype=np.int64)


def _rows(positions, device):
    """The training positions of several steps (:func:`_own` copies), one after the other, as one index tensor."""
    if not any(torch.is_tensor(p) for p in positions):  # NumPy arrays: joined on the host
        return torch.as_tensor(np.concatenate(positions), device=device)
    return torch.cat([torch.as_tensor(p, device=device) for p in positions])


def _add_finite(total, count, index, values):
    """``index_add_`` the finite ``values`` to ``total`` and one per finite value to ``count`` (a step that
    diverges, and is skipped, must not poison the means)."""
    finite = torch.isfinite(values)
    total.index_add_(0, index, torch.where(finite, values, 0.0))
    count.index_add_(0, index, finite.to(total.dtype))


def _normalize(w):
    total = w.sum()
    return torch.where(total > 0, w / total, torch.zeros_like(w))



def _check_number(owner, name, value, low, high, what, low_open=False, high_open=False):
    """A clear error, at the start of a fit, for an argument that is not a number in its range."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"{type(owner).__name__}({name}={value!r}): {name} must be {what}.")


class _Part:
    """What policies and stages share: a start hook, state for saving, scikit-learn's
    ``get_params``/``set_params`` (the arguments of ``__init__``, kept as attributes of
    the same names), a readable repr."""

    def start(self, n_train, device):
        """Called at the start of every ``fit``/``partial_fit``; checks the arguments and sets up state.

        Parameters
        ----------
        n_train : int
            Training positions (rows of the ``X`` given to ``fit``).
        device : str or torch.device
            The device the fit trains on (where state tensors live).
        """

    def state_dict(self):
        """The learned state, for saving (``f_weighting``, ``Checkpoint``, pickling the estimator).

        Returns
        -------
        dict
            Tensors (on the CPU) and numbers; empty for a part without learned state.
        """
        return {}

    def load_state_dict(self, state_dict):
        """Restore the learned state that :meth:`state_dict` returned.

        Parameters
        ----------
        state_dict : dict
            What :meth:`state_dict` returned (empty: nothing to restore).
        """
        pass

    @classmethod
    def _param_names(cls):
        if cls.__init__ is object.__init__:
            return []
        kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        return [p.name for p in list(inspect.signature(cls.__init__).parameters.values())[1:] if p.kind not in kinds]

    def get_params(self, deep=True):
        """The arguments of ``__init__`` and their values (scikit-learn's convention).

        Parameters
        ----------
        deep : bool, default=True
            Unused: a part holds no parts (:class:`~sk_reweight.weighting.Weighting` does).

        Returns
        -------
        dict
            Each argument's name and current value.
        """
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set arguments of ``__init__`` (scikit-learn's convention); takes effect at the next fit.

        Parameters
        ----------
        **params : dict
            New values by argument name.

        Returns
        -------
        object
            This policy or stage.
        """
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for {type(self).__name__}; valid: {valid}.")
            setattr(self, name, value)
        return self

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"



class WeightStage(_Part):
    """Base class of the steps that adjust a policy's normalised weights.

    Subclasses implement ``__call__(w, positions, sample_weight)`` and
    return weights that again sum to 1 (or are all zero); a stage with
    state overrides :meth:`start`, :meth:`state_dict` and
    :meth:`load_state_dict`, and one that needs the classes or the losses
    :meth:`set_targets` and :meth:`observe`.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import WeightStage
    >>> class Cap(WeightStage):  # no example above twice the uniform weight
    ...     def __call__(self, w, positions, sample_weight=None):
    ...         w = w.clamp(max=2 / len(w))
    ...         return w / w.sum()
    >>> Cap()(torch.tensor([0.9, 0.1, 0.0, 0.0]), positions=[0, 1, 2, 3])
    tensor([0.8333, 0.1667, 0.0000, 0.0000])
    """

    #: the stage's name in nested parameters (``weighting__<name>__<arg>``); ``None``: the
    #: class name in lower case
    name = None
    #: clean-batch folds whose alignments :meth:`observe_folds` needs (0: none)
    clean_folds = 0
    #: the weight of the clean batch's mean loss this stage adds to each step
    extra_clean_weight = 0.0

    def __call__(self, w, positions, sample_weight=None):
        """Adjust one batch's normalised weights.

        Parameters
        ----------
        w : torch.Tensor of shape (batch_size,)
            The weights so far (the policy's, then the earlier stages'),
            summing to 1 or all zero.
        positions : sequence of int or torch.Tensor of shape (batch_size,)
            Each example's training position (its row of the ``X`` given to ``fit``).
        sample_weight : torch.Tensor of shape (batch_size,) or None, default=None
            ``fit``'s ``sample_weight`` of the batch's examples.

        Returns
        -------
        torch.Tensor of shape (batch_size,)
            The adjusted weights, again summing to 1 (or all zero: the batch is skipped).
        """
        raise NotImplementedError

    def set_targets(self, targets):
        """Called after :meth:`start` with each training position's class index.

        The estimator passes them for every fit; a stage that needs classes keeps them.

        Parameters
        ----------
        targets : torch.Tensor of shape (n_train,)
            The class index of each training position (-1: no class, e.g. a trusted row).
        """

    def set_clean_targets(self, clean_targets, class_weight=None):
        """Called after :meth:`set_targets` with the clean set's classes and the criterion's class weights.

        Parameters
        ----------
        clean_targets : torch.Tensor of shape (n_clean,)
            The clean set's class indices.
        class_weight : torch.Tensor of shape (n_classes,) or None, default=None
            The criterion's class weights, which define the clean loss
            (``None``: unweighted).
        """

    def observe(self, losses, positions):
        """Called at every step, before :meth:`__call__`, with the batch's unweighted losses.

        Parameters
        ----------
        losses : torch.Tensor of shape (batch_size,)
            The examples' training losses (detached).
        positions : sequence of int or torch.Tensor of shape (batch_size,)
            Each example's training position.
        """

    def observe_folds(self, fold_alignment, positions, sample_weight=None):
        """Called at every step, before :meth:`__call__`, when ``clean_folds`` is set.

        Parameters
        ----------
        fold_alignment : torch.Tensor of shape (batch_size, clean_folds)
            ``fold_alignment[i, k]``: example ``i``'s alignment with clean fold ``k``'s loss gradient.
        positions : sequence of int or torch.Tensor of shape (batch_size,)
            Each example's training position.
        sample_weight : torch.Tensor of shape (batch_size,) or None, default=None
            ``fit``'s ``sample_weight`` of the batch's examples.
        """

    def end_epoch(self):
        """Called after each reweighted epoch.

        Returns
        -------
        dict
            Values to record in the epoch's ``history_`` entry, by key (empty: none).
        """
        return {}


def _uniform(w, sample_weight):
    """Plain training's weights for the batch: ``sample_weight`` (or 1) normalised."""
    if sample_weight is None:  # 1 / n each: the bits normalising ones gives (float32, float64), in two operations
        return torch.ones_like(w) / len(w)
    return _normalize(sample_weight.to(w.dtype))


class Shrinkage(WeightStage):
    """``(1 - amount) * w + amount * uniform`` (formerly ``weight_shrinkage``).

    A defensive mixture (Hesterberg, 1995): no weight falls below
    ``amount`` times the uniform weight (times ``sample_weight``).
    Weights estimated from a small clean batch are noisy; mixing in the
    uniform weights trades some of that variance for bias. The price: a
    rare class or mislabelled examples get back that share of plain
    training. No cost.

    Parameters
    ----------
    amount : float in [0, 1]
        ``0``: the learned weights alone (the paper); ``1``: plain training
        (the meta step still runs).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import Shrinkage
    >>> Shrinkage(0.5)(torch.tensor([1.0, 0.0]), positions=[0, 1])
    tensor([0.7500, 0.2500])
    """

    name = "shrinkage"

    def __init__(self, amount):
        self.amount = amount

    def start(self, n_train, device):
        _check_number(self, "amount", self.amount, 0, 1, "a number in [0, 1]")

    def __call__(self, w, positions, sample_weight=None):
        return (1 - self.amount) * w + self.amount * _uniform(w, sample_weight)


class Smoothing(WeightStage):
    """Per-example exponential moving average of the weights (formerly ``weight_smoothing``).

    On the scale where 1 is the uniform weight, each example keeps
    ``s <- momentum * s + (1 - momentum) * w`` (``s = w`` on its first
    visit); the step uses the averages of the examples this step's weights
    accept (``w > 0``), normalised within the batch. An example the clean
    set rejects now gets weight 0, whatever its average: smoothing damps
    the sizes of the weights, never the selection (averaging rejections away
    would train a majority class the clean set turned down).
    ``sample_weights_`` records the weights the steps used.

    Parameters
    ----------
    momentum : float in [0, 1)
        The share of an example's previous average kept at each visit;
        ``0``: no smoothing (the paper).

    Attributes
    ----------
    averages : torch.Tensor of shape (n_train,) or None
        ``NaN`` for examples not visited yet.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import Smoothing
    >>> smoothing = Smoothing(0.5)
    >>> smoothing.start(n_train=2, device="cpu")
    >>> smoothing(torch.tensor([1.0, 0.0]), positions=[0, 1])  # first visit: as given
    tensor([1., 0.])
    >>> smoothing(torch.tensor([0.4, 0.6]), positions=[0, 1])  # then averaged
    tensor([0.7000, 0.3000])
    >>> smoothing(torch.tensor([0.0, 1.0]), positions=[0, 1])  # a rejection is not averaged away
    tensor([0., 1.])
    """

    name = "smoothing"

    def __init__(self, momentum):
        self.momentum = momentum
        self.averages = None

    def start(self, n_train, device):
        _check_number(self, "momentum", self.momentum, 0, 1, "a number in [0, 1)", high_open=True)
        if self.averages is None or len(self.averages) != n_train:
            self.averages = torch.full((n_train,), float("nan"), device=device)
        else:
            self.averages = self.averages.to(device)

    def __call__(self, w, positions, sample_weight=None):
        scaled = w * len(w)
        previous = self.averages[positions]
        averaged = torch.where(torch.isnan(previous), scaled,
                               self.momentum * previous + (1 - self.momentum) * scaled)
        self.averages[positions] = averaged
        # the average sets the size, this step decides who trains: averaging a rejection
        # away would train the examples the clean set turned down (a majority class)
        return _normalize(averaged * (w > 0))

    def state_dict(self):
        return {} if self.averages is None else {"averages": self.averages.detach().to("cpu", copy=True)}

    def load_state_dict(self, state_dict):
        if "averages" in state_dict:
            self.averages = state_dict["averages"].clone()


class UnlearningGuard(WeightStage):
    """Keeps a class the steering is unlearning in training (formerly ``unlearning_tolerance``).

    Once a small clean set is fitted, its gradient can keep steering the
    weights away from a whole class (at 98% nines on MNIST 4-vs-9 the nines
    get weight 0 on nearly every visit and the network unlearns them while
    the clean loss still falls); the unweighted training loss shows it. Per
    class, this stage records that loss and, after each epoch's worth of
    visits, *guards* a class whose mean loss over that epoch lies more than
    ``tolerance`` above its lowest epoch mean so far, until an epoch brings
    it back. A guarded class gets back its usual share of the batch: its
    examples keep this step's weights relative to each other, scaled so
    that together they carry the sum of their running mean weights (over
    all their visits, on the scale where 1 is uniform); if this step gives
    the whole class weight 0, its examples train with those mean weights.
    The batch is normalised again; the other classes' weights are
    untouched. Keeping the step's weights inside a guarded class keeps its
    mislabelled examples at weight 0 (with the mean weights instead, the
    weights of long-tailed noisy classes fade towards uniform).

    Parameters
    ----------
    tolerance : float >= 0, default=0.1
        In units of the training loss (nats for the cross-entropy). 0.1
        removed Algorithm 1's late decay on MNIST 4-vs-9 and kept its
        weights' ranking of flipped labels on long-tailed noisy digits (the
        docs' options page). Costs a running sum per example and per class.

    Attributes
    ----------
    mean_weights : torch.Tensor of shape (n_train,) or None
        Each example's mean weight over its visits (``NaN`` before the first).
    guarded : torch.Tensor of shape (n_classes,) or None
        Which classes the current epoch guards.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import UnlearningGuard
    >>> guard = UnlearningGuard(tolerance=0.1)
    >>> guard.start(n_train=2, device="cpu")
    >>> guard.set_targets(torch.tensor([0, 1]))  # one example per class: one step per epoch
    >>> guard.observe(torch.tensor([0.3, 0.3]), positions=[0, 1])  # epoch 1: both classes at 0.3
    >>> guard(torch.tensor([0.5, 0.5]), positions=[0, 1])
    tensor([0.5000, 0.5000])
    >>> guard.observe(torch.tensor([0.3, 0.9]), positions=[0, 1])  # epoch 2: class 1 at 0.9 > 0.3 + 0.1
    >>> guard.guarded
    tensor([False,  True])
    >>> guard(torch.tensor([1.0, 0.0]), positions=[0, 1])  # class 1 shut out: its mean weight, 0.5
    tensor([0.8000, 0.2000])
    """

    name = "guard"
    _any_guarded = None  # a class default: a stage pickled before the attribute existed lacks it
    _pending_losses = _pending_weights = ()  # the same: steps not yet added to the running sums

    def __init__(self, tolerance=0.1):
        self.tolerance = tolerance
        self._state = self._targets = None
        self._any_guarded = None  # any class guarded? Read on the host once an epoch; while none is, no restoring
        self._pending_losses, self._pending_weights = [], []  # steps not yet added to the running sums

    @property
    def mean_weights(self):
        """Each example's mean weight over its visits (``NaN`` before the first; ``None`` before a fit)."""
        state = self._state
        if state is None:
            return None
        self._add_pending_weights()
        return state["weight_sum"] / state["visits"]  # NaN where not visited

    @property
    def guarded(self):
        """Which classes the current epoch guards, a bool tensor (a copy; ``None`` before the classes are known)."""
        guarded = None if self._state is None else self._state.get("guarded")
        return None if guarded is None else guarded.clone()

    def start(self, n_train, device):
        _check_number(self, "tolerance", self.tolerance, 0, float("inf"), "a finite number >= 0", high_open=True)
        if self._state is not None:  # a stage started again keeps its sums, with every step in them
            self._add_pending_weights()
            self._add_pending_losses()  # (steps pending only after set_targets)
        device = torch.device(device)
        # sums over a long run in double precision, where the device has it
        self._dtype = torch.float32 if device.type == "mps" else torch.float64
        if self._state is None or len(self._state["weight_sum"]) != n_train:
            zeros = torch.zeros(n_train, dtype=self._dtype, device=device)
            self._state = {"weight_sum": zeros, "visits": zeros.clone()}
        else:
            self._state = {k: v.to(device, self._dtype if v.is_floating_point() else v.dtype)
                           if torch.is_tensor(v) else v for k, v in self._state.items()}
        self._targets = self._any_guarded = None
        self._pending_losses, self._pending_weights = [], []

    def set_targets(self, targets):
        device = self._state["visits"].device
        self._targets = torch.as_tensor(targets, device=device)
        self._epoch_rows = int((self._targets >= 0).sum())
        n_classes = int(self._targets.max()) + 1
        if len(self._state.get("best", ())) != n_classes:  # a fresh start, or other classes
            zeros = torch.zeros(n_classes, dtype=self._dtype, device=device)
            self._state.update(loss_sum=zeros, loss_count=zeros.clone(), best=torch.full_like(zeros, float("inf")),
                               guarded=torch.zeros(n_classes, dtype=torch.bool, device=device), seen=0)
        self._any_guarded = None

    # Steps are added to the running sums in batches, in the order they came (index_add_ adds in order: the
    # per-step sums bit for bit), from copies (the caller may reuse its buffers): fewer small operations a step.
    def observe(self, losses, positions):
        if self._targets is None:
            raise ValueError("UnlearningGuard needs the class of every training example "
                             "(Weighting.start(..., targets=...)); it applies to classifiers only.")
        state = self._state
        self._pending_losses.append((losses.detach().to(self._dtype, copy=True), _own(positions)))
        state["seen"] += len(positions)
        if state["seen"] >= self._epoch_rows:  # an epoch's worth of visits: compare with the best
            self._add_pending_losses()
            mean = state["loss_sum"] / state["loss_count"]
            present = state["loss_count"] > 0
            state["best"] = torch.where(present, torch.minimum(state["best"], mean), state["best"])
            state["guarded"] = present & (mean > state["best"] + self.tolerance)
            self._any_guarded = bool(state["guarded"].any())
            state["loss_sum"].zero_()
            state["loss_count"].zero_()
            state["seen"] = 0
        elif len(self._pending_losses) >= PENDING_STEPS:
            self._add_pending_losses()

    def _add_pending_losses(self):
        pending, self._pending_losses = self._pending_losses, []
        if not pending:
            return
        classes = self._targets[_rows([p for _, p in pending], self._targets.device)]
        _add_finite(self._state["loss_sum"], self._state["loss_count"], classes, torch.cat([v for v, _ in pending]))

    def _add_pending_weights(self):
        pending, self._pending_weights = self._pending_weights, []
        if not pending:
            return
        rows = _rows([p for _, p in pending], self._state["visits"].device)  # a row twice in a batch counts twice
        _add_finite(self._state["weight_sum"], self._state["visits"], rows, torch.cat([w for w, _ in pending]))

    def __call__(self, w, positions, sample_weight=None):
        state = self._state
        # on the scale where 1 is uniform, in the weights' dtype, then in the sums'
        scaled = (w * len(w)).detach().to(self._dtype)
        self._pending_weights.append((scaled, _own(positions)))
        if self._any_guarded is None:  # a fresh start or a loaded state
            self._any_guarded = self._targets is not None and bool(state["guarded"].any())
        if self._targets is None or not self._any_guarded:
            if len(self._pending_weights) >= PENDING_STEPS:
                self._add_pending_weights()
            return w
        self._add_pending_weights()
        finite = torch.isfinite(scaled)
        classes = self._targets[positions]
        guarded = state["guarded"][classes]
        mean_weight = state["weight_sum"][positions] / state["visits"][positions].clamp(min=1)
        usable = torch.where(finite, scaled, 0.0)
        mass = usable.new_zeros(len(state["guarded"])).index_add_(0, classes, usable)[classes]
        usual = usable.new_zeros(len(state["guarded"])).index_add_(0, classes, mean_weight)[classes]
        restored = torch.where(mass > 0, usable * usual / mass.clamp(min=torch.finfo(mass.dtype).tiny), mean_weight)
        # no example of a guarded class in the batch: the step's own weights, bit for bit (no host sync)
        return torch.where(guarded.any(), _normalize(torch.where(guarded, restored, scaled)).to(w.dtype), w)

    def end_epoch(self):
        self._add_pending_weights()
        self._add_pending_losses()  # before the next epoch's rows: the sums in the order the steps came
        return {}

    def state_dict(self):
        if self._state is None:
            return {}
        self._add_pending_weights()
        self._add_pending_losses()
        # copies: on the CPU .cpu() would hand out the live tensors
        return {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else v for k, v in self._state.items()}

    def load_state_dict(self, state_dict):
        if state_dict:
            self._state = {k: v.clone() if torch.is_tensor(v) else v for k, v in state_dict.items()}
            self._any_guarded = None
            self._pending_losses, self._pending_weights = [], []


class UniformIfAllZero(WeightStage):
    """An all-zero batch trains with uniform weights (formerly ``zero_weights='uniform'``).

    Without it (the paper) a batch whose weights are all zero changes nothing.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import UniformIfAllZero
    >>> UniformIfAllZero()(torch.zeros(4), positions=[0, 1, 2, 3])
    tensor([0.2500, 0.2500, 0.2500, 0.2500])
    """

    name = "uniform_if_all_zero"

    def __call__(self, w, positions, sample_weight=None):
        return torch.where(w.sum() > 0, w, _uniform(w, sample_weight))


class CleanLoss(WeightStage):
    """Train on the clean batch too (formerly ``clean_weight``): each step minimises
    ``sum_i w_i f_i + weight * mean(clean losses)``.

    Leaves the weights as they are. Next to no cost: the meta step already
    computes the clean batch's gradient (without updating batch-norm running
    statistics). A step whose weights are all zero then still trains on the
    clean batch. It speeds up early training, but once the network fits the
    clean set, its gradient, which steers the weights, fades (the docs' MNIST
    benchmark, "Long runs").

    Parameters
    ----------
    weight : float >= 0, default=1.0
        The clean batch's mean loss's factor in each step.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import CleanLoss
    >>> stage = CleanLoss(0.5)
    >>> stage.extra_clean_weight, stage(torch.tensor([0.2, 0.8]), positions=[0, 1])
    (0.5, tensor([0.2000, 0.8000]))
    """

    name = "clean_loss"

    def __init__(self, weight=1.0):
        self.weight = weight

    @property
    def extra_clean_weight(self):
        """The weight of the clean batch's mean loss this stage adds to each step: ``weight``."""
        return self.weight

    def start(self, n_train, device):
        _check_number(self, "weight", self.weight, 0, float("inf"), "a finite number >= 0", high_open=True)

    def __call__(self, w, positions, sample_weight=None):
        return w
