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
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ._meta_gradient import MetaGradientEngine, MetaStep, clean_gradient, trainable_parameters


def _trainable(layer, name):
    p = getattr(layer, name, None)
    return p if p is not None and p.requires_grad else None


class _LinearRule:
    def parameter_jvp(self, layer, a, G):
        out = 0
        if "weight" in G:
            out = F.linear(a, G["weight"])
        if "bias" in G:
            out = out + G["bias"]
        return out

    def weighted_grads(self, layer, a, wdelta):
        grads = {}
        d = wdelta.reshape(-1, wdelta.shape[-1])
        if _trainable(layer, "weight") is not None:
            grads["weight"] = d.T @ a.reshape(-1, a.shape[-1])
        if _trainable(layer, "bias") is not None:
            grads["bias"] = d.sum(0)
        return grads

    def unsupported(self, layer):
        return None


class _ConvRule:
    def __init__(self, conv, weight_grad):
        self.conv = conv
        self.weight_grad = weight_grad

    def _geometry(self, layer):
        padding = 0 if layer.padding == "valid" else layer.padding
        return dict(stride=layer.stride, padding=padding, dilation=layer.dilation, groups=layer.groups)

    def parameter_jvp(self, layer, a, G):
        out = 0
        if "weight" in G:
            out = self.conv(a, G["weight"], None, **self._geometry(layer))
        if "bias" in G:
            out = out + G["bias"].view(1, -1, *([1] * (a.dim() - 2)))
        return out

    def weighted_grads(self, layer, a, wdelta):
        grads = {}
        if _trainable(layer, "weight") is not None:
            grads["weight"] = self.weight_grad(a, layer.weight.shape, wdelta, **self._geometry(layer))
        if _trainable(layer, "bias") is not None:
            grads["bias"] = wdelta.sum(dim=[0, *range(2, wdelta.dim())])
        return grads

    def unsupported(self, layer):
        if layer.padding_mode != "zeros":
            return f"padding_mode={layer.padding_mode!r}"
        if layer.padding == "same":
            return "padding='same'"
        return None


class _EmbeddingRule:
    def parameter_jvp(self, layer, a, G):
        out = F.embedding(a, G["weight"])
        if layer.padding_idx is not None:
            out = out.masked_fill((a == layer.padding_idx).unsqueeze(-1), 0)
        return out

    def weighted_grads(self, layer, a, wdelta):
        grad = torch.zeros_like(layer.weight)
        grad.index_add_(0, a.reshape(-1), wdelta.reshape(-1, wdelta.shape[-1]))
        if layer.padding_idx is not None:
            grad[layer.padding_idx] = 0
        return {"weight": grad}

    def unsupported(self, layer):
        if layer.max_norm is not None or layer.scale_grad_by_freq or layer.sparse:
            return "max_norm, scale_grad_by_freq or sparse"
        return None


RULES = {
    nn.Linear: _LinearRule(),
    nn.Conv1d: _ConvRule(F.conv1d, torch.nn.grad.conv1d_weight),
    nn.Conv2d: _ConvRule(F.conv2d, torch.nn.grad.conv2d_weight),
    nn.Conv3d: _ConvRule(F.conv3d, torch.nn.grad.conv3d_weight),
    nn.Embedding: _EmbeddingRule(),
}


def unsupported_reason(module):
    """Why the layer-wise engine cannot handle ``module`` (``None``: it can)."""
    for name, layer in module.named_modules():
        if isinstance(layer, _BatchNorm) and (layer.training or not layer.track_running_stats):
            return f"{name or 'the module'} ({type(layer).__name__}) couples the examples of a batch"
        own = [n for n, p in layer.named_parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        rule = RULES.get(type(layer))
        if rule is None:
            return f"{name or 'the module'} ({type(layer).__name__}) has parameters and no layer-wise rule"
        reason = rule.unsupported(layer)
        if reason:
            return f"{name} ({type(layer).__name__}) uses {reason}"
    return None


class LayerwiseEngine(MetaGradientEngine):
    """Exact, fast engine for networks of Linear, ConvNd and Embedding layers.

    One forward and one truncated backward on the training batch (plus a
    forward/backward on the small clean batch) give both the alignment and
    the weighted gradient. Networks with train-mode batch norm or other
    parameterised layers use :class:`ForwardModeEngine` instead.
    """

    name = "layerwise"

    def unsupported_reason(self, module):
        return unsupported_reason(module)

    def reweighted_backward(self, module, loss_fn, X, y, X_clean, y_clean, weigh):
        params = trainable_parameters(module)
        clean_loss, direction = clean_gradient(module, loss_fn, X_clean, y_clean, params)
        G_of = {id(p): g for p, g in zip(params.values(), direction)}

        calls = []  # (layer, rule, input, output, output version), one per layer call

        def capture(layer, inputs, output):
            calls.append((layer, RULES[type(layer)], inputs[0].detach(), output, output._version))

        layers = [m for m in module.modules()
                  if type(m) in RULES and any(p.requires_grad for p in m.parameters(recurse=False))]
        handles = [m.register_forward_hook(capture) for m in layers]
        try:
            y_pred = module(X)
        finally:
            for h in handles:
                h.remove()
        losses = loss_fn(y_pred, y)
        for layer, _, a, z, version in calls:
            if z._version != version:
                raise RuntimeError(
                    f"The output of {type(layer).__name__} was modified in place (e.g. by "
                    "ReLU(inplace=True)); use meta_engine='jvp' or out-of-place activations."
                )
            if a.shape[0] != len(X) or z.shape[0] != len(X):
                raise RuntimeError(
                    f"{type(layer).__name__} does not see the batch in dimension 0; "
                    "use meta_engine='jvp'."
                )

        deltas = torch.autograd.grad(losses.sum(), [c[3] for c in calls], allow_unused=True)
        alignment = torch.zeros_like(losses)
        for (layer, rule, a, z, _), delta in zip(calls, deltas):
            if delta is None:
                continue
            G = {n: G_of[id(p)] for n, p in layer.named_parameters(recurse=False) if p.requires_grad}
            alignment = alignment + (delta * rule.parameter_jvp(layer, a, G)).flatten(1).sum(1)

        weights = weigh(alignment)
        if bool(weights.any()):
            for (layer, rule, a, z, _), delta in zip(calls, deltas):
                if delta is None:
                    continue
                wdelta = delta * weights.view(-1, *([1] * (delta.dim() - 1)))
                for n, grad in rule.weighted_grads(layer, a, wdelta).items():
                    p = getattr(layer, n)
                    p.grad = grad if p.grad is None else p.grad + grad
        return MetaStep(y_pred.detach(), losses.detach(), alignment, weights, clean_loss)
