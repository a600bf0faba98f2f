"""Per-epoch record of the weight, and the alignment, each training example received."""
import numpy as np
import torch


class WeightHistory:
    """Rows of per-example weights and alignments, one per epoch, ``NaN`` where not trained.

    Weights are stored scaled by the batch size, so ``1.0`` is the uniform
    weight of plain training. Alignments are the raw steering signal
    ``<grad L_clean, grad f_i>`` of each visit: positive when the clean set
    accepted the example. The object has ``state_dict`` /
    ``load_state_dict`` so skorch's ``save_params(f_weight_history=...)``,
    ``load_params`` and ``Checkpoint(f_weight_history=...)`` persist it.

    Examples
    --------
    >>> from sk_reweight.diagnostics import WeightHistory
    >>> history = WeightHistory()
    >>> history.new_epoch(3)
    >>> history.record([0, 2], [1.5, 0.0], alignments=[0.2, -0.1])
    >>> history.to_array()
    array([[1.5, nan, 0. ]], dtype=float32)
    >>> history.to_array("alignments")
    array([[ 0.2,  nan, -0.1]], dtype=float32)
    """

    def __init__(self):
        self._rows = {"weights": [], "alignments": []}

    def new_epoch(self, n_samples):
        """Start an epoch's row, ``NaN`` for every example until it is trained.

        :class:`~sk_reweight.callbacks.WeightRecorder` writes the history; readers need
        :meth:`to_array` and :meth:`epoch` only.

        Parameters
        ----------
        n_samples : int
            The number of training examples.
        """
        for rows in self._rows.values():
            rows.append(np.full(n_samples, np.nan, dtype=np.float32))

    def record(self, positions, scaled_weights, alignments=None):
        """Write a batch's weights (and alignments) into the current epoch's row.

        Parameters
        ----------
        positions : array-like of int
            The positions of the batch's examples in the training set.
        scaled_weights : array-like of float
            Their weights, times the batch size.
        alignments : array-like of float, optional
            Their alignments with the clean set.
        """
        self._rows["weights"][-1][positions] = scaled_weights
        if alignments is not None:
            self._rows["alignments"][-1][positions] = alignments

    @property
    def current(self):
        """The weights of the epoch being recorded (the last row), an ndarray."""
        return self._rows["weights"][-1]

    def __len__(self):
        return len(self._rows["weights"])

    def to_array(self, kind="weights"):
        """Return the whole history as an array, a row an epoch.

        Parameters
        ----------
        kind : {'weights', 'alignments'}, default='weights'
            Which record to return.

        Returns
        -------
        numpy.ndarray
            ``(n_epochs, n_samples)`` float32 (a :class:`numpy.ndarray`), ``NaN`` where an
            example was not trained.
        """
        rows = self._rows[kind]
        if not rows:
            return np.empty((0, 0), dtype=np.float32)
        widths = {len(r) for r in rows}
        if len(widths) > 1:
            raise ValueError(
                "The weight history mixes training sets of different sizes "
                f"{sorted(widths)}; read it per epoch with weight_history_.epoch(i)."
            )
        return np.stack(rows)

    def epoch(self, i):
        """Return the weights of one epoch.

        Parameters
        ----------
        i : int
            The epoch's index (negative counts from the last).

        Returns
        -------
        numpy.ndarray
            ``(n_samples,)`` float32 weights of that epoch's training set.
        """
        return self._rows["weights"][i]

    def state_dict(self):
        """Return the history as tensors, for ``save_params(f_weight_history=...)``.

        Returns
        -------
        dict
            ``'epoch_<i>'`` and ``'alignment_<i>'`` mapped to each epoch's row.
        """
        return {f"{prefix}_{i}": torch.from_numpy(r)
                for prefix, kind in (("epoch", "weights"), ("alignment", "alignments"))
                for i, r in enumerate(self._rows[kind])}

    def load_state_dict(self, state_dict):
        """Replace the history by a saved one (``load_params(f_weight_history=...)``).

        Parameters
        ----------
        state_dict : dict
            What :meth:`state_dict` returned.
        """
        # files from before 0.2 may also hold the smoothing averages (now in ``weighting_``)
        # and no alignments (then NaN)
        for prefix, kind in (("epoch", "weights"), ("alignment", "alignments")):
            keys = sorted((k for k in state_dict if k.startswith(prefix + "_")),
                          key=lambda k: int(k.rsplit("_", 1)[1]))
            self._rows[kind] = [state_dict[k].detach().cpu().numpy().astype(np.float32) for k in keys]
        if len(self._rows["alignments"]) != len(self._rows["weights"]):
            self._rows["alignments"] = [np.full_like(r, np.nan) for r in self._rows["weights"]]
