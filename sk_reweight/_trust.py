"""How far to trust the learned weights: cross-fitting on the clean batch, and the fallback it moves to.

Public through :mod:`sk_reweight.weighting` (:class:`CrossFitTrust`).
"""
import torch

from ._weight_stages import PENDING_STEPS, WeightStage, _normalize, _uniform


def held_out_gains(fold_alignment, fallback, sample_weight=None):
    """Each step's first-order gain, on each held-out fold, of the other folds' weights over the fallback's.

    Parameters
    ----------
    fold_alignment : torch.Tensor of shape (steps, batch_size, folds)
        Each step's examples' alignments with each clean fold's loss gradient.
    fallback : torch.Tensor of shape (steps, batch_size)
        Each step's fallback weights (summing to 1).
    sample_weight : torch.Tensor of shape (steps, batch_size) or None, default=None
        ``fit``'s ``sample_weight`` of each step's examples.

    Returns
    -------
    torch.Tensor of shape (steps, folds)
        ``sum_i (w_i - v_i) a_ik``, ``w`` Algorithm 1's weights from the other folds' mean
        alignment (clipped at 0, times ``sample_weight``, normalised; all zero if none is
        positive). Each step's row is bit for bit what that step alone, as a
        ``(1, batch_size, folds)`` stack, gives: the reductions run over its own rows.
    """
    a, k = fold_alignment, fold_alignment.shape[2]
    rest = (a.sum(2, keepdim=True) - a) / (k - 1)  # column j: the mean of the other folds
    learned = rest.clamp(min=0)
    if sample_weight is not None:
        learned = learned * sample_weight.to(a.dtype)[:, :, None]
    total = learned.sum(1, keepdim=True)
    learned = torch.where(total > 0, learned / total.clamp(min=torch.finfo(a.dtype).tiny), 0.0)
    return ((learned - fallback[:, :, None]) * a).sum(1)


class CrossFitTrust(WeightStage):
    """Mixes the learned weights with a fallback, by how well they steer on held-out trusted rows.

    A small trusted set can steer well (MNIST: ten images tell fours from
    nines) or barely better than a coin (ten rows per class of a noisy
    table), and the learned weights alone cannot tell which. This stage
    measures it at every step by *cross-fitting*: the clean batch is split
    into ``folds`` class-balanced folds (the engines give each training
    example's alignment with each fold's loss gradient, ``clean_folds``),
    and for each fold, Algorithm 1's weights from the *other* folds are
    compared with the fallback's weights on the held-out fold: the weighted
    step lowers that fold's loss more than the fallback's (to first order in
    the step) when ``sum_i (w_i - v_i) a_i`` is positive. With ``N`` of the
    ``C`` comparisons won by the learned weights (ties count half; each
    earlier epoch's counts weigh ``memory`` times the next one's), the
    trust after each epoch is

        ``trust = clip((2 N - C) / ((C + prior) (2 r - 1)), 0, 1)``,

    ``r`` the ``full_trust_win_rate``: a coin flip (``N = C / 2``) gives 0,
    a win rate of ``r`` or more full trust, and ``prior`` pseudo-comparisons
    keep a few comparisons from buying much. The step uses

        ``w = trust * w_learned + (1 - trust) * v``,

    plus ``(1 - trust) * clean_weight`` times the clean batch's mean loss
    (the fallback also trains on the trusted rows). ``v``, the fallback, is
    plain training's weights: uniform over the batch, times the criterion's
    weight of each example's class when it has class weights (they define
    the clean loss), times ``p_clean(c) / p_train(c)`` when
    ``balance_classes``, times ``sample_weight``. ``trust`` near 1: the
    learned weights beat the fallback on unseen trusted rows in most steps
    (Algorithm 1's weights are used); near 0: no better than a coin flip,
    and training is the fallback's. Compared are the steps, not the weights
    as label-error detectors: ``sample_alignments_`` and
    ``suspicious_examples`` keep ranking the examples whatever the trust.

    The weights judged are Algorithm 1's (the other folds' clipped
    alignments), whatever the policy and the stages before this one, whose
    weights the step mixes: after another policy the trust is Algorithm
    1's record. A batch whose learned weights are all zero (Algorithm 1
    skips it) trains ``1 - trust`` of the fallback's step: its weights sum
    to ``1 - trust``.

    Parameters
    ----------
    folds : int >= 2, default=2
        Cross-fitting folds of the clean batch: each class's rows are dealt
        into the folds, each fold's loss weighs the classes in their shares
        of the batch (``engines._trimming.balanced_folds``;
        with ``clean_trim`` or ``clean_cap``, contiguous runs of their
        groups). Each costs one alignment with a fold's gradient where the
        engine has no shortcut (the JVP engine: one forward-mode pass per
        fold, and one for the whole batch unless every class's rows split
        evenly into the folds, when the folds' passes average to it).
    memory : float in [0, 1), default=0.8
        Weight of the previous epochs' evidence against the last epoch's.
    prior : float >= 0, default=10.0
        Pseudo-comparisons of a coin flip added to the evidence.
    full_trust_win_rate : float in (0.5, 1], default=0.65
        The win rate that buys full trust.
    clean_weight : float >= 0, default=1.0
        The fallback's weight of the clean batch's mean loss (as
        :class:`~sk_reweight.weighting.CleanLoss`'s ``weight``), scaled by ``1 - trust``.
    balance_classes : bool, default=False
        Weigh the fallback's classes by ``p_clean(c) / p_train(c)`` (add-one
        smoothed counts). Off by default: on the development sets it did
        not help (KEEL, mean balanced accuracy 0.787 with, 0.789 without),
        it cost MNIST 4-vs-9 at 98% nines a little, and it gives
        mislabelled rows of a rare class the rare class's large weights.
    initial : float in [0, 1], default=1.0
        Trust before the first epoch's evidence (1: Algorithm 1's weights),
        and for as long as no clean batch holds ``folds`` rows of a class
        (nothing to hold out). Where the clean set itself holds none (one
        trusted example per class) and the folds are class-balanced (no
        ``clean_trim`` or ``clean_cap``), no batch can: the weighting then
        asks the engines for no folds (its ``clean_folds`` is 0) and the
        step costs Algorithm 1's.

    Attributes
    ----------
    trust : float
        The current trust (``history[-1]``, or ``initial``).
    history : list of float
        The trust after each epoch (the estimator also records it in
        ``history_`` as ``weight_trust``).
    win_rate : float
        The last epoch's share ``p`` of held-out comparisons won by the
        learned weights (NaN before the first).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import CrossFitTrust
    >>> stage = CrossFitTrust(initial=0.5)
    >>> stage.start(n_train=4, device="cpu")
    >>> stage.set_targets(torch.tensor([0, 0, 0, 1]))
    >>> stage.set_clean_targets(torch.tensor([0, 1]))
    >>> stage(torch.tensor([1.0, 0.0, 0.0, 0.0]), positions=[0, 1, 2, 3])  # half learned, half uniform
    tensor([0.6250, 0.1250, 0.1250, 0.1250])
    """

    name = "trust"
    _ratio_is_one = False  # every class's fallback factor is 1 (set with the counts; a default for older pickles)
    _pending = ()  # the steps observed since the evidence was last counted (a default for older pickles)

    def __init__(self, folds=2, memory=0.8, prior=10.0, full_trust_win_rate=0.65, clean_weight=1.0,
                 balance_classes=False, initial=1.0):
        self.folds = folds
        self.memory = memory
        self.prior = prior
        self.full_trust_win_rate = full_trust_win_rate
        self.clean_weight = clean_weight
        self.balance_classes = balance_classes
        self.initial = initial
        self._history = []
        self._evidence = None  # pooled (won, compared) over epochs, on the host
        self._epoch = None  # this epoch's (won, compared), on the device: no host sync per step
        self._pending = []  # the steps observed since the evidence was last counted
        self._class_ratio = self._targets = self._class_weight = None
        self._win_rate = float("nan")

    @property
    def history(self):
        """The trust after each epoch, a list of float."""
        return self._history

    @property
    def win_rate(self):
        """The last epoch's share of held-out comparisons the learned weights won (NaN before the first)."""
        return self._win_rate

    def _check(self):
        """Clear errors for bad arguments, at the start of a fit (scikit-learn's convention)."""
        checks = [("folds", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2,
                   "an int >= 2: the clean batch's folds"),
                  ("memory", lambda v: 0 <= v < 1, "a number in [0, 1)"),
                  ("prior", lambda v: 0 <= v < float("inf"), "a finite number >= 0"),
                  ("full_trust_win_rate", lambda v: 0.5 < v <= 1, "a number in (0.5, 1]"),
                  ("clean_weight", lambda v: 0 <= v < float("inf"), "a finite number >= 0"),
                  ("initial", lambda v: 0 <= v <= 1, "a number in [0, 1]")]
        for name, valid, what in checks:
            value = getattr(self, name)
            try:
                ok = not isinstance(value, bool) and bool(valid(value))
            except TypeError:
                ok = False
            if not ok:
                raise ValueError(f"CrossFitTrust({name}={value!r}): {name} must be {what}.")

    @property
    def clean_folds(self):
        """The folds the engines split each clean batch into for this stage."""
        return self.folds

    @property
    def trust(self):
        """The current trust: the last of :attr:`history`, or ``initial`` before the first epoch."""
        return self._history[-1] if self._history else float(self.initial)

    @property
    def extra_clean_weight(self):
        """The fallback's share of training on the clean batch: ``(1 - trust) * clean_weight``."""
        return (1.0 - self.trust) * self.clean_weight

    def start(self, n_train, device):
        self._check()
        self._device = torch.device(device)
        self._epoch = torch.zeros(2, dtype=torch.float64 if self._device.type != "mps" else torch.float32,
                                  device=self._device)
        self._pending = []
        if self._evidence is None:
            self._evidence = [0.0, 0.0]

    def set_targets(self, targets):
        self._targets = torch.as_tensor(targets, device=self._device)
        self._train_counts = torch.bincount(self._targets[self._targets >= 0])
        self._update_ratio()

    def set_clean_targets(self, clean_targets, class_weight=None):
        self._clean_counts = torch.bincount(torch.as_tensor(clean_targets, device=self._device))
        self._class_weight = None if class_weight is None else torch.as_tensor(class_weight, device=self._device)
        self._update_ratio()

    def _update_ratio(self):
        train, clean = getattr(self, "_train_counts", None), getattr(self, "_clean_counts", None)
        if train is None or clean is None:
            return
        n_classes = max(len(train), len(clean))
        # on the CPU in double precision (MPS has none), then to the device
        train = torch.nn.functional.pad(train.cpu(), (0, n_classes - len(train))).double() + 1
        clean = torch.nn.functional.pad(clean.cpu(), (0, n_classes - len(clean))).double() + 1
        ratio = (clean / clean.sum()) / (train / train.sum()) if self.balance_classes else torch.ones_like(train)
        if self._class_weight is not None:  # a class-weighted criterion: the loss the clean set measures
            weight = self._class_weight.cpu().double()
            ratio = ratio * torch.nn.functional.pad(weight, (0, n_classes - len(weight)))
        self._class_ratio = ratio.float().to(self._device)
        self._ratio_is_one = bool((ratio == 1).all())

    def _no_class_factor(self):
        """Whether the fallback weighs every class alike (no class weights, no balancing, or no targets)."""
        return self._ratio_is_one or self._class_ratio is None or self._targets is None

    def _uniform_fallback(self, sample_weight):
        """Whether the fallback's weights are uniform: no ``sample_weight`` and no class factor."""
        return sample_weight is None and self._no_class_factor()

    def _fallback(self, like, positions, sample_weight):
        """The fallback's normalised weights of the batch."""
        if self._no_class_factor():
            return _uniform(like, sample_weight)  # plain training's, without a lookup per class
        classes = self._targets[torch.as_tensor(positions, device=self._targets.device)]
        v = self._class_ratio[classes.clamp(min=0)].to(like.device, like.dtype)
        return _normalize(v if sample_weight is None else v * sample_weight.to(like.dtype))

    def observe_folds(self, fold_alignment, positions, sample_weight=None):
        """Compare, on each held-out fold, the other folds' Algorithm 1 weights with the fallback's.

        The step's comparisons are counted in the epoch's evidence at the
        latest when the epoch ends (:meth:`end_epoch`): a few dozen small
        operations per step cost a small network a tenth of its step, while
        formed for many steps at once they cost next to nothing.

        Parameters
        ----------
        fold_alignment : torch.Tensor of shape (batch_size, folds)
            ``fold_alignment[i, k]``: example ``i``'s alignment with clean fold ``k``'s loss gradient.
        positions : sequence of int or torch.Tensor of shape (batch_size,)
            Each example's training position.
        sample_weight : torch.Tensor of shape (batch_size,) or None, default=None
            ``fit``'s ``sample_weight`` of the batch's examples (it scales both weightings).
        """
        if fold_alignment.shape[1] < 2:  # a clean batch of one row: nothing to hold out
            return
        # a copy (in the evidence's dtype, as the comparison needs anyway): what the caller passed may
        # change before the steps are counted
        a = fold_alignment.detach().to(self._epoch.dtype, copy=True)
        # the fallback's weights now where they depend on the batch's rows (uniform ones: when counted)
        v = None if self._uniform_fallback(sample_weight) else self._fallback(a[:, 0], positions, sample_weight)
        sample_weight = None if sample_weight is None else sample_weight.detach().to(a.dtype, copy=True)
        self._pending.append((a, v, sample_weight))
        if len(self._pending) >= PENDING_STEPS:
            self._count_pending()

    def _count_pending(self):
        """Add the comparisons of the steps observed since the last count to the epoch's evidence.

        Steps of one batch size are stacked and compared at once
        (:func:`held_out_gains`), each step's as if it were compared alone.
        """
        groups = {}
        for a, v, sample_weight in self._pending:
            groups.setdefault((a.shape, v is None, sample_weight is None), []).append((a, v, sample_weight))
        self._pending = []
        for ((n, _), uniform, unweighted), steps in groups.items():
            a = torch.stack([step[0] for step in steps])  # (steps, n, folds)
            v = a.new_ones(len(steps), n) / n if uniform else torch.stack([step[1] for step in steps])
            sample_weight = None if unweighted else torch.stack([step[2] for step in steps])
            gain = held_out_gains(a, v, sample_weight)
            # a fold without rows (no class has `folds` rows in the batch) is no evidence either way
            counted = torch.isfinite(gain) & (a != 0).any(1)
            won = torch.where(counted, (gain.sign() + 1) * 0.5, 0.0)  # a win 1, a tie 1/2
            self._epoch += torch.stack([won.sum(), counted.to(won.dtype).sum()])

    def __call__(self, w, positions, sample_weight=None):
        trust = self.trust
        if trust >= 1.0:  # Algorithm 1's weights, bit for bit
            return w
        return trust * w + (1.0 - trust) * self._fallback(w, positions, sample_weight)

    def end_epoch(self):
        self._count_pending()
        won, compared = (float(x) for x in self._epoch.cpu())
        self._epoch.zero_()
        if compared == 0:  # no step, or no class with a row in every fold: the trust stays
            self._win_rate = float("nan")
            self._history.append(self.trust)
        else:
            self._win_rate = won / compared
            pooled_won = self.memory * self._evidence[0] + won
            pooled = self.memory * self._evidence[1] + compared
            self._evidence = [pooled_won, pooled]
            margin = (2 * pooled_won - pooled) / (pooled + self.prior)  # 2 p - 1, shrunk towards 0
            self._history.append(min(max(margin / (2 * self.full_trust_win_rate - 1), 0.0), 1.0))
        return {"weight_trust": self.trust, "weight_trust_win_rate": self._win_rate}

    def state_dict(self):
        return {"history": list(self._history), "win_rate": self._win_rate,
                "evidence": None if self._evidence is None else list(self._evidence)}

    def load_state_dict(self, state_dict):
        if state_dict:
            self._history = list(state_dict["history"])
            self._evidence = None if state_dict["evidence"] is None else list(state_dict["evidence"])
            self._win_rate = state_dict["win_rate"]
