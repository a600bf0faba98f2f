"""Per-epoch record of the weight each training example received."""
import numpy as np
import torch


class WeightHistory:
    """Rows of per-example weights, one per epoch, ``NaN`` where not trained.

    Weights are stored scaled by the batch size, so ``1.0`` is the uniform
    weight of plain training. The object has ``state_dict`` /
    ``load_state_dict`` so skorch's ``save_params(f_weight_history=...)``,
    ``load_params`` and ``Checkpoint(f_weight_history=...)`` persist it.

    Examples
    --------
    >>> from sk_reweight import WeightHistory
    >>> history = WeightHistory()
    >>> history.new_epoch(3)
    >>> history.record([0, 2], [1.5, 0.0])
    >>> history.to_array()
    array([[1.5, nan, 0. ]], dtype=float32)
    """

    def __init__(self):
        self._rows = []

    def new_epoch(self, n_samples):
        self._rows.append(np.full(n_samples, np.nan, dtype=np.float32))

    def record(self, positions, scaled_weights):
        self._rows[-1][positions] = scaled_weights

    @property
    def current(self):
        return self._rows[-1]

    def __len__(self):
        return len(self._rows)

    def to_array(self):
        if not self._rows:
            return np.empty((0, 0), dtype=np.float32)
        widths = {len(r) for r in self._rows}
        if len(widths) > 1:
            raise ValueError(
                "The weight history mixes training sets of different sizes "
                f"{sorted(widths)}; read it per epoch with weight_history_.epoch(i)."
            )
        return np.stack(self._rows)

    def epoch(self, i):
        return self._rows[i]

    def state_dict(self):
        return {f"epoch_{i}": torch.from_numpy(r) for i, r in enumerate(self._rows)}

    def load_state_dict(self, state_dict):
        # files from before 0.2 also hold the smoothing averages, now in ``weighting_``
        keys = sorted((k for k in state_dict if k.startswith("epoch_")),
                      key=lambda k: int(k.rsplit("_", 1)[1]))
        self._rows = [state_dict[k].detach().cpu().numpy().astype(np.float32) for k in keys]
