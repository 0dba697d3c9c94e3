"""Mirrors of linear layers: Dense, convolutions and average pooling.

Each runs one of the linear rules (`rules.epsilon_rule`, `rules.zplus_rule`,
`rules.zb_rule`) on a linear map (`linear_maps.py`), with a batch norm that
follows the layer folded into its kernel and bias. They take relevance in
parts (`Factored`), and the Dense and convolution mirrors also at a max
pooling's window maxima (`WindowRelevance`), where LRP-epsilon divides at
the pooled size.
"""

import keras
import numpy as np
import tensorflow as tf

from isnet_keras.lrp import folding
from isnet_keras.lrp import linear_maps
from isnet_keras.lrp import relevance as relevance_lib
from isnet_keras.lrp import rules
from isnet_keras.lrp.mirror_base import GATE_ACTIVATIONS
from isnet_keras.lrp.mirror_base import Mirror
from isnet_keras.lrp.mirror_base import activation_name
from isnet_keras.lrp.mirror_base import unsupported


class LinearMirror(Mirror):
    """A linear layer `L(x; W) + b`: LRP-epsilon or z+ (and Z^B, see
    `_WeightedMirror`)."""

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)
    rules = ("epsilon", "zplus")

    def _linear_rule(self, relevance, x, linear, kernel, bias,
                     linear_output=None, output_at_maxima=None):
        """Runs the linear step with `self.rule`.

        `linear_output`, when given, is `L(x; kernel)` or a
        `relevance.BiasedOutput` taken from the forward pass (z reuse); the
        z+ rule does not use it. `output_at_maxima` goes to the epsilon
        rule. `bias` is the one the rule's `z` includes, dropped under
        `bias_relevance="ignore"` (a `BiasedOutput` still subtracts its
        own, so `z` is then `L(x; W)`).
        """
        bias = self._absorbing(bias)
        if self.rule == "zb":
            lower, upper = self._bound_tensors()
            return rules.zb_rule(relevance, x, linear, kernel, bias, lower,
                                 upper, self.epsilon,
                                 linear_output=linear_output)
        if self.rule == "zplus":
            return rules.zplus_rule(relevance, x, linear, kernel, bias,
                                    self.epsilon)
        return rules.epsilon_rule(relevance, x, linear, kernel, bias,
                                  self.epsilon, linear_output=linear_output,
                                  output_at_maxima=output_at_maxima)

    def _bound_tensors(self):
        """Z^B's `(lower, upper)` as `(1, *in)` tensors, None for zeros."""
        return tuple(None if not np.any(b) else self._cast(np.asarray(b)[None])
                     for b in self.input_bounds)


class _WeightedMirror(LinearMirror):
    """Dense, Conv2D and DepthwiseConv2D: a kernel, an optional bias."""

    absorbs_batch_norm = True
    is_linear = True
    depthwise = False
    rules = ("epsilon", "zplus", "zb")

    @classmethod
    def can_absorb(cls, layer):
        return activation_name(layer) == "linear"

    def check_layers(self):
        super().check_layers()
        if self.rule == "zb" and self.input_bounds is None:
            raise ValueError(
                f"{self.source.name} ({type(self.source).__name__}): the Z^B "
                "rule needs input bounds; it applies to the first linear "
                "layers, fed by the model input.")
        activation = activation_name(self.source)
        # Gates take the identity rule: relevance at `g(z) * z` is that of
        # `z` (docs/algorithm.md, "Transformer layers").
        allowed = {"linear", "relu", *GATE_ACTIVATIONS}
        if self.is_logits:
            allowed |= {"softmax", "sigmoid"}
        if activation not in allowed:
            raise unsupported(
                self.source,
                f"activation '{activation}' has no LRP rule; use "
                f"'relu', 'linear' or a gate {GATE_ACTIVATIONS} "
                "(softmax/sigmoid only on the logits layer).",
            )

    def accepted_forms(self):
        # LRP-epsilon divides a `WindowRelevance` at the pooled size where
        # `_output_at_maxima` gives its `z` there (no folded batch norm;
        # ReLU or no activation, so that the window maxima are `z`).
        if self.rule == "epsilon" and self.batch_norm is None and \
                activation_name(self.source) in ("relu", "linear"):
            return self.relevance_forms + (relevance_lib.WINDOW,)
        return self.relevance_forms

    def linear_map(self):
        raise NotImplementedError

    def forward_z(self, outputs, split_pre_activation):
        # The layer's own output `L(x; W) + b` exists as the split-off
        # pre-activation or, for a linear activation, its output (also when
        # a batch norm is folded in: the fold is applied to it in `call`).
        if split_pre_activation is not None:
            return split_pre_activation
        if activation_name(self.source) == "linear":
            return outputs[0]
        return None

    def _reused_linear_output(self, layer_output, bias, gain):
        """`L(x; W')` from the layer's forward output, or None.

        With a bias it is a `relevance.BiasedOutput`, `(L(x; W) + b) * gain`
        with its bias `b * gain`, which the rule subtracts as part of its
        `z`: `L(x; W') = (L(x; W) + b) * gain - b * gain`. The live `b`
        cancels, so the result has the gradients of a recomputed
        `L(x; W * gain)` with respect to `W`, `x` and the batch norm's
        gamma, and none with respect to `b` (docs/algorithm.md, "The LRP
        step of a linear layer"); the folded statistics are constants in
        either form. Not under mixed precision, where the forward output
        is rounded to a lower precision than the LRP arithmetic.
        """
        if layer_output is None or layer_output.dtype != self.lrp_dtype:
            return None
        if gain is not None:
            layer_output = layer_output * gain
            bias = None if bias is None else bias * gain
        return layer_output if bias is None else relevance_lib.BiasedOutput(
            layer_output, bias)

    def _bounded_input(self, x, input_dtype, linear_output):
        """`x` checked against the Z^B bounds (`rules.check_within_bounds`).

        The tolerance admits rounding: of bounds mapped through a
        `Rescaling` layer, and of inputs computed in a lower precision.
        Such inputs are clipped into the bounds when `z` is recomputed
        from them (z reuse is off below the LRP precision), so that every
        term of Z^B's `z` stays non-negative.
        """
        scale = max(1.0, *(float(np.max(np.abs(b)))
                           for b in self.input_bounds))
        resolution = 1e-5
        if input_dtype in ("float16", "bfloat16"):
            # Two units in the last place of the lower precision.
            resolution = 2.0 ** (-9 if input_dtype == "float16" else -6)
        lower, upper = self._bound_tensors()
        x = rules.check_within_bounds(x, lower, upper, resolution * scale)
        if linear_output is None and input_dtype != self.lrp_dtype:
            x = tf.clip_by_value(x, 0.0 if lower is None else lower,
                                 0.0 if upper is None else upper)
        return x

    @staticmethod
    def _output_at_maxima(relevance, bias, gain):
        """This layer's forward output at a `WindowRelevance`'s maxima.

        The relevance reaches this layer from a max pooling through
        nothing but ReLUs (`PassThroughMirror` hands on no other), and the
        layer's own activation is ReLU or linear: wherever the window
        maxima are positive they are this layer's output `L(x; W) + b`.
        Returned like `_reused_linear_output` (a `BiasedOutput` with a
        bias, so that the rule's `z` has no bias gradient), or None
        without that form or with a folded batch norm.
        """
        if not isinstance(relevance, relevance_lib.WindowRelevance) or \
                gain is not None:
            return None
        if bias is None:
            return relevance.peaks
        return relevance_lib.BiasedOutput(relevance.peaks, bias)

    def propagate(self, relevance, inputs, outputs, pre_activation=None,
                  training=None):
        layer = self.source
        x = self._cast(inputs[0])
        kernel = self._cast(layer.kernel)
        bias = self._cast(layer.bias) if layer.use_bias else None
        gain, shift = self._folded_affine(outputs[0], training)
        # z reuse: `L(x; W')` from the forward pass instead of a new conv.
        linear_output = self._reused_linear_output(pre_activation, bias, gain)
        if self.rule == "zb":
            x = self._bounded_input(x, inputs[0].dtype, linear_output)
        output_at_maxima = None
        if self.rule == "epsilon":
            output_at_maxima = self._output_at_maxima(relevance, bias, gain)
        if gain is not None:
            kernel = folding.fold_kernel(kernel, gain, self.depthwise)
            bias = folding.fold_bias(bias, gain, shift)
        return [self._linear_rule(relevance, x, self.linear_map(), kernel,
                                  bias, linear_output, output_at_maxima)]


@keras.saving.register_keras_serializable(package="isnet_keras")
class DenseMirror(_WeightedMirror):
    """Mirror of `keras.layers.Dense` (tied kernel, transposed matmul)."""

    def linear_map(self):
        return linear_maps.DenseMap()


@keras.saving.register_keras_serializable(package="isnet_keras")
class Conv2DMirror(_WeightedMirror):
    """Mirror of `keras.layers.Conv2D` (tied kernel, `conv2d_transpose`)."""

    def check_layers(self):
        super().check_layers()
        if self.source.groups != 1:
            raise unsupported(self.source, "grouped convolutions "
                              "(groups > 1) are not supported.")

    def linear_map(self):
        layer = self.source
        return linear_maps.Conv2DMap(tuple(layer.strides), layer.padding,
                                     tuple(layer.dilation_rate))


@keras.saving.register_keras_serializable(package="isnet_keras")
class DepthwiseConv2DMirror(_WeightedMirror):
    """Mirror of `keras.layers.DepthwiseConv2D`."""

    depthwise = True

    def check_layers(self):
        super().check_layers()
        strides = tuple(self.source.strides)
        if strides[0] != strides[1]:
            raise unsupported(self.source, "unequal strides are not "
                              "supported by TensorFlow's depthwise ops.")

    def linear_map(self):
        layer = self.source
        return linear_maps.DepthwiseConv2DMap(
            tuple(layer.strides), layer.padding, tuple(layer.dilation_rate)
        )


@keras.saving.register_keras_serializable(package="isnet_keras")
class AveragePooling2DMirror(LinearMirror):
    """Mirror of `AveragePooling2D`: a fixed-kernel linear layer, no bias."""

    absorbs_batch_norm = True

    def _map(self):
        layer = self.source
        return linear_maps.AveragePooling2DMap(
            tuple(layer.pool_size), tuple(layer.strides), layer.padding
        )

    def propagate(self, relevance, inputs, outputs, training=None):
        x = self._cast(inputs[0])
        gain, shift = self._folded_affine(outputs[0], training)
        kernel = tf.ones((x.shape[-1],), self.lrp_dtype) if gain is None \
            else gain
        return [self._linear_rule(relevance, x, self._map(), kernel, shift)]


@keras.saving.register_keras_serializable(package="isnet_keras")
class GlobalAveragePooling2DMirror(AveragePooling2DMirror):
    """Mirror of `GlobalAveragePooling2D`."""

    def _map(self):
        return linear_maps.GlobalAveragePooling2DMap(self.source.keepdims)
