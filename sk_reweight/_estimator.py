"""The learning-to-reweight estimator: skorch's fit loop wired to engines, weighting and callbacks."""
import numbers
from dataclasses import replace
from functools import partial

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import ProgressBar
from skorch.dataset import Dataset, unpack_data
from skorch.utils import TeeGenerator, to_tensor

from . import _validation, diagnostics
from ._dataset import ArrayDataset, DatasetRows, EncodedLabelDataset, collate_batch
from ._device import AutoDeviceMixin, step_autocast
from ._distributed import DataParallel, validated_on_every_rank
from ._divergence import check_finite_predictions, check_step_is_finite, explain, final_outputs_error
from ._fit_state import make_fit_context
from ._host_step import copy_to_host
from ._legacy import DEPRECATED, WeightingParamsMixin, build_weighting
from ._loss_scale import loss_scale_for
from ._params import check_optimizer_needs_no_closure
from ._persistence import PersistenceMixin
from ._random import ForwardDraws, RandomStream, drawing, fit_generators
from ._weight_history import WeightHistory
from .callbacks import FineTuneOnClean, TrainingStage, WeightRecorder, stage_iterator, with_our_print_log
from .engines import select_engine
from .exceptions import TrainingDivergedError
from .modules import mlp_sized_for


def _serves_batches(dataset):
    """Our datasets (or a train_split Subset of one) serve whole batches."""
    return isinstance(getattr(dataset, "dataset", dataset), (EncodedLabelDataset, ArrayDataset))


class ReweightedNeuralNetClassifier(WeightingParamsMixin, PersistenceMixin, AutoDeviceMixin, NeuralNetClassifier):
    """Neural network classifier trained by learning to reweight examples.

    Implements Ren, Zeng, Yang and Urtasun, "Learning to Reweight Examples
    for Robust Deep Learning" (ICML 2018), Algorithm 1. At every training
    step, each example of the mini-batch gets the weight
    ``w_i = max(<grad L_clean, grad f_i>, 0) / sum_j max(<grad L_clean, grad f_j>, 0)``:
    examples whose gradient points the same way as the gradient of a small
    trusted *clean* set are kept, the others ignored. This makes training
    robust to class imbalance and noisy labels in the (large) training set.
    The weights are the exact meta-gradient of the paper's one-step
    lookahead (see ``meta_engine``). Then the optimizer steps on
    ``sum_i w_i f_i``. A batch whose weights are all zero changes nothing
    (not even optimizer state such as momentum).

    The default weighting is Algorithm 1 as published plus two stages
    (:func:`~sk_reweight.weighting.default_weighting`). The guard
    (:class:`~sk_reweight.weighting.UnlearningGuard`): a class whose training loss climbs
    above its best, because the steering shuts it out once the small clean
    set is fitted, gets back its usual share of each batch; it removed
    Algorithm 1's late decay on the paper's MNIST task (the docs' MNIST
    page, "Guarding a class the steering unlearns"). And the trust
    (:class:`~sk_reweight.weighting.CrossFitTrust`): cross-fitting on the clean set measures at
    every step whether the learned weights steer better than a fallback
    (uniform weights plus the clean loss), and each epoch
    mixes the two by that measure, so that a clean set whose steering is
    noise (a few trusted rows of a noisy table) no longer makes the model
    worse than training without weights (the docs' options page, "How far
    to trust the weights"). ``ReweightedNeuralNetClassifier(weighting='paper')``
    is Algorithm 1 exactly as published. Other stages beyond the paper
    (:class:`~sk_reweight.weighting.Smoothing`,
    :class:`~sk_reweight.weighting.CleanLoss`,
    :class:`~sk_reweight.weighting.Shrinkage`, the
    :class:`~sk_reweight.callbacks.FineTuneOnClean` callback,
    ``weighting='meta_net'``) can help short runs;
    over the paper's training lengths none kept an edge on the benchmarks
    (training on the clean set, in particular, spends the signal that
    steers the weights: see the benchmark pages of the docs, "Long runs").

    The estimator wires parts together through skorch's hooks: a
    meta-gradient engine (:mod:`sk_reweight.engines`) computes each batch's
    alignments, a weighting policy (:mod:`sk_reweight.weighting`) turns them
    into weights, and callbacks (:mod:`sk_reweight.callbacks`) record the
    weights and run the fine-tuning stage. What these parts may read during
    a fit is the documented :class:`~sk_reweight.callbacks.FitContext`
    (``fit_context_``); an engine receives every option at every step
    (:class:`~sk_reweight.engines.EngineOptions`).

    Every weight knob is an argument of the policy or stage it belongs to,
    so the estimator has seven parameters of its own beyond skorch's:
    ``weighting`` (the whole weighting: policy, stages, trimmed or capped
    alignments), ``clean_batch_size`` and ``clean_sampling`` (how the clean
    batch of each step is drawn, which every weighting uses),
    ``meta_engine`` (how the alignments are computed, the same for every
    weighting), ``autocast_dtype`` (precision), ``on_divergence`` (what a
    non-finite step does) and ``random_state``. The nine weight parameters
    of 0.2 still work until 0.4 (the parameters marked deprecated).

    A scikit-learn classifier built on skorch's ``NeuralNetClassifier``:
    all skorch parameters, callbacks and ``module__``/``optimizer__``
    prefixes work as usual.

    Parameters
    ----------
    module : torch.nn.Module class or instance, or None, default=None
        The network; it must return logits for the default criterion. With
        ``None`` a :class:`~sk_reweight.modules.MLP` is built at fit from
        the number of features and classes (set its options with
        ``module__hidden_units=...``, ``module__dropout=...``).
    criterion : torch loss class, default=torch.nn.CrossEntropyLoss
        Built with ``reduction='none'``: the method needs one loss per
        example. Pass a class (not an instance with another reduction).
        Class weights of a ``CrossEntropyLoss``/``NLLLoss``
        (``criterion__weight=...``) define the loss the clean set measures,
        and enter each step there only: the clean loss is the mean of
        ``weight[y_j] * l_j`` over the clean batch (so the alignments follow
        it), while the training losses that the alignments compare and the
        step weighs stay unweighted, and
        :class:`~sk_reweight.weighting.CrossFitTrust`'s fallback weighs each
        class by its weight. Counted also in the training losses, a class
        weight would enter the alignment, the clean loss and the step, and a
        long-tailed task's rare classes would get it three times over (a fit
        then predicts one class). Focal or label-smoothing losses are the
        per-example losses themselves: they enter everywhere, as any loss
        does.
    optimizer : torch optimizer class, default=torch.optim.Adam
        Any optimizer that does not need a closure (SGD, momentum, Adam, ...).
    lr : float, default=0.001
        Learning rate.
    max_epochs : int, default=20
        Number of passes over the training data.
    batch_size : int, default=128
        Training mini-batch size (also the prediction batch size).
    clean_batch_size : int or None, default=None
        Size of the clean mini-batch drawn at every step; the clean set is
        cycled through, reshuffled at each pass. ``None``: the whole clean
        set when it has at most ``batch_size`` examples, else ``batch_size``.
    weighting : {'cross_fit', 'paper', 'alignment', 'meta_net'} or Weighting or WeightingPolicy, default='cross_fit'
        Where the weights come from: a
        :class:`~sk_reweight.weighting.Weighting`, a policy followed by
        stages, or the name of a preset (:data:`~sk_reweight.weighting.WEIGHTINGS`).
        ``'cross_fit'`` (:func:`~sk_reweight.weighting.default_weighting`):
        Algorithm 1's clipped alignments
        (:class:`~sk_reweight.weighting.AlignmentWeighting`), the
        :class:`~sk_reweight.weighting.UnlearningGuard` and, last, the
        :class:`~sk_reweight.weighting.CrossFitTrust`: at every step the
        clean batch is split into class-balanced folds, the weights one fold
        gives are compared with a fallback's on the other (which of the two
        steps lowers its loss more), and the share of comparisons the learned
        weights win sets each epoch's trust; the step mixes ``trust`` of the
        learned weights with ``1 - trust`` of the fallback (plain training's
        uniform weights plus the clean batch's loss). Where the clean set
        steers well (MNIST) the trust stays near 1; where its steering is
        noise (ten trusted rows per class of a noisy table) it falls to 0 and
        training is the fallback's. The trust per epoch is in ``history_``
        (``weight_trust``, with ``weight_trust_win_rate``).
        ``'paper'`` (:func:`~sk_reweight.weighting.paper_weighting`):
        Algorithm 1 as published, no stage. ``'alignment'``: Algorithm 1's
        weights and the guard. ``'meta_net'``: in the spirit of
        Meta-Weight-Net (Shu et al., 2019), a small network maps each
        example's loss to a weight in (0, 1), learning on the fly from the
        same exact alignments
        (:class:`~sk_reweight.weighting.MetaNetWeighting`), and the guard.
        A :class:`~sk_reweight.weighting.WeightingPolicy` instance alone
        gets the guard, as those names do
        (``Weighting(policy, [UnlearningGuard(0.1)])``); ``Weighting(policy)``
        runs it without stages. The fit uses a copy
        (``weighting_``). A ``Weighting``'s arguments are nested
        parameters: ``set_params(weighting__trust__memory=0.5)``,
        ``weighting__policy__lr``, ``weighting__clean_trim``.
    meta_net_lr : deprecated
        Deprecated (since 0.3, removed in 0.4), as are the eight parameters
        after ``clean_sampling``: a fit with any of them set warns
        (``FutureWarning``) and translates them into the weighting they
        stand for, with the same result bit for bit (the warning shows the
        equivalent ``Weighting``). ``meta_net_lr`` is
        :class:`~sk_reweight.weighting.MetaNetWeighting`'s ``lr``.
    clean_sampling : {'cycle', 'stratified'}, default='cycle'
        How clean mini-batches are drawn when they are smaller than the
        clean set. ``'cycle'``: passes over the shuffled clean set (the
        paper). ``'stratified'``: every clean batch holds each class in
        equal numbers (up to one), so no step is steered by a batch that
        misses a class.
    clean_weight, clean_trim, clean_cap, weight_shrinkage : deprecated
        Deprecated parameters (since 0.3, removed in 0.4), as
        ``meta_net_lr``; each stands for a part of the weighting:
        ``clean_trim`` and ``clean_cap`` are arguments of
        :class:`~sk_reweight.weighting.Weighting`; ``weight_shrinkage``,
        ``weight_smoothing``, ``unlearning_tolerance`` (``None``: no guard),
        ``zero_weights='uniform'`` and ``clean_weight`` are the stages
        :class:`~sk_reweight.weighting.Shrinkage`,
        :class:`~sk_reweight.weighting.Smoothing`,
        :class:`~sk_reweight.weighting.UnlearningGuard`,
        :class:`~sk_reweight.weighting.UniformIfAllZero` and
        :class:`~sk_reweight.weighting.CleanLoss` (after the named
        weighting's stages, before a ``CrossFitTrust``); ``finetune_epochs``
        is ``callbacks=[FineTuneOnClean(epochs)]``
        (:class:`~sk_reweight.callbacks.FineTuneOnClean`).
    weight_smoothing, zero_weights, unlearning_tolerance, finetune_epochs : deprecated
        As the four above.
    meta_engine : {'auto', 'layerwise', 'jvp', 'reference'} or MetaGradientEngine, default='auto'
        How the meta-gradient is computed (:mod:`sk_reweight.engines`);
        every engine is exact.
        ``'layerwise'``: alignment and weighted gradient from one forward
        and backward, for networks whose parameterised layers are Linear,
        Conv1d/2d/3d or Embedding (about the cost of plain training).
        ``'jvp'``: a forward-mode Jacobian-vector product, for any module,
        train-mode batch norm included. ``'reference'``: double backprop
        through the lookahead step, slow (the tests' oracle). ``'auto'``
        takes ``'layerwise'`` when the module qualifies (teach it layer
        types of your own with :func:`~sk_reweight.engines.register_layer_rule`)
        and it agrees with ``'jvp'`` on the first batch (else warns and uses
        ``'jvp'``), once per network; the choice is in ``meta_engine_``.
    autocast_dtype : torch.bfloat16, torch.float16 or None, default=None
        Mixed precision: each training step's forward and backward passes
        run under ``torch.autocast`` in this dtype (the parameters, the
        optimizer step, the alignments and weights stay in float32).
        float16 adds dynamic loss scaling with :class:`torch.amp.GradScaler`'s
        rule, decided on the step's one copy to the host: an overflowed step
        is skipped and the scale halved (``overflow_steps`` in the history).
        Measured: alignments within 3.7% (bfloat16) and 1.3% (float16) of
        the largest float32 alignment for an MLP and LeNet (the tests hold
        6% and 3%); with train-mode batch norm plain training's own gradient
        moves by up to 17% under autocast, and single examples' alignments
        as far (see the user guide's "Threads and speed" page). ``None``:
        float32. Do not wrap ``fit`` in ``torch.autocast`` yourself:
        autocast keeps its low-precision copies of the weights as long as
        the context is open, so the steps would see stale weights (``fit``
        refuses to start under it).
    on_divergence : {'raise', 'skip'}, default='raise'
        What a non-finite loss, meta-gradient or optimizer step (or, after
        the last step, non-finite outputs on the clean set or on up to 2,048
        training rows spread over the data) does. Either way the parameters
        and optimizer state go back to those from before the last optimizer
        step, the last that gave a finite loss (they are copied before every
        step); after the last step that state must also give finite outputs
        on those rows, else the state the fit started from is put back.
        ``predict_proba`` raises rather than return NaN. ``'raise'``: stop with
        :class:`~sk_reweight.TrainingDivergedError` naming the epoch and
        batch. ``'skip'``: skip the step and train on (counted in the
        history's ``diverged_steps``); a step that diverges before any
        optimizer step was taken still raises.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, clean batches and dropout,
        so that the same seed gives identical weights and predictions on
        CPU. The fit draws from ``torch.Generator`` objects of its own:
        torch's global random state is neither read nor changed, and other
        threads drawing from it cannot perturb the fit. A continued fit
        (``partial_fit``, ``warm_start``) continues the random stream, so
        fitting 3 epochs then 2 equals fitting 5.
        ``None`` uses torch's global random state.
    train_split : callable or None, default=None
        By default the training data is not split: the trusted clean set
        is the validation set, reported each epoch as ``valid_loss`` and
        ``valid_acc`` (so ``EarlyStopping``, ``Checkpoint`` etc. monitor
        it). The clean set steers every step (and with a
        :class:`~sk_reweight.weighting.CleanLoss` stage or fine-tuning it is
        also trained on), so these scores are
        optimistic: for early stopping or model selection on unseen data,
        use a skorch splitter such as ``ValidSplit(5)``, which validates on
        a held-out part of the training data instead, or
        :class:`~sk_reweight.model_selection.CleanSetKFold`.
    device : str or torch.device, default='auto'
        ``'auto'`` uses CUDA when available, else the CPU. The meta step
        runs on the same device.
    verbose : int, default=0
        ``1`` prints a table of per-epoch results (losses, clean-set
        accuracy, ``weight_ess``: the effective share of examples trained
        on, share of zero weights, skipped batches);
        ``2`` also shows a progress bar over each epoch's batches with the
        training loss, the clean-batch loss and the share of zero weights.
    **kwargs
        Any other :class:`skorch.NeuralNetClassifier` parameter.

    Attributes
    ----------
    sample_weights_ : ndarray of shape (n_epochs, n_samples), float32
        The weight each training example received in each epoch, scaled so
        that 1.0 is the uniform weight of plain training (``w_i`` times the
        size of its batch); 0 for examples the clean set rejected; ``NaN``
        where an example was not trained on in that epoch (held out by
        ``train_split``, or an epoch interrupted with Ctrl-C, which is
        kept). ``partial_fit`` appends epochs.
    sample_alignments_ : ndarray of shape (n_epochs, n_samples), float32
        The unsmoothed steering signal behind the weights: each example's
        alignment ``<grad L_clean, grad f_i>`` at its visit in each epoch,
        positive when a step on it would lower the clean loss (the clean set
        accepted it), ``NaN`` where not trained. Its sign does not depend
        on the batch-mates, as the normalised weights do:
        :meth:`suspicious_examples` ranks by the share of visits in which
        the clean set rejected an example.
    weight_history_ : WeightHistory
        The object behind ``sample_weights_`` and ``sample_alignments_``.
    fit_context_ : sk_reweight.callbacks.FitContext
        During ``fit``/``partial_fit`` only: what stages, callbacks and
        engines may read of the fit (the clean set, the step, the weights so
        far). Deleted when the call ends.
    weighting_ : sk_reweight.weighting.Weighting
        The fitted policy and stages (smoothing averages, the meta-net and
        its optimizer; with ``weighting='cross_fit'`` its last stage,
        :class:`~sk_reweight.weighting.CrossFitTrust`, holds the trust and
        its history, ``weighting_.stages[-1].history``).
    class_weight_ : torch.Tensor of shape (n_classes,) or None
        The class weights taken from a class-weighted ``CrossEntropyLoss``
        or ``NLLLoss`` criterion (``criterion__weight``), which define the
        clean loss (see ``criterion``); ``None`` for any other criterion.
    rng_ : RandomStream
        Where the seeded random stream and the clean-batch order stand.
    loss_scale_ : LossScale or None
        float16 only: the loss scale (``factor``) and the count of
        overflowed steps (``overflows``).
    history_ : skorch.History
        Besides skorch's entries, each epoch records ``stage``
        (``'reweight'`` or ``'finetune'``) and each reweighted epoch
        ``weight_mean`` (1 by construction), ``weight_ess`` (effective share
        of examples trained on: 1 for uniform weights), ``weight_zero_frac``
        (share of trained examples with weight 0) and ``skipped_batches``
        (batches whose weights were all zero); with ``weighting='cross_fit'``
        also ``weight_trust`` (the trust the next epoch uses) and
        ``weight_trust_win_rate`` (the epoch's share of held-out comparisons
        the learned weights won). Its ``train_loss`` is the unweighted mean training loss.
    classes_ : ndarray of shape (n_classes,)
        Class labels; ``predict`` returns these.
    n_features_in_ : int
        Number of features (channels for image input ``(n, C, H, W)``).
    feature_names_in_ : ndarray of str
        Feature names, when ``X`` is a DataFrame with string column names.
    sample_shape_ : tuple of int
        Shape of one example, ``X.shape[1:]``.
    meta_engine_ : MetaGradientEngine
        The meta-gradient engine in use.
    module_, criterion_, optimizer_
        The initialised torch objects, as in skorch.

    Notes
    -----
    ``sample_weight`` (in ``fit``) multiplies the learned weights before
    they are normalised within each mini-batch: an example with
    ``sample_weight=0`` is never trained on, one with 2 counts twice as
    much as its learned weight says. This lets meta-estimators that pass
    ``sample_weight`` (e.g. cleanlab's ``CleanLearning``) use the estimator.

    Every learned part persists with pickle, or with ``save_params`` /
    ``load_params`` and skorch's ``Checkpoint``: ``f_params``,
    ``f_optimizer``, ``f_history``, ``f_weight_history``, ``f_weighting``
    and ``f_rng``; a model restored from all six continues training
    exactly as the saved one would. Each file is written to a temporary file
    and renamed over the old one (a failed save keeps the last good file);
    ``f_params`` also holds the classes, the input shape and a checksum, so
    ``load_params`` on a new estimator (``module=None`` included; no
    ``initialize()`` needed) restores a model that predicts the same labels,
    and refuses damaged files or another network's parameters, leaving the
    model unchanged. Never unpickle a file you do not trust: a pickle runs
    code; ``load_params`` reads tensors only (torch's weights-only loading).

    Inputs are converted to float32 arrays: 2-d tabular data or n-d arrays
    such as images ``(n, C, H, W)``; skorch ``Dataset`` objects and dicts
    are not accepted.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sk_reweight import ReweightedNeuralNetClassifier
    >>> X, y = make_classification(n_samples=300, random_state=0)
    >>> net = ReweightedNeuralNetClassifier(max_epochs=5, random_state=0)
    >>> net = net.fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])
    >>> net.predict(X[:3]).shape
    (3,)
    >>> net.sample_weights_.shape
    (5, 280)
    """

    def __init__(
        self,
        module=None,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=0.001,
        max_epochs=20,
        batch_size=128,
        clean_batch_size=None,
        weighting="cross_fit",
        meta_net_lr=DEPRECATED,
        clean_sampling="cycle",
        clean_weight=DEPRECATED,
        clean_trim=DEPRECATED,
        clean_cap=DEPRECATED,
        weight_shrinkage=DEPRECATED,
        weight_smoothing=DEPRECATED,
        zero_weights=DEPRECATED,
        unlearning_tolerance=DEPRECATED,
        finetune_epochs=DEPRECATED,
        meta_engine="auto",
        autocast_dtype=None,
        on_divergence="raise",
        random_state=None,
        train_split=None,
        device="auto",
        verbose=0,
        **kwargs,
    ):
        super().__init__(module, criterion=criterion, optimizer=optimizer, lr=lr, max_epochs=max_epochs,
                         batch_size=batch_size, train_split=train_split, device=device,
                         verbose=verbose, **kwargs)
        self.clean_batch_size = clean_batch_size
        self.weighting = weighting
        self.meta_net_lr = meta_net_lr
        self.clean_sampling = clean_sampling
        self.clean_weight = clean_weight
        self.clean_trim = clean_trim
        self.clean_cap = clean_cap
        self.weight_shrinkage = weight_shrinkage
        self.weight_smoothing = weight_smoothing
        self.zero_weights = zero_weights
        self.unlearning_tolerance = unlearning_tolerance
        self.finetune_epochs = finetune_epochs
        self.meta_engine = meta_engine
        self.autocast_dtype = autocast_dtype
        self.on_divergence = on_divergence
        self.random_state = random_state

    @property
    def _default_callbacks(self):
        callbacks = with_our_print_log(super()._default_callbacks)
        # before print_log, which prints the epoch's weight summaries
        callbacks.insert(len(callbacks) - 1, ("weight_recorder", WeightRecorder()))
        # set_params may run this with any value; bad ones fail later, in fit
        if isinstance(self.finetune_epochs, numbers.Integral) and self.finetune_epochs > 0:
            callbacks.append(("finetune", FineTuneOnClean(self.finetune_epochs)))
        if isinstance(self.verbose, numbers.Real) and self.verbose >= 2:
            callbacks.append(("progress_bar", ProgressBar(postfix_keys=["train_loss", "clean_loss", "zero_frac"])))
        return callbacks

    # ------------------------------------------------------------------
    # initialisation

    def initialize_module(self):
        if self.module is not None:
            return super().initialize_module()
        self.module_ = mlp_sized_for(self)
        return self

    def initialize_criterion(self):
        kwargs = _validation.per_example_criterion(self.criterion, self.get_params_for("criterion"))
        criterion = self.initialized_instance(self.criterion, kwargs)
        self.criterion_, self.class_weight_ = _validation.split_class_weight(self, criterion)
        return self

    def torch_compile(self, module, name):
        # the meta step pushes dual numbers through the criterion: only the network is compiled
        return super().torch_compile(module, name) if name == "module" else module

    def initialize(self):
        """Check the parameters and initialise the weighting, skorch's parts and the fit records.

        Builds ``weighting_`` (which checks every parameter), then the
        module, criterion, optimizer and callbacks as skorch does, and new,
        empty ``weight_history_``, ``rng_`` and ``loss_scale_``.

        Returns
        -------
        ReweightedNeuralNetClassifier
            The initialised estimator.
        """
        self.weighting_ = self._make_weighting()  # checks every parameter before skorch uses them
        super().initialize()
        self.weight_history_, self.rng_ = WeightHistory(), RandomStream()
        self.loss_scale_ = loss_scale_for(self.autocast_dtype)
        return self

    def _make_weighting(self):
        return build_weighting(self)

    # ------------------------------------------------------------------
    # fitting

    def fit(self, X, y, *, X_clean=None, y_clean=None, clean_mask=None, sample_weight=None,
            **fit_params):
        """Train on ``(X, y)`` with weights steered by the clean set.

        Re-initialises the network unless ``warm_start=True``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Training data, possibly with noisy labels or imbalanced classes.
        y : array-like of shape (n_samples,)
            Training labels, of any type.
        X_clean : array-like of shape (n_clean, ...)
            Small trusted set with the same features as ``X``. Required.
        y_clean : array-like of shape (n_clean,)
            Its labels; each must occur in ``y``.
        clean_mask : array-like of bool, shape (n_samples,), default=None
            The other way to give the clean set: ``True`` marks trusted rows
            of ``X`` (the clean set), the rest are trained on. Because the
            trusted rows are rows of ``X``, every Pipeline step transforms
            them and cross-validation slices the mask with ``X``. The same
            rows given either way give the same fit; ``sample_weights_``
            then has a column per row of ``X`` (``NaN`` for trusted rows).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative multipliers of the learned weights (see Notes).
        **fit_params : dict
            None accepted: any other keyword argument raises ``TypeError``
            (skorch's fit parameters have no place in the reweighted step).

        Returns
        -------
        ReweightedNeuralNetClassifier
            The fitted estimator.
        """
        clean = dict(X_clean=X_clean, y_clean=y_clean, clean_mask=clean_mask)
        return self._fit(X, y, clean, sample_weight, fit_params, not self.warm_start or not self.initialized_, "fit")

    def partial_fit(self, X, y, classes=None, *, X_clean=None, y_clean=None, clean_mask=None,
                    sample_weight=None, **fit_params):
        """Continue training for ``max_epochs`` epochs without re-initialising.

        Appends to ``history_`` and ``sample_weights_``; the first call on a
        new estimator initialises it, as :meth:`fit` does.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Training data, as in :meth:`fit`.
        y : array-like of shape (n_samples,)
            Training labels, as in :meth:`fit`.
        classes : array-like of shape (n_classes,), default=None
            Ignored; accepted for scikit-learn compatibility (set the
            ``classes`` parameter to fix the classes up front).
        X_clean : array-like of shape (n_clean, ...)
            Small trusted set, as in :meth:`fit`.
        y_clean : array-like of shape (n_clean,)
            Its labels, as in :meth:`fit`.
        clean_mask : array-like of bool, shape (n_samples,), default=None
            The trusted rows of ``X``, instead of ``X_clean`` and
            ``y_clean`` (as in :meth:`fit`).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative multipliers of the learned weights (see Notes).
        **fit_params : dict
            None accepted: any other keyword argument raises ``TypeError``.

        Returns
        -------
        ReweightedNeuralNetClassifier
            The estimator, trained ``max_epochs`` more epochs.
        """
        clean = dict(X_clean=X_clean, y_clean=y_clean, clean_mask=clean_mask)
        return self._fit(X, y, clean, sample_weight, fit_params, not self.initialized_, "partial_fit")

    def _fit(self, X, y, clean, sample_weight, fit_params, reinitialize, method):
        if fit_params:
            raise TypeError(
                f"{method}() got unexpected keyword arguments {sorted(fit_params)}; it takes "
                "X, y, X_clean, y_clean, clean_mask and sample_weight."
            )
        parallel = DataParallel.join()
        # a net initialised by hand (e.g. to load parameters) has not seen data yet
        data = validated_on_every_rank(parallel, lambda: _validation.validate_fit_data(
            self, X, y, sample_weight=sample_weight, **clean, reset=reinitialize or not hasattr(self, "sample_shape_")))
        epochs_done = 0 if reinitialize else len(self.weight_history_)
        generators = fit_generators(self.random_state, None if reinitialize else self.rng_.torch_state, epochs_done)
        generator = torch.default_generator if generators is None else generators.cpu
        with drawing(generators):  # initialisation and the checks draw from the fit's generators
            if reinitialize:
                self.initialize()
            else:  # options may have changed since: rebuild, keep what still applies
                weighting, self.weighting_ = self.weighting_, self._make_weighting()
                self.weighting_.continue_from(weighting)
                self.loss_scale_ = loss_scale_for(self.autocast_dtype, getattr(self, "loss_scale_", None))
            if parallel is not None:  # from here on every rank draws what rank 0 draws
                parallel.start(self.module_, generator)
            check_optimizer_needs_no_closure(self.optimizer_)
            self.weighting_.start(data.n_rows, self.device, generator, data.targets_by_position(),
                                  torch.as_tensor(data.y_clean), self.class_weight_)
            state = make_fit_context(data, self.batch_size, self.clean_batch_size, self.clean_sampling, self.device,
                                     parallel, generators, self.weighting_, self.weight_history_, self.class_weight_)
            state.clean_batches.load_state_dict(self.rng_.clean_batches)
            self.fit_context_ = state
            _validation.check_module_fits_data(self, data.X[:2])
            self.meta_engine_ = self._select_engine(data)
            state.guard.start(self, state.X_clean)
        try:
            with ForwardDraws(self.module_, generators):  # dropout masks from the fit's generators
                super().partial_fit(data.X, data.y, _routing_method=method)
            if (exc := final_outputs_error(self, data.X, state.X_clean, len(self.history))) is not None:
                self._diverged(exc, X_train=data.X)
        finally:
            self.rng_.keep(None if generators is None else generators.cpu.get_state(), state.clean_batches)
            del self.fit_context_
        return self

    def _select_engine(self, data):
        n = min(len(data.X), self.batch_size if self.batch_size != -1 else len(data.X))
        # copies: a slice of read-only input (pandas' copy-on-write) would make torch warn
        batch = (torch.tensor(data.X[:n], dtype=torch.float32, device=self.device),
                 torch.tensor(data.y[:n], device=self.device))
        engine = select_engine(self.meta_engine, self.module_, self._loss_fn, batch,
                               (self.fit_context_.X_clean, self.fit_context_.y_clean))
        parallel = self.fit_context_.parallel
        return engine if parallel is None else parallel.wrap_engine(engine, self.module_)

    def _loss_fn(self, output, target):
        return self.get_per_example_loss(output, target, training=True)

    def check_data(self, X, y):
        """Nothing: ``classes_`` come from the user's labels (skorch's would see encoded ones)."""

    def get_split_datasets(self, X, y=None, **fit_params):
        dataset = EncodedLabelDataset(X, y, self.classes_)
        if self.train_split:
            return self.train_split(dataset, dataset.y, **fit_params)
        state = self.fit_context_
        return dataset, EncodedLabelDataset(state.X_clean.cpu().numpy(), state.y_clean.cpu().numpy(), self.classes_)

    def get_dataset(self, X, y=None):
        # validated arrays (prediction) are served a batch per fetch
        if y is None and isinstance(X, (np.ndarray, DatasetRows)) and self.dataset is Dataset:
            return ArrayDataset(X)
        return super().get_dataset(X, y)

    def get_iterator(self, dataset, training=False):
        if not training:
            kwargs = self.get_params_for("iterator_valid")
            kwargs.setdefault("batch_size", self.batch_size)
            if kwargs["batch_size"] == -1:
                kwargs["batch_size"] = len(dataset)
            if _serves_batches(dataset):
                kwargs.setdefault("collate_fn", collate_batch)
            if isinstance(self.iterator_valid, type) and issubclass(self.iterator_valid, torch.utils.data.DataLoader):
                # its (unused) worker seed then comes from neither torch's global stream nor the fit's
                kwargs.setdefault("generator", torch.Generator())
            return self.iterator_valid(dataset, **kwargs)
        kwargs = self.get_params_for("iterator_train")
        if _serves_batches(dataset):
            kwargs.setdefault("collate_fn", collate_batch)
        for key in ("sampler", "batch_sampler"):
            if key in kwargs:
                raise ValueError(
                    f"iterator_train__{key} is not supported: {type(self).__name__} draws "
                    "its own batches to know which examples each weight belongs to."
                )
        sampler = self.fit_context_.training_sampler(dataset, kwargs, self.batch_size)
        kwargs.setdefault("generator", self.fit_context_.generator)  # the loader's worker seed
        return self.iterator_train(dataset, batch_sampler=sampler, **kwargs)

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        # the stages' epochs follow the reweighted ones in the same loop
        state = self.fit_context_
        state.epochs = self.max_epochs if epochs is None else epochs
        state.stages = [cb for _, cb in self.callbacks_ if isinstance(cb, TrainingStage)]
        total = state.epochs + sum(stage.epochs for stage in state.stages)
        return super().fit_loop(X, y, epochs=total, **fit_params)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        stage = self.fit_context_.stage
        if stage is not None and training:
            with drawing(self.fit_context_.generators):
                iterator = stage_iterator(stage, self, self.fit_context_)
        return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)

    def notify(self, method_name, **cb_kwargs):
        # Batches hold class indices; callbacks compare targets with
        # predict(), which returns the user's labels, so they see those.
        batch = cb_kwargs.get("batch")
        if isinstance(batch, (tuple, list)) and len(batch) == 2 and torch.is_tensor(batch[1]):
            cb_kwargs["batch"] = (batch[0], self.classes_[batch[1].cpu().numpy()])
        super().notify(method_name, **cb_kwargs)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(net, dataset_train, dataset_valid, **kwargs)
        if self.fit_context_.parallel is not None:  # a short last batch may have set ranks apart
            self.fit_context_.parallel.sync_random_state()
        stage = self.fit_context_.begin_epoch()
        self.history.record("stage", "reweight" if stage is None else stage.name)

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_end(net, dataset_train, dataset_valid, **kwargs)
        if self.fit_context_.stage is None:  # the stages' epoch summaries, e.g. CrossFitTrust's weight_trust
            for key, value in self.weighting_.end_epoch().items():
                self.history.record(key, value)

    def get_per_example_loss(self, y_pred, y_true, X=None, training=False):
        """One loss per example: the criterion with ``reduction='none'``.

        Parameters
        ----------
        y_pred : torch.Tensor of shape (batch_size, n_classes)
            The module's output (logits for the default criterion).
        y_true : torch.Tensor of shape (batch_size,)
            The class indices of the batch.
        X : input data, default=None
            The batch's input, passed on to skorch's ``get_loss``.
        training : bool, default=False
            Whether the loss is for a training step.

        Returns
        -------
        torch.Tensor of shape (batch_size,)
            The loss of each example (checked to be one per example).
        """
        return _validation.check_per_example_losses(super().get_loss(y_pred, y_true, X=X, training=training), y_true)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Mean per-example loss (skorch's scalar loss, e.g. for validation)."""
        return self.get_per_example_loss(y_pred, y_true, X=X, training=training).mean()

    def train_step_single(self, batch, **fit_params):
        """Meta step of Algorithm 1 and backward pass of the weighted loss."""
        state = self.fit_context_
        if state.stage is not None:
            return state.stage.train_step_single(self, batch, **fit_params)
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        Xi, yi = to_tensor(Xi, device=self.device), to_tensor(yi, device=self.device)
        positions = state.sampler.pop()
        X_clean, y_clean = state.clean_batch()
        sample_weight = None if state.sample_weight is None else state.sample_weight[positions]
        weigh = partial(self.weighting_, positions=positions, sample_weight=sample_weight)
        scale, clean_weight = self.loss_scale_, self.weighting_.extra_clean_weight
        factor = None if scale is None else scale.factor
        options = replace(state.engine_options, clean_weight=clean_weight, loss_scale=factor)
        state.step, engine = state.step + 1, self.meta_engine_
        with step_autocast(self.device, self.autocast_dtype):  # the optimizer steps outside it
            step = engine.reweighted_backward(
                self.module_, self._loss_fn, Xi, yi, X_clean, y_clean, weigh, **options.for_engine(engine))
        # the step's one copy to the host: weights, alignments, both losses (and, float16, overflow)
        host = copy_to_host(step, None if scale is None else self.module_.parameters())
        if scale is not None and scale.overflowed(host):
            return {"loss": host.loss, "y_pred": step.y_pred, "skipped": True, "overflow": True}
        check_step_is_finite(host.loss, host.alignment, len(self.history), len(self.history[-1, "batches"]))
        skipped = not host.weights.any() and not clean_weight
        return {"loss": host.loss, "y_pred": step.y_pred, "skipped": skipped, "weights": host.weights,
                "alignment": host.alignment, "positions": positions, "clean_loss": host.clean_loss}

    def train_step(self, batch, **fit_params):
        """One training step; the optimizer is not stepped when all weights are 0.

        A non-finite loss puts the parameters and optimizer state back to the
        last that gave a finite loss, then raises or (``on_divergence='skip'``)
        skips the step.
        """
        self._zero_grad_optimizer()
        try:
            step = self.train_step_single(batch, **fit_params)
        except TrainingDivergedError as exc:
            return self._diverged(exc, batch)
        self.notify("on_grad_computed", named_parameters=TeeGenerator(self.get_all_learnable_params()),
                    batch=batch, training=True)
        if not step["skipped"]:
            self.fit_context_.guard.before_step(self)
            try:
                self._step_optimizer(None)
            except RuntimeError as exc:  # e.g. Adam's step size overflowing float
                return self._diverged(TrainingDivergedError(f"The optimizer step failed: {exc}."), batch)
        return step

    def _diverged(self, exc, batch=None, X_train=None):
        restored = self.fit_context_.guard.restore(self, X_train)
        if self.on_divergence == "raise" or restored != "last step":
            raise explain(exc, restored) from exc
        y_pred = None if batch is None else self.evaluation_step(batch, training=True)
        return {"loss": torch.tensor(float("nan")), "y_pred": y_pred, "skipped": True, "diverged": True}

    # ------------------------------------------------------------------
    # results

    @property
    def sample_weights_(self):
        """The weight of each training example in each epoch, ``(n_epochs, n_samples)`` (see Attributes)."""
        return self._history_array("weights")

    @property
    def sample_alignments_(self):
        """The alignment of each training example in each epoch, ``(n_epochs, n_samples)`` (see Attributes)."""
        return self._history_array("alignments")

    def _history_array(self, kind):
        if not hasattr(self, "weight_history_"):
            raise AttributeError(f"{type(self).__name__} has no sample_{kind}_ before fit() is called.")
        return self.weight_history_.to_array(kind)

    def suspicious_examples(self, X, y, *, last_epochs=None):
        """Rank training examples by how likely their label is wrong.

        The score adds the share of visits in which the clean set rejected
        the example (non-positive alignment, ``sample_alignments_``) and one
        minus the model's probability of its given label; see
        :func:`sk_reweight.diagnostics.suspicious_examples`.

        Parameters
        ----------
        X, y : array-like
            The training data ``fit`` was given (rows in the same order).
        last_epochs : int, default=None
            Count the visits of the last ``last_epochs`` epochs only;
            default all.

        Returns
        -------
        pandas.DataFrame
            One row per training example, most suspicious first, indexed by
            its row in ``X``: ``given_label``, ``predicted_label``,
            ``rejection_rate``, ``mean_weight`` (1.0 is uniform),
            ``given_label_proba`` and ``score``.

        Examples
        --------
        >>> issues = net.suspicious_examples(X_train, y_train)  # doctest: +SKIP
        >>> issues.index[:20]  # the 20 rows most worth relabelling  # doctest: +SKIP
        >>> issues.head(20)  # with their labels, predictions and scores  # doctest: +SKIP
        """
        return diagnostics.suspicious_examples(self, X, y, last_epochs=last_epochs)

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input data, shaped as the training data.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            The probability of each class for each row of ``X``.
        """
        self.check_is_fitted()
        if _serves_batches(X):  # skorch's scoring, during fit
            return super().predict_proba(X)
        return check_finite_predictions(super().predict_proba(_validation.validate_predict_data(self, X)))

    def predict(self, X):
        """Predicted class labels (values of ``classes_``).

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input data, shaped as the training data.

        Returns
        -------
        ndarray of shape (n_samples,)
            The most probable class of each row of ``X``.
        """
        indices = self.predict_proba(X).argmax(axis=1)
        return self.classes_[indices]
