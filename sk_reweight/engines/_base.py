"""The meta-gradient engine interface (Ren et al., 2018, Algorithm 1).

With per-example weights ``eps`` at zero, the lookahead parameters are
``theta' = theta - alpha * grad sum_i eps_i f_i(theta)`` and, since
``theta'(0) = theta``,

    d L_clean(theta') / d eps_i = -alpha * <grad L_clean(theta), grad f_i(theta)>.

An engine computes the *alignment* ``a_i = <grad L_clean(theta), grad f_i(theta)>``
(the negated meta-gradient up to the positive factor ``alpha``, which the
normalisation of the weights cancels), asks the estimator to turn it into
weights, and leaves ``grad sum_i w_i f_i`` in the parameters' ``.grad``.
Engines differ only in how they get there, so they are interchangeable.
"""
import functools
import inspect
import warnings
import weakref
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields

import torch
from torch.nn.modules.batchnorm import _NormBase


@dataclass(frozen=True)
class EngineOptions:
    """Every option of :meth:`MetaGradientEngine.reweighted_backward` beyond the data, all always set.

    The estimator passes all of them to every step
    (``engine.reweighted_backward(..., **options.as_kwargs())``), whatever the
    weighting, so an engine of one's own that takes these keywords works
    with every policy and stage. The fit's options (all but ``clean_weight``
    and ``loss_scale``, which can change from step to step) are in the fit
    context, ``net.fit_context_.engine_options``. See
    :meth:`MetaGradientEngine.reweighted_backward` for what each means.

    Parameters
    ----------
    clean_weight : float, default=0.0
        The clean batch's mean loss's factor in the step.
    loss_scale : float or None, default=None
        The factor of float16 loss scaling.
    clean_trim : int, default=0
        Trimmed alignments (:class:`~sk_reweight.weighting.Weighting`'s ``clean_trim``).
    clean_cap : float or None, default=None
        Capped alignments (:class:`~sk_reweight.weighting.Weighting`'s ``clean_cap``).
    clean_folds : int, default=0
        Cross-fitting folds the stages need (:class:`~sk_reweight.weighting.CrossFitTrust`).
    clean_class_weight : torch.Tensor or None, default=None
        The criterion's class weights, which define the clean loss.

    Examples
    --------
    >>> from sk_reweight.engines import EngineOptions
    >>> options = EngineOptions(clean_trim=1)
    >>> sorted(options.as_kwargs())
    ['clean_cap', 'clean_class_weight', 'clean_folds', 'clean_trim', 'clean_weight', 'loss_scale']
    """

    clean_weight: float = 0.0
    loss_scale: float = None
    clean_trim: int = 0
    clean_cap: float = None
    clean_folds: int = 0
    clean_class_weight: object = None

    def as_kwargs(self):
        """The options as keywords of ``reweighted_backward``.

        Returns
        -------
        dict
            Each option's name and value.
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def for_engine(self, engine):
        """The keywords ``engine.reweighted_backward`` takes: all of them, or, for an engine written
        before 0.3 that takes only some, those (with a FutureWarning), refusing an option it would drop.

        Parameters
        ----------
        engine : MetaGradientEngine
            The fit's engine.

        Returns
        -------
        dict
            Keyword arguments for ``engine.reweighted_backward``.

        Raises
        ------
        TypeError
            If the engine does not take an option that is set (its step would silently ignore it).
        """
        kwargs = self.as_kwargs()
        method = engine.reweighted_backward
        accepted = _accepted_options(getattr(method, "__func__", method))
        if accepted is None:
            return kwargs
        defaults = EngineOptions().as_kwargs()
        dropped = [k for k, v in kwargs.items() if k not in accepted and v is not None
                   and (isinstance(v, torch.Tensor) or v != defaults[k])]
        if dropped:
            raise TypeError(
                f"{type(engine).__name__}.reweighted_backward takes no {', '.join(dropped)}, which this fit needs "
                "(its weighting or criterion): add them as keywords (sk_reweight.engines.EngineOptions lists "
                "every option), or choose a weighting without them.")
        if engine not in _WARNED:  # once per engine, not at every step
            _WARNED.add(engine)
            warnings.warn(f"{type(engine).__name__}.reweighted_backward takes only some of the engine options: "
                          "since 0.3 engines receive every option (sk_reweight.engines.EngineOptions); add the "
                          "others as keywords (until 0.4 the missing ones are left out when unset).",
                          FutureWarning, stacklevel=3)
        return {k: v for k, v in kwargs.items() if k in accepted}


# the engines already warned about
_WARNED = weakref.WeakSet()


@functools.lru_cache(maxsize=256)
def _accepted_options(function):
    """The option names ``function`` (an engine's ``reweighted_backward``) takes (``None``: every one)."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    names = {p.name for p in parameters}
    return None if names >= {f.name for f in fields(EngineOptions)} else frozenset(names)


@dataclass
class MetaStep:
    """What one reweighted training step produced.

    The parameters are also attributes of the same names.

    Parameters
    ----------
    y_pred : torch.Tensor
        Module output on the training batch.
    losses : torch.Tensor of shape (batch_size,)
        Per-example training losses (detached).
    alignment : torch.Tensor of shape (batch_size,)
        ``<grad L_clean, grad f_i>`` for each training example.
    weights : torch.Tensor of shape (batch_size,)
        Normalised weights the step used (all zero: the step was skipped).
    clean_loss : torch.Tensor
        Mean loss on the clean mini-batch (detached scalar).

    Examples
    --------
    See :class:`MetaGradientEngine`: ``reweighted_backward`` returns one.
    """

    y_pred: torch.Tensor
    losses: torch.Tensor
    alignment: torch.Tensor
    weights: torch.Tensor
    clean_loss: torch.Tensor

    def __post_init__(self):
        self.y_pred = full_precision(self.y_pred)


def full_precision(output):
    """``output`` in float32 if ``torch.autocast`` made it half or bfloat16 (numpy holds neither)."""
    if torch.is_tensor(output) and output.dtype in (torch.float16, torch.bfloat16):
        return output.float()
    return output


@contextmanager
def frozen_state(module):
    """Run the meta step without changing any module state.

    Normalisation layers that track running statistics are switched to use
    batch statistics without updating them (so train-mode batch norm stays
    exact and its running mean/var untouched); every other buffer is
    restored afterwards in case a custom layer mutates it in ``forward``.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines import frozen_state
    >>> net = torch.nn.BatchNorm1d(2)
    >>> with frozen_state(net):
    ...     _ = net(torch.randn(8, 2) + 5)
    >>> net.running_mean  # untouched
    tensor([0., 0.])
    """
    norms = [m for m in module.modules() if isinstance(m, _NormBase) and m.track_running_stats]
    norm_buffers = {id(b) for m in norms for b in m.buffers(recurse=False)}
    saved = [(b, b.detach().clone()) for b in module.buffers() if id(b) not in norm_buffers]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


def autocast_off(device_type):
    """A context in which ``torch.autocast`` is off on ``device_type`` (a no-op where it has none)."""
    return torch.autocast(device_type, enabled=False) if device_type in ("cpu", "cuda") else nullcontext()


def eager_module(module):
    """The module a compiled one (``torch.compile``) wraps, with the same parameters, else ``module``.

    The meta step hooks layers and pushes dual numbers through them, which a
    compiled graph does not allow; it runs eagerly on the wrapped module.
    """
    return module._orig_mod if isinstance(module, torch._dynamo.eval_frame.OptimizedModule) else module


def trainable_parameters(module):
    """Named parameters that receive gradients (frozen ones take no part)."""
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


def scaled(loss, loss_scale):
    """``loss * loss_scale`` (float16 loss scaling), ``loss`` when ``loss_scale`` is ``None``."""
    return loss if loss_scale is None else loss * loss_scale


def clean_gradient(module, loss_fn, X_clean, y_clean, params, loss_scale=None):
    """Gradient of the mean clean-batch loss (times ``loss_scale``), zeros for unused parameters."""
    clean_loss = loss_fn(module(X_clean), y_clean).mean()
    grads = torch.autograd.grad(scaled(clean_loss, loss_scale), list(params.values()), allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads)]
    return clean_loss.detach(), grads


def weighted_backward(module, loss_fn, X, y, weights, loss_scale=None):
    """Forward on the training batch; backpropagate ``sum_i w_i f_i``.

    All-zero weights give zero gradients: finding that out first would cost
    a round trip to the host on every step. With ``loss_scale`` the backward
    pass runs on the scaled loss (float16 gradients would underflow) and the
    gradients are divided by it before they join ``.grad``.
    """
    y_pred = module(X)
    losses = loss_fn(y_pred, y)
    weighted = torch.dot(losses, weights.to(losses.dtype))
    if loss_scale is None:
        weighted.backward()
        return y_pred, losses
    params = list(trainable_parameters(module).values())
    grads = torch.autograd.grad(scaled(weighted, loss_scale), params, allow_unused=True)
    with torch.no_grad():
        for p, g in zip(params, grads):
            if g is not None:
                g = g / loss_scale
                p.grad = g if p.grad is None else p.grad.add_(g)
    return y_pred, losses


def class_weighted(loss_fn, class_weight):
    """``loss_fn`` with each example's loss times its class's weight; ``class_weight=None``: ``loss_fn``.

    The engines' clean loss with ``clean_class_weight``: the criterion's class weights
    define the loss the clean set measures (the training losses stay unweighted).
    """
    if class_weight is None:
        return loss_fn

    def weighted(output, target):
        losses = loss_fn(output, target)
        return losses * class_weight.to(losses.device, losses.dtype)[target]
    return weighted


def weigh_batch(weigh, alignment, losses, folds=None):
    """``weigh(alignment, losses)``; with cross-fitting (``clean_folds``) also ``fold_alignment=folds``."""
    return weigh(alignment, losses) if folds is None else weigh(alignment, losses, fold_alignment=folds)


def add_clean_gradient(params, direction, clean_weight, loss_scale=None):
    """Add ``clean_weight * grad L_clean`` (already computed, times ``loss_scale``) to each ``.grad``."""
    if not clean_weight:
        return
    alpha = clean_weight if loss_scale is None else clean_weight / loss_scale
    with torch.no_grad():
        for p, g in zip(params.values(), direction):
            p.grad = alpha * g if p.grad is None else p.grad.add_(g, alpha=alpha)


class MetaGradientEngine:
    """Interface of a meta-gradient engine.

    Subclasses implement :meth:`reweighted_backward`; :meth:`supports` says
    whether the engine is exact for a given module.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines import ForwardModeEngine
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> module, loss_fn = torch.nn.Linear(3, 2), torch.nn.CrossEntropyLoss(reduction="none")
    >>> X, y, X_clean, y_clean = torch.randn(4, 3), torch.tensor([0, 1, 0, 1]), torch.randn(2, 3), torch.tensor([0, 1])
    >>> step = ForwardModeEngine().reweighted_backward(
    ...     module, loss_fn, X, y, X_clean, y_clean, weigh=lambda a, losses: a.clamp(min=0) / a.clamp(min=0).sum())
    >>> step.weights.shape, module.weight.grad.shape
    (torch.Size([4]), torch.Size([2, 3]))
    """

    name = None

    def supports(self, module):
        """Whether this engine computes exact weights for ``module``.

        Parameters
        ----------
        module : torch.nn.Module
            The network to train.

        Returns
        -------
        bool
            ``True`` when :meth:`unsupported_reason` finds no reason.
        """
        return self.unsupported_reason(module) is None

    def unsupported_reason(self, module):
        """Why the engine cannot handle ``module``.

        Parameters
        ----------
        module : torch.nn.Module
            The network to train.

        Returns
        -------
        str or None
            The reason (e.g. a layer type the engine has no rule for), or
            ``None`` when the engine is exact for ``module``.
        """
        raise NotImplementedError

    def reweighted_backward(self, module, loss_fn, X, y, X_clean, y_clean, weigh, clean_weight=0.0,
                            loss_scale=None, clean_trim=0, clean_cap=None, clean_folds=0,
                            clean_class_weight=None):
        """Compute the weights of one training batch and backpropagate.

        Parameters
        ----------
        module : torch.nn.Module
            The network, in the mode it trains in.
        loss_fn : callable
            ``loss_fn(output, target)`` returning one loss per example.
        X, y : torch.Tensor
            Training mini-batch.
        X_clean, y_clean : torch.Tensor
            Clean mini-batch.
        weigh : callable
            ``weigh(alignment, losses)`` maps the alignment ``a`` and the
            (detached) per-example losses, both of shape (batch_size,), to
            normalised weights ``w`` (all zero when the batch is to be skipped).
        clean_weight : float, default=0.0
            The clean batch's mean loss ``L_clean`` joins the step with this
            factor. Engines already hold ``grad L_clean`` (the direction the
            alignments are taken along), so this costs next to nothing.
        loss_scale : float or None, default=None
            In float16 training, backpropagate the losses times this factor so
            that small gradients do not underflow; the alignments and the
            gradients come back unscaled (an overflow shows as non-finite
            values in them).
        clean_trim : int, default=0
            Trimmed alignments: split the clean batch into groups
            (``engines._trimming.clean_groups``), align each training example
            with each group's mean-loss gradient and average those (weighted
            by group size) without the ``clean_trim`` lowest. ``0``: the
            alignment with the whole clean batch. The estimator passes
            every option of :class:`EngineOptions` at every step.
        clean_cap : float or None, default=None
            Capped alignments: each group's alignment is scaled by
            ``min(1, clean_cap * median / norm)``, its gradient's norm
            against the median of the groups' non-zero norms
            (``engines._trimming.capped``), before the (trimmed) mean: the
            alignment with a clean loss in which no group pulls harder than
            ``clean_cap`` times the median one.
        clean_folds : int, default=0
            Cross-fitting: also call ``weigh(alignment, losses,
            fold_alignment=F)`` with ``F`` of shape (batch_size,
            clean_folds), the alignments with each fold's loss gradient. The
            folds are class-balanced (``engines._trimming.balanced_folds``:
            each class's rows dealt into the folds, each fold's loss
            weighing the classes in their shares of the batch); with
            ``clean_trim`` or ``clean_cap`` they are contiguous runs of
            those options' groups instead (a stage such as
            :class:`~sk_reweight.weighting.CrossFitTrust` asks for them).
        clean_class_weight : torch.Tensor of shape (n_classes,) or None, default=None
            The clean loss is the mean of ``clean_class_weight[y_j] * l_j``
            over the clean batch (``engines._base.class_weighted``): a class-weighted
            criterion's weights define the loss the clean set measures,
            while the training losses ``f_i`` (the alignments' other side
            and the step) stay unweighted.

        Returns
        -------
        MetaStep
            On return, each trainable parameter's ``.grad`` holds
            ``grad (sum_i w_i f_i + clean_weight * L_clean)`` (zero when all
            weights are zero and ``clean_weight=0``; the caller decides on the
            host whether to step). Under ``torch.autocast`` the forward and
            backward passes run in the autocast dtype; the alignments and
            gradients come back in the parameters' dtype.
        """
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"
