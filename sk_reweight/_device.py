"""``device='auto'``: the parameter keeps 'auto', skorch reads the resolved device."""
import torch


class AutoDeviceMixin:
    """For a skorch net: ``device='auto'`` means CUDA when available, else the CPU.

    ``get_params`` and ``clone`` keep ``'auto'``; a model pickled after
    training on CUDA with ``'auto'`` loads on a machine without CUDA.
    """

    @property
    def device(self):
        device = self.__dict__.get("device", "auto")
        if isinstance(device, str) and device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return device

    @device.setter
    def device(self, value):
        self.__dict__["device"] = value

    def get_params(self, deep=True, **kwargs):
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
