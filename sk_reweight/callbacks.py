"""Callbacks: the weight record and the training stages after the reweighted epochs.

Both go through skorch's fit loop, so every callback a user adds
(``Checkpoint``, ``GradientNormClipping``, LR schedulers, progress bars)
sees their epochs and batches too. History rows say which stage they
belong to (``net.history[:, 'stage']``: ``'reweight'`` or a stage's
``name``).
"""
import inspect
import math
import os
import pickle
import warnings

import numpy as np
from skorch import NeuralNet
from skorch import callbacks as skorch_callbacks
from skorch.callbacks import Callback

from ._fit_state import FitContext
from ._persistence import atomic_files
from .exceptions import TrainingDivergedError

__all__ = ["WeightRecorder", "TrainingStage", "FineTuneOnClean", "FitContext", "PrintLog", "Checkpoint"]


def stage_iterator(stage, net, context):
    """``stage.get_iterator(net, context)``; a stage written for 0.2's ``get_iterator(net)`` still
    works, with a FutureWarning (until 0.4)."""
    try:
        inspect.signature(stage.get_iterator).bind(net, context)
    except TypeError:
        warnings.warn(f"{type(stage).__name__}.get_iterator(net) is deprecated since 0.3: define "
                      "get_iterator(net, context), context being the FitContext.", FutureWarning, stacklevel=2)
        return stage.get_iterator(net)
    return stage.get_iterator(net, context)


def _echo(text):
    """``print(text)``, with ``print`` looked up at call time.

    A net holding this (rather than the ``print`` object itself) pickles
    wherever ``builtins.print`` has been replaced, as Ray's workers do.

    Examples
    --------
    >>> from sk_reweight.callbacks import _echo
    >>> _echo("epoch 1")
    epoch 1
    """
    print(text)


echo = _echo  # private: nets pickled by 0.2 name their PrintLog's sink by this name


class PrintLog(skorch_callbacks.PrintLog):
    """The per-epoch table of skorch's ``PrintLog``, picklable and quiet under Ray.

    skorch's ``PrintLog`` holds the ``print`` object and prints whatever
    ``verbose`` says once ``print`` is no longer that object; Ray replaces
    ``builtins.print`` in its workers, so searches printed tables at
    ``verbose=0`` and nets failed to pickle. This one's default sink is
    ``print`` looked up at call time and it prints only when ``net.verbose``
    is set (any other sink is called every epoch, as in skorch). The
    estimator uses it as its ``print_log`` callback.

    Parameters
    ----------
    keys_ignored : str or list of str, optional
        History keys left out of the table (besides skorch's defaults).
    sink : callable, optional
        Called with each line of the table; default: ``print``, when
        ``net.verbose`` is set.
    tablefmt : str, default='simple'
        The table format (see ``tabulate``).
    floatfmt : str, default='.4f'
        The number format.
    stralign : str, default='right'
        How text columns are aligned.

    Examples
    --------
    >>> import pickle
    >>> from sk_reweight.callbacks import PrintLog
    >>> log = pickle.loads(pickle.dumps(PrintLog()))
    >>> log.sink.__name__
    '_echo'
    """

    def __init__(self, keys_ignored=None, sink=_echo, tablefmt="simple", floatfmt=".4f", stralign="right"):
        super().__init__(keys_ignored=keys_ignored, sink=sink, tablefmt=tablefmt, floatfmt=floatfmt,
                         stralign=stralign)

    def _sink(self, text, verbose):
        if self.sink is not _echo or verbose:
            self.sink(text)


class Checkpoint(skorch_callbacks.Checkpoint):
    """The ``Checkpoint`` of skorch, whose ``f_pickle`` is replaced atomically too.

    skorch opens ``f_pickle`` for writing (emptying it) before pickling the
    net, so a crash or a failing pickle in the middle leaves neither the old
    checkpoint nor a new one. This one pickles into a temporary file in the
    same folder and renames it over the old one once it is complete and on
    disk; the other files go through the estimator's ``save_params``, which
    does the same.

    Parameters
    ----------
    monitor : str, callable or None, default='valid_loss_best'
        When to save: a history key that is true on the epochs to save, a
        callable of the net, or ``None`` for every epoch.
    f_params : str, path or None, default='params.pt'
        File of the module's parameters.
    f_optimizer : str, path or None, default='optimizer.pt'
        File of the optimizer's state.
    f_criterion : str, path or None, default='criterion.pt'
        File of the criterion's state.
    f_history : str, path or None, default='history.json'
        File of the training history.
    f_pickle : str, path or None, default=None
        File of the whole pickled net.
    fn_prefix : str, default=''
        Prefix of every file name.
    dirname : str, default=''
        Folder of the files.
    event_name : str or None, default='event_cp'
        History key recording the epochs saved.
    sink : callable, optional
        Called with a message on each save (default: nothing).
    load_best : bool, default=False
        Load the best checkpoint at the end of training.
    use_safetensors : bool, default=False
        Save with safetensors.
    **kwargs
        ``f_<attribute>`` files of other attributes with a ``state_dict``
        (``f_weight_history``, ``f_weighting``, ``f_rng``).

    Examples
    --------
    >>> from sk_reweight.callbacks import Checkpoint
    >>> Checkpoint(monitor=None, f_pickle="model.pkl", dirname="checkpoints").f_pickle
    'model.pkl'
    """

    def save_model(self, net):
        f_pickle, self.f_pickle = self.f_pickle, None
        try:
            super().save_model(net)
        finally:
            self.f_pickle = f_pickle
        if not f_pickle:
            return
        target = self._format_target(net, f_pickle, -1)
        if not isinstance(target, (str, os.PathLike)):  # a file object: the caller's to manage
            pickle.dump(net, target)
            return
        with atomic_files({"f_pickle": target}) as files, open(files["f_pickle"], "wb") as f:
            pickle.dump(net, f)


def with_our_print_log(callbacks):
    """A net's default ``(name, callback)`` list with :class:`PrintLog` as its ``print_log``.

    The table leaves out ``weight_mean``, which is 1 in every epoch (``weight_ess`` moves).
    """
    return [(name, PrintLog(keys_ignored=["weight_mean"]) if name == "print_log" else cb)
            for name, cb in callbacks]


def _reweighting(net):
    return net.history[-1].get("stage", "reweight") == "reweight"


class WeightRecorder(Callback):
    """Keeps the weight each training example received, epoch by epoch.

    Writes the weights of every reweighted batch (on the scale where 1 is
    uniform) and its alignments into ``net.weight_history_``, and per batch ``clean_loss``,
    ``zero_frac`` and ``skipped``, per epoch ``weight_mean`` (1 by
    construction), ``weight_ess`` (the effective share of examples trained
    on, ``(sum w)^2 / (n sum w^2)``: 1 for uniform weights, near 0 when a few
    examples get all the weight), ``weight_zero_frac`` and
    ``skipped_batches`` into ``net.history`` (with float16 loss scaling
    also ``overflow_steps``, the steps skipped because the scaled gradients
    overflowed). :class:`~sk_reweight.ReweightedNeuralNetClassifier` adds it by itself.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sk_reweight import ReweightedNeuralNetClassifier
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> net = ReweightedNeuralNetClassifier(max_epochs=2, random_state=0)
    >>> net = net.fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])
    >>> net.weight_history_.to_array().shape, "weight_zero_frac" in net.history[-1]
    ((2, 180), True)
    """

    def on_epoch_begin(self, net, **kwargs):
        if _reweighting(net):
            net.weight_history_.new_epoch(net.fit_context_.n_train)

    def on_batch_end(self, net, training=False, weights=None, alignment=None, positions=None,
                     skipped=False, clean_loss=None, diverged=False, overflow=False, **kwargs):
        if training and diverged:  # on_divergence='skip': the step was skipped
            net.history.record_batch("diverged", True)
        if training and overflow:  # float16: the loss scale was lowered, the step skipped
            net.history.record_batch("overflow", True)
        if not training or weights is None:
            return
        net.weight_history_.record(positions, weights, alignment)
        # data parallel: the loss is the global batch's, so is the size that weighs it in train_loss
        net.history.record_batch("train_batch_size", len(weights))
        net.history.record_batch("skipped", skipped)
        net.history.record_batch("clean_loss", clean_loss.item())
        net.history.record_batch("zero_frac", float((weights == 0).mean()))

    def on_epoch_end(self, net, **kwargs):
        if not _reweighting(net):
            return
        row = net.weight_history_.current
        trained = row[~np.isnan(row)]
        net.history.record("weight_mean", float(trained.mean()) if trained.size else float("nan"))
        # the mean is 1 by construction; the effective share of examples trained on moves:
        # 1 for uniform weights, 1/n when one example gets all the weight
        squares = float((trained.astype(np.float64) ** 2).sum())
        net.history.record("weight_ess", float(trained.sum(dtype=np.float64) ** 2 / (trained.size * squares))
                           if squares > 0 else 0.0)
        net.history.record(
            "weight_zero_frac", float((trained == 0).mean()) if trained.size else float("nan")
        )
        batches = net.history[-1, "batches"]
        net.history.record("skipped_batches", int(sum(b.get("skipped", 0) for b in batches)))
        net.history.record("diverged_steps", int(sum(b.get("diverged", 0) for b in batches)))
        if getattr(net, "loss_scale_", None) is not None:
            net.history.record("overflow_steps", int(sum(b.get("overflow", 0) for b in batches)))


class TrainingStage(Callback):
    """Base class of stages that train ``epochs`` more epochs after the reweighted ones.

    The estimator runs a stage's epochs in the same skorch fit loop, after
    ``max_epochs`` reweighted epochs, in the order the stages appear in
    ``callbacks``; during them its batches come from :meth:`get_iterator`
    and each step from :meth:`train_step_single`. Ctrl-C or early stopping
    ends the fit, later stages included. What a stage may read of the fit
    (the clean set, the epoch, the weights so far) is the
    :class:`FitContext` passed to :meth:`get_iterator` (also
    ``net.fit_context_`` for the duration of the fit).

    Parameters
    ----------
    epochs : int
        The number of epochs the stage trains.

    Examples
    --------
    See :class:`FineTuneOnClean`, the fine-tuning stage; a stage of your
    own goes into ``callbacks`` too:

    >>> from sk_reweight.callbacks import TrainingStage
    >>> class CleanPasses(TrainingStage):
    ...     name = "clean_passes"
    ...     def get_iterator(self, net, context):
    ...         return [context.clean_batch()]
    ...     def train_step_single(self, net, batch, **fit_params):
    ...         ...
    """

    name = None

    def __init__(self, epochs):
        self.epochs = epochs

    def get_iterator(self, net, context):
        """Return the training batches of one epoch of the stage.

        Parameters
        ----------
        net : ReweightedNeuralNetClassifier
        net : ReweightedNeuralNetClassifier
            The estimator being fitted.
        context : FitContext
            What the fit holds (the clean set, its batches, the epoch, the weights so far).

        Returns
        -------
        iterable of tuple
            ``(X, y)`` batches, ``y`` as class indices.
        """
        raise NotImplementedError

    def train_step_single(self, net, batch, **fit_params):
        """Compute the loss and the gradients of one batch.

        Parameters
        ----------
        net : ReweightedNeuralNetClassifier
            The estimator being fitted.
        batch : tuple
            ``(X, y)``, a batch from :meth:`get_iterator`.
        **fit_params
            The fit parameters, as skorch passes them.

        Returns
        -------
        dict
            The step dict skorch expects: ``'loss'`` (a tensor) and ``'y_pred'``.
        """
        raise NotImplementedError


class FineTuneOnClean(TrainingStage):
    """Plain (unweighted) training on the clean set (formerly ``finetune_epochs``).

    Each epoch is one pass over the clean set in batches of the clean batch
    size, with the network's optimizer. Add it to ``callbacks`` (it
    replaces the deprecated ``finetune_epochs``). Training on the clean set
    spends the signal that steers the weights (the docs' benchmark pages,
    "Long runs").

    Parameters
    ----------
    epochs : int
        Passes over the clean set.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sk_reweight import ReweightedNeuralNetClassifier
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> from sk_reweight.callbacks import FineTuneOnClean
    >>> net = ReweightedNeuralNetClassifier(max_epochs=2, callbacks=[FineTuneOnClean(3)], random_state=0)
    >>> net = net.fit(X[20:], y[20:], X_clean=X[:20], y_clean=y[:20])
    >>> list(net.history[:, "stage"])
    ['reweight', 'reweight', 'finetune', 'finetune', 'finetune']
    """

    name = "finetune"

    def get_iterator(self, net, context):
        state = context
        n_batches = -(-len(state.X_clean) // state.clean_batches.batch_size)
        return (state.clean_batch() for _ in range(n_batches))

    def train_step_single(self, net, batch, **fit_params):
        # skorch's own step: the mean loss of the batch, no weights
        step = NeuralNet.train_step_single(net, batch, **fit_params)
        value = step["loss"].item()
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"Fine-tuning on the clean set diverged in epoch {len(net.history)}: the loss "
                f"is {value}. Lower the learning rate or the fine-tuning epochs."
            )
        return {**step, "skipped": False}
