"""The learning-to-reweight estimator."""
import inspect
import math
import numbers
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils import Bunch, check_random_state
from skorch import NeuralNetClassifier
from skorch.callbacks import ProgressBar
from skorch.dataset import Dataset, unpack_data
from skorch.utils import TeeGenerator, to_tensor

from ._dataset import ArrayDataset, EncodedLabelDataset, collate_batch
from ._engines import agrees_with_generic_engine, get_engine
from ._meta_gradient import ForwardModeEngine, frozen_state
from ._sampling import CleanBatchCycler, RecordingBatchSampler, StratifiedCleanBatchCycler
from ._validation import encode_labels, validate_fit_data, validate_predict_data
from ._weight_history import WeightHistory
from ._weighting import LossWeightNet, MetaNetWeights, WeightPolicy, check_weighting_params
from .modules import MLP


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class _FitState:
    """What one call to fit/partial_fit needs beyond the estimator's parameters."""

    n_train: int
    X_clean: torch.Tensor
    y_clean: torch.Tensor
    clean_batches: CleanBatchCycler
    weigh: WeightPolicy
    sample_weight: torch.Tensor = None
    sampler: RecordingBatchSampler = None

    def clean_batch(self):
        idx = self.clean_batches.next_indices().to(self.X_clean.device)
        return self.X_clean[idx], self.y_clean[idx]


def _serves_batches(dataset):
    """Our datasets (or a train_split Subset of one) serve whole batches."""
    return isinstance(getattr(dataset, "dataset", dataset), (EncodedLabelDataset, ArrayDataset))


class ReweightedNeuralNetClassifier(NeuralNetClassifier):
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

    By default two options go beyond the paper: each example's weight is
    averaged over its visits (``weight_smoothing``) and the clean batch's
    loss joins every step (``clean_weight``), which did best across the
    benchmarks. ``ReweightedNeuralNetClassifier(**sk_reweight.PAPER_EXACT)``
    is Algorithm 1 as published.

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
    weighting : {'alignment', 'meta_net'}, default='alignment'
        Where the weights come from. ``'alignment'``: Algorithm 1's clipped
        alignments with the clean gradient. ``'meta_net'``: in the spirit of
        Meta-Weight-Net (Shu et al., 2019), a small network maps each
        example's loss to a weight in (0, 1); it learns on the fly, one Adam
        step per training step, to make the weighted step lower the clean
        loss (the same exact alignments drive it, to first order in the
        lookahead step), and its weights, normalised in the batch, are used.
        Weights then vary smoothly with the loss and are shared across
        batches.
    meta_net_lr : float, default=0.001
        Adam learning rate of the ``'meta_net'`` weighting network. Too
        high a rate (0.01 on a small MLP) can saturate its sigmoid early,
        after which every weight is 1 (plain training).
    clean_sampling : {'cycle', 'stratified'}, default='cycle'
        How clean mini-batches are drawn when they are smaller than the
        clean set. ``'cycle'``: passes over the shuffled clean set (the
        paper). ``'stratified'``: every clean batch holds each class in
        equal numbers (up to one), so no step is steered by a batch that
        misses a class.
    clean_weight : float, default=1.0
        Train on the clean examples too: each step minimises
        ``sum_i w_i f_i + clean_weight * mean(clean losses)``. Next to no
        cost: the meta step already computes the clean batch's gradient
        (without updating batch-norm running statistics). ``0``: the clean
        set only steers the weights (the paper). A step whose weights are
        all zero then still trains on the clean batch. The default, with
        ``weight_smoothing=0.9``, is the combination that did best across
        the benchmarks (see the README); ``PAPER_EXACT`` turns both off.
    weight_shrinkage : float in [0, 1], default=0.0
        Shrinks each step's learned weights toward plain training's uniform
        weights: ``(1 - weight_shrinkage) * w + weight_shrinkage / n`` (the
        uniform part times ``sample_weight`` when given), before smoothing.
        Weights estimated from a small clean batch are noisy; mixing in the
        uniform weights trades some of that variance for bias, as a
        defensive mixture does in importance sampling (Hesterberg, 1995):
        before smoothing, no weight falls below ``weight_shrinkage`` times
        the uniform weight. The price: a rare class or mislabelled examples
        get back that share of plain training. ``0``: the learned weights
        alone (the paper); ``1``: plain training (the meta step still runs).
        An all-zero batch trains with the uniform share only. No cost.
    weight_smoothing : float in [0, 1), default=0.9
        Each example keeps an exponential moving average of the weights it
        received (on the scale where 1 is uniform): ``s <- weight_smoothing
        * s + (1 - weight_smoothing) * w`` (``s = w`` on its first visit),
        and steps use ``s``, normalised within the batch. Damps the
        batch-to-batch swings of single-step weights; an example that was
        rejected once is down-weighted, not dropped. ``0``: no smoothing
        (the paper). ``sample_weights_`` records the smoothed weights the
        steps used; for finding mislabelled examples
        (:meth:`suspicious_examples`) ``PAPER_EXACT`` weights rank better.
    zero_weights : {'skip', 'uniform'}, default='skip'
        A batch whose weights are all zero changes nothing (``'skip'``, the
        paper) or trains with uniform weights (``'uniform'``).
    finetune_epochs : int, default=0
        After the reweighted epochs of each ``fit``/``partial_fit``, train
        this many passes over the clean set with the plain (unweighted)
        loss and the same optimizer (batches of ``clean_batch_size``). The
        last history row records ``finetune_loss``. ``0``: no fine-tuning
        (the paper).
    meta_engine : {'auto', 'layerwise', 'jvp'}, default='auto'
        How the meta-gradient is computed; every engine is exact.
        ``'layerwise'``: alignment and weighted gradient from one forward
        and backward, for networks whose parameterised layers are Linear,
        Conv1d/2d/3d or Embedding (about the cost of plain training).
        ``'jvp'``: a forward-mode Jacobian-vector product, for any module,
        train-mode batch norm included. ``'auto'`` takes ``'layerwise'``
        when the module qualifies and it agrees with ``'jvp'`` on the first
        batch (else warns and uses ``'jvp'``); the choice is in
        ``meta_engine_``.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, clean batches and dropout,
        so that the same seed gives identical weights and predictions on
        CPU. torch's global random state is left as it was.
        ``None`` uses torch's global random state.
    train_split : callable or None, default=None
        By default the training data is not split: the trusted clean set
        is the validation set, reported each epoch as ``valid_loss`` and
        ``valid_acc`` (so ``EarlyStopping``, ``Checkpoint`` etc. monitor
        it). With ``clean_weight > 0`` (the default) the clean set is also
        trained on, so these scores are optimistic: for early stopping or
        model selection on unseen data, use a skorch splitter such as
        ``ValidSplit(5)``, which validates on a held-out part of the
        training data instead, or ``clean_weight=0``.
    device : str or torch.device, default='auto'
        ``'auto'`` uses CUDA when available, else the CPU. The meta step
        runs on the same device.
    verbose : int, default=0
        ``1`` prints a table of per-epoch results (losses, clean-set
        accuracy, mean weight, share of zero weights, skipped batches);
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
    weight_history_ : WeightHistory
        The object behind ``sample_weights_``; persist it with
        ``save_params(f_weight_history=...)`` or
        ``Checkpoint(f_weight_history=...)``.
    history_ : skorch.History
        Besides skorch's entries, each epoch records ``weight_mean``,
        ``weight_zero_frac`` (share of trained examples with weight 0) and
        ``skipped_batches`` (batches whose weights were all zero). Its
        ``train_loss`` is the unweighted mean training loss.
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
    meta_net_ : MetaNetWeights or None
        With ``weighting='meta_net'``: the learned loss-to-weight network
        (``meta_net_.net(losses)`` gives the weights it assigns, before
        normalisation) and its optimizer.
    module_, criterion_, optimizer_
        The initialised torch objects, as in skorch.

    Notes
    -----
    ``sample_weight`` (in ``fit``) multiplies the learned weights before
    they are normalised within each mini-batch: an example with
    ``sample_weight=0`` is never trained on, one with 2 counts twice as
    much as its learned weight says. This lets meta-estimators that pass
    ``sample_weight`` (e.g. cleanlab's ``CleanLearning``) use the estimator.

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
        weighting="alignment",
        meta_net_lr=1e-3,
        clean_sampling="cycle",
        clean_weight=1.0,
        weight_shrinkage=0.0,
        weight_smoothing=0.9,
        zero_weights="skip",
        finetune_epochs=0,
        meta_engine="auto",
        random_state=None,
        train_split=None,
        device="auto",
        verbose=0,
        **kwargs,
    ):
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            device=device,
            verbose=verbose,
            **kwargs,
        )
        self.clean_batch_size = clean_batch_size
        self.weighting = weighting
        self.meta_net_lr = meta_net_lr
        self.clean_sampling = clean_sampling
        self.clean_weight = clean_weight
        self.weight_shrinkage = weight_shrinkage
        self.weight_smoothing = weight_smoothing
        self.zero_weights = zero_weights
        self.finetune_epochs = finetune_epochs
        self.meta_engine = meta_engine
        self.random_state = random_state

    # ------------------------------------------------------------------
    # device='auto': the parameter keeps 'auto', skorch reads the resolved one

    @property
    def device(self):
        device = self.__dict__.get("device", "auto")
        if isinstance(device, str) and device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return device

    @device.setter
    def device(self, value):
        self.__dict__["device"] = value

    def get_params(self, deep=True, **kwargs):
        params = super().get_params(deep=deep, **kwargs)
        params["device"] = self.__dict__["device"]
        # skorch bookkeeping that its _get_param_names lets through
        params.pop("_params_to_validate", None)
        return params

    def __setstate__(self, state):
        requested = state["device"]
        if isinstance(requested, str) and requested == "auto":
            # a model trained on CUDA must load where CUDA is missing
            state = {**state, "device": "cuda" if torch.cuda.is_available() else "cpu"}
        super().__setstate__(state)
        self.__dict__["device"] = requested

    @property
    def _default_callbacks(self):
        callbacks = super()._default_callbacks
        # set_params may run this with any value; bad ones fail later, in fit
        if isinstance(self.verbose, numbers.Real) and self.verbose >= 2:
            callbacks.append(("progress_bar", ProgressBar(
                postfix_keys=["train_loss", "clean_loss", "zero_frac"])))
        return callbacks

    # ------------------------------------------------------------------
    # initialisation

    def initialize_module(self):
        if self.module is not None:
            return super().initialize_module()
        if not hasattr(self, "classes_inferred_"):
            raise ValueError(
                "module=None builds an MLP sized from the data, so it is created by "
                "fit(); pass module=... to initialize() before fitting."
            )
        kwargs = self.get_params_for("module")
        taken = sorted({"n_features", "n_classes"} & set(kwargs))
        if taken:
            raise ValueError(
                f"module__{taken[0]} cannot be set with module=None: the default MLP takes "
                "n_features and n_classes from the data. Pass module=MLP to set them yourself."
            )
        self.module_ = MLP(
            n_features=int(np.prod(self.sample_shape_)),
            n_classes=len(self.classes_),
            **kwargs,
        )
        return self

    def initialize_criterion(self):
        kwargs = self.get_params_for("criterion")
        if kwargs.get("reduction", "none") != "none":
            raise ValueError(
                f"criterion__reduction={kwargs['reduction']!r}: learning to reweight needs "
                "one loss per example; leave criterion__reduction unset."
            )
        if isinstance(self.criterion, torch.nn.Module):
            if getattr(self.criterion, "reduction", "none") != "none" and not kwargs:
                raise ValueError(
                    f"The criterion instance has reduction={self.criterion.reduction!r}; "
                    "learning to reweight needs one loss per example. Pass the class "
                    f"(criterion={type(self.criterion).__name__}) instead."
                )
            criterion_cls = type(self.criterion)
        else:
            criterion_cls = self.criterion
        if kwargs or not isinstance(self.criterion, torch.nn.Module):
            if "reduction" in inspect.signature(criterion_cls).parameters:
                kwargs["reduction"] = "none"
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    def initialize(self):
        super().initialize()
        self.weight_history_ = WeightHistory()
        self.meta_net_ = None
        return self

    # ------------------------------------------------------------------
    # fitting

    def fit(self, X, y, *, X_clean=None, y_clean=None, sample_weight=None, **fit_params):
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
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative multipliers of the learned weights (see Notes).

        Returns
        -------
        self
        """
        reinitialize = not self.warm_start or not self.initialized_
        return self._fit(X, y, X_clean, y_clean, sample_weight, fit_params, reinitialize, "fit")

    def partial_fit(self, X, y, classes=None, *, X_clean=None, y_clean=None,
                    sample_weight=None, **fit_params):
        """Continue training for ``max_epochs`` epochs without re-initialising.

        Appends to ``history_`` and ``sample_weights_``. Parameters as in
        :meth:`fit`; ``classes`` is accepted for scikit-learn compatibility
        (set the ``classes`` parameter to fix the classes up front).

        Returns
        -------
        self
        """
        reinitialize = not self.initialized_
        return self._fit(X, y, X_clean, y_clean, sample_weight, fit_params, reinitialize, "partial_fit")

    def _fit(self, X, y, X_clean, y_clean, sample_weight, fit_params, reinitialize, method):
        if fit_params:
            raise TypeError(
                f"{method}() got unexpected keyword arguments {sorted(fit_params)}; it takes "
                "X, y, X_clean, y_clean and sample_weight."
            )
        # a net initialised by hand (e.g. to load parameters) has not seen data yet
        learn_data_shape = reinitialize or not hasattr(self, "sample_shape_")
        data = validate_fit_data(self, X, y, X_clean, y_clean, sample_weight, reset=learn_data_shape)
        with self._random_context(continued=not reinitialize):
            if reinitialize:
                self.initialize()
            self.fit_state_ = self._make_fit_state(data)
            self._check_module_fits_data(data.X[:2])
            self.meta_engine_ = self._select_engine(data)
            try:
                super().partial_fit(data.X, data.y, _routing_method=method)
                self._finetune_on_clean()
            finally:
                del self.fit_state_
        return self

    @contextmanager
    def _random_context(self, continued):
        if self.random_state is None:
            yield
            return
        if isinstance(self.random_state, numbers.Integral):
            base = int(self.random_state)
        else:
            base = int(check_random_state(self.random_state).randint(2**31))
        # a continued fit (partial_fit, warm_start) draws fresh but reproducible numbers
        epochs_done = len(self.history_) if continued else 0
        seed = int(np.random.SeedSequence([base, epochs_done]).generate_state(1)[0])
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def _check_module_fits_data(self, X):
        """One forward on two examples, so a mismatch fails here, clearly."""
        module, was_training = self.module_, self.module_.training
        sample = torch.tensor(X, device=self.device)  # a copy: X may be read-only (pandas)
        module.eval()
        try:
            with torch.no_grad(), frozen_state(module):
                output = self.infer(sample)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            dtypes = {p.dtype for p in module.parameters() if p.is_floating_point()} - {torch.float32}
            if dtypes:
                fix = (f"X is converted to float32, but the module's parameters are "
                       f"{sorted(map(str, dtypes))}: build the module in float32 (module.float()).")
            else:
                fix = ("Give X the shape the module expects (a CNN needs images (n, C, H, W): "
                       "X.reshape(len(X), C, H, W)) or adjust the module's size parameters "
                       "(module__...).")
            raise ValueError(
                f"The module {type(module).__name__} cannot process X: its examples have shape "
                f"{tuple(self.sample_shape_)} and a batch {tuple(sample.shape)} raised "
                f"{type(exc).__name__}: {exc}. {fix}"
            ) from exc
        finally:
            module.train(was_training)
        y_pred = output[0] if isinstance(output, (tuple, list)) else output
        n_classes = len(self.classes_)
        if isinstance(self.criterion_, (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss)) and (
            y_pred.dim() != 2 or y_pred.shape[1] != n_classes
        ):
            raise ValueError(
                f"The module {type(module).__name__} returns outputs of shape "
                f"{tuple(y_pred.shape)} for {len(sample)} examples, but y has {n_classes} "
                f"classes: a classifier module must return ({len(sample)}, {n_classes}) "
                f"scores. Set its number of outputs to {n_classes} (e.g. module__n_classes={n_classes})."
            )
        # skorch's NLLLoss takes the log of the output: it must be probabilities
        if isinstance(self.criterion_, torch.nn.NLLLoss) and not (
            (y_pred >= 0).all() and torch.allclose(y_pred.sum(1), torch.ones_like(y_pred[:, 0]), atol=1e-3)
        ):
            raise ValueError(
                f"With criterion=NLLLoss the module must return class probabilities (skorch "
                f"takes their log), but {type(module).__name__} returns values that are "
                "negative or do not sum to 1 per example. For a module that returns logits "
                "or log-probabilities use criterion=torch.nn.CrossEntropyLoss (the default)."
            )

    def _select_engine(self, data):
        engine = get_engine(self.meta_engine, self.module_)
        if self.meta_engine != "auto" or isinstance(engine, ForwardModeEngine):
            return engine
        n = min(len(data.X), self.batch_size if self.batch_size != -1 else len(data.X))
        # copies: a slice of read-only input (pandas' copy-on-write) would make torch warn
        batch = (torch.tensor(data.X[:n], device=self.device),
                 torch.tensor(data.y[:n], device=self.device))
        clean = self.fit_state_.X_clean, self.fit_state_.y_clean

        def loss_fn(output, target):
            return self.get_per_example_loss(output, target, training=True)

        if agrees_with_generic_engine(engine, self.module_, loss_fn, *batch, *clean):
            return engine
        warnings.warn(
            f"The {engine.name!r} meta-gradient engine disagrees with the exact generic one "
            f"on this {type(self.module_).__name__} (a parameter used outside its layer, such "
            "as tied weights?); using meta_engine='jvp'. Pass meta_engine='jvp' to skip this check.",
            UserWarning,
            stacklevel=4,
        )
        return ForwardModeEngine()

    def _make_fit_state(self, data):
        check_weighting_params(self)
        self._check_optimizer_needs_no_closure()
        n_clean = len(data.X_clean)
        batch_size = self.batch_size if self.batch_size != -1 else len(data.X)
        clean_batch_size = self.clean_batch_size
        if clean_batch_size is None:
            clean_batch_size = min(n_clean, batch_size)
        elif not isinstance(clean_batch_size, numbers.Integral) or not 1 <= clean_batch_size <= n_clean:
            raise ValueError(
                f"clean_batch_size={clean_batch_size!r} must be an int between 1 and the "
                f"clean set size ({n_clean}); use None for the default."
            )
        if self.clean_sampling == "stratified":
            clean_batches = StratifiedCleanBatchCycler(data.y_clean, int(clean_batch_size))
        else:
            clean_batches = CleanBatchCycler(n_clean, int(clean_batch_size))
        sample_weight = None
        if data.sample_weight is not None:
            sample_weight = torch.tensor(data.sample_weight, device=self.device)
        weigh = WeightPolicy(len(data.X), self.weight_smoothing, self.zero_weights,
                             smoothed=self.weight_history_.smoothed, device=self.device,
                             meta_net=self._meta_net(), shrinkage=self.weight_shrinkage)
        self.weight_history_.smoothed = weigh.smoothed  # kept for partial_fit and saving
        return _FitState(
            n_train=len(data.X),
            X_clean=torch.as_tensor(data.X_clean, device=self.device),
            y_clean=torch.as_tensor(data.y_clean, device=self.device),
            clean_batches=clean_batches,
            weigh=weigh,
            sample_weight=sample_weight,
        )

    def _check_optimizer_needs_no_closure(self):
        step = inspect.signature(type(self.optimizer_).step).parameters.get("closure")
        if step is not None and step.default is inspect.Parameter.empty:
            raise ValueError(
                f"optimizer={type(self.optimizer_).__name__} needs a closure that re-evaluates "
                "the loss during its step; each evaluation of a reweighted loss would draw "
                "new weights. Use an optimizer whose step() needs no closure (SGD, Adam, "
                "AdamW, RMSprop, ...)."
            )

    def _meta_net(self):
        """The loss-to-weight net of ``weighting='meta_net'`` (kept across partial_fit)."""
        if self.weighting != "meta_net":
            return None
        # not a skorch module: its parameters must stay out of the network's optimizer
        if getattr(self, "meta_net_", None) is None:
            net = LossWeightNet().to(self.device)
            self.meta_net_ = MetaNetWeights(net, torch.optim.Adam(net.parameters(), lr=self.meta_net_lr))
        for group in self.meta_net_.optimizer.param_groups:
            group["lr"] = self.meta_net_lr
        return self.meta_net_

    def check_data(self, X, y):
        # classes_ are set from the user's labels by validate_fit_data;
        # skorch's version would overwrite them with the encoded ones.
        pass

    def get_split_datasets(self, X, y=None, **fit_params):
        dataset = EncodedLabelDataset(X, y, self.classes_)
        if self.train_split:
            return self.train_split(dataset, dataset.y, **fit_params)
        state = self.fit_state_
        clean = EncodedLabelDataset(
            state.X_clean.cpu().numpy(), state.y_clean.cpu().numpy(), self.classes_
        )
        return dataset, clean

    def get_dataset(self, X, y=None):
        # validated arrays (prediction) are served a batch per fetch
        if y is None and isinstance(X, np.ndarray) and self.dataset is Dataset:
            return ArrayDataset(X)
        return super().get_dataset(X, y)

    def get_iterator(self, dataset, training=False):
        if not training:
            if not _serves_batches(dataset) or "collate_fn" in self.get_params_for("iterator_valid"):
                return super().get_iterator(dataset, training=False)
            kwargs = self.get_params_for("iterator_valid")
            kwargs.setdefault("batch_size", self.batch_size)
            if kwargs["batch_size"] == -1:
                kwargs["batch_size"] = len(dataset)
            return self.iterator_valid(dataset, collate_fn=collate_batch, **kwargs)
        kwargs = self.get_params_for("iterator_train")
        if _serves_batches(dataset):
            kwargs.setdefault("collate_fn", collate_batch)
        for key in ("sampler", "batch_sampler"):
            if key in kwargs:
                raise ValueError(
                    f"iterator_train__{key} is not supported: {type(self).__name__} draws "
                    "its own batches to know which examples each weight belongs to."
                )
        batch_size = kwargs.pop("batch_size", self.batch_size)
        if batch_size == -1:
            batch_size = len(dataset)
        positions = getattr(dataset, "indices", None)  # a Subset from train_split
        sampler = RecordingBatchSampler(
            len(dataset),
            batch_size,
            shuffle=kwargs.pop("shuffle", True),
            drop_last=kwargs.pop("drop_last", False),
            positions=positions,
        )
        self.fit_state_.sampler = sampler
        return self.iterator_train(dataset, batch_sampler=sampler, **kwargs)

    def notify(self, method_name, **cb_kwargs):
        # Batches hold class indices; callbacks compare targets with
        # predict(), which returns the user's labels, so they see those.
        batch = cb_kwargs.get("batch")
        if isinstance(batch, (tuple, list)) and len(batch) == 2 and torch.is_tensor(batch[1]):
            cb_kwargs["batch"] = (batch[0], self.classes_[batch[1].cpu().numpy()])
        super().notify(method_name, **cb_kwargs)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(net, dataset_train, dataset_valid, **kwargs)
        self.weight_history_.new_epoch(self.fit_state_.n_train)

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_end(net, dataset_train, dataset_valid, **kwargs)
        row = self.weight_history_.current
        trained = row[~np.isnan(row)]
        self.history.record("weight_mean", float(trained.mean()) if trained.size else float("nan"))
        self.history.record(
            "weight_zero_frac", float((trained == 0).mean()) if trained.size else float("nan")
        )
        batches = self.history[-1, "batches"]
        self.history.record("skipped_batches", int(sum(b.get("skipped", 0) for b in batches)))

    def get_per_example_loss(self, y_pred, y_true, X=None, training=False):
        """One loss per example: the criterion with ``reduction='none'``."""
        losses = super().get_loss(y_pred, y_true, X=X, training=training)
        if losses.dim() != 1 or len(losses) != len(y_true):
            raise ValueError(
                f"The criterion returned a loss of shape {tuple(losses.shape)} for a batch "
                f"of {len(y_true)}; learning to reweight needs one loss per example. Use a "
                "criterion that accepts reduction='none', or one that returns a vector."
            )
        return losses

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Mean per-example loss (skorch's scalar loss, e.g. for validation)."""
        return self.get_per_example_loss(y_pred, y_true, X=X, training=training).mean()

    def train_step_single(self, batch, **fit_params):
        """Meta step of Algorithm 1 and backward pass of the weighted loss."""
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        Xi, yi = to_tensor(Xi, device=self.device), to_tensor(yi, device=self.device)
        state = self.fit_state_
        positions = state.sampler.pop()
        X_clean, y_clean = state.clean_batch()
        sample_weight = None if state.sample_weight is None else state.sample_weight[positions]

        def loss_fn(output, target):
            return self.get_per_example_loss(output, target, training=True)

        def weigh(alignment, losses):
            return state.weigh(alignment, losses, positions, sample_weight)

        step = self.meta_engine_.reweighted_backward(
            self.module_, loss_fn, Xi, yi, X_clean, y_clean, weigh, clean_weight=self.clean_weight
        )
        loss = step.losses.mean()
        # one host sync checks both: a non-finite alignment turns the sum NaN
        if not math.isfinite((loss + 0 * step.alignment.sum()).item()):
            raise TrainingDivergedError(
                f"Training diverged in epoch {len(self.history)}, batch "
                f"{len(self.history[-1, 'batches'])}: the training loss is {loss.item()} "
                "(or the meta-gradient is not finite). The parameters are those from before "
                "this step. Lower the learning rate or check the inputs' scale."
            )
        # one copy to the host serves the history and the batch summaries
        scaled = (step.weights * len(Xi)).cpu().numpy()
        skipped = not scaled.any() and not self.clean_weight
        self.weight_history_.record(positions, scaled)
        self.history.record_batch("skipped", skipped)
        self.history.record_batch("clean_loss", step.clean_loss.item())
        self.history.record_batch("zero_frac", float((scaled == 0).mean()))
        return {"loss": loss, "y_pred": step.y_pred, "skipped": skipped}

    def _finetune_on_clean(self):
        """``finetune_epochs`` passes of plain training over the clean set."""
        if not self.finetune_epochs:
            return
        state = self.fit_state_
        n_batches = -(-len(state.X_clean) // state.clean_batches.batch_size)
        self._set_training(True)
        for epoch in range(self.finetune_epochs):
            total = 0.0
            for _ in range(n_batches):
                X_clean, y_clean = state.clean_batch()
                self._zero_grad_optimizer()
                loss = self.get_loss(self.infer(X_clean), y_clean, training=True)
                value = loss.item()
                if not math.isfinite(value):
                    raise TrainingDivergedError(
                        f"Fine-tuning on the clean set diverged in its epoch {epoch}: the loss "
                        f"is {value}. Lower the learning rate or finetune_epochs."
                    )
                loss.backward()
                self._step_optimizer(None)
                total += value
        if len(self.history):  # max_epochs=0 leaves no row to annotate
            self.history.record("finetune_loss", total / n_batches)

    def train_step(self, batch, **fit_params):
        """One reweighted step; the optimizer is not stepped when all weights are 0."""
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            batch=batch,
            training=True,
        )
        if not step["skipped"]:
            self._step_optimizer(None)
        return step

    # ------------------------------------------------------------------
    # results

    @property
    def sample_weights_(self):
        if not hasattr(self, "weight_history_"):
            raise AttributeError(
                f"{type(self).__name__} has no sample_weights_ before fit() is called."
            )
        return self.weight_history_.to_array()

    def suspicious_examples(self, X, y, *, last_epochs=None):
        """Rank training examples by how strongly the clean set down-weighted them.

        Examples whose gradients kept disagreeing with the clean set's get
        low weights: mislabelled ones, or ones unlike anything trusted.
        Use it to find label errors in the training data, preferably after
        a fit with ``sk_reweight.PAPER_EXACT``: smoothed weights remember a
        single strong agreement for many epochs, and once the network has
        fitted the clean set it trains on (``clean_weight``), the clean
        gradient that steers the weights is small; both rank mislabelled
        examples less well (``benchmarks/label_issues.py``).

        Parameters
        ----------
        X, y : array-like
            The training data ``fit`` was given (rows in the same order).
        last_epochs : int, default=None
            Average the weights of the last ``last_epochs`` epochs only
            (the first epochs of training are noisier); default all.

        Returns
        -------
        sklearn.utils.Bunch
            Arrays sorted from most to least suspicious: ``index`` (row in
            ``X``), ``given_label``, ``predicted_label``, ``mean_weight``
            (1.0 is uniform), ``given_label_proba`` (the model's probability
            of the given label) and ``score`` (higher is more suspicious:
            ``1 - mean_weight`` clipped to [0, 1], ties broken by
            ``1 - given_label_proba``).

        Examples
        --------
        >>> issues = net.suspicious_examples(X_train, y_train)  # doctest: +SKIP
        >>> issues.index[:20]  # the 20 rows most worth relabelling  # doctest: +SKIP
        """
        self.check_is_fitted()
        weights = self.sample_weights_
        if last_epochs is not None:
            weights = weights[-last_epochs:]
        y = np.asarray(y)
        if len(y) != weights.shape[1]:
            raise ValueError(
                f"y has {len(y)} rows but the model was trained on {weights.shape[1]}; pass "
                "the training data given to fit."
            )
        with warnings.catch_warnings():  # rows held out by train_split stay NaN, ranked last
            warnings.simplefilter("ignore", RuntimeWarning)
            mean_weight = np.nanmean(weights, axis=0)
        proba = self.predict_proba(X)
        given = encode_labels(self.classes_, y, "y")
        given_proba = proba[np.arange(len(y)), given]
        score = np.clip(1 - mean_weight, 0, 1) + 1e-3 * (1 - given_proba)
        order = np.argsort(-score, kind="stable")
        return Bunch(
            index=order,
            given_label=y[order],
            predicted_label=self.classes_[proba.argmax(axis=1)][order],
            mean_weight=mean_weight[order],
            given_label_proba=given_proba[order],
            score=score[order],
        )

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        self.check_is_fitted()
        if not isinstance(X, torch.utils.data.Dataset):  # skorch's scoring passes Datasets
            X = validate_predict_data(self, X)
        return super().predict_proba(X)

    def predict(self, X):
        """Predicted class labels (values of ``classes_``).

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        indices = self.predict_proba(X).argmax(axis=1)
        return self.classes_[indices]
