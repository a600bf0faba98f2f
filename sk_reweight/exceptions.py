"""Exceptions raised by sk_reweight."""

__all__ = ["TrainingDivergedError"]


class TrainingDivergedError(FloatingPointError):
    """The training loss or the meta-gradient became NaN or infinite.

    Raised by ``fit``/``partial_fit`` with the epoch and batch; the model
    keeps the parameters from before the failing step.
    """
