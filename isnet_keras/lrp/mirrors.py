"""The mirror registry: which mirror class handles each classifier layer.

`DEFAULT_MIRRORS` maps the supported Keras layer classes to their mirror
classes; `register_mirror` adds a layer type (or `mirrors=` overrides
classes for one `LRPGraph`). A mirror is one class: a subclass of `Mirror`
that implements its layer's rule in `propagate` (see docs/architecture.md,
"Adding a layer type").

The mirrors live by job in `linear_mirrors.py` (Dense, convolutions,
average pooling), `pooling_mirrors.py` (max pooling),
`elementwise_mirrors.py` (batch norm, pass-through activations and dropout,
rescaling), `shape_mirrors.py` (reshapes, padding, sums, concatenation)
and `transformer_mirrors.py` (LayerNorm, RMSNorm, position embedding,
token pooling, attention), on the base class in `mirror_base.py`; every
one is importable from here.

Example:

>>> mirror_class(keras.layers.Dense(3)).__name__
'DenseMirror'
"""

import types

import keras

from isnet_keras.lrp.elementwise_mirrors import (  # noqa: F401
    BatchNormalizationMirror,
    PassThroughMirror,
    RescalingMirror,
)
from isnet_keras.lrp.linear_mirrors import (  # noqa: F401
    AveragePooling2DMirror,
    Conv2DMirror,
    DenseMirror,
    DepthwiseConv2DMirror,
    GlobalAveragePooling2DMirror,
    LinearMirror,
    _WeightedMirror,
)
from isnet_keras.lrp.mirror_base import (  # noqa: F401
    GATE_ACTIVATIONS,
    Mirror,
    activation_name,
    check_channels_last,
    unsupported,
)
from isnet_keras.lrp.pooling_mirrors import (  # noqa: F401
    GlobalMaxPooling2DMirror,
    MaxPooling2DMirror,
)
from isnet_keras.lrp.rules import FIRST_LAYER_RULES, RULES  # noqa: F401
from isnet_keras.lrp.shape_mirrors import (  # noqa: F401
    AddMirror,
    ConcatenateMirror,
    ReshapeMirror,
    ZeroPadding2DMirror,
)
from isnet_keras.lrp.relu_attention import (  # noqa: F401
    ReLUAttention,
    ReLUAttentionMirror,
)
from isnet_keras.lrp.transformer_mirrors import (  # noqa: F401
    AddPositionEmbedding,
    GlobalAveragePooling1DMirror,
    LayerNormalizationMirror,
    MultiHeadAttentionMirror,
    PositionEmbeddingMirror,
    RMSNormalizationMirror,
)

# Private aliases of the helpers above.
_activation_name = activation_name
_unsupported = unsupported
_check_channels_last = check_channels_last

DEFAULT_MIRRORS = types.MappingProxyType({
    keras.layers.Dense: DenseMirror,
    keras.layers.Conv2D: Conv2DMirror,
    keras.layers.DepthwiseConv2D: DepthwiseConv2DMirror,
    keras.layers.BatchNormalization: BatchNormalizationMirror,
    keras.layers.MaxPooling2D: MaxPooling2DMirror,
    keras.layers.AveragePooling2D: AveragePooling2DMirror,
    keras.layers.GlobalAveragePooling2D: GlobalAveragePooling2DMirror,
    keras.layers.GlobalMaxPooling2D: GlobalMaxPooling2DMirror,
    keras.layers.ReLU: PassThroughMirror,
    keras.layers.Activation: PassThroughMirror,
    keras.layers.Dropout: PassThroughMirror,
    keras.layers.SpatialDropout2D: PassThroughMirror,
    keras.layers.Flatten: ReshapeMirror,
    keras.layers.Reshape: ReshapeMirror,
    keras.layers.ZeroPadding2D: ZeroPadding2DMirror,
    keras.layers.Add: AddMirror,
    keras.layers.Average: AddMirror,
    keras.layers.Concatenate: ConcatenateMirror,
    keras.layers.Rescaling: RescalingMirror,
    keras.layers.Normalization: RescalingMirror,
    keras.layers.LayerNormalization: LayerNormalizationMirror,
    keras.layers.RMSNormalization: RMSNormalizationMirror,
    keras.layers.GlobalAveragePooling1D: GlobalAveragePooling1DMirror,
    AddPositionEmbedding: PositionEmbeddingMirror,
    keras.layers.MultiHeadAttention: MultiHeadAttentionMirror,
    ReLUAttention: ReLUAttentionMirror,
})
"""Classifier layer class -> mirror class, for the built-in layers. Exact
classes only: a subclass may change the computation, so it must be
registered explicitly."""

# `register_mirror` keeps a registration on the layer class itself (this
# attribute, looked up in the class's own namespace so subclasses do not
# inherit it): the package holds no mutable registry of its own.
_MIRROR_ATTRIBUTE = "_isnet_keras_lrp_mirror"


def register_mirror(layer_class):
    """Class decorator: registers a mirror class for `layer_class`.

    Every `LRPGraph` (and so `explain`, `Explainer` and `build_isnet`)
    built afterwards mirrors layers of exactly that class with it. A
    registration replaces an earlier one, or a default mirror.

    Args:
        layer_class: A Keras layer class.

    Returns:
        A decorator that registers a `Mirror` subclass and returns it.

    Example:

    >>> @register_mirror(MyScale)
    ... class MyScaleMirror(Mirror):
    ...     def propagate(self, relevance, inputs, outputs, training=None):
    ...         return [relevance]
    """
    if not (isinstance(layer_class, type) and
            issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(f"register_mirror needs a Keras layer class, "
                        f"received {layer_class!r}.")

    def register(mirror_cls):
        if not (isinstance(mirror_cls, type) and
                issubclass(mirror_cls, Mirror)):
            raise TypeError(f"{mirror_cls!r} is not a Mirror subclass.")
        setattr(layer_class, _MIRROR_ATTRIBUTE, mirror_cls)
        return mirror_cls

    return register


def registered_mirror(layer_class):
    """The mirror class registered for exactly `layer_class`, or `None`.

    Args:
        layer_class: A Keras layer class.

    Returns:
        The class given to `register_mirror(layer_class)`, else the
        default mirror of `DEFAULT_MIRRORS`, else `None`.
    """
    registered = vars(layer_class).get(_MIRROR_ATTRIBUTE)
    return registered or DEFAULT_MIRRORS.get(layer_class)


def mirror_class(layer, mirrors=None):
    """Looks up the mirror class of `layer`.

    Args:
        layer: A classifier layer.
        mirrors: Optional mapping that extends or overrides the registered
            mirrors (`registered_mirror`).

    Returns:
        A `Mirror` subclass.

    Raises:
        UnsupportedLayerError: naming the layer and its class.
    """
    cls = (mirrors or {}).get(type(layer)) or registered_mirror(type(layer))
    if cls is None:
        raise unsupported(layer, "no LRP mirror is registered for this "
                          "layer type; add one with "
                          "`lrp.mirrors.register_mirror(LayerClass)` (or "
                          "`mirrors={LayerClass: MirrorClass}`).")
    return cls
