"""Splitting a fused ReLU off a linear layer when the classifier is re-traced.

A `Conv2D` or `Dense` layer with `activation="relu"` computes its
pre-activation `z = L(x; W) + b` only inside one fused op, so the LRP block
would have to recompute it (one more forward and backward pass of the layer
per training step). When the graph is re-traced such a layer is called as
`PreActivation(layer)` followed by the ReLU: the same maths with the same
weights, and `z` becomes a tensor of the forward pass that the layer's mirror
can reuse ("z reuse" in docs/algorithm.md, "The LRP step of a linear layer").

Only exact `Conv2D` and `Dense` layers are split, with channels-last data, a
compute dtype equal to the variable dtype (under mixed precision the float16
`z` would differ from the LRP's float32 one, so it is recomputed) and no
quantization or LoRA (their kernels take other code paths).
"""

import keras
from keras import ops

from isnet_keras.lrp import mirrors as mirrors_lib


def splits_activation(layer):
    """Whether the re-trace calls `layer` as `PreActivation` plus a ReLU.

    Args:
        layer: A classifier layer.

    Returns:
        bool.
    """
    if type(layer) not in (keras.layers.Conv2D, keras.layers.Dense):
        return False
    if mirrors_lib._activation_name(layer) != "relu":
        return False
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return False
    policy = layer.dtype_policy
    if policy.compute_dtype != policy.variable_dtype:
        return False
    if getattr(layer, "quantization_mode", None) is not None:
        return False
    return not getattr(layer, "lora_enabled", False)


class ClassifierLayerPart(keras.layers.Layer):
    """A layer that computes part of a classifier layer with that layer's
    own weights, for the re-trace; it creates none.

    The classifier layer is tracked (unlike a mirror's reference): the
    re-traced graph calls the part instead of the layer and must still
    list the layer's weights, which stay the classifier's own variables.

    Args:
        layer: The classifier layer.
        **kwargs: `keras.layers.Layer` arguments; the dtype policy is the
            layer's.
    """

    def __init__(self, layer, **kwargs):
        super().__init__(dtype=layer.dtype_policy, **kwargs)
        self._layer = layer

    @property
    def layer(self):
        """The classifier layer this computes part of."""
        return self._layer

    def get_config(self):
        config = super().get_config()
        config["layer"] = self._layer.name
        return config

    @classmethod
    def from_config(cls, config):
        raise NotImplementedError(
            f"{cls.__name__} refers to a classifier layer and is rebuilt "
            "when the classifier is re-traced; save the classifier instead.")


@keras.saving.register_keras_serializable(package="isnet_keras")
class PreActivation(ClassifierLayerPart):
    """`L(x; W) + b` of a `Conv2D` or `Dense` layer, without its activation.

    Holds the layer itself, so the weights are the layer's own and this
    layer creates none. Used by the re-trace only.

    Args:
        layer: A layer for which `splits_activation(layer)` holds.

    Example:

    >>> z = PreActivation(conv)(x)
    >>> y = keras.layers.Activation(conv.activation)(z)  # == conv(x)
    """

    def __init__(self, layer, **kwargs):
        if not splits_activation(layer):
            raise ValueError(f"{layer.name} ({type(layer).__name__}) has no "
                             "fused ReLU that PreActivation can split off.")
        kwargs.setdefault("name", f"{layer.name}_pre_activation")
        super().__init__(layer, **kwargs)

    def call(self, inputs):
        # The layers' own `call` minus the activation (Keras 3 BaseConv and
        # Dense), so values match the fused call.
        layer = self._layer
        if isinstance(layer, keras.layers.Dense):
            outputs = ops.matmul(inputs, layer.kernel)
            bias_shape = (layer.units,)
        else:
            outputs = layer.convolution_op(inputs, layer.kernel)
            bias_shape = (1,) * (layer.rank + 1) + (layer.filters,)
        if layer.use_bias:
            outputs = ops.add(outputs, ops.reshape(layer.bias, bias_shape))
        return outputs

    def compute_output_shape(self, input_shape):
        return self._layer.compute_output_shape(input_shape)
