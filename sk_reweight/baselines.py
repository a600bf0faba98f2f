"""Comparable baselines for learning to reweight.

:func:`make_baselines` builds, from one network and one training recipe
(optimizer, learning rate, epochs, batch size, seed), every method the
benchmarks compare. All of them have ``fit(X, y, *, X_clean, y_clean)``, and
each gets the same trusted clean set in the way that suits it:

==================  ======================================================
``plain``           training set only (the usual baseline; clean set unused)
``class_weight``    training + clean set, loss weighted by inverse class
                    frequency computed inside each ``fit``
``random_over``     training + clean set, imbalanced-learn RandomOverSampler
``random_under``    training + clean set, RandomUnderSampler
``smote``           training + clean set, SMOTE
``clean_only``      clean set only, for as many optimizer steps as the
                    others take on the training set
``concat``          training + clean set, plain training
``finetune``        plain training, then fine-tuning on the clean set
``cleanlab``        training + clean set, cleanlab's CleanLearning around the
                    plain network (if cleanlab is installed)
``glc``             gold loss correction (:class:`GoldLossCorrection`): the
                    corruption matrix estimated on the clean set, then the
                    corrected loss on the training set and plain loss on the
                    clean set (two trainings)
``bootstrap_soft``  training + clean set, soft bootstrapping loss (beta 0.95)
``bootstrap_hard``  training + clean set, hard bootstrapping loss (beta 0.8)
``focal``           training + clean set, focal loss (gamma 2)
``random_weights``  the paper's control: Algorithm 1's training with random
                    rectified weights (:class:`~sk_reweight.weighting.RandomWeighting`)
``meta_weight_net`` Algorithm 1's training with ``weighting='meta_net'``
``reweight``        :class:`ReweightedNeuralNetClassifier`: training set,
                    weights steered by the clean set
==================  ======================================================

The losses are in :mod:`sk_reweight.losses`, each with its reference.

Every method gets the same optimizer-step budget: the samplers' networks
train for as many steps as ``max_epochs`` epochs over the rows given to the
sampler take (not epochs over the resampled rows), and ``clean_only`` for
as many as an epoch count over the training set takes.

Every method also takes the clean set as trusted rows of ``X``
(``fit(X, y, clean_mask=mask)``). With ``preprocessing`` each method is a
Pipeline that starts with (a clone of) it, so raw tables work: fit it with
``pipe.fit(X, y, method__clean_mask=mask)``, or let
:func:`sk_reweight.comparison.compare` do it.
"""
import math

import numpy as np
import torch
from imblearn.over_sampling import SMOTE, RandomOverSampler
from imblearn.pipeline import Pipeline
from imblearn.under_sampling import RandomUnderSampler
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNetClassifier

from ._clean_mask import resolve_clean_set
from ._estimator import ReweightedNeuralNetClassifier
from ._stacking import as_float32, stack_rows
from .callbacks import with_our_print_log
from .losses import CorrectedCrossEntropy, FocalLoss, HardBootstrappingLoss, SoftBootstrappingLoss
from .modules import mlp_sized_for
from .weighting import MetaNetWeighting, RandomWeighting, Weighting

__all__ = ["BaselineNet", "CleanSetBaseline", "GoldLossCorrection", "make_baselines", "steps_matched_epochs",
           "BASELINE_NAMES"]

BASELINE_NAMES = ("plain", "class_weight", "random_over", "random_under", "smote", "clean_only",
                  "concat", "finetune", "cleanlab", "glc", "bootstrap_soft", "bootstrap_hard", "focal",
                  "random_weights", "meta_weight_net", "reweight")


class Reshape(TransformerMixin, BaseEstimator):
    """Reshape rows to ``(n, *shape)``: lets 2-d samplers (SMOTE) work on images."""

    def __init__(self, shape):
        self.shape = shape

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X).reshape(len(X), *self.shape)


class BaselineNet(NeuralNetClassifier):
    """A skorch ``NeuralNetClassifier`` as the baselines use it.

    ``module=None`` builds the estimator's default MLP sized from the data
    at ``fit`` (``module__*`` parameters other than ``n_features`` and
    ``n_classes`` go to it), inputs of any float type or a sparse matrix are
    fed as float32, and the criterion defaults to ``CrossEntropyLoss``
    (modules return logits).

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=None
        The network; ``None``: the estimator's default MLP, sized at ``fit``.
    *args
        The positional parameters of skorch's ``NeuralNetClassifier`` after ``module``.
    criterion : torch.nn.Module class, default=torch.nn.CrossEntropyLoss
        The loss (on logits).
    epoch_rows : int or None, default=None
        With a number, ``max_epochs`` counts epochs over that many rows: a
        fit on another number of rows (e.g. after a sampler changed them)
        runs as many optimizer steps as ``max_epochs`` epochs over
        ``epoch_rows`` rows take. ``None``: epochs over the rows fitted.
    **kwargs
        The other parameters of skorch's ``NeuralNetClassifier``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight.baselines import BaselineNet
    >>> X = np.random.RandomState(0).randn(40, 3)  # float64 is fine
    >>> y = (X[:, 0] > 0).astype(np.int64)  # class indices, as skorch takes them
    >>> net = BaselineNet(max_epochs=2, train_split=None, verbose=0).fit(X, y)
    >>> net.module_.layers[0].in_features, net.predict(X[:2]).shape
    (3, (2,))
    """

    def __init__(self, module=None, *args, criterion=torch.nn.CrossEntropyLoss, epoch_rows=None, **kwargs):
        super().__init__(module, *args, criterion=criterion, **kwargs)
        self.epoch_rows = epoch_rows

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        if epochs is None and self.epoch_rows is not None:
            epochs = steps_matched_epochs(self.max_epochs, self.batch_size, self.epoch_rows, len(X))
        return super().fit_loop(X, y, epochs=epochs, **fit_params)

    def fit(self, X, y=None, **fit_params):
        """Fit the network, as skorch's ``fit``, with inputs as float32.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, ...)
            The inputs, of any float type.
        y : array-like of shape (n_samples,)
            Class indices ``0..K-1``.
        **fit_params
            Passed to skorch's ``fit``.

        Returns
        -------
        BaselineNet
            The fitted estimator.
        """
        X = as_float32(X)
        if self.module is None:  # initialize() in fit builds the module: it needs the shapes now
            self.sample_shape_ = X.shape[1:]
            self.classes_inferred_ = np.unique(np.asarray(y))
        return super().fit(X, y, **fit_params)

    def initialize_module(self):
        if self.module is not None:
            return super().initialize_module()
        self.module_ = mlp_sized_for(self)
        return self

    @property
    def _default_callbacks(self):  # picklable and quiet under Ray
        return with_our_print_log(super()._default_callbacks)

    def get_dataset(self, X, y=None):
        return super().get_dataset(as_float32(X), y)


class _WrappedNet(ClassifierMixin, BaseEstimator):
    """Predictions of the fitted ``estimator_`` (trained on class indices), as ``classes_``."""

    def predict_proba(self, X):
        """Predict the class probabilities of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            The inputs.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            The probability of each class, in ``classes_`` order.
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    def predict(self, X):
        """Predict the labels of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            The inputs.

        Returns
        -------
        ndarray of shape (n_samples,)
            The most probable label of each example, from ``classes_``.
        """
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class CleanSetBaseline(_WrappedNet):
    """Give an ordinary classifier the ``fit(X, y, *, X_clean, y_clean)`` interface.

    Parameters
    ----------
    estimator : classifier
        Fitted on class indices ``0..K-1`` (so plain skorch nets work).
    clean_set : {'ignore', 'concat', 'only', 'finetune'}, default='concat'
        How the clean set is used (see the module docstring).
    class_weight : {'balanced'} or None, default=None
        Inverse-frequency loss weights, computed on the data of each fit and
        passed as ``criterion__weight`` to the network (``net__`` in a Pipeline).
    finetune_epochs : int, default=10
        Epochs on the clean set for ``clean_set='finetune'``.
    clean_only_steps : {'training_set', 'epochs'}, default='training_set'
        For ``clean_set='only'`` with a network (``max_epochs`` and
        ``batch_size`` parameters): ``'training_set'`` trains for as many
        optimizer steps as ``max_epochs`` epochs over the training set take
        (a clean set of one batch would otherwise get ``max_epochs`` steps);
        ``'epochs'`` for ``max_epochs`` epochs of the clean set.
    sampler_steps : {'training_set', 'epochs'}, default='training_set'
        For a Pipeline whose sampler changes the number of rows before its
        ``net`` step (a :class:`BaselineNet`): ``'training_set'`` trains for
        as many optimizer steps as ``max_epochs`` epochs over the rows given
        to the sampler take, so over- and under-sampling get the other
        methods' step budget; ``'epochs'`` for ``max_epochs`` epochs over
        the resampled rows.
    random_state : int or None, default=None
        Seeds torch for the fit (torch's global state is restored after).

    Attributes
    ----------
    classes_ : ndarray
        Labels seen in ``y`` and ``y_clean``.
    estimator_ : classifier
        The fitted clone of ``estimator``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skorch import NeuralNetClassifier
    >>> from sk_reweight.baselines import CleanSetBaseline
    >>> from sk_reweight.modules import MLP
    >>> net = NeuralNetClassifier(MLP, module__n_features=2, module__n_classes=2, max_epochs=2,
    ...                           criterion=torch.nn.CrossEntropyLoss, train_split=None, verbose=0)
    >>> X = np.random.RandomState(0).randn(40, 2).astype(np.float32)
    >>> y = np.where(X[:, 0] > 0, "yes", "no")
    >>> model = CleanSetBaseline(net, clean_set="finetune", finetune_epochs=1, random_state=0)
    >>> model.fit(X[8:], y[8:], X_clean=X[:8], y_clean=y[:8]).predict(X[:3]).dtype.kind
    'U'
    """

    def __init__(self, estimator, clean_set="concat", class_weight=None, finetune_epochs=10,
                 clean_only_steps="training_set", sampler_steps="training_set", random_state=None):
        self.estimator = estimator
        self.clean_set = clean_set
        self.class_weight = class_weight
        self.finetune_epochs = finetune_epochs
        self.clean_only_steps = clean_only_steps
        self.sampler_steps = sampler_steps
        self.random_state = random_state

    def fit(self, X, y, *, X_clean=None, y_clean=None, clean_mask=None):
        """Fit on ``(X, y)`` and the clean set (``X_clean, y_clean`` or ``clean_mask``).

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            The (noisy) training inputs.
        y : array-like of shape (n_samples,)
            Their labels.
        X_clean : array-like of shape (n_clean, ...), optional
            The trusted inputs.
        y_clean : array-like of shape (n_clean,), optional
            Their labels.
        clean_mask : array-like of bool of shape (n_samples,), optional
            Marks the trusted rows of ``X`` instead of ``X_clean, y_clean``.

        Returns
        -------
        CleanSetBaseline
            The fitted estimator.
        """
        X, y, X_clean, y_clean = resolve_clean_set(X, y, X_clean, y_clean, clean_mask)[:4]
        for name in ("clean_only_steps", "sampler_steps"):
            if getattr(self, name) not in ("training_set", "epochs"):
                raise ValueError(f"{name}={getattr(self, name)!r} must be 'training_set' or 'epochs'.")
        if self.clean_set != "ignore" and (X_clean is None or y_clean is None):
            raise ValueError(f"clean_set={self.clean_set!r} needs X_clean and y_clean (or clean_mask).")
        encoder = LabelEncoder().fit(np.concatenate([np.asarray(y), np.asarray(y_clean)])
                                     if y_clean is not None else y)
        self.classes_ = encoder.classes_
        X_fit, y_fit = {
            "ignore": (X, y), "finetune": (X, y), "only": (X_clean, y_clean),
            "concat": (None, None),
        }[self.clean_set]
        if self.clean_set == "concat":
            X_fit, y_fit = stack_rows(X, X_clean), np.concatenate([np.asarray(y), np.asarray(y_clean)])
        y_fit = encoder.transform(y_fit)
        estimator = clone(self.estimator)
        if self.class_weight == "balanced":
            weights = np.ones(len(self.classes_), dtype=np.float32)
            present = np.unique(y_fit)
            weights[present] = compute_class_weight("balanced", classes=present, y=y_fit)
            key = "net__criterion__weight" if isinstance(estimator, Pipeline) else "criterion__weight"
            estimator.set_params(**{key: torch.as_tensor(weights)})
        if self.clean_set == "only" and self.clean_only_steps == "training_set":
            _match_steps(estimator, n_train=len(y), n_fit=len(y_fit))
        if self.sampler_steps == "training_set" and isinstance(estimator, Pipeline) \
                and isinstance(estimator.named_steps.get("net"), BaselineNet):
            estimator.set_params(net__epoch_rows=len(y_fit))  # the rows before resampling
        with torch.random.fork_rng(devices=[]):
            if self.random_state is not None:
                torch.manual_seed(self.random_state)
            estimator.fit(X_fit, y_fit)
            if self.clean_set == "finetune":
                estimator.set_params(max_epochs=self.finetune_epochs)
                estimator.partial_fit(X_clean, encoder.transform(y_clean))
        self.estimator_ = estimator
        return self


def steps_matched_epochs(epochs, batch_size, n_reference, n_fit):
    """Epochs over ``n_fit`` rows that take the optimizer steps of ``epochs`` over ``n_reference``.

    Parameters
    ----------
    epochs : int
        Epochs over ``n_reference`` rows.
    batch_size : int or None
        The batch size (``None`` or ``-1``: one batch an epoch, so the epochs are kept).
    n_reference : int
        The rows whose epochs set the budget of optimizer steps.
    n_fit : int
        The rows actually fitted.

    Returns
    -------
    int
        The epochs over ``n_fit`` rows (rounded up).

    Examples
    --------
    >>> from sk_reweight.baselines import steps_matched_epochs
    >>> steps_matched_epochs(10, 100, n_reference=1000, n_fit=2000)  # 100 steps either way
    5
    """
    if batch_size is None or batch_size == -1:
        return epochs
    steps = epochs * math.ceil(n_reference / batch_size)
    return math.ceil(steps / math.ceil(n_fit / batch_size))


def _match_steps(estimator, n_train, n_fit):
    """Set a network's epochs on ``n_fit`` rows to the optimizer steps of its epochs on ``n_train``."""
    prefix = "net__" if isinstance(estimator, Pipeline) else ""
    params = estimator.get_params()
    batch_size, epochs = params.get(prefix + "batch_size"), params.get(prefix + "max_epochs")
    if epochs is not None:
        estimator.set_params(**{prefix + "max_epochs": steps_matched_epochs(epochs, batch_size, n_train, n_fit)})


class GoldLossCorrection(_WrappedNet):
    """Gold loss correction (Hendrycks, Mazeika, Wilson and Gimpel, NeurIPS 2018).

    1. Trains ``estimator`` on the untrusted set ``(X, y)``.
    2. Estimates the corruption matrix ``C[i, j]`` (probability that true
       class ``i`` carries label ``j``) as the mean predicted distribution
       over the trusted examples of class ``i`` (identity row for a class
       without trusted examples).
    3. Trains a fresh ``estimator`` on both sets: the untrusted examples with
       the corrected loss ``-log (softmax(z) @ C)[y]``, the trusted ones with
       plain cross-entropy (:class:`~sk_reweight.losses.CorrectedCrossEntropy`).

    Two trainings: twice the optimizer steps of the other methods.

    Parameters
    ----------
    estimator : skorch NeuralNetClassifier
        With a ``CrossEntropyLoss`` criterion (replaced in step 3).
    random_state : int or None, default=None
        Seeds torch for both trainings (torch's global state is restored).

    Attributes
    ----------
    classes_ : ndarray
        Labels seen in ``y`` and ``y_clean``.
    corruption_ : ndarray of shape (n_classes, n_classes)
        The estimated corruption matrix ``C``.
    estimator_ : skorch NeuralNetClassifier
        The network of step 3.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skorch import NeuralNetClassifier
    >>> from sk_reweight.baselines import GoldLossCorrection
    >>> from sk_reweight.modules import MLP
    >>> net = NeuralNetClassifier(MLP, module__n_features=2, module__n_classes=2, max_epochs=3,
    ...                           criterion=torch.nn.CrossEntropyLoss, train_split=None, verbose=0)
    >>> X = np.random.RandomState(0).randn(80, 2).astype(np.float32)
    >>> y = np.where(X[:, 0] > 0, "yes", "no")
    >>> glc = GoldLossCorrection(net, random_state=0).fit(X[8:], y[8:], X_clean=X[:8], y_clean=y[:8])
    >>> glc.corruption_.shape, glc.predict(X[:2]).dtype.kind
    ((2, 2), 'U')
    """

    def __init__(self, estimator, random_state=None):
        self.estimator = estimator
        self.random_state = random_state

    def fit(self, X, y, *, X_clean=None, y_clean=None, clean_mask=None):
        """Both trainings on ``(X, y)`` and the clean set (``X_clean, y_clean`` or ``clean_mask``).

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            The untrusted inputs.
        y : array-like of shape (n_samples,)
            Their (possibly corrupted) labels.
        X_clean : array-like of shape (n_clean, ...), optional
            The trusted inputs (this method needs them).
        y_clean : array-like of shape (n_clean,), optional
            Their labels.
        clean_mask : array-like of bool of shape (n_samples,), optional
            Marks the trusted rows of ``X`` instead of ``X_clean, y_clean``.

        Returns
        -------
        GoldLossCorrection
            The fitted estimator.
        """
        X, y, X_clean, y_clean = resolve_clean_set(X, y, X_clean, y_clean, clean_mask)[:4]
        if X_clean is None or y_clean is None:
            raise ValueError("GoldLossCorrection needs the trusted set: X_clean and y_clean, or clean_mask.")
        encoder = LabelEncoder().fit(np.concatenate([np.asarray(y), np.asarray(y_clean)]))
        self.classes_ = encoder.classes_
        k = len(self.classes_)
        y_enc, yc_enc = encoder.transform(y), encoder.transform(y_clean)
        with torch.random.fork_rng(devices=[]):
            if self.random_state is not None:
                torch.manual_seed(self.random_state)
            first = clone(self.estimator).set_params(classes=list(range(k))).fit(X, y_enc)
            proba = first.predict_proba(X_clean)
            corruption = np.eye(k, dtype=np.float32)
            for c in range(k):
                if (yc_enc == c).any():
                    corruption[c] = proba[yc_enc == c].mean(axis=0)
            self.corruption_ = corruption
            # trusted examples carry labels k..2k-1: plain cross-entropy for them
            self.estimator_ = clone(self.estimator).set_params(
                criterion=CorrectedCrossEntropy, criterion__corruption=corruption, classes=list(range(k)))
            self.estimator_.fit(stack_rows(X, X_clean), np.concatenate([y_enc, yc_enc + k]))
        return self


def make_baselines(module=None, *, module_params=None, sample_shape=None, lr=1e-3,
                   optimizer=torch.optim.SGD, optimizer_params=None, max_epochs=10,
                   batch_size=100, finetune_epochs=None, clean_batch_size=None,
                   reweight_params=None, random_state=0, device="cpu", include=None,
                   preprocessing=None):
    """Every method, sharing one network and one training recipe.

    Parameters
    ----------
    module : torch.nn.Module class or None, default=None
        Built fresh for every fit, with ``module_params``. ``None``: the
        estimator's default :class:`~sk_reweight.modules.MLP`, sized from
        the (preprocessed) data at fit (``module_params`` may then set
        ``hidden_units`` and ``dropout``).
    module_params : dict, default=None
        Constructor arguments of ``module`` (e.g. ``{"n_classes": 2}``).
    sample_shape : tuple, default=None
        Shape of one example; needed for the samplers when it is not 1-d.
    lr : float, default=1e-3
        The learning rate of every method.
    optimizer : torch.optim.Optimizer class, default=torch.optim.SGD
        The optimizer of every method.
    optimizer_params : dict, default=None
        Further optimizer arguments (``optimizer__*``), e.g. ``{"momentum": 0.9}``.
    max_epochs : int, default=10
        Epochs of every method's training.
    batch_size : int, default=100
        The training batch size of every method.
    finetune_epochs : int, default=None
        Epochs of fine-tuning on the clean set (default: ``max_epochs``).
    clean_batch_size : int, default=None
        For ``reweight``.
    reweight_params : dict, default=None
        Further parameters of ``reweight`` (e.g. the paper-exact setting).
    random_state : int, default=0
        Seeds every method.
    device : str, default='cpu'
        Where every network trains.
    include : iterable of str, default=None
        Names to build (default: all; ``cleanlab`` only if importable).
    preprocessing : transformer, default=None
        E.g. a ``ColumnTransformer`` for a DataFrame with categorical
        columns. Each method then is ``Pipeline([("preprocessing",
        clone(preprocessing)), ("method", method)])``, fitted with the
        trusted rows inside ``X``: ``pipe.fit(X, y,
        method__clean_mask=mask)`` (as :func:`~sk_reweight.comparison.compare`
        does), so every method sees the same transformed features.

    Returns
    -------
    dict
        Name to estimator, in :data:`BASELINE_NAMES` order.

    Examples
    --------
    >>> from sk_reweight.baselines import make_baselines
    >>> from sk_reweight.modules import MLP
    >>> methods = make_baselines(MLP, module_params=dict(n_features=4, n_classes=2), max_epochs=5,
    ...                          include=["plain", "smote", "reweight"])
    >>> list(methods)
    ['plain', 'smote', 'reweight']
    """
    recipe = dict(
        module=module, lr=lr, optimizer=optimizer, max_epochs=max_epochs,
        batch_size=batch_size, train_split=None, verbose=0, device=device,
        **{f"module__{k}": v for k, v in (module_params or {}).items()},
        **{f"optimizer__{k}": v for k, v in (optimizer_params or {}).items()},
    )

    def net(criterion=torch.nn.CrossEntropyLoss):
        return BaselineNet(criterion=criterion, iterator_train__shuffle=True, **recipe)

    def reweighting(**params):
        return ReweightedNeuralNetClassifier(clean_batch_size=clean_batch_size, random_state=random_state,
                                             **recipe, **params)

    def sampled(sampler):
        steps = [("sampler", sampler), ("net", net())]
        if sample_shape is not None and len(sample_shape) > 1:
            flat = (int(np.prod(sample_shape)),)
            steps = [("flatten", Reshape(flat)), steps[0], ("unflatten", Reshape(tuple(sample_shape))),
                     steps[1]]
        return Pipeline(steps)

    def baseline(estimator, clean_set="concat", **kwargs):
        return CleanSetBaseline(estimator, clean_set=clean_set, random_state=random_state, **kwargs)

    builders = {
        "plain": lambda: baseline(net(), "ignore"),
        "class_weight": lambda: baseline(net(), class_weight="balanced"),
        "random_over": lambda: baseline(sampled(RandomOverSampler(random_state=random_state))),
        "random_under": lambda: baseline(sampled(RandomUnderSampler(random_state=random_state))),
        "smote": lambda: baseline(sampled(SMOTE(random_state=random_state))),
        "clean_only": lambda: baseline(net(), "only"),
        "concat": lambda: baseline(net()),
        "finetune": lambda: baseline(net(), "finetune", finetune_epochs=finetune_epochs or max_epochs),
        "cleanlab": _cleanlab_builder(net, baseline, random_state),
        "glc": lambda: GoldLossCorrection(net(), random_state=random_state),
        "bootstrap_soft": lambda: baseline(net(SoftBootstrappingLoss)),
        "bootstrap_hard": lambda: baseline(net(HardBootstrappingLoss)),
        "focal": lambda: baseline(net(FocalLoss)),
        "random_weights": lambda: reweighting(weighting=Weighting(RandomWeighting())),
        "meta_weight_net": lambda: reweighting(weighting=Weighting(MetaNetWeighting())),
        "reweight": lambda: reweighting(**(reweight_params or {})),
    }
    names = BASELINE_NAMES if include is None else tuple(include)
    unknown = set(names) - set(builders)
    if unknown:
        raise ValueError(f"Unknown baselines {sorted(unknown)}; choose from {list(BASELINE_NAMES)}.")
    if include is not None and "cleanlab" in names and builders["cleanlab"] is None:
        raise ImportError("The 'cleanlab' baseline needs cleanlab: pip install 'sk-reweight[benchmarks]'.")
    methods = {name: builders[name]() for name in names if builders[name] is not None}
    if preprocessing is not None:
        methods = {name: SkPipeline([("preprocessing", clone(preprocessing)), ("method", method)])
                   for name, method in methods.items()}
    return methods


def _cleanlab_builder(net, baseline, random_state):
    try:
        from cleanlab.classification import CleanLearning
    except ImportError:
        return None
    # n_jobs=1: cleanlab's own process pool fails inside worker processes (benchmarks' --n-jobs)
    return lambda: baseline(CleanLearning(clf=net(), seed=random_state, cv_n_folds=3, verbose=False,
                                          find_label_issues_kwargs={"n_jobs": 1}))
