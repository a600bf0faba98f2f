"""``device='auto'`` (the parameter keeps 'auto', skorch reads the resolved device) and mixed precision."""
import os
from contextlib import nullcontext

import torch

from .engines._base import full_precision


def auto_device():
    """CUDA when available (under torchrun, the GPU of this local rank), else the CPU."""
    if not torch.cuda.is_available():
        return "cpu"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    return "cuda"


def step_autocast(device, dtype):
    """The ``torch.autocast`` context a training step runs in (``dtype=None``: none)."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


class AutoDeviceMixin:
    """For a skorch net: ``device='auto'`` means CUDA when available, else the CPU.

    Under ``torchrun`` with several GPUs each process takes the GPU of its
    ``LOCAL_RANK``.

    ``get_params`` and ``clone`` keep ``'auto'``; a model pickled after
    training on CUDA with ``'auto'`` loads on a machine without CUDA.
    """

    @property
    def device(self):
        device = self.__dict__.get("device", "auto")
        if isinstance(device, str) and device == "auto":
            return auto_device()
        return device

    @device.setter
    def device(self, value):
        self.__dict__["device"] = value

    def infer(self, x, **fit_params):
        """skorch's ``infer``, in float32 when run under a low-precision ``torch.autocast``."""
        return full_precision(super().infer(x, **fit_params))

    def get_params(self, deep=True, **kwargs):
        """Get the estimator's parameters, as scikit-learn's ``get_params`` does.

        ``device`` is returned as it was given (``'auto'`` stays ``'auto'``), so that ``clone`` and
        a search's copies choose the device where they run.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of nested objects (``module__*``, ``optimizer__*``, ...).
        **kwargs
            Passed to skorch's ``get_params``.

        Returns
        -------
        dict
            The parameter names mapped to their values.
        """
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
