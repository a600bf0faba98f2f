"""The Meta-Weight-Net policy: weights from a small network of each example's loss, learned on the fly.

Re-exported by :mod:`sk_reweight.weighting`.
"""

import torch

from ._policies import WeightingPolicy, _times
from ._random import preserved_random_state
from ._weight_stages import _check_number
from .engines._base import autocast_off as _autocast_off


class LossWeightNet(torch.nn.Module):
    """Meta-Weight-Net's weighting function: an example's loss -> its weight in (0, 1).

    One hidden layer of 100 ReLU units and a sigmoid output, as in Shu et al.,
    "Meta-Weight-Net: Learning an Explicit Mapping For Sample Weighting"
    (NeurIPS 2019). The hidden layer is initialised as torch does; the output
    layer starts at zero, so the initial map is the constant 1/2 (uniform
    weights): the net prefers no loss range before the clean set has spoken,
    whereas a random output layer gives the map a random slope, increasing
    in the loss for some seeds.

    Parameters
    ----------
    hidden_units : int, default=100
        Width of the hidden layer.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import LossWeightNet
    >>> with torch.no_grad():
    ...     LossWeightNet()(torch.tensor([0.1, 2.0]))
    tensor([0.5000, 0.5000])
    """

    def __init__(self, hidden_units=100):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(1, hidden_units), torch.nn.ReLU(), torch.nn.Linear(hidden_units, 1))
        with torch.no_grad():  # after torch's initialisation: the same random draws as before
            self.layers[-1].weight.zero_()
            self.layers[-1].bias.zero_()

    def logits(self, losses):
        """The sigmoid's input for each loss.

        Parameters
        ----------
        losses : torch.Tensor of shape (batch_size,)
            The examples' training losses.

        Returns
        -------
        torch.Tensor of shape (batch_size,)
            The logit of each example's weight.
        """
        return self.layers(losses[:, None]).squeeze(1)

    def forward(self, losses):
        return torch.sigmoid(self.logits(losses))


class MetaNetWeighting(WeightingPolicy):
    """Weights from a :class:`LossWeightNet` trained on the clean set as it goes.

    With ``theta'(phi) = theta - alpha * grad sum_i v_i(phi) f_i`` the
    lookahead parameters, the gradient of the clean loss at ``theta'`` with
    respect to the net's parameters ``phi`` is ``-alpha * sum_i a_i * d v_i /
    d phi`` to first order in ``alpha``, where ``a_i`` is the alignment the
    engines compute exactly (Meta-Weight-Net itself backpropagates through
    ``theta'``). That first-order objective is linear in each weight: it asks
    for ``v = 1`` at the losses where alignments are positive on average and
    ``v = 0`` where they are negative. At each step the net takes one Adam
    step on its calibrated surrogate, the logistic loss of the net's output
    against ``a_i > 0`` weighted by ``|a_i|`` (times ``sample_weight``),
    normalised by the batch's total weight. Its minimiser,
    ``v(loss) = E[max(a, 0) | loss] / E[|a| | loss]``, is above 1/2 exactly
    where the clean set's first-order verdict is "helps"; and unlike the
    linear objective, whose gradient carries the sigmoid's slope ``v (1 -
    v)``, its gradient does not vanish where the sigmoid saturates on the
    wrong side, so a map pushed to 1 while most alignments are positive comes
    back down where they turn negative. The step then uses the updated net's
    weights, normalised in the batch.

    Parameters
    ----------
    lr : float, default=0.001
        Adam learning rate of the weighting network.
    hidden_units : int, default=100
        Width of the :class:`LossWeightNet`'s hidden layer.

    Attributes
    ----------
    net : LossWeightNet or None
        Created at the first fit (``net(losses)`` gives the weights it
        assigns, before normalisation).
    optimizer : torch.optim.Adam or None

    Notes
    -----
    The objective is not taken through the normalisation of the weights in
    the batch: the normalised weights of a sigmoid are not invariant to a
    common shift of its input, and raising every input flattens them towards
    uniform. Through the normalisation, a map that ranks the examples against
    their alignments can thus lower that objective by saturating the sigmoid
    at 1 everywhere, where every gradient vanishes: it then freezes at
    uniform weights that keep its wrong ranking (what an early version did
    under label noise).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.weighting import MetaNetWeighting
    >>> policy = MetaNetWeighting(lr=0.01)
    >>> policy.start(n_train=4, device="cpu")
    >>> round(float(policy(torch.tensor([1.0, -1.0]), torch.tensor([0.2, 2.0])).sum()), 4)
    1.0
    >>> with torch.no_grad():  # the example the clean set agrees with now weighs more
    ...     bool(policy.net(torch.tensor([0.2])) > policy.net(torch.tensor([2.0])))
    True
    """

    def __init__(self, lr=1e-3, hidden_units=100):
        self.lr = lr
        self.hidden_units = hidden_units
        self.net = None
        self.optimizer = None

    def _build(self, device):
        self.net = LossWeightNet(self.hidden_units).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)

    def start(self, n_train, device):
        _check_number(self, "lr", self.lr, 0, float("inf"), "a positive finite number", low_open=True, high_open=True)
        if self.net is None:
            self._build(device)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr

    def weights(self, alignment, losses):
        return self.net(losses)

    def __call__(self, alignment, losses, sample_weight=None):
        alignment, losses = alignment.detach(), losses.detach()
        # in float32 whatever autocast the step runs under: float16 rounds the tiny clamp below to 0
        with torch.enable_grad(), _autocast_off(losses.device.type):
            logits = self.net.logits(losses.float())
            helps = (alignment > 0).to(logits.dtype)
            strength = _times(alignment.abs(), sample_weight).to(logits.dtype)
            surprise = torch.nn.functional.binary_cross_entropy_with_logits(logits, helps, reduction="none")
            # scale-free: Adam's step size does not depend on the alignments' units
            meta_loss = (strength * surprise).sum() / strength.sum().clamp(min=1e-30)
            self.optimizer.zero_grad()
            meta_loss.backward()
            self.optimizer.step()
        with torch.no_grad():
            return super().__call__(alignment, losses, sample_weight)

    def state_dict(self):
        if self.net is None:
            return {}
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state_dict):
        if not state_dict:
            return
        if self.net is None:
            # built without drawing from torch's random state: the weights come from the file
            with preserved_random_state():
                self._build(next(iter(state_dict["net"].values())).device)
        self.net.load_state_dict(state_dict["net"])
        self.optimizer.load_state_dict(state_dict["optimizer"])
