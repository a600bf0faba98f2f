"""From alignments to the weights a training step uses (Algorithm 1, plus options)."""
import numbers

import torch

ZERO_WEIGHT_POLICIES = ("skip", "uniform")
WEIGHTINGS = ("alignment", "meta_net")
CLEAN_SAMPLINGS = ("cycle", "stratified")

#: ``ReweightedNeuralNetClassifier(**PAPER_EXACT)`` is Algorithm 1 as published.
PAPER_EXACT = dict(weighting="alignment", clean_sampling="cycle", clean_weight=0.0,
                   weight_shrinkage=0.0, weight_smoothing=0.0, zero_weights="skip",
                   finetune_epochs=0)


def normalize_weights(alignment, sample_weight=None):
    """Algorithm 1's weights: ``max(a, 0)`` (times ``sample_weight``), summing to 1.

    An all-zero result means the batch is skipped.
    """
    w = alignment.clamp(min=0)
    if sample_weight is not None:
        w = w * sample_weight
    return _normalize(w)


def _normalize(w):
    total = w.sum()
    return torch.where(total > 0, w / total, torch.zeros_like(w))


class LossWeightNet(torch.nn.Module):
    """Meta-Weight-Net's weighting function: an example's loss -> its weight in (0, 1).

    One hidden layer of 100 ReLU units and a sigmoid output, as in Shu et al.,
    "Meta-Weight-Net: Learning an Explicit Mapping For Sample Weighting"
    (NeurIPS 2019).
    """

    def __init__(self, hidden_units=100):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(1, hidden_units), torch.nn.ReLU(), torch.nn.Linear(hidden_units, 1))

    def forward(self, losses):
        return torch.sigmoid(self.layers(losses[:, None])).squeeze(1)


class MetaNetWeights:
    """Weights from a :class:`LossWeightNet` trained on the clean set as it goes.

    At each step the net's parameters ``phi`` take one Adam step on the
    lookahead clean loss. With ``theta'(phi) = theta - alpha * grad sum_i
    v_i(phi) f_i``, that loss's gradient is
    ``-alpha * sum_i a_i * d v_i / d phi`` to first order in ``alpha``,
    where ``a_i`` is the alignment the engines compute exactly, so the
    update needs no second-order backprop (Meta-Weight-Net itself
    backpropagates through ``theta'``). The gradient is taken through the
    normalisation of the weights within the batch, which the step then
    applies to the updated net's weights.
    """

    def __init__(self, net, optimizer):
        self.net = net
        self.optimizer = optimizer

    def __call__(self, alignment, losses, sample_weight=None):
        alignment, losses = alignment.detach(), losses.detach()
        with torch.enable_grad():
            # through the normalisation: only the weights' relative sizes matter, so
            # raising every weight at once earns nothing
            w = self._normalized(losses, sample_weight)
            # scale-free: Adam's step size does not depend on the alignments' units
            meta_loss = -(alignment * w).sum() / alignment.abs().sum().clamp(min=1e-30)
            self.optimizer.zero_grad()
            meta_loss.backward()
            self.optimizer.step()
        with torch.no_grad():
            return self._normalized(losses, sample_weight)

    def _normalized(self, losses, sample_weight):
        v = self.net(losses)
        if sample_weight is not None:
            v = v * sample_weight
        return _normalize(v)


class WeightPolicy:
    """Turns one batch's alignments (and losses) into its weights.

    Parameters
    ----------
    n_train : int
        Training set size (for the smoothed weight of every example).
    shrinkage : float in [0, 1]
        Share of the uniform weights (times ``sample_weight``, summing to
        1) mixed into each step's weights: ``(1 - shrinkage) * w +
        shrinkage * uniform``, before smoothing. An all-zero batch then
        trains with ``shrinkage * uniform``.
    smoothing : float in [0, 1)
        0: each step's weights stand alone (the paper). Otherwise each
        example keeps an exponential moving average of its weights, on the
        scale where 1 is the uniform weight, ``s <- smoothing * s + (1 -
        smoothing) * w`` (``s = w`` on its first visit), and the step uses
        the averages, normalised within the batch.
    zero_weights : {'skip', 'uniform'}
        What an all-zero batch does: nothing (the paper), or train with
        uniform weights (times ``sample_weight``).
    smoothed : torch.Tensor or None
        Averages carried over from an earlier fit (``partial_fit``).
    meta_net : MetaNetWeights or None
        Weights from a learned function of the loss instead of Algorithm 1's
        clipped alignments.
    """

    def __init__(self, n_train, smoothing=0.0, zero_weights="skip", smoothed=None, device="cpu",
                 meta_net=None, shrinkage=0.0):
        self.shrinkage = shrinkage
        self.smoothing = smoothing
        self.zero_weights = zero_weights
        self.meta_net = meta_net
        self.smoothed = None
        if smoothing:
            fresh = smoothed is None or len(smoothed) != n_train
            self.smoothed = (torch.full((n_train,), float("nan"), device=device) if fresh
                             else smoothed.to(device))

    def __call__(self, alignment, losses, positions, sample_weight=None):
        if self.meta_net is not None:
            w = self.meta_net(alignment, losses, sample_weight)
        else:
            w = normalize_weights(alignment, sample_weight)
        if self.shrinkage:
            w = (1 - self.shrinkage) * w + self.shrinkage * self._uniform(w, sample_weight)
        if self.smoothed is not None:
            scaled = w * len(w)
            previous = self.smoothed[positions]
            averaged = torch.where(torch.isnan(previous), scaled,
                                   self.smoothing * previous + (1 - self.smoothing) * scaled)
            self.smoothed[positions] = averaged
            w = _normalize(averaged)
        if self.zero_weights == "uniform":
            w = torch.where(w.sum() > 0, w, self._uniform(w, sample_weight))
        return w

    @staticmethod
    def _uniform(w, sample_weight):
        """Plain training's weights for the batch: ``sample_weight`` (or 1) normalised."""
        return _normalize(torch.ones_like(w) if sample_weight is None else sample_weight.to(w.dtype))


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_weighting_params(estimator):
    """Clear errors for the weighting parameters (called at fit)."""
    smoothing = estimator.weight_smoothing
    if not _is_real(smoothing) or not 0 <= smoothing < 1:
        raise ValueError(
            f"weight_smoothing={smoothing!r} must be a number in [0, 1): the share of an "
            "example's previous (averaged) weight kept at each visit; 0 turns smoothing off."
        )
    shrinkage = estimator.weight_shrinkage
    if not _is_real(shrinkage) or not 0 <= shrinkage <= 1:
        raise ValueError(
            f"weight_shrinkage={shrinkage!r} must be a number in [0, 1]: the share of uniform "
            "weights mixed into each step's weights; 0 uses the learned weights alone."
        )
    if estimator.zero_weights not in ZERO_WEIGHT_POLICIES:
        raise ValueError(
            f"zero_weights={estimator.zero_weights!r} is not one of {list(ZERO_WEIGHT_POLICIES)}."
        )
    if estimator.clean_sampling not in CLEAN_SAMPLINGS:
        raise ValueError(
            f"clean_sampling={estimator.clean_sampling!r} is not one of {list(CLEAN_SAMPLINGS)}."
        )
    if estimator.weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={estimator.weighting!r} is not one of {list(WEIGHTINGS)}.")
    lr = estimator.meta_net_lr
    if not _is_real(lr) or not 0 < lr < float("inf"):
        raise ValueError(f"meta_net_lr={lr!r} must be a positive finite number.")
    epochs = estimator.finetune_epochs
    if not isinstance(epochs, numbers.Integral) or isinstance(epochs, bool) or epochs < 0:
        raise ValueError(
            f"finetune_epochs={epochs!r} must be an int >= 0: passes over the clean set "
            "after the reweighted epochs; 0 turns fine-tuning off."
        )
    clean_weight = estimator.clean_weight
    if not _is_real(clean_weight) or not 0 <= clean_weight < float("inf"):
        raise ValueError(
            f"clean_weight={clean_weight!r} must be a finite number >= 0: the weight of the "
            "clean mini-batch's mean loss in each training step; 0 uses the clean set only "
            "to steer the weights."
        )
