"""Layer-wise meta-gradient engine: exact weights at about plain-training cost.

For a layer whose output ``z = layer(a; theta)`` is linear in its parameters
(Linear, ConvNd, Embedding), the chain rule over independent examples gives

    <grad f_i, G> = sum_layers <delta_i, layer(a_i; G)>,   delta_i = d f_i / d z_i,

where ``G`` is the clean-loss gradient: running the layer with ``G`` as its
parameters is the parameter-JVP of its output. The per-example ``delta_i``
come from one backward of ``sum_i f_i`` that stops at the layer outputs, and
the weighted gradient ``sum_i w_i grad f_i`` is formed from the same
``(a, w * delta)`` tensors (an outer product, or a convolution weight-gradient),
so no second backward pass is needed.

This requires that examples do not interact (no train-mode batch norm) and
that every trainable parameter belongs to a supported layer that uses it only
through its own forward.
"""
import torch
from torch.autograd.graph import get_gradient_edge

from ._base import MetaGradientEngine, MetaStep, autocast_off, eager_module, scaled, weigh_batch
from ._layer_rules import RULES, unsupported_reason
from ._trimming import balanced_folds, cap_factors, clean_groups, fold_alignments, trimmed_alignment

#: elements of stacked parameter-JVP output (and of its product with the backprop signal, and of the
#: groups' gradients) the group loop may hold at once (64 MiB each in float32): larger layers take fewer
#: groups per call, down to one
STACK_BUDGET = 2**24


class LayerwiseEngine(MetaGradientEngine):
    """Exact, fast engine for networks of Linear, ConvNd and Embedding layers.

    One forward and one truncated backward on the training and clean
    batches together give the clean gradient, the alignment and the
    weighted gradient. Networks with train-mode batch norm or other
    parameterised layers use :class:`ForwardModeEngine` instead; add a
    layer type of your own with :func:`register_layer_rule`.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines import LayerwiseEngine
    >>> LayerwiseEngine().supports(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU()))
    True
    >>> LayerwiseEngine().unsupported_reason(torch.nn.LSTM(3, 4))
    'the module (LSTM) has parameters and no layer-wise rule'
    """

    name = "layerwise"

    def unsupported_reason(self, module):
        return unsupported_reason(module)

    def reweighted_backward(self, module, loss_fn, X, y, X_clean, y_clean, weigh, clean_weight=0.0,
                            loss_scale=None, clean_trim=0, clean_cap=None, clean_folds=0, clean_class_weight=None):
        # Examples are independent here, so the clean batch rides along in the
        # same forward and truncated backward: rows [:n] train, rows [n:] clean.
        n = len(X)
        module = eager_module(module)
        # (layer, input, input version, output rows, gradient edge of the output), one per
        # layer call. The edge, not the output, is kept: autograd frees an output nothing
        # else saves (a Linear's before its activation), and the gradient at the edge is
        # the one at the output as the layer produced it, even if it is later modified in
        # place (ReLU(inplace=True)).
        calls = []

        def capture(layer, inputs, output):
            a = inputs[0].detach()
            calls.append((layer, a, a._version, output.shape[0], get_gradient_edge(output)))

        layers = [m for m in module.modules()
                  if type(m) in RULES and any(p.requires_grad for p in m.parameters(recurse=False))]
        handles = [m.register_forward_hook(capture) for m in layers]
        try:
            output = module(torch.cat([X, X_clean]))
        finally:
            for h in handles:
                h.remove()
        all_losses = loss_fn(output, torch.cat([y, y_clean]))
        clean_losses = all_losses[n:]
        if clean_class_weight is not None:  # the clean rows' backward signals carry their class weights
            clean_losses = clean_losses * clean_class_weight.to(clean_losses.device, clean_losses.dtype)[y_clean]
        losses, clean_loss = all_losses[:n], clean_losses.mean()
        for layer, a, version, rows, _ in calls:
            if a._version != version:
                raise RuntimeError(
                    f"The input of {type(layer).__name__} was modified in place after the layer "
                    "used it; use meta_engine='jvp' or make that operation out of place."
                )
            if a.shape[0] != len(all_losses) or rows != len(all_losses):
                raise RuntimeError(
                    f"{type(layer).__name__} does not see the batch in dimension 0; "
                    "use meta_engine='jvp'."
                )
        deltas = torch.autograd.grad(
            scaled(losses.sum() + clean_loss, loss_scale), [c[4] for c in calls], allow_unused=True
        )
        # Under autocast the forward and the truncated backward ran in low
        # precision; the per-layer products below run in the parameters' dtype.
        calls = [(layer, *_in_parameter_dtype(layer, a, delta))
                 for (layer, a, *_), delta in zip(calls, deltas) if delta is not None]
        by_layer = {}
        for layer, a, delta in calls:
            by_layer.setdefault(layer, []).append((a, delta))

        with autocast_off(output.device.type):
            zeros = losses.new_zeros(n, dtype=_dtype(calls, losses))
            folds = None
            if clean_trim or clean_cap is not None:
                alignment, folds = _trimmed_alignment(by_layer, n, len(all_losses) - n, clean_trim, zeros, clean_cap,
                                                      clean_folds)
            elif clean_folds:
                alignment, folds = _alignment_with_folds(by_layer, n, y_clean, clean_folds, zeros)
            else:
                alignment = _alignment(by_layer, n, zeros)
            if loss_scale is not None:  # the training and the clean signals both carry the scale
                alignment = alignment / loss_scale**2
                folds = None if folds is None else folds / loss_scale**2
            weights = weigh_batch(weigh, alignment, losses.detach(), folds)
            self._weighted_grads(calls, n, len(all_losses), weights, clean_weight, loss_scale)
        return MetaStep(output[:n].detach(), losses.detach(), alignment, weights,
                        clean_loss.detach())

    @staticmethod
    def _weighted_grads(calls, n, n_rows, weights, clean_weight, loss_scale=None):
        # the clean rows' signals already carry d L_clean / d z: with clean_weight
        # they join the weighted gradient at the price of a few more rows. All-zero
        # weights give zero gradients (no host round trip to find out).
        rows = n_rows if clean_weight else n
        row_weights = torch.cat([weights, weights.new_full((rows - n,), clean_weight)])
        if loss_scale is not None:  # unscaled on the way in: .grad never holds scaled values
            row_weights = row_weights / loss_scale
        for layer, a, delta in calls:
            w = _per_row(row_weights, delta)
            # the alignments are taken: the signal is weighted in its own memory (its last use)
            # unless autograd handed back an expanded tensor, which cannot be written to
            wdelta = delta[:rows].mul_(w) if delta.is_contiguous() else delta[:rows] * w
            for name, grad in RULES[type(layer)].weighted_grads(layer, a[:rows], wdelta).items():
                p = getattr(layer, name)
                grad = grad.contiguous() if p.is_contiguous() else grad  # as autograd lays it out
                p.grad = grad if p.grad is None else p.grad + grad


def _dtype(calls, losses):
    return calls[0][2].dtype if calls else losses.dtype


def _in_parameter_dtype(layer, a, delta):
    dtype = next(p for p in layer.parameters(recurse=False) if p.requires_grad).dtype
    a = a if not a.is_floating_point() else a.to(dtype)  # Embedding inputs are indices
    return a, delta.to(dtype)


def _alignment(by_layer, n, alignment, clean_rows=None):
    """Adds ``sum_layers <delta_i, layer(a_i; G)>`` for the training rows ``[:n]`` to ``alignment``.

    ``clean_rows``: a factor per clean row (capping reweights the clean loss), ``None`` for ones.
    """
    for layer, layer_calls in by_layer.items():
        rule = RULES[type(layer)]
        if len(layer_calls) == 1:
            if clean_rows is None:
                part = rule.kernel_alignment(layer, *layer_calls[0], n)
            else:
                part = rule.pair_alignments(layer, *layer_calls[0], n, 1)
                part = None if part is None else part @ clean_rows.to(part.dtype)
            if part is not None:
                alignment = alignment + part
                continue
        # clean gradient G of the layer, summed over its calls (shared weights)
        G = {}
        for a, delta in layer_calls:
            clean = delta[n:] if clean_rows is None else delta[n:] * _per_row(clean_rows, delta)
            for name, g in rule.weighted_grads(layer, a[n:], clean).items():
                G[name] = g + G.get(name, 0)
        for a, delta in layer_calls:
            jvp = rule.parameter_jvp(layer, a[:n], G)
            alignment = alignment + (delta[:n] * jvp).flatten(1).sum(1)
    return alignment.detach()


def _per_row(values, like):
    """``values`` (one per row) shaped to broadcast over ``like``'s rows, in its dtype."""
    return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def _group_gradient(rule, layer, layer_calls, n, factors):
    """The gradient of one clean group's loss for one layer, summed over its calls: ``factors``
    (one per clean row, 0 outside the group) scale the clean rows' signals."""
    G = {}
    rows = torch.nonzero(factors).flatten()
    for a, delta in layer_calls:
        signal = delta[n + rows] * _per_row(factors[rows], delta)
        for name, g in rule.weighted_grads(layer, a[n + rows], signal).items():
            G[name] = g + G.get(name, 0)
    return G


def _group_alignments(by_layer, n, to_groups, zeros):
    """``(n, k)``: each training row's alignment with each clean group's loss gradient, the groups
    given by ``to_groups`` (n_clean, k), the factors on the clean rows' signals."""
    per_group = zeros.new_zeros(n, to_groups.shape[1])
    for layer, layer_calls in by_layer.items():
        rule = RULES[type(layer)]
        pairs = rule.pair_alignments(layer, *layer_calls[0], n, to_groups.shape[1]) if len(layer_calls) == 1 else None
        if pairs is not None:
            per_group = per_group + pairs @ to_groups.to(pairs.dtype)
        else:
            per_group = per_group + _loop_alignments(rule, layer, layer_calls, n, to_groups)
    return per_group.detach()


def _loop_alignments(rule, layer, layer_calls, n, to_groups):
    """One layer's ``(n, k)`` alignments with each group's gradient, formed group by group. Where the
    rule stacks parameter-JVPs, several groups per call: as many as ``STACK_BUDGET`` elements of
    output (and of gradients) hold, their gradients formed chunk by chunk."""
    k = to_groups.shape[1]
    per_group_elements = max(max(delta[:n].numel() for _, delta in layer_calls),
                             sum(p.numel() for p in layer.parameters(recurse=False) if p.requires_grad))
    per_call = max(1, STACK_BUDGET // max(1, per_group_elements))
    chunks = []
    for first in range(0, k, per_call):
        Gs = [_group_gradient(rule, layer, layer_calls, n, to_groups[:, j])
              for j in range(first, min(k, first + per_call))]
        part = 0
        for a, delta in layer_calls:
            stacked = rule.stacked_parameter_jvp(layer, a[:n], Gs) if len(Gs) > 1 else None
            if stacked is None:  # one call per G; its JVP may broadcast (a bias-only layer's)
                part = part + torch.stack([(delta[:n] * rule.parameter_jvp(layer, a[:n], G)).flatten(1).sum(1)
                                           for G in Gs], 1)
            else:
                part = part + (delta[:n] * stacked).flatten(2).sum(2).T
        chunks.append(part)
    return torch.cat(chunks, 1)


def _alignment_with_folds(by_layer, n, y_clean, folds, zeros):
    """Algorithm 1's alignment and cross-fitting's ``(n, folds)`` alignments with the folds'
    class-balanced losses (:func:`~sk_reweight.engines._trimming.balanced_folds`), in one pass:
    a layer's pair matrix, or its stacked parameter-JVPs along the clean gradient and the folds'
    gradients, serves both."""
    # the clean rows' signals carry 1/n_clean; a fold's loss needs its own row weights
    to_folds = len(y_clean) * balanced_folds(y_clean, folds).to(zeros.dtype)
    alignment, per_fold = zeros, zeros.new_zeros(n, folds)
    if not to_folds.any():  # no class has a row for every fold: nothing to hold out, zero alignments
        return _alignment(by_layer, n, zeros), per_fold
    to_groups = None  # the loop's groups, formed when a layer needs them: the whole batch, then the folds
    for layer, layer_calls in by_layer.items():
        rule = RULES[type(layer)]
        # priced as `folds` groups, though the loop forms folds + 1 (the whole batch's too): at 2 folds the
        # two paths cost about the same, and this keeps the choices, and the results, of the runs before
        pairs = rule.pair_alignments(layer, *layer_calls[0], n, folds) if len(layer_calls) == 1 else None
        if pairs is not None:  # row sums as in _alignment's kernel path
            alignment = alignment + pairs.sum(1)
            per_fold = per_fold + pairs @ to_folds.to(pairs.dtype)
            continue
        if to_groups is None:
            to_groups = torch.cat([torch.ones_like(to_folds[:, :1]), to_folds], 1)
        part = _loop_alignments(rule, layer, layer_calls, n, to_groups)
        alignment = alignment + part[:, 0]
        per_fold = per_fold + part[:, 1:]
    return alignment.detach(), per_fold.detach()


def _trimmed_alignment(by_layer, n, n_clean, trim, zeros, cap=None, folds=0):
    """:func:`~sk_reweight.engines._trimming.trimmed_alignment` over the clean groups' alignments,
    each group's times its :func:`~sk_reweight.engines._trimming.cap_factors` by ``cap``, and the
    cross-fitting folds' alignments (:func:`~sk_reweight.engines._trimming.fold_alignments`)."""
    groups = clean_groups(n_clean, zeros.device)
    sizes = [len(g) for g in groups]
    to_groups = zeros.new_zeros(n_clean, len(groups))
    for k, idx in enumerate(groups):
        to_groups[idx, k] = n_clean / len(idx)
    factors = None if cap is None else cap_factors(_group_norms(by_layer, n, n_clean, groups, to_groups), cap)
    if not trim and not folds:  # capping alone reweights the clean loss: one alignment with the clean rows weighted
        return _alignment(by_layer, n, zeros, to_groups.bool().to(factors.dtype) @ factors), None
    per_group = _group_alignments(by_layer, n, to_groups, zeros)
    if factors is not None:
        per_group = per_group * factors.to(per_group.dtype)
    return trimmed_alignment(per_group, sizes, trim), fold_alignments(per_group, sizes, folds)


def _group_norms(by_layer, n, n_clean, groups, to_groups):
    """The norm of each clean group's mean-loss gradient, from the clean rows paired among themselves."""
    squared = to_groups.new_zeros(len(groups))
    for layer, layer_calls in by_layer.items():
        rule = RULES[type(layer)]
        pairs = None
        if len(layer_calls) == 1:  # the clean rows twice: pairs [:n_clean] x [n_clean:] are their Gram matrix
            a, delta = (x[n:] for x in layer_calls[0])
            pairs = rule.pair_alignments(layer, torch.cat([a, a]), torch.cat([delta, delta]), n_clean, len(groups))
        if pairs is not None:
            squared += (pairs @ to_groups * to_groups).sum(0)  # diag(T' Gram T)
            continue
        for k in range(len(groups)):
            G = _group_gradient(rule, layer, layer_calls, n, to_groups[:, k])
            squared[k] += sum(g.pow(2).sum() for g in G.values())
    return squared.detach().sqrt()
