"""``save_params``/``load_params`` that never leave half-written files or half-loaded models.

- Every file given as a path is written to a temporary file in the same
  folder, flushed to disk and renamed over the old one, so a failed or
  killed save leaves the previous file whole.
- ``f_params`` also holds what ``predict`` needs besides the network (the
  classes and the input shape), so ``load_params`` restores a model that
  predicts the user's labels, and builds the default MLP of ``module=None``;
  and a SHA-256 checksum of the parameters and of every file saved with it
  (written last, after them), so damaged bits and mixed sets are refused.
- ``load_params`` reads every file (with torch's weights-only loading) and
  checks the parameters against the network before changing anything; a
  file that fails to load leaves the whole model as it was.
"""
import contextlib
import copy
import hashlib
import os
import tempfile

import numpy as np
import torch
from skorch.history import History
from skorch.utils import get_map_location

DATA_KEY = "sk_reweight.data"


def data_description(net):
    """What ``predict`` needs besides the network, as weights-only-loadable values."""
    described = {"classes": np.asarray(net.classes_).tolist(), "sample_shape": list(net.sample_shape_)}
    if hasattr(net, "n_features_in_"):
        described["n_features_in"] = int(net.n_features_in_)
    if hasattr(net, "feature_names_in_"):
        described["feature_names_in"] = [str(name) for name in net.feature_names_in_]
    return described


def parameters_checksum(state_dict):
    """SHA-256 of the tensors of ``state_dict`` in key order (flipped bits change it)."""
    digest = hashlib.sha256()
    for key in sorted(k for k in state_dict if torch.is_tensor(state_dict[k])):
        digest.update(key.encode())
        digest.update(state_dict[key].detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def file_checksum(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_saved_together(saved_with, files, f_params):
    """Files saved in one ``save_params`` call with ``f_params`` must be the ones given now."""
    for key, path in files.items():
        if key in saved_with and isinstance(path, (str, os.PathLike)) and file_checksum(path) != saved_with[key]:
            raise ValueError(
                f"{key}={str(path)!r} is not the file saved with {f_params!r} (its checksum differs): "
                "a mixed set of files, or a damaged one. Load files saved together. The model is "
                "unchanged."
            )


def restore_data_description(net, described):
    if net.classes is None:
        net.classes_inferred_ = np.asarray(described["classes"])
    net.sample_shape_ = tuple(described["sample_shape"])
    if "n_features_in" in described:
        net.n_features_in_ = described["n_features_in"]
    if "feature_names_in" in described:
        net.feature_names_in_ = np.asarray(described["feature_names_in"], dtype=object)


@contextlib.contextmanager
def atomic_files(files):
    """Yield ``files`` with every path replaced by a temporary one; on success rename them over."""
    temporary = {}
    try:
        for key, target in files.items():
            if isinstance(target, (str, os.PathLike)):
                folder = os.path.dirname(os.path.abspath(target))
                handle, temporary[key] = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(target)}.",
                                                          suffix=".tmp")
                os.close(handle)
        yield {key: temporary.get(key, target) for key, target in files.items()}
        for path in temporary.values():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        for key, path in temporary.items():
            os.replace(path, files[key])
            temporary[key] = None
    finally:
        for path in temporary.values():
            if path is not None and os.path.exists(path):
                os.remove(path)


def check_same_architecture(module, state_dict, source):
    """A clear error, before anything changes, when ``state_dict`` does not fit ``module``."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state_dict)
                    if torch.is_tensor(state_dict[k]) and state_dict[k].shape != expected[k].shape)
    if missing or unexpected or shapes:
        details = "; ".join(f"{what}: {keys[:5]}" for what, keys in
                            (("missing", missing), ("unexpected", unexpected), ("other shapes", shapes)) if keys)
        raise ValueError(
            f"{source} holds the parameters of another network ({details}). Build the "
            "estimator with the module and module__* parameters it was saved with. The model "
            "is unchanged."
        )


def read_params(f_params, device):
    """``(state_dict, data description or None)`` from an ``f_params`` file, weights only."""
    try:
        state = torch.load(f_params, map_location=get_map_location(device), weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"Could not read the parameters from {f_params!r} ({type(exc).__name__}: {exc}). "
            "The file is damaged, incomplete or not a saved state. The model is unchanged."
        ) from exc
    if not isinstance(state, dict):
        raise ValueError(f"{f_params!r} holds a {type(state).__name__}, not saved parameters.")
    state = dict(state)
    described = state.pop(DATA_KEY, None)
    if described is not None and described.get("sha256") not in (None, parameters_checksum(state)):
        raise ValueError(
            f"The parameters in {f_params!r} do not match the checksum saved with them: the "
            "file was damaged after it was written. The model is unchanged."
        )
    return state, described


class PersistenceMixin:
    """For :class:`~sk_reweight.ReweightedNeuralNetClassifier`: atomic saves, complete restores."""

    def save_params(self, f_params=None, f_optimizer=None, f_criterion=None, f_history=None,
                    use_safetensors=False, **kwargs):
        """Save the model's state to files, each replaced atomically.

        As skorch's :meth:`~skorch.net.NeuralNet.save_params`, and each file is first written
        beside its target and then renamed over it, so an interrupted save leaves the previous
        file intact. ``f_params`` also records the data description (classes, input shape), a
        checksum of the parameters and of the files saved with it, so that :meth:`load_params`
        can restore into a fresh estimator and refuse files that do not belong together.
        ``f_weight_history=...``, ``f_weighting=...`` and ``f_rng=...`` save the weight history,
        the weighting policy's state and the random stream.

        Parameters
        ----------
        f_params : str, path or file-like, optional
            Where to save the module's parameters.
        f_optimizer : str, path or file-like, optional
            Where to save the optimizer's state.
        f_criterion : str, path or file-like, optional
            Where to save the criterion's state.
        f_history : str, path or file-like, optional
            Where to save the training history (JSON).
        use_safetensors : bool, default=False
            Save with safetensors (tensors only: no data description then).
        **kwargs
            ``f_<attribute>`` for any other attribute with a ``state_dict``, such as
            ``f_weight_history``, ``f_weighting`` or ``f_rng``.
        """
        files = {k: v for k, v in dict(f_optimizer=f_optimizer, f_criterion=f_criterion, f_history=f_history,
                                       **kwargs, f_params=f_params).items() if v is not None}
        # f_params comes last: it records the checksums of the files saved with it
        with atomic_files(files) as targets:
            super().save_params(use_safetensors=use_safetensors, **targets)
            # safetensors holds tensors only: the description then stays out
            if "f_params" in targets and not use_safetensors and hasattr(self, "sample_shape_"):
                state = self.module_.state_dict()
                described = {**data_description(self), "sha256": parameters_checksum(state),
                             "saved_with": {k: file_checksum(v) for k, v in targets.items()
                                            if k != "f_params" and isinstance(v, (str, os.PathLike))}}
                torch.save({**state, DATA_KEY: described}, targets["f_params"])

    def load_params(self, f_params=None, f_optimizer=None, f_criterion=None, f_history=None,
                    checkpoint=None, use_safetensors=False, **kwargs):
        """Load a state saved by :meth:`save_params`, all of it or none of it.

        As skorch's :meth:`~skorch.net.NeuralNet.load_params`, with three differences: an
        estimator that was never fitted is initialised from the data description saved in
        ``f_params`` (no ``initialize()`` call needed); files that were not saved together, or
        parameters of another network, are refused with a ``ValueError`` before anything
        changes; and a load that fails part-way leaves the model as it was.

        Parameters
        ----------
        f_params : str, path or file-like, optional
            The module's parameters.
        f_optimizer : str, path or file-like, optional
            The optimizer's state.
        f_criterion : str, path or file-like, optional
            The criterion's state.
        f_history : str, path or file-like, optional
            The training history.
        checkpoint : skorch.callbacks.Checkpoint, optional
            Load the files this checkpoint wrote; explicit ``f_*`` arguments take precedence.
        use_safetensors : bool, default=False
            Read files written with ``use_safetensors=True``.
        **kwargs
            ``f_<attribute>`` for the other saved states (``f_weight_history``, ``f_weighting``,
            ``f_rng``).
        """
        if checkpoint is not None:  # its files, with the explicit arguments taking precedence
            if f_history is None and checkpoint.f_history is not None:
                # as skorch does: the file names may be formatted with the history's last epoch
                self.history = History.from_file(checkpoint.f_history_)
            files = {k: v for k, v in checkpoint.get_formatted_files(self).items() if v is not None}
            files.update({k: v for k, v in dict(f_params=f_params, f_optimizer=f_optimizer,
                                                 f_criterion=f_criterion, f_history=f_history, **kwargs).items()
                          if v is not None})
            files.pop("f_pickle", None)
            self.load_params(use_safetensors=use_safetensors, **files)
            return
        state = described = None
        if f_params is not None and not use_safetensors:
            state, described = read_params(f_params, self.device)
            if not self.initialized_ and described is not None:
                restore_data_description(self, described)
                self.initialize()
            if self.initialized_:
                check_same_architecture(self.module_, state, repr(f_params))
        if not self.initialized_:
            raise ValueError(
                "Cannot load parameters into an estimator that is not initialised and was not "
                "saved by sk_reweight (no data description in f_params): call initialize() "
                "first (module=None needs module=MLP with module__n_features and "
                "module__n_classes then)."
            )
        if described is not None:
            check_saved_together(described.get("saved_with", {}), dict(
                f_optimizer=f_optimizer, f_criterion=f_criterion, f_history=f_history, **kwargs), f_params)
        before = self._loadable_state()
        try:
            if state is not None:
                self.module_.load_state_dict(state)
                if described is not None:
                    restore_data_description(self, described)
            super().load_params(f_params=f_params if state is None else None, f_optimizer=f_optimizer,
                                f_criterion=f_criterion, f_history=f_history,
                                use_safetensors=use_safetensors, **kwargs)
        except Exception as exc:
            self._restore_loadable_state(before)
            if isinstance(exc, ValueError) and "The model is unchanged" in str(exc):
                raise
            raise ValueError(f"Loading failed ({type(exc).__name__}: {exc}). The model is unchanged.") from exc

    def _loadable_state(self):
        parts = {name: copy.deepcopy(getattr(self, name).state_dict())
                 for name in ("module_", "optimizer_", "criterion_", "weighting_", "rng_", "weight_history_")
                 if hasattr(getattr(self, name, None), "state_dict")}
        data = {k: copy.deepcopy(self.__dict__[k]) for k in
                ("classes_inferred_", "sample_shape_", "n_features_in_", "feature_names_in_") if k in self.__dict__}
        return parts, copy.deepcopy(self.history), data

    def _restore_loadable_state(self, saved):
        parts, history, data = saved
        for name, state_dict in parts.items():
            getattr(self, name).load_state_dict(state_dict)
        self.history = history
        self.__dict__.update(data)
