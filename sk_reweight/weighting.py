"""Weighting policies: from one batch's alignments to the weights its step uses.

An engine gives, for each example ``i`` of a training batch, the alignment
``a_i = <grad L_clean, grad f_i>`` and the loss ``f_i``. A
:class:`WeightingPolicy` turns them into weights that sum to 1 (all zero:
the batch changes nothing); :class:`WeightStage` objects then adjust them,
each holding its own state. :class:`Weighting` chains a policy and its
stages (and says how the alignments are taken: ``clean_trim``,
``clean_cap``); it is what ``ReweightedNeuralNetClassifier(weighting=...)``
takes, and what a fitted estimator keeps in ``weighting_``. Every argument
of a policy or stage is a nested parameter of the estimator
(``weighting__trust__memory``).

Algorithm 1 of Ren et al. (2018) is :class:`AlignmentWeighting` with no
stage (:func:`paper_weighting`, ``weighting='paper'``); the default is
:func:`default_weighting`. Write your own policy by subclassing
:class:`WeightingPolicy` and implementing :meth:`~WeightingPolicy.weights`;
pass ``Weighting(policy, stages)`` as ``weighting=``.

Examples
--------
>>> import torch
>>> from sk_reweight.weighting import WeightingPolicy
>>> class SmallLossFirst(WeightingPolicy):
...     '''Keep the examples that agree with the clean set, favour small losses.'''
...     def weights(self, alignment, losses):
...         return (alignment > 0) * torch.exp(-losses)
>>> SmallLossFirst()(torch.tensor([1.0, -1.0, 2.0]), torch.tensor([0.0, 0.0, 0.0]))
tensor([0.5000, 0.0000, 0.5000])
"""
import copy
import numbers
import warnings

import torch

from ._meta_net import LossWeightNet, MetaNetWeighting
from ._policies import AlignmentWeighting, RandomWeighting, WeightingPolicy, normalize_weights
from ._trust import CrossFitTrust
from ._weight_stages import (
    CleanLoss,
    Shrinkage,
    Smoothing,
    UniformIfAllZero,
    UnlearningGuard,
    WeightStage,
    _check_number,
)

__all__ = [
    "WeightingPolicy",
    "AlignmentWeighting",
    "MetaNetWeighting",
    "RandomWeighting",
    "LossWeightNet",
    "WeightStage",
    "Shrinkage",
    "Smoothing",
    "UnlearningGuard",
    "UniformIfAllZero",
    "CrossFitTrust",
    "CleanLoss",
    "Weighting",
    "WEIGHTINGS",
    "default_weighting",
    "paper_weighting",
    "normalize_weights",
]

# Deprecated in 0.3 (use weighting="paper" or paper_weighting()); removed in 0.4.
_PAPER_EXACT = dict(weighting="alignment", clean_sampling="cycle", clean_weight=0.0,
                    weight_shrinkage=0.0, weight_smoothing=0.0, zero_weights="skip",
                    finetune_epochs=0, unlearning_tolerance=None)


def __getattr__(name):
    if name == "PAPER_EXACT":
        warnings.warn("PAPER_EXACT is deprecated since 0.3 and will be removed in 0.4: use "
                      "ReweightedNeuralNetClassifier(weighting='paper') (or weighting=paper_weighting()), "
                      "Algorithm 1 as published.", FutureWarning, stacklevel=2)
        return dict(_PAPER_EXACT)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Weighting:
    """A policy followed by stages: the weights of every training step.

    What ``ReweightedNeuralNetClassifier(weighting=...)`` takes (besides a
    name, see :data:`WEIGHTINGS`), and what a fitted estimator keeps in
    ``weighting_`` (a copy: the parameter itself is never fitted). Every
    argument is a parameter in scikit-learn's sense: ``get_params`` lists
    ``policy__<arg>`` and, for each stage, ``<name>`` and ``<name>__<arg>``
    (the stage's ``name``, e.g. ``trust`` for
    :class:`CrossFitTrust`; ``_2``, ``_3`` appended when stages share a
    name), so that an estimator's ``set_params(weighting__trust__memory=0.5)``
    and grid searches reach them.

    Parameters
    ----------
    policy : WeightingPolicy
        Turns each batch's alignments into weights.
    stages : sequence of WeightStage, default=()
        Adjust the policy's weights, in this order.
    clean_trim : int >= 0, default=0
        Trimmed alignments: each training example's alignment leaves out
        the ``clean_trim`` groups of the clean batch most opposed to it
        (groups: single examples for clean batches of up to 10, else 10
        near-equal groups), so that no single trusted example can veto a
        training example (:mod:`sk_reweight.engines`, "trimmed
        alignments"). ``0``: the mean over the whole clean batch (the
        paper). With a tiny clean set one clean example the network cannot
        fit can otherwise take every batch's weight, and training decays;
        ``clean_trim=1`` removes that decay on the docs' MNIST benchmark,
        but on tabular data its weights stop singling out mislabelled rows.
        Costs one pass of the alignment computation per group where no
        shortcut applies. Must be below the number of groups of a clean batch.
    clean_cap : float > 0 or None, default=None
        Capped alignments: taken with the gradient of a weighted clean loss
        in which no clean group's gradient counts more than ``clean_cap``
        times the median group's norm (the exact lookahead meta-gradient of
        that loss). ``None``: the mean clean loss (the paper). Combines with
        ``clean_trim``.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import AlignmentWeighting, Shrinkage, Weighting
    >>> weighting = Weighting(AlignmentWeighting(), [Shrinkage(0.5)])
    >>> weighting.start(n_train=2, device="cpu")
    >>> weighting(torch.tensor([1.0, -1.0]), torch.zeros(2), positions=[0, 1])
    tensor([0.7500, 0.2500])
    >>> weighting.set_params(shrinkage__amount=0.25).get_params()["shrinkage__amount"]
    0.25
    """

    def __init__(self, policy, stages=(), clean_trim=0, clean_cap=None):
        self.policy = policy
        self.stages = stages
        self.clean_trim = clean_trim
        self.clean_cap = clean_cap

    @property
    def named_stages(self):
        """``(name, stage)`` pairs, the names unique (see the class notes)."""
        named, seen = [], {}
        for stage in self.stages:
            base = getattr(stage, "name", None) or type(stage).__name__.lower()
            seen[base] = seen.get(base, 0) + 1
            named.append((base if seen[base] == 1 else f"{base}_{seen[base]}", stage))
        return named

    def get_params(self, deep=True):
        """The arguments and, with ``deep``, the policy's and stages' own (scikit-learn's convention).

        Parameters
        ----------
        deep : bool, default=True
            Also list the policy's and the stages' arguments (``<part>__<arg>``) and the stages by name.

        Returns
        -------
        dict
            Each parameter's name and current value.
        """
        params = dict(policy=self.policy, stages=self.stages, clean_trim=self.clean_trim, clean_cap=self.clean_cap)
        if deep:
            for name, part in [("policy", self.policy)] + self.named_stages:
                if name != "policy":
                    params[name] = part
                if hasattr(part, "get_params"):
                    params.update({f"{name}__{k}": v for k, v in part.get_params().items()})
        return params

    def set_params(self, **params):
        """Set arguments, a stage by name, or ``<part>__<arg>`` of the policy or a stage.

        Parameters
        ----------
        **params : dict
            New values by parameter name (see :meth:`get_params`).

        Returns
        -------
        Weighting
            This weighting.
        """
        own = ("policy", "stages", "clean_trim", "clean_cap")
        for key in sorted(params, key=lambda k: (k not in own, "__" in k)):  # own arguments first
            value, (name, _, sub) = params[key], key.partition("__")
            names = dict(self.named_stages)
            if key in own:
                setattr(self, key, value)
            elif name not in names and name != "policy":
                raise ValueError(f"Invalid parameter {key!r} for Weighting; valid: "
                                 f"{sorted(self.get_params(deep=True))}.")
            elif not sub:  # a stage replaced by name
                index = [n for n, _ in self.named_stages].index(name)
                self.stages = [value if i == index else s for i, s in enumerate(self.stages)]
            else:
                (self.policy if name == "policy" else names[name]).set_params(**{sub: value})
        return self

    def _check(self):
        """Clear errors for bad arguments, at the start of a fit."""
        if not isinstance(self.policy, WeightingPolicy):
            raise ValueError(f"Weighting(policy={self.policy!r}): the policy must be a WeightingPolicy.")
        bad = [stage for stage in self.stages if not isinstance(stage, WeightStage)]
        if bad:
            raise ValueError(f"Weighting(stages=...): {bad[0]!r} is not a WeightStage.")
        trim = self.clean_trim
        if not isinstance(trim, numbers.Integral) or isinstance(trim, bool) or trim < 0:
            raise ValueError(f"Weighting(clean_trim={trim!r}): clean_trim must be an int >= 0: the clean groups "
                             "most opposed to a training example that its alignment leaves out; 0 is Algorithm 1.")
        if self.clean_cap is not None:
            _check_number(self, "clean_cap", self.clean_cap, 0, float("inf"), "a positive finite number or None",
                          low_open=True, high_open=True)

    def start(self, n_train, device, generator=None, targets=None, clean_targets=None, class_weight=None):
        """Start a fit (checks the arguments first).

        Parameters
        ----------
        n_train : int
            Training positions (rows of the ``X`` given to ``fit``).
        device : str or torch.device
            The device the fit trains on.
        generator : torch.Generator or None, default=None
            What the policy draws from (``None``: torch's global state).
        targets : torch.Tensor of shape (n_train,) or None, default=None
            Each training position's class index (-1 for trusted rows), if known.
        clean_targets : torch.Tensor or None, default=None
            The clean set's class indices.
        class_weight : torch.Tensor or None, default=None
            The criterion's class weights.
        """
        self._check()
        self.policy._generator = generator
        self.policy.start(n_train, device)
        for stage in self.stages:
            stage.start(n_train, device)
            if targets is not None:
                stage.set_targets(targets)
            if clean_targets is not None:
                stage.set_clean_targets(clean_targets, class_weight)
        # the clean set's largest class, read once a fit on the host (every process of a distributed
        # fit has the same clean set): `clean_folds` compares it with the folds the stages ask for
        asked = any(stage.clean_folds for stage in self.stages)
        counts = torch.bincount(torch.as_tensor(clean_targets).cpu()) if asked and clean_targets is not None else None
        self._largest_clean_class = None if counts is None else int(counts.max()) if len(counts) else 0

    def __call__(self, alignment, losses, positions, sample_weight=None, fold_alignment=None):
        """The weights of one training step: the policy's, adjusted by each stage in turn.

        Each stage first observes the batch's losses (and, when it asks for
        ``clean_folds``, the fold alignments).

        Parameters
        ----------
        alignment : torch.Tensor of shape (batch_size,)
            ``<grad L_clean, grad f_i>`` of each example.
        losses : torch.Tensor of shape (batch_size,)
            The examples' training losses (detached).
        positions : sequence of int or torch.Tensor of shape (batch_size,)
            Each example's training position (its row of the ``X`` given to ``fit``).
        sample_weight : torch.Tensor of shape (batch_size,) or None, default=None
            ``fit``'s ``sample_weight`` of the batch's examples.
        fold_alignment : torch.Tensor of shape (batch_size, clean_folds) or None, default=None
            Each example's alignment with each clean fold's loss gradient (cross-fitting).

        Returns
        -------
        torch.Tensor of shape (batch_size,)
            The step's weights, summing to 1 (or all zero: the batch is skipped).
        """
        if fold_alignment is None and self.clean_folds:
            raise ValueError(
                f"The meta-gradient engine gave no fold_alignment, which {self!r} needs (its clean_folds="
                f"{self.clean_folds}, for cross-fitting): an engine of your own must pass weigh(alignment, "
                "losses, fold_alignment=...) when clean_folds > 0 (see MetaGradientEngine.reweighted_backward), "
                "or choose a weighting without a CrossFitTrust (e.g. weighting='alignment').")
        w = self.policy(alignment, losses, sample_weight)
        for stage in self.stages:
            stage.observe(losses, positions)
            if fold_alignment is not None and stage.clean_folds:
                stage.observe_folds(fold_alignment, positions, sample_weight)
            w = stage(w, positions, sample_weight)
        return w

    @property
    def clean_folds(self):
        """The clean-batch folds the stages need alignments with (0: none; the engines' ``clean_folds``).

        0 as well, from :meth:`start` on, where no fold of this fit's clean batches could hold
        anything out: the folds are class-balanced (no ``clean_trim`` or ``clean_cap``) and no
        class of the clean set has a row for every fold (one trusted example per class). The
        engines then form no folds, and the stages observe none.
        """
        folds = max((stage.clean_folds for stage in self.stages), default=0)
        largest = getattr(self, "_largest_clean_class", None)  # getattr: weightings pickled before it
        # class-balanced folds only: those of clean_trim or clean_cap are runs of clean groups of any class
        if folds and largest is not None and largest < folds and not self.clean_trim and self.clean_cap is None:
            return 0
        return folds

    @property
    def extra_clean_weight(self):
        """The weight of the clean batch's mean loss the stages add to the step now."""
        return float(sum(stage.extra_clean_weight for stage in self.stages))

    def end_epoch(self):
        """Called after each reweighted epoch.

        Returns
        -------
        dict
            What the stages record in the epoch's ``history_`` entry, by key.
        """
        summary = {}
        for stage in self.stages:
            summary.update(stage.end_epoch())
        return summary

    def _parts(self):
        return [type(self.policy).__name__] + [type(stage).__name__ for stage in self.stages]

    def state_dict(self):
        """The learned state of the policy and the stages (what ``f_weighting`` saves).

        Returns
        -------
        dict
            The parts' class names (``'parts'``) and each part's own ``state_dict()``.
        """
        state = {"parts": self._parts(), "policy": self.policy.state_dict()}
        state.update({f"stage_{i}": stage.state_dict() for i, stage in enumerate(self.stages)})
        return state

    def continue_from(self, previous):
        """Take over ``previous``'s learned state if it has the same parts; else start afresh.

        Parameters
        ----------
        previous : Weighting
            The weighting of the fit this one continues (``partial_fit``, ``warm_start``).
        """
        if previous._parts() == self._parts():
            self.load_state_dict(previous.state_dict())

    def load_state_dict(self, state_dict):
        """Restore what :meth:`state_dict` returned; the parts must be of the same types.

        Parameters
        ----------
        state_dict : dict
            What :meth:`state_dict` returned.

        Raises
        ------
        ValueError
            The state belongs to a policy and stages of other types.
        """
        saved = state_dict.get("parts", self._parts())
        if saved != self._parts():
            raise ValueError(
                f"The saved weighting state belongs to {saved}, but this estimator's weighting "
                f"has {self._parts()}. Create the estimator with the weighting it was saved with."
            )
        self.policy.load_state_dict(state_dict.get("policy", {}))
        for i, stage in enumerate(self.stages):
            stage.load_state_dict(state_dict.get(f"stage_{i}", {}))

    def __repr__(self):
        options = (f", clean_trim={self.clean_trim!r}" if self.clean_trim != 0 else "") + (
            f", clean_cap={self.clean_cap!r}" if self.clean_cap is not None else "")
        return f"Weighting({self.policy!r}, {list(self.stages)!r}{options})"


def default_weighting():
    """The estimator's default weighting (``weighting='cross_fit'``), a new object each call.

    Algorithm 1's weights (:class:`AlignmentWeighting`), an
    :class:`UnlearningGuard` (``tolerance=0.1``) and a :class:`CrossFitTrust`
    last, which mixes the weights the others made with its fallback.

    Returns
    -------
    Weighting
        A new ``Weighting(AlignmentWeighting(), [UnlearningGuard(0.1), CrossFitTrust()])``.

    Examples
    --------
    >>> from sk_reweight.weighting import default_weighting
    >>> default_weighting()  # doctest: +NORMALIZE_WHITESPACE
    Weighting(AlignmentWeighting(), [UnlearningGuard(tolerance=0.1),
        CrossFitTrust(folds=2, memory=0.8, prior=10.0, full_trust_win_rate=0.65, clean_weight=1.0,
                      balance_classes=False, initial=1.0)])
    """
    return Weighting(AlignmentWeighting(), [UnlearningGuard(0.1), CrossFitTrust()])


def paper_weighting():
    """Algorithm 1 of Ren et al. (2018) as published (``weighting='paper'``): no stage.

    Replaces the ``PAPER_EXACT`` dict of 0.2:
    ``ReweightedNeuralNetClassifier(weighting=paper_weighting())`` (the
    other parameters at their defaults) is Algorithm 1 exactly.

    Returns
    -------
    Weighting
        A new ``Weighting(AlignmentWeighting())``.

    Examples
    --------
    >>> from sk_reweight.weighting import paper_weighting
    >>> paper_weighting()
    Weighting(AlignmentWeighting(), [])
    """
    return Weighting(AlignmentWeighting())


#: The names ``weighting=`` takes, each a function returning a new :class:`Weighting`:
#: ``'cross_fit'`` (the default, :func:`default_weighting`), ``'paper'`` (Algorithm 1 as
#: published, :func:`paper_weighting`), ``'alignment'`` (Algorithm 1's weights with the
#: :class:`UnlearningGuard`) and ``'meta_net'`` (:class:`MetaNetWeighting` with the guard).
WEIGHTINGS = {
    "cross_fit": default_weighting,
    "alignment": lambda: Weighting(AlignmentWeighting(), [UnlearningGuard(0.1)]),
    "meta_net": lambda: Weighting(MetaNetWeighting(), [UnlearningGuard(0.1)]),
    "paper": paper_weighting,
}


def make_weighting(weighting, legacy=None):
    """The :class:`Weighting` that ``weighting`` (a name, a policy or a Weighting) describes, a new copy.

    A policy alone gets the :class:`UnlearningGuard`, as ``'alignment'`` and
    ``'meta_net'`` do. ``legacy``: the deprecated estimator parameters that
    were set (validated before), translated as 0.2 built them: their stages
    follow the policy's and the given stages (the guard of a name or a lone
    policy is rebuilt from ``unlearning_tolerance`` in 0.2's place), before
    a :class:`CrossFitTrust`.
    """
    if isinstance(weighting, str):
        built = WEIGHTINGS[weighting]()
    elif isinstance(weighting, WeightingPolicy):  # as the names: with the guard
        built = Weighting(copy.deepcopy(weighting), [UnlearningGuard(0.1)])
    else:
        built = copy.deepcopy(weighting)  # the parameter itself is never fitted
    stages = list(built.stages)
    if not legacy:
        built.stages = stages
        return built
    trust = [s for s in stages if isinstance(s, CrossFitTrust)]
    stages = [s for s in stages if not isinstance(s, CrossFitTrust)]
    tolerance = legacy.get("unlearning_tolerance")
    if isinstance(weighting, WeightingPolicy) or (isinstance(weighting, str) and weighting != "paper"):
        stages = [s for s in stages if not isinstance(s, UnlearningGuard)]
        tolerance = legacy.get("unlearning_tolerance", 0.1)
    if "meta_net_lr" in legacy and isinstance(built.policy, MetaNetWeighting):
        built.policy.lr = legacy["meta_net_lr"]
    if legacy.get("weight_shrinkage"):
        stages.append(Shrinkage(legacy["weight_shrinkage"]))
    if legacy.get("weight_smoothing"):
        stages.append(Smoothing(legacy["weight_smoothing"]))
    if tolerance is not None:
        stages.append(UnlearningGuard(tolerance))
    if legacy.get("zero_weights") == "uniform":
        stages.append(UniformIfAllZero())
    if legacy.get("clean_weight"):
        stages.append(CleanLoss(legacy["clean_weight"]))
    built.clean_trim = legacy.get("clean_trim", built.clean_trim)
    built.clean_cap = legacy.get("clean_cap", built.clean_cap)
    built.stages = stages + trust  # the trust last: it mixes what the others made with its fallback
    return built
