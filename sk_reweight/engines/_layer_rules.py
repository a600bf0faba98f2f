"""How the layer-wise engine treats each layer type: :class:`LayerRule`, the built-in rules for
Linear, ConvNd and Embedding, and :func:`register_layer_rule` for a user's own.

A rule runs a layer with the clean-loss gradient ``G`` as its parameters (the
parameter-JVP of its output), forms the weighted gradient from the layer's
input and backprop signal, and may offer cheaper shortcuts (pair alignments,
stacked JVPs). Public through :mod:`sk_reweight.engines`.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _trainable(layer, name):
    p = getattr(layer, name, None)
    return p if p is not None and p.requires_grad else None


class LayerRule:
    """How the layer-wise engine treats one layer type (see :func:`register_layer_rule`).

    A layer qualifies when its output ``z`` is linear in its parameters and
    each example's output depends on that example's input only. Methods get
    the layer, its input ``a`` (batch first) and tensors shaped like its
    output; subclasses implement :meth:`parameter_jvp` and
    :meth:`weighted_grads`.

    Examples
    --------
    See :func:`register_layer_rule`.
    """

    def parameter_jvp(self, layer, a, G):
        """The layer's output for input ``a`` with the parameters replaced by ``G``.

        ``G`` maps parameter names to tensors of the parameters' shapes (the
        clean-loss gradient); since ``z`` is linear in the parameters this is
        the directional derivative of ``z`` along ``G``. A parameter that is
        frozen is missing from ``G``.

        Parameters
        ----------
        layer : torch.nn.Module
            The layer.
        a : torch.Tensor
            The layer's input, batch first.
        G : dict of str to torch.Tensor
            Tensors shaped like the layer's trainable parameters, by name.

        Returns
        -------
        torch.Tensor
            Shaped like the layer's output for ``a`` (or broadcastable to it).
        """
        raise NotImplementedError

    def weighted_grads(self, layer, a, wdelta):
        """Return the gradient of the weighted loss with respect to each trainable parameter.

        That is ``sum_i <wdelta_i, d z_i / d param>`` for each parameter.

        Parameters
        ----------
        layer : torch.nn.Module
            The layer.
        a : torch.Tensor
            The layer's input, batch first.
        wdelta : torch.Tensor
            The (weighted) gradient of the loss with respect to the layer's
            output, one row per example of ``a``.

        Returns
        -------
        dict of str to torch.Tensor
            The gradient of each trainable parameter, by name.
        """
        raise NotImplementedError

    def stacked_parameter_jvp(self, layer, a, Gs):
        """Optional shortcut: :meth:`parameter_jvp` for several ``G`` in one call.

        It must equal ``torch.stack([parameter_jvp(layer, a, G) for G in Gs])``
        with each entry shaped like the layer's output; it is called with two
        ``G`` or more.

        Parameters
        ----------
        layer : torch.nn.Module
            The layer.
        a : torch.Tensor
            The layer's input, batch first.
        Gs : list of dict of str to torch.Tensor
            Several ``G`` of :meth:`parameter_jvp`, with the same keys.

        Returns
        -------
        torch.Tensor or None
            Shaped ``(len(Gs), *output shape)``; ``None``: one
            :meth:`parameter_jvp` per ``G`` instead.
        """
        return None

    def kernel_alignment(self, layer, a, delta, n):
        """Optional shortcut: the alignments of rows ``[:n]`` with rows ``[n:]``, without forming ``G``.

        Parameters
        ----------
        layer : torch.nn.Module
            The layer.
        a : torch.Tensor
            The layer's input, batch first.
        delta : torch.Tensor
            The gradient of the loss with respect to the layer's output, a row per row of ``a``.
        n : int
            The rows ``[:n]`` are the training batch, the rows ``[n:]`` the clean batch.

        Returns
        -------
        torch.Tensor or None
            The ``(n,)`` alignments of this layer's parameters; ``None``: use
            :meth:`parameter_jvp` instead.
        """
        return None

    def pair_alignments(self, layer, a, delta, n, n_groups):
        """Optional shortcut for trimmed alignments: each row ``[:n]``'s with each row ``[n:]``.

        Used for ``clean_trim`` when cheaper than ``n_groups`` clean gradients.

        Parameters
        ----------
        layer : torch.nn.Module
            The layer.
        a : torch.Tensor
            The layer's input, batch first.
        delta : torch.Tensor
            The gradient of the loss with respect to the layer's output, a row per row of ``a``.
        n : int
            The rows ``[:n]`` are the training batch, the rows ``[n:]`` the clean batch.
        n_groups : int
            The number of groups of the clean batch.

        Returns
        -------
        torch.Tensor or None
            The ``(n, m)`` alignments of this layer's parameters; ``None``
            to compute them group by group.
        """
        return None

    def unsupported(self, layer):
        """Say why this layer instance cannot be handled (a configuration), if it cannot.

        Parameters
        ----------
        layer : torch.nn.Module
            The layer.

        Returns
        -------
        str or None
            The reason; ``None`` when the layer is supported.
        """
        return None


#: multiply-adds one group of the clean-gradient loop costs in operation overhead alone
#: (about ten small operations on a CPU thread): tiny layers take the kernel instead
LOOP_OVERHEAD_MACS = 2**20


class _LinearRule(LayerRule):
    def parameter_jvp(self, layer, a, G):
        out = 0
        if "weight" in G:
            out = F.linear(a, G["weight"])
        if "bias" in G:
            out = out + G["bias"]
        return out

    def stacked_parameter_jvp(self, layer, a, Gs):
        if "weight" not in Gs[0]:
            return None
        # one product with the G's weights stacked along the outputs (a reads once)
        bias = torch.cat([G["bias"] for G in Gs]) if "bias" in Gs[0] else None
        out = F.linear(a, torch.cat([G["weight"] for G in Gs]), bias)
        return out.unflatten(-1, (len(Gs), -1)).movedim(-2, 0)

    def weighted_grads(self, layer, a, wdelta):
        grads = {}
        d = wdelta.reshape(-1, wdelta.shape[-1])
        if _trainable(layer, "weight") is not None:
            grads["weight"] = d.T @ a.reshape(-1, a.shape[-1])
        if _trainable(layer, "bias") is not None:
            grads["bias"] = d.sum(0)
        return grads

    def kernel_alignment(self, layer, a, delta, n):
        """Alignment without forming G, when cheaper: for a layer called once
        on 2-d input, <G, grad f_i> = sum_j (x_i.x_j + 1)(d_i.d_j) over the
        clean rows j (d_j already carries the 1/m of the mean clean loss)."""
        pairs = self.pair_alignments(layer, a, delta, n, 1)
        return None if pairs is None else pairs.sum(1)

    def pair_alignments(self, layer, a, delta, n, n_groups):
        m, fan_in, fan_out = len(a) - n, layer.in_features, layer.out_features
        # multiply-adds of the kernel against those of the clean gradients and their JVPs,
        # plus what a group's dozen small operations cost in time whatever the layer's size
        loop = (m + n_groups * n) * fan_in * fan_out + n_groups * LOOP_OVERHEAD_MACS
        if a.dim() != 2 or n * m * (fan_in + fan_out) >= loop:
            return None
        kernel = a[:n] @ a[n:].T if _trainable(layer, "weight") is not None else 0
        if _trainable(layer, "bias") is not None:
            kernel = kernel + 1
        return (delta[:n] @ delta[n:].T) * kernel


#: elements of the unfolded inputs and per-example gradients a convolution's
#: ``pair_alignments`` may hold at once (256 MiB in float32); larger layers loop over groups
PER_EXAMPLE_BUDGET = 2**26
#: fewest clean groups for which a convolution's per-example path beats the group loop: unfolding
#: every row costs about as much as three groups' convolutions (LeNet's layers on 2 CPU threads, 10
#: clean rows, per-example path vs a convolution per group: 4.9 vs 3.4 ms at 2 groups, 4.8 vs 5.1 at 3,
#: 4.8 vs 6.7 at 4; 100 clean rows: 11.1 vs 6.6, 10.5 vs 9.5, 10.1 vs 11.6)
CONV_PAIR_MIN_GROUPS = 3


def _pair(value, dims):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


class _ConvRule(LayerRule):
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

    def stacked_parameter_jvp(self, layer, a, Gs):
        if "weight" not in Gs[0] or layer.groups != 1:
            return None
        # one convolution with the G's kernels stacked as output channels (the input unfolds once)
        bias = torch.cat([G["bias"] for G in Gs]) if "bias" in Gs[0] else None
        out = self.conv(a, torch.cat([G["weight"] for G in Gs]), bias, **self._geometry(layer))
        return out.unflatten(1, (len(Gs), -1)).movedim(1, 0)

    def weighted_grads(self, layer, a, wdelta):
        grads = {}
        if _trainable(layer, "weight") is not None:
            grads["weight"] = self.weight_grad(a, layer.weight.shape, wdelta, **self._geometry(layer))
        if _trainable(layer, "bias") is not None:
            grads["bias"] = wdelta.sum(dim=[0, *range(2, wdelta.dim())])
        return grads

    def pair_alignments(self, layer, a, delta, n, n_groups):
        # Per-example gradients (unfolded input times output signal) cost one weight-gradient
        # pass over the rows; the group loop costs n_groups convolutions of the training rows.
        weight, bias = _trainable(layer, "weight"), _trainable(layer, "bias")
        if a.dim() not in (3, 4) or layer.groups != 1 or n_groups < CONV_PAIR_MIN_GROUPS:
            return None
        d = delta.flatten(2)  # (rows, out channels, positions)
        pairs = 0
        if weight is not None:
            geometry = self._geometry(layer)
            kernel = layer.kernel_size
            if a.dim() == 3:  # Conv1d as a convolution over a height of one
                a, kernel = a.unsqueeze(2), (1, *kernel)
                geometry = {k: (1 if k != "padding" else 0, *_pair(v, 1)) for k, v in geometry.items()
                            if k != "groups"}
            else:
                geometry = {k: _pair(v, 2) for k, v in geometry.items() if k != "groups"}
            rows, positions = len(a), d.shape[2]
            if rows * layer.weight[0].numel() * (positions + layer.out_channels) > PER_EXAMPLE_BUDGET:
                return None
            columns = F.unfold(a, kernel, **geometry)  # (rows, in channels * kernel, positions)
            grads = torch.bmm(d, columns.transpose(1, 2)).flatten(1)
            pairs = grads[:n] @ grads[n:].T
        if bias is not None:
            b = d.sum(2)
            pairs = pairs + b[:n] @ b[n:].T
        return pairs

    def unsupported(self, layer):
        if layer.padding_mode != "zeros":
            return f"padding_mode={layer.padding_mode!r}"
        if layer.padding == "same":
            return "padding='same'"
        return None


class _EmbeddingRule(LayerRule):
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


def register_layer_rule(layer_type, rule):
    """Teach the layer-wise engine a layer type of your own.

    After this, ``meta_engine='auto'`` picks the fast layer-wise engine for
    networks that use ``layer_type`` (exact type, not subclasses), and still
    checks it against the generic engine on the first batch.

    Parameters
    ----------
    layer_type : type
        A ``torch.nn.Module`` subclass whose output is linear in its own
        parameters, computed example by example.
    rule : LayerRule
        Implements :meth:`LayerRule.parameter_jvp` and
        :meth:`LayerRule.weighted_grads` for that type.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.engines import LayerRule, register_layer_rule
    >>> class Scale(torch.nn.Module):  # z = a * s, one factor per feature
    ...     def __init__(self, n):
    ...         super().__init__()
    ...         self.scale = torch.nn.Parameter(torch.ones(n))
    ...     def forward(self, a):
    ...         return a * self.scale
    >>> class ScaleRule(LayerRule):
    ...     def parameter_jvp(self, layer, a, G):
    ...         return a * G["scale"]
    ...     def weighted_grads(self, layer, a, wdelta):
    ...         return {"scale": (a * wdelta).sum(0)}
    >>> register_layer_rule(Scale, ScaleRule())
    """
    if not (isinstance(layer_type, type) and issubclass(layer_type, nn.Module)):
        raise TypeError(f"layer_type must be a torch.nn.Module subclass, got {layer_type!r}.")
    if not isinstance(rule, LayerRule):
        raise TypeError(f"rule must be a LayerRule instance, got {type(rule).__name__}.")
    RULES[layer_type] = rule


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
