"""Meta-gradient engines: how each training step gets its alignments.

Every engine computes, for each example ``i`` of a training batch, the
alignment ``a_i = <grad L_clean(theta), grad f_i(theta)>``, which is the
meta-gradient of Algorithm 1 (Ren et al., 2018) up to the factor
``-alpha``, hands it to the weighting policy, and leaves the gradient of
the weighted loss in the parameters' ``.grad``. They differ only in cost:

- :class:`LayerwiseEngine`: one forward and one truncated backward, for
  networks of Linear, ConvNd and Embedding layers (extend it to a layer type
  of your own with :func:`register_layer_rule`);
- :class:`ForwardModeEngine` (``'jvp'``): any module, train-mode batch norm
  included;
- :class:`ReferenceEngine`: the literal lookahead definition by double
  backprop, the oracle the tests check the others against.

Every engine also computes *trimmed* alignments (``clean_trim``): the
alignment with each group of the clean batch, averaged without the groups most
opposed to the example; and *capped* ones (``clean_cap``): the alignment with
a clean loss in which no group's gradient counts more than a multiple of the
median group's.

``ReweightedNeuralNetClassifier(meta_engine=...)`` takes a name (``'auto'``,
``'layerwise'``, ``'jvp'``, ``'reference'``) or an instance of a
:class:`MetaGradientEngine` subclass.
"""
from ._base import (
    EngineOptions,
    MetaGradientEngine,
    MetaStep,
    frozen_state,  # noqa: F401  private: the example in _base.py's docstring imports it from here
)
from ._jvp import ForwardModeEngine
from ._layer_rules import LayerRule, register_layer_rule
from ._layerwise import LayerwiseEngine
from ._reference import ReferenceEngine
from ._selection import get_engine, select_engine

__all__ = [
    "MetaGradientEngine",
    "LayerwiseEngine",
    "ForwardModeEngine",
    "ReferenceEngine",
    "LayerRule",
    "register_layer_rule",
    "get_engine",
    "select_engine",
    "MetaStep",
    "EngineOptions",
]
