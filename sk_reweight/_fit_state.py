"""What one call to fit/partial_fit needs beyond the estimator's parameters: the fit context.

Public through :mod:`sk_reweight.callbacks` (:class:`FitContext`).
"""
from dataclasses import dataclass, field

import torch

from ._divergence import DivergenceGuard
from ._params import check_clean_trim, resolve_clean_batch_size
from ._sampling import CleanBatchCycler, RecordingBatchSampler, StratifiedCleanBatchCycler
from .engines import EngineOptions


@dataclass
class FitContext:
    """What a stage, callback or engine may read during a fit: ``net.fit_context_``.

    The estimator creates one at the start of every ``fit``/``partial_fit``,
    keeps it in its public attribute ``fit_context_`` for the duration of
    the call (deleted when it ends) and passes it to
    :meth:`~sk_reweight.callbacks.TrainingStage.get_iterator`. Treat it as
    read-only, except for drawing clean batches with :meth:`clean_batch`.

    Parameters
    ----------
    n_train : int
        Rows of the ``X`` given to ``fit``, trusted rows marked by
        ``clean_mask`` included (the columns of ``sample_weights_``).
    X_clean, y_clean : torch.Tensor
        The whole clean set on the device (``y_clean``: class indices).
    clean_batches : CleanBatchCycler
        The order of the clean batches (``clean_batches.batch_size``: the clean batch size).
    sample_weight : torch.Tensor of shape (n_train,) or None, default=None
        ``fit``'s ``sample_weight`` by position.
    sampler : RecordingBatchSampler, default=None
        The estimator's own bookkeeping: the current epoch's batch sampler
        (set by :meth:`training_sampler`).
    epochs : int, default=0
        The reweighted epochs of this call.
    epochs_begun : int, default=0
        The epochs begun so far in this call, training stages included.
    stage : TrainingStage or None, default=None
        The training stage running now (``None``: reweighted training).
    stages : list of TrainingStage, default=[]
        The training stages after the reweighted epochs, in order.
    rows : ndarray of int or None, default=None
        The estimator's own bookkeeping: the positions of the trained rows
        in the ``X`` given to ``fit`` (with ``clean_mask``).
    guard : DivergenceGuard, default=DivergenceGuard()
        The estimator's own bookkeeping: the state put back when a step diverges.
    parallel : object, default=None
        The estimator's own bookkeeping: the distributed training in use, if any.
    generators : object, default=None
        The estimator's own bookkeeping: the fit's seeded generators
        (``None`` when unseeded).
    engine_options : EngineOptions, default=EngineOptions()
        The options every step passes to the engine (``clean_weight`` and
        ``loss_scale`` are set per step).
    weighting : Weighting, default=None
        The policy and stages making this fit's weights (the estimator's ``weighting_``).
    weight_history : WeightHistory, default=None
        The weights and alignments so far (the estimator's ``weight_history_``;
        the current epoch's row is ``weight_history.current``).
    step : int, default=0
        The reweighted steps taken so far in this call (skipped ones included).

    Attributes
    ----------
    generator : torch.Generator
        The CPU generator the fit draws from (torch's global one when unseeded).

    Notes
    -----
    The parameters are also attributes of the same names. ``sampler``,
    ``rows``, ``guard``, ``parallel`` and ``generators`` are the
    estimator's own bookkeeping, not part of this interface.

    Examples
    --------
    A training stage that takes one clean batch per epoch:

    >>> from sk_reweight.callbacks import TrainingStage
    >>> class OneCleanBatch(TrainingStage):
    ...     name = "one_clean_batch"
    ...     def get_iterator(self, net, context):
    ...         return [context.clean_batch()]
    """

    n_train: int
    X_clean: torch.Tensor
    y_clean: torch.Tensor
    clean_batches: object  # CleanBatchCycler (private types: the API page's signature links none)
    sample_weight: torch.Tensor = None
    sampler: object = None
    epochs: int = 0
    epochs_begun: int = 0
    stage: object = None
    stages: list = field(default_factory=list)
    rows: object = None
    guard: object = field(default_factory=DivergenceGuard)
    parallel: object = None
    generators: object = None
    engine_options: EngineOptions = field(default_factory=EngineOptions)
    weighting: object = None
    weight_history: object = None
    step: int = 0

    @property
    def generator(self):
        """The CPU generator the fit draws from: its own, or torch's global one when unseeded."""
        return torch.default_generator if self.generators is None else self.generators.cpu

    def training_sampler(self, dataset, kwargs, batch_size):
        """The batch sampler of an epoch over ``dataset``, kept as ``sampler``.

        Parameters
        ----------
        dataset : torch.utils.data.Dataset
            The epoch's training data (a ``Subset`` of it after ``train_split``).
        kwargs : dict
            The training iterator's arguments; ``batch_size``, ``shuffle``
            and ``drop_last`` are taken out of it.
        batch_size : int
            The batch size when ``kwargs`` has none (``-1``: the whole dataset).

        Returns
        -------
        RecordingBatchSampler
            The sampler, which records the positions of each batch's rows.
        """
        batch_size = kwargs.pop("batch_size", batch_size)
        positions = getattr(dataset, "indices", None)  # a Subset from train_split
        if self.rows is not None:  # positions in the X given to fit (clean_mask)
            positions = self.rows[slice(None) if positions is None else positions]
        self.sampler = RecordingBatchSampler(
            len(dataset), len(dataset) if batch_size == -1 else batch_size, shuffle=kwargs.pop("shuffle", True),
            drop_last=kwargs.pop("drop_last", False), positions=positions, parallel=self.parallel,
            generator=self.generator)
        return self.sampler

    def clean_batch(self):
        """The next clean mini-batch on the device.

        Returns
        -------
        X : torch.Tensor
            The batch's rows of ``X_clean``.
        y : torch.Tensor
            Their labels, as class indices.
        """
        idx = self.clean_batches.next_indices().to(self.X_clean.device)
        return self.X_clean[idx], self.y_clean[idx]

    def begin_epoch(self):
        """Move to the next epoch.

        Returns
        -------
        TrainingStage or None
            The stage the epoch belongs to (``None``: a reweighted epoch).
        """
        past = self.epochs_begun - self.epochs
        self.epochs_begun += 1
        self.stage = None
        for stage in self.stages:
            if past < 0:
                break
            if past < stage.epochs:
                self.stage = stage
                break
            past -= stage.epochs
        return self.stage


def make_fit_context(data, batch_size, clean_batch_size, clean_sampling, device, parallel=None, generators=None,
                     weighting=None, weight_history=None, class_weight=None):
    """The fit context of validated data (see :func:`~sk_reweight._validation.validate_fit_data`);
    the engine options come from ``weighting`` and the criterion's ``class_weight``."""
    batch_size = batch_size if batch_size != -1 else len(data.X)
    if parallel is not None:  # batch_size is per process; the clean batch serves the global one
        batch_size *= parallel.world_size
    size = resolve_clean_batch_size(clean_batch_size, len(data.X_clean), batch_size)
    engine_options = EngineOptions(clean_class_weight=class_weight) if weighting is None else EngineOptions(
        clean_trim=weighting.clean_trim, clean_cap=weighting.clean_cap, clean_folds=weighting.clean_folds,
        clean_class_weight=class_weight)
    check_clean_trim(engine_options.clean_trim, size)
    generator = None if generators is None else generators.cpu
    if clean_sampling == "stratified":
        clean_batches = StratifiedCleanBatchCycler(data.y_clean, size, generator)
    else:
        clean_batches = CleanBatchCycler(len(data.X_clean), size, generator)
    sample_weight = None
    if data.sample_weight is not None:  # indexed by position in the X given
        sample_weight = torch.zeros(data.n_rows, device=device)
        sample_weight[data.rows if data.rows is not None else slice(None)] = torch.tensor(
            data.sample_weight, device=device)
    return FitContext(
        n_train=data.n_rows,
        rows=data.rows,
        X_clean=torch.as_tensor(data.X_clean, device=device),
        y_clean=torch.as_tensor(data.y_clean, device=device),
        clean_batches=clean_batches,
        sample_weight=sample_weight,
        parallel=parallel,
        generators=generators,
        engine_options=engine_options,
        weighting=weighting,
        weight_history=weight_history,
    )
