"""Data-parallel training: one process per device in a ``torch.distributed`` group.

Every rank is given the same data and trains on its share of each global
batch (rows ``rank, rank + world_size, ...`` of it, as ``DistributedSampler``
deals them). What makes N processes with ``batch_size=b`` the same fit as one
process with ``batch_size=N*b``:

- the global random state is rank 0's at the start of the fit and of every
  epoch, so the permutation of the rows and the clean batches are the same
  on every rank (every rank uses the whole clean batch);
- each step gathers the alignments and losses of the global batch, so the
  weighting policy (its normalisation, its stages and their state) runs on
  the global batch, identically on every rank, and each rank keeps its slice;
- the weighted gradients are summed over ranks (the weights already sum to
  1 over the global batch) and the clean loss's share, which every rank
  holds whole, is divided by the world size first;
- a batch is skipped on every rank or on none, as the global weights say;
- module buffers (batch norm's running statistics) are rank 0's after each
  step, as with ``DistributedDataParallel(broadcast_buffers=True)``. Batch
  statistics are per process, as in DDP without ``SyncBatchNorm``.
"""
import hashlib
import os
from dataclasses import replace

import numpy as np
import torch
import torch.distributed as dist

from .engines import EngineOptions, MetaGradientEngine, get_engine

__all__ = ["DataParallel", "DataParallelEngine", "validated_on_every_rank"]


# torchrun's environment is inherited by the processes a launched script starts (joblib's
# workers of a search), which must train alone: the launched process marks itself when it
# imports sk_reweight, and only it initialises the group from the environment
_LAUNCHED_PID = "SK_REWEIGHT_TORCHRUN_PID"


def _in_torchrun_environment():
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "MASTER_ADDR" in os.environ


def mark_launched_process():
    """Remember (in the environment children inherit) which process torchrun launched."""
    if _in_torchrun_environment() and _LAUNCHED_PID not in os.environ:
        os.environ[_LAUNCHED_PID] = str(os.getpid())


def _launched_by_torchrun():
    return _in_torchrun_environment() and os.environ.get(_LAUNCHED_PID) == str(os.getpid())


mark_launched_process()


def _fingerprint(values):
    """Shape, dtype and a digest of up to 1,024 evenly spaced rows of an array, at most 16 MiB of them
    (``None`` stays ``None``; of anything else, its type and shape)."""
    if values is None:
        return None
    if not isinstance(values, np.ndarray):  # a Dataset's rows (DatasetRows) load item by item: their shape only
        return type(values).__name__, tuple(getattr(values, "shape", (len(values),)))
    if values.ndim == 0:
        return (), str(values.dtype), hashlib.sha256(values.tobytes()).hexdigest()
    row_bytes = max(1, values[:1].nbytes)
    n = min(len(values), 1024, max(1, 2**24 // row_bytes))
    rows = np.unique(np.linspace(0, len(values) - 1, n).round().astype(np.int64))
    return values.shape, str(values.dtype), hashlib.sha256(np.ascontiguousarray(values[rows]).tobytes()).hexdigest()


def validated_on_every_rank(parallel, validate):
    """``validate()``'s fit data; in data-parallel training (``parallel`` not ``None``), checked to be
    the same on every rank (:meth:`DataParallel.check_same_data`), and a rank's failure to validate
    raised on every rank (the others would wait for it)."""
    try:
        data = validate()
    except Exception as exc:
        if parallel is not None:
            parallel.check_same_data(failure=exc)
        raise
    if parallel is not None:  # every rank trains on its share of the same rows
        parallel.check_same_data(X=data.X, y=data.y, X_clean=data.X_clean, y_clean=data.y_clean,
                                 sample_weight=data.sample_weight)
    return data


class DataParallel:
    """This process's part in data-parallel training.

    Parameters
    ----------
    rank, world_size : int
    device : torch.device
        Where collective operations take their tensors (CUDA for NCCL).

    Examples
    --------
    Outside a process group there is nothing to share:

    >>> from sk_reweight._distributed import DataParallel
    >>> DataParallel.join() is None
    True
    """

    def __init__(self, rank, world_size, device):
        self.rank = rank
        self.world_size = world_size
        self.device = torch.device(device)
        self.generator = torch.default_generator  # the fit's own from start()

    @classmethod
    def join(cls):
        """The group this process trains in, or ``None`` when it trains alone.

        Uses the default process group when the script initialised one;
        in a process ``torchrun`` launched (``WORLD_SIZE`` > 1) initialises
        it from the environment (NCCL when CUDA is available, on the GPU of
        ``LOCAL_RANK`` that ``device='auto'`` trains on; else Gloo).
        Processes that one starts (joblib's workers) inherit the environment
        but train alone.
        """
        if not dist.is_available():
            return None
        if not dist.is_initialized():
            if not _launched_by_torchrun():
                return None
            if torch.cuda.is_available():  # NCCL's collectives on this rank's GPU, where device='auto' trains
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if dist.get_world_size() == 1:
            return None
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        return cls(dist.get_rank(), dist.get_world_size(), device)

    def __repr__(self):
        return f"DataParallel(rank={self.rank}, world_size={self.world_size})"

    # ------------------------------------------------------------------
    # the same state on every rank

    def start(self, module, generator):
        """Rank 0's module and random state on every rank, at the start of a fit.

        ``generator``: the CPU generator the fit draws from (the estimator's
        own, or ``torch.default_generator`` without ``random_state``).
        """
        self.generator = generator
        self.broadcast_module(module)
        self.sync_random_state()

    def sync_random_state(self):
        """Give every rank rank 0's state of the fit's CPU generator."""
        state = self.generator.get_state().to(self.device)
        dist.broadcast(state, 0)
        self.generator.set_state(state.cpu())

    def broadcast_module(self, module):
        """Rank 0's parameters and buffers on every rank."""
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                self._broadcast(tensor)

    def broadcast_buffers(self, module):
        with torch.no_grad():
            for tensor in module.buffers():
                self._broadcast(tensor)

    def _broadcast(self, tensor):
        if tensor.device == self.device:
            dist.broadcast(tensor, 0)
        else:
            moved = tensor.to(self.device)
            dist.broadcast(moved, 0)
            tensor.copy_(moved)

    def check_same_data(self, failure=None, **arrays):
        """Raise on every rank unless every rank was given the same, valid ``arrays``.

        Each rank trains on its share of global batches that rank 0's random
        state draws as positions: ranks with other rows would train on other
        examples under the same positions, and nothing else would show it.
        Compared are each array's shape, dtype and up to 1,024 evenly spaced
        rows (at most 16 MiB: cheap whatever the size; differences elsewhere go
        unseen); of a torch ``Dataset``'s rows, which load item by item, only
        their shape. Every rank takes part in the one exchange, so all raise
        or none, and no rank is left waiting for another that failed.

        Parameters
        ----------
        failure : Exception or None, default=None
            Why this rank could not get its data ready (e.g. validation's
            error); the other ranks raise too, this one returns for its caller
            to raise it.
        **arrays : numpy.ndarray or None
            The data, by name (``X``, ``y``, ``X_clean``, ...).

        Raises
        ------
        ValueError
            Another rank failed, or some rank's arrays differ from rank 0's:
            names the ranks and the arrays.
        """
        try:
            mine = {"failure": None if failure is None else f"{type(failure).__name__}: {failure}",
                    "arrays": {name: _fingerprint(values) for name, values in arrays.items()}}
        except Exception as exc:  # e.g. memory: the others must still hear of it
            mine = {"failure": f"{type(exc).__name__}: {exc}", "arrays": {}}
        everyone = [None] * self.world_size
        dist.all_gather_object(everyone, mine)  # every rank sees every rank's: all raise, or none
        failed = {rank: theirs["failure"] for rank, theirs in enumerate(everyone) if theirs["failure"]}
        if failed:
            if failure is not None:
                return  # the caller raises its own error
            rank, reason = next(iter(failed.items()))
            raise ValueError(f"Rank(s) {sorted(failed)} of this data-parallel fit could not start it (rank {rank}: "
                             f"{reason}); every rank stops. Fix the data on those ranks.")
        first = everyone[0]["arrays"]
        differ = [name for name in first if any(theirs["arrays"][name] != first[name] for theirs in everyone)]
        if differ:
            ranks = [rank for rank, theirs in enumerate(everyone) if theirs["arrays"] != first]
            raise ValueError(
                f"The {self.world_size} processes of this data-parallel fit were given different "
                f"{', '.join(differ)}: rank(s) {ranks} differ from rank 0. Every rank trains on its share of "
                "the same global batches, so every rank must be given the same data: load or generate it the "
                "same way on each (a fixed random_state for random splits), or train in one process.")

    def agree(self, value):
        """Rank 0's ``value`` (any picklable object)."""
        box = [value]
        dist.broadcast_object_list(box, 0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    # ------------------------------------------------------------------
    # one reweighted step

    def shard(self, rows):
        """This rank's share of a global batch: every ``world_size``-th row from ``rank``."""
        return rows[self.rank::self.world_size]

    def gather(self, local):
        """The global batch's values, in its order, from each rank's ``local`` share.

        ``local`` has shape ``(k, n_local)``; returns shape ``(k, n_global)``.
        """
        count = torch.tensor([local.shape[1]], device=self.device)
        counts = [torch.empty_like(count) for _ in range(self.world_size)]
        dist.all_gather(counts, count)
        counts = [int(c) for c in counts]
        padded = local.new_zeros((local.shape[0], max(counts)))
        padded[:, :local.shape[1]] = local
        parts = [torch.empty_like(padded, device=self.device) for _ in range(self.world_size)]
        dist.all_gather(parts, padded.to(self.device))
        merged = local.new_empty((local.shape[0], sum(counts)))
        for rank, (part, n) in enumerate(zip(parts, counts)):
            merged[:, rank::self.world_size] = part[:, :n].to(local.device)
        return merged

    def weigh_globally(self, weigh, record):
        """Wrap an engine's ``weigh(alignment, losses)`` to weigh the global batch.

        The wrapper gathers the alignments and losses of all ranks, applies
        ``weigh`` to them, stores the global ``alignment``, ``losses`` and
        ``weights`` in the dict ``record`` and returns this rank's share.
        """
        def weigh_global(alignment, losses, **folds):  # fold_alignment: cross-fitting's columns
            rows = [alignment.detach()[None], losses.detach().to(alignment.dtype)[None]]
            rows += [f.detach().T.to(alignment.dtype) for f in folds.values()]  # (n_folds, n): rows too
            gathered = self.gather(torch.cat(rows))  # a rank with no rows of a short batch has (k, 0)
            alignment, losses = gathered[0], gathered[1]
            weights = weigh(alignment, losses, **{k: gathered[2:].T for k in folds})
            record.update(alignment=alignment, losses=losses, weights=weights)
            return self.shard(weights)
        return weigh_global

    def wrap_engine(self, engine, module):
        """Rank 0's choice of engine, wrapped to train data-parallel."""
        name = self.agree(engine.name)
        if name != engine.name:  # 'auto' checked the fast engine on each rank's hardware
            engine = get_engine(name, module)
        return DataParallelEngine(engine, self)

    def all_reduce_gradients(self, module):
        """``.grad`` summed over ranks (``None`` where no rank has a gradient), in one call."""
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            return
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        flags = torch.tensor([p.grad is not None for p in params], dtype=grads[0].dtype,
                             device=grads[0].device)
        flat = torch.cat([g.reshape(-1) for g in grads] + [flags]).to(self.device)
        dist.all_reduce(flat)
        flat = flat.to(grads[0].device)
        flags = flat[-len(params):]
        offset = 0
        for p, g, flag in zip(params, grads, flags.tolist()):
            size = g.numel()
            p.grad = flat[offset:offset + size].view_as(p).clone() if flag else None
            offset += size


class DataParallelEngine(MetaGradientEngine):
    """An engine's step, taken by every rank on its share of the global batch.

    Weights come from the global batch, gradients are summed over ranks and
    the returned :class:`~sk_reweight.engines.MetaStep` holds the global
    batch's alignments, losses and weights (the output ``y_pred`` stays this
    rank's).

    Parameters
    ----------
    engine : MetaGradientEngine
    parallel : DataParallel

    Examples
    --------
    >>> from sk_reweight._distributed import DataParallel, DataParallelEngine
    >>> from sk_reweight.engines import ForwardModeEngine
    >>> DataParallelEngine(ForwardModeEngine(), DataParallel(0, 2, "cpu"))
    DataParallelEngine(ForwardModeEngine(), DataParallel(rank=0, world_size=2))
    """

    def __init__(self, engine, parallel):
        self.engine = engine
        self.parallel = parallel

    @property
    def name(self):
        return self.engine.name

    def unsupported_reason(self, module):
        return self.engine.unsupported_reason(module)

    def reweighted_backward(self, module, loss_fn, X, y, X_clean, y_clean, weigh, clean_weight=0.0,
                            loss_scale=None, **options):
        record = {}  # options (clean_trim, clean_cap) pass through: the whole clean batch is on every rank
        # every rank holds the whole clean gradient: its share of the sum is 1 / world_size
        options = EngineOptions(clean_weight=clean_weight / self.parallel.world_size, loss_scale=loss_scale,
                                **options)
        step = self.engine.reweighted_backward(
            module, loss_fn, X, y, X_clean, y_clean, self.parallel.weigh_globally(weigh, record),
            **options.for_engine(self.engine))
        self.parallel.all_reduce_gradients(module)
        self.parallel.broadcast_buffers(module)
        return replace(step, **record)

    def __repr__(self):
        return f"DataParallelEngine({self.engine!r}, {self.parallel!r})"
