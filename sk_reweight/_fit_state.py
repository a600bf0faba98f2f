"""What one call to fit/partial_fit needs beyond the estimator's parameters."""
from dataclasses import dataclass, field

import torch

from ._divergence import DivergenceGuard
from ._params import check_clean_trim, resolve_clean_batch_size
from ._sampling import CleanBatchCycler, RecordingBatchSampler, StratifiedCleanBatchCycler


@dataclass
class FitState:
    """The clean set on the device, its batch order, and the stage of training.

    ``epochs``: the reweighted epochs of this call; ``epochs_begun``: the
    epochs started so far, all stages included; ``stage``: the
    :class:`~sk_reweight.callbacks.TrainingStage` running now (``None``:
    reweighted training). ``n_train`` counts the rows of the ``X`` given,
    trusted rows marked by ``clean_mask`` included; ``rows`` maps training
    rows to their positions there (``None``: the same); ``parallel`` is the
    data-parallel group this process trains in (``None``: alone);
    ``generators`` the fit's :class:`~sk_reweight._random.OwnGenerators`
    (``None``: unseeded, torch's global random state); ``engine_options`` the
    keywords each step passes to the engine beyond the interface's first
    ones (only those set: an engine of one's own need not know them).
    """

    n_train: int
    X_clean: torch.Tensor
    y_clean: torch.Tensor
    clean_batches: CleanBatchCycler
    sample_weight: torch.Tensor = None
    sampler: RecordingBatchSampler = None
    epochs: int = 0
    epochs_begun: int = 0
    stage: object = None
    stages: list = field(default_factory=list)
    rows: object = None
    guard: DivergenceGuard = field(default_factory=DivergenceGuard)
    parallel: object = None
    generators: object = None
    engine_options: dict = field(default_factory=dict)

    @property
    def generator(self):
        """The CPU generator the fit draws from: its own, or torch's global one when unseeded."""
        return torch.default_generator if self.generators is None else self.generators.cpu

    def training_sampler(self, dataset, kwargs, batch_size):
        """The batch sampler of an epoch over ``dataset`` (kept as :attr:`sampler`); takes
        ``batch_size``, ``shuffle`` and ``drop_last`` out of the iterator's ``kwargs``."""
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
        idx = self.clean_batches.next_indices().to(self.X_clean.device)
        return self.X_clean[idx], self.y_clean[idx]

    def begin_epoch(self):
        """Move to the next epoch; returns the stage it belongs to (``None``: reweighted)."""
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


def _is_zero(value):
    return isinstance(value, (int, float)) and value == 0


def make_fit_state(data, batch_size, clean_batch_size, clean_sampling, device, parallel=None, generators=None,
                   engine_options=None):
    """The fit state of validated data (see :func:`~sk_reweight._validation.validate_fit_data`)."""
    batch_size = batch_size if batch_size != -1 else len(data.X)
    if parallel is not None:  # batch_size is per process; the clean batch serves the global one
        batch_size *= parallel.world_size
    size = resolve_clean_batch_size(clean_batch_size, len(data.X_clean), batch_size)
    engine_options = engine_options or {}
    check_clean_trim(engine_options.get("clean_trim", 0), size)
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
    return FitState(
        n_train=data.n_rows,
        rows=data.rows,
        X_clean=torch.as_tensor(data.X_clean, device=device),
        y_clean=torch.as_tensor(data.y_clean, device=device),
        clean_batches=clean_batches,
        sample_weight=sample_weight,
        parallel=parallel,
        generators=generators,
        # only options that are set: an engine of one's own need not know them
        engine_options={k: v for k, v in engine_options.items() if v is not None and not _is_zero(v)},
    )
