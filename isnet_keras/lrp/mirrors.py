"""Mirror layers: one per classifier layer type.

A mirror propagates relevance backwards through one classifier layer (or a
linear layer and the batch norm folded into it). It holds a *reference* to
the classifier's layer objects and reads their variables at call time, so
the weights are tied and the mirror owns no variables. It consumes the
classifier's own tensors of the same forward pass (`inputs`, `outputs`).

`DEFAULT_MIRRORS` maps classifier layer classes to mirror classes; it is the
one place to add support for a layer type (or pass `mirrors=` to the
builder). The maths lives in `rules.py`; mirrors only gather the operands.

Call convention: `mirror(relevance, inputs, outputs)` where `relevance` is
`(B, K, *output_shape)`, `inputs` the list of the (first) layer's input
tensors and `outputs` the list of each mirrored layer's output tensor.
Linear mirrors also take `pre_activation=`, the layer's own forward output
`L(x; W) + b` (before a fused ReLU or folded batch norm) that `forward_z`
names, for z reuse. It returns a list of relevances, one per input, each a
tensor, a `rules.Factored` pair or a `rules.WindowRelevance`.
"""

import types

import keras
import numpy as np
import tensorflow as tf

from isnet_keras.errors import UnsupportedLayerError
from isnet_keras.lrp import folding
from isnet_keras.lrp import linear_maps
from isnet_keras.lrp import rules

RULES = ("epsilon", "zplus")
FIRST_LAYER_RULES = ("zb", "epsilon")


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


def _unsupported(layer, reason):
    return UnsupportedLayerError(f"{layer.name} ({type(layer).__name__}): {reason}")


def _check_channels_last(layer):
    data_format = getattr(layer, "data_format", "channels_last")
    if data_format != "channels_last":
        raise _unsupported(layer, f"data_format='{data_format}' is not "
                           "supported; use channels_last.")


@keras.saving.register_keras_serializable(package="isnet_keras")
class Mirror(keras.layers.Layer):
    """Base class of the mirror layers.

    Args:
        layers: Tuple of the classifier layers mirrored (one layer, or a
            linear layer followed by the batch norm folded into it).
        rule: `"epsilon"` or `"zplus"`: the rule for linear steps.
        epsilon: float. The LRP-epsilon stabiliser.
        first_layer_rule: `"zb"` or `"epsilon"`: the rule of a linear layer
            fed by the model input (it applies when `input_bounds` is set).
        input_bounds: `(lower, upper)` arrays broadcastable to the layer
            input (without batch axis) when the layer is fed by the model
            input through value-preserving layers only, else None.
        training: The `training` value the classifier layer was explicitly
            called with, or None to follow the enclosing model's call.
        is_logits: Whether the (last) mirrored layer produces the logits;
            only then may it carry a softmax or sigmoid activation.
        lrp_dtype: dtype of the LRP arithmetic (float32, or float64 for
            float64 classifiers).
    """

    absorbs_batch_norm = False
    is_linear = False

    def __init__(self, layers, rule="epsilon", epsilon=1e-2,
                 first_layer_rule="zb", input_bounds=None, training=None,
                 is_logits=False, lrp_dtype="float32", **kwargs):
        layers = tuple(layers)
        kwargs.setdefault("name", "lrp_" + layers[-1].name)
        super().__init__(dtype=lrp_dtype, **kwargs)
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, received {rule!r}.")
        if first_layer_rule not in FIRST_LAYER_RULES:
            raise ValueError(
                f"first_layer_rule must be one of {FIRST_LAYER_RULES}, "
                f"received {first_layer_rule!r}."
            )
        # Plain attributes, deliberately bypassing Keras tracking: the
        # classifier owns these layers and their variables.
        object.__setattr__(self, "_sources", layers)
        self.rule = rule
        self.epsilon = float(epsilon)
        self.first_layer_rule = first_layer_rule
        self.input_bounds = input_bounds
        self.fixed_training = training
        self.is_logits = is_logits
        self.lrp_dtype = lrp_dtype
        self.check_layers()

    @property
    def source(self):
        """The (first) mirrored classifier layer."""
        return self._sources[0]

    @property
    def batch_norm(self):
        """The batch norm folded into this mirror, or None."""
        return self._sources[1] if len(self._sources) > 1 else None

    @classmethod
    def can_absorb(cls, layer):
        """Whether a batch norm right after `layer` can be folded into it."""
        return cls.absorbs_batch_norm

    def check_layers(self):
        """Raises `UnsupportedLayerError` for unsupported configurations."""
        _check_channels_last(self.source)
        if self.batch_norm is not None:
            folding.check_batch_norm(self.batch_norm, 4)

    def output_bounds(self):
        """Input-range bounds of the output, for value-preserving layers.

        Returns:
            `(lower, upper)` or None when the output is not a bounded copy
            of the model input (the default: relevance rules downstream use
            no bounds).
        """
        return None

    def _cast(self, tensor):
        return tf.cast(tensor, self.lrp_dtype)

    def _cast_relevance(self, relevance):
        """Casts a relevance, plain or in parts (`rules.Factored`,
        `rules.WindowRelevance`), to the LRP dtype."""
        if isinstance(relevance, tuple):
            return type(relevance)(*(self._cast(t) for t in relevance))
        return self._cast(relevance)

    def _training(self, training):
        return training if self.fixed_training is None else self.fixed_training

    def _folded_affine(self, bn_input, training):
        """`(gain, shift)` of the folded batch norm, or `(None, None)`."""
        if self.batch_norm is None:
            return None, None
        return folding.batch_norm_affine(
            self.batch_norm, bn_input, self._training(training), self.lrp_dtype
        )

    def _linear_rule_name(self):
        """`"zb"` (a first layer), `"zplus"` or `"epsilon"`."""
        if self.input_bounds is not None and self.first_layer_rule == "zb" \
                and self.is_linear:
            return "zb"
        return self.rule

    def _linear_rule(self, relevance, x, linear, kernel, bias,
                     linear_output=None, output_at_maxima=None):
        """Dispatches a linear step to the configured rule.

        `linear_output`, when given, is `L(x; kernel)` or a
        `rules.BiasedOutput` taken from the forward pass (z reuse); the z+
        rule does not use it. `output_at_maxima` goes to the epsilon rule.
        """
        if self._linear_rule_name() == "zb":
            lower, upper = self._bound_tensors()
            return rules.zb_rule(relevance, x, linear, kernel, bias, lower,
                                 upper, self.epsilon,
                                 linear_output=linear_output)
        if self._linear_rule_name() == "zplus":
            return rules.zplus_rule(relevance, x, linear, kernel, bias,
                                    self.epsilon)
        return rules.epsilon_rule(relevance, x, linear, kernel, bias,
                                  self.epsilon, linear_output=linear_output,
                                  output_at_maxima=output_at_maxima)

    def _bound_tensors(self):
        """Z^B's `(lower, upper)` as `(1, *in)` tensors, None for zeros."""
        return tuple(None if not np.any(b) else self._cast(np.asarray(b)[None])
                     for b in self.input_bounds)

    def forward_z(self, outputs, split_pre_activation):
        """The forward-pass tensor this mirror could reuse as its `z`.

        Args:
            outputs: The mirrored layers' re-traced output tensors.
            split_pre_activation: The pre-activation tensor of a layer whose
                fused ReLU the re-trace split off, or None.

        Returns:
            A tensor to pass to `call` as `pre_activation=`, or None (the
            default: the mirror takes no `pre_activation`).
        """
        return None

    def get_config(self):
        # Mirrors are rebuilt from the classifier (see `build_isnet`); the
        # config records what they mirror and how, for inspection.
        config = super().get_config()
        config.update({
            "sources": [layer.name for layer in self._sources],
            "rule": self.rule,
            "epsilon": self.epsilon,
            "first_layer_rule": self.first_layer_rule,
            "training": self.fixed_training,
            "is_logits": self.is_logits,
            "lrp_dtype": self.lrp_dtype,
        })
        return config

    @classmethod
    def from_config(cls, config):
        raise NotImplementedError(
            "LRP mirror layers hold references to a classifier's layers and "
            "are rebuilt from the classifier: save and load the ISNet model "
            "(or the classifier) instead of a bare LRP graph."
        )


class _WeightedMirror(Mirror):
    """Dense, Conv2D and DepthwiseConv2D: a kernel, an optional bias."""

    absorbs_batch_norm = True
    is_linear = True
    depthwise = False

    @classmethod
    def can_absorb(cls, layer):
        return _activation_name(layer) == "linear"

    def check_layers(self):
        super().check_layers()
        activation = _activation_name(self.source)
        allowed = {"linear", "relu"}
        if self.is_logits:
            allowed |= {"softmax", "sigmoid"}
        if activation not in allowed:
            raise _unsupported(
                self.source,
                f"activation '{activation}' has no LRP rule; use "
                "'relu' or 'linear' (softmax/sigmoid only on the logits "
                "layer).",
            )

    def linear_map(self):
        raise NotImplementedError

    def forward_z(self, outputs, split_pre_activation):
        # The layer's own output `L(x; W) + b` exists as the split-off
        # pre-activation or, for a linear activation, its output (also when
        # a batch norm is folded in: the fold is applied to it in `call`).
        if split_pre_activation is not None:
            return split_pre_activation
        if _activation_name(self.source) == "linear":
            return outputs[0]
        return None

    def _reused_linear_output(self, layer_output, bias, gain):
        """`L(x; W')` from the layer's forward output, or None.

        With a bias it is a `rules.BiasedOutput`, `(L(x; W) + b) * gain`
        with its bias `b * gain`, which the rule subtracts as part of its
        `z`: `L(x; W') = (L(x; W) + b) * gain - b * gain`. The live `b`
        cancels, so the
        result has the gradients of a recomputed `L(x; W * gain)` with
        respect to `W`, `x` and the batch norm's gamma, and none with
        respect to `b` (docs/algorithm.md, "The LRP step of a linear
        layer"); the folded statistics are constants in
        either form. Not under mixed precision, where the forward output
        is rounded to a lower precision than the LRP arithmetic.
        """
        if layer_output is None or layer_output.dtype != self.lrp_dtype:
            return None
        if gain is not None:
            layer_output = layer_output * gain
            bias = None if bias is None else bias * gain
        return layer_output if bias is None else rules.BiasedOutput(
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
        """This layer's forward output at a `rules.WindowRelevance`'s maxima.

        The relevance reaches this layer from a max pooling through
        nothing but ReLUs (`PassThroughMirror` hands on no other), and the
        layer's own activation is ReLU or linear: wherever the window
        maxima are positive they are this layer's output `L(x; W) + b`.
        Returned like `_reused_linear_output` (a `rules.BiasedOutput` with
        a bias, so that the rule's `z` has no bias gradient), or None
        without that form or with a folded batch norm.
        """
        if not isinstance(relevance, rules.WindowRelevance) or \
                gain is not None:
            return None
        if bias is None:
            return relevance.peaks
        return rules.BiasedOutput(relevance.peaks, bias)

    def call(self, relevance, inputs, outputs, pre_activation=None,
             training=None):
        layer = self.source
        x = self._cast(inputs[0])
        kernel = self._cast(layer.kernel)
        bias = self._cast(layer.bias) if layer.use_bias else None
        gain, shift = self._folded_affine(outputs[0], training)
        # z reuse: `L(x; W')` from the forward pass instead of a new conv.
        linear_output = self._reused_linear_output(pre_activation, bias, gain)
        if self._linear_rule_name() == "zb":
            x = self._bounded_input(x, inputs[0].dtype, linear_output)
        relevance = self._cast_relevance(relevance)
        output_at_maxima = None
        if self._linear_rule_name() == "epsilon":
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
            raise _unsupported(self.source, "grouped convolutions "
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
            raise _unsupported(self.source, "unequal strides are not "
                               "supported by TensorFlow's depthwise ops.")

    def linear_map(self):
        layer = self.source
        return linear_maps.DepthwiseConv2DMap(
            tuple(layer.strides), layer.padding, tuple(layer.dilation_rate)
        )


@keras.saving.register_keras_serializable(package="isnet_keras")
class AveragePooling2DMirror(Mirror):
    """Mirror of `AveragePooling2D`: a fixed-kernel linear layer, no bias."""

    absorbs_batch_norm = True

    def _map(self):
        layer = self.source
        return linear_maps.AveragePooling2DMap(
            tuple(layer.pool_size), tuple(layer.strides), layer.padding
        )

    def call(self, relevance, inputs, outputs, training=None):
        x = self._cast(inputs[0])
        gain, shift = self._folded_affine(outputs[0], training)
        kernel = tf.ones((x.shape[-1],), self.lrp_dtype) if gain is None \
            else gain
        return [self._linear_rule(self._cast_relevance(relevance), x,
                                  self._map(), kernel, shift)]


@keras.saving.register_keras_serializable(package="isnet_keras")
class GlobalAveragePooling2DMirror(AveragePooling2DMirror):
    """Mirror of `GlobalAveragePooling2D`."""

    def _map(self):
        return linear_maps.GlobalAveragePooling2DMap(self.source.keepdims)


@keras.saving.register_keras_serializable(package="isnet_keras")
class MaxPooling2DMirror(Mirror):
    """Mirror of `MaxPooling2D`: winner-take-all.

    Windows that tile the input (strides equal to the pool size, the usual
    case) send relevance to their maximum with element-wise ops, ties split
    evenly (`linear_maps.window_winners`), and nearest-neighbour upsampling.
    Overlapping windows scatter-add it to the argmax of
    `max_pool_with_argmax`. XLA has kernels for neither the upsampling's
    gradient nor the argmax, so this mirror sets `supports_jit = False`:
    Keras then compiles a model holding it without XLA (`jit_compile="auto"`
    on a GPU, or with a warning for `True`).
    """

    absorbs_batch_norm = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.supports_jit = False

    def call(self, relevance, inputs, outputs, training=None):
        layer = self.source
        x = self._cast(inputs[0])
        pooled = self._cast(outputs[0])
        gain, shift = self._folded_affine(outputs[0], training)
        pool_size = tuple(layer.pool_size)
        winners = None
        if linear_maps.tiles_windows(pool_size, tuple(layer.strides),
                                     layer.padding, tuple(x.shape)):
            # `x * scatter(s)` as `winners * broadcast(s * pooled)`: a
            # scatter at relevance size (B*K images) and its gather
            # gradient are slow, and the product with the activation is
            # cheaper at the pooled size.
            winners = (*linear_maps.window_winners(x, pooled, pool_size),
                       pool_size)

            def unpool(s):
                return linear_maps.broadcast_windows(s, pool_size,
                                                     tuple(x.shape))
        else:
            # Only the indices are used: the classifier's own pooled
            # tensor carries the (second-order) gradients.
            _, argmax = tf.nn.max_pool_with_argmax(
                x, pool_size, tuple(layer.strides), layer.padding.upper(),
                include_batch_in_index=False,
            )
            input_shape = tf.shape(x)

            def unpool(s):
                return linear_maps.max_unpool(s, argmax, input_shape)

        result = rules.winner_take_all_rule(
            self._cast_relevance(relevance), x, pooled, unpool, self.epsilon,
            gain, shift, winners=winners,
        )
        if outputs[0].dtype != self.lrp_dtype:
            # Peaks rounded to a lower precision are not the layer's `z`.
            result = rules.as_factored(result)
        return [result]


@keras.saving.register_keras_serializable(package="isnet_keras")
class GlobalMaxPooling2DMirror(Mirror):
    """Mirror of `GlobalMaxPooling2D`: winner-take-all per channel."""

    absorbs_batch_norm = True

    def call(self, relevance, inputs, outputs, training=None):
        keepdims = self.source.keepdims
        x = self._cast(inputs[0])
        pooled = tf.reduce_max(x, axis=(1, 2), keepdims=keepdims)
        gain, shift = self._folded_affine(outputs[0], training)

        def unpool(s):
            return linear_maps.global_max_unpool(s, x, keepdims)

        return [rules.winner_take_all_rule(
            self._cast_relevance(relevance), x, pooled, unpool, self.epsilon,
            gain, shift,
        )]


@keras.saving.register_keras_serializable(package="isnet_keras")
class BatchNormalizationMirror(Mirror):
    """A batch norm that could not be folded: a diagonal affine layer."""

    def check_layers(self):
        pass  # checked in call, where the input rank is known

    def call(self, relevance, inputs, outputs, training=None):
        layer = self.source
        folding.check_batch_norm(layer, len(inputs[0].shape))
        x = self._cast(inputs[0])
        gain, shift = folding.batch_norm_affine(
            layer, inputs[0], self._training(training), self.lrp_dtype
        )
        return [rules.affine_rule(self._cast_relevance(relevance), x, gain,
                                  shift, self.epsilon)]


@keras.saving.register_keras_serializable(package="isnet_keras")
class PassThroughMirror(Mirror):
    """ReLU, ReLU6, Activation('relu'|'linear'), Dropout: relevance unchanged.

    ReLUs pass relevance unchanged because the next rule down uses their
    pre-activation `z` (reused or recomputed); dropout passes it unchanged
    because that rule uses the dropped tensor of the same pass, so dropped
    units get zero.
    """

    def check_layers(self):
        layer = self.source
        if isinstance(layer, keras.layers.ReLU):
            if float(layer.negative_slope) != 0.0 or float(layer.threshold) != 0:
                raise _unsupported(layer, "ReLU with negative_slope or "
                                   "threshold has no LRP pass-through rule.")
            if layer.max_value not in (None, 6, 6.0):
                raise _unsupported(layer, "only ReLU and ReLU6 are supported "
                                   f"(max_value={layer.max_value}).")
        if isinstance(layer, keras.layers.Activation):
            name = _activation_name(layer)
            allowed = {"relu", "linear", "relu6"}
            if self.is_logits:
                allowed |= {"softmax", "sigmoid"}
            if name not in allowed:
                raise _unsupported(layer, f"activation '{name}' has no LRP "
                                   "rule; only relu, relu6 and linear pass "
                                   "relevance unchanged.")

    def output_bounds(self):
        return self.input_bounds

    def _keeps_positive_values(self):
        """Whether every positive input passes unchanged (ReLU, linear)."""
        layer = self.source
        if isinstance(layer, keras.layers.ReLU):
            return layer.max_value is None
        return isinstance(layer, keras.layers.Activation) and \
            _activation_name(layer) in ("relu", "linear")

    def call(self, relevance, inputs, outputs, training=None):
        relevance = self._cast_relevance(relevance)
        if not self._keeps_positive_values():
            # A `WindowRelevance`'s peaks are values of this layer's
            # output, not of its input.
            relevance = rules.as_factored(relevance)
        return [relevance]


@keras.saving.register_keras_serializable(package="isnet_keras")
class ReshapeMirror(Mirror):
    """Flatten and Reshape: relevance takes the input's shape back."""

    def check_layers(self):
        pass

    def call(self, relevance, inputs, outputs, training=None):
        relevance = rules.as_factored(self._cast_relevance(relevance))
        input_shape = tf.shape(inputs[0])

        def reshaped(tensor):
            # Keeps the batch axis, and the class axis of a class part.
            leading_axes = len(tensor.shape) - len(outputs[0].shape) + 1
            lead = tf.shape(tensor)[:leading_axes]
            return tf.reshape(tensor, tf.concat([lead, input_shape[1:]], 0))

        if isinstance(relevance, rules.Factored):
            return [rules.Factored(*(reshaped(t) for t in relevance))]
        return [reshaped(relevance)]


@keras.saving.register_keras_serializable(package="isnet_keras")
class ZeroPadding2DMirror(Mirror):
    """ZeroPadding2D: relevance of the padded border is dropped (it is 0)."""

    def _padding(self):
        (top, bottom), (left, right) = self.source.padding
        return top, bottom, left, right

    def output_bounds(self):
        if self.input_bounds is None:
            return None
        top, bottom, left, right = self._padding()
        return tuple(
            np.pad(np.asarray(b), ((top, bottom), (left, right), (0, 0)))
            for b in self.input_bounds
        )

    def call(self, relevance, inputs, outputs, training=None):
        top, bottom, left, right = self._padding()
        relevance = rules.materialize(self._cast_relevance(relevance))
        height = tf.shape(relevance)[2]
        width = tf.shape(relevance)[3]
        return [relevance[:, :, top:height - bottom, left:width - right]]


@keras.saving.register_keras_serializable(package="isnet_keras")
class AddMirror(Mirror):
    """Add and Average: `R_i = a_i * R / stab(sum)`."""

    def check_layers(self):
        pass

    def call(self, relevance, inputs, outputs, training=None):
        weights = None
        if isinstance(self.source, keras.layers.Average):
            weights = [1.0 / len(inputs)] * len(inputs)
        return rules.sum_rule(self._cast_relevance(relevance),
                              [self._cast(a) for a in inputs], self.epsilon,
                              weights)


@keras.saving.register_keras_serializable(package="isnet_keras")
class ConcatenateMirror(Mirror):
    """Concatenate: relevance is split back along the concatenation axis."""

    def check_layers(self):
        pass

    def call(self, relevance, inputs, outputs, training=None):
        rank = len(inputs[0].shape)
        axis = self.source.axis % rank
        sizes = [int(a.shape[axis]) for a in inputs]
        relevance = rules.materialize(self._cast_relevance(relevance))
        return tf.split(relevance, sizes, axis=axis + 1)


@keras.saving.register_keras_serializable(package="isnet_keras")
class RescalingMirror(Mirror):
    """Rescaling and Normalization, `x' = scale * x + offset`.

    Between the model input and the first linear layer relevance passes
    unchanged (the map is one-to-one per pixel) and the Z^B bounds are mapped
    through it. Deeper in the network it is a diagonal affine layer.
    """

    def check_layers(self):
        if isinstance(self.source, keras.layers.Normalization) and \
                self.source.invert:
            raise _unsupported(self.source, "invert=True is not supported.")

    def _scale_offset(self):
        layer = self.source
        if isinstance(layer, keras.layers.Normalization):
            std = np.sqrt(np.asarray(layer.variance, dtype=np.float64))
            scale = 1.0 / np.maximum(std, keras.backend.epsilon())
            offset = -np.asarray(layer.mean, dtype=np.float64) * scale
        else:
            scale = np.asarray(layer.scale, dtype=np.float64)
            offset = np.asarray(layer.offset, dtype=np.float64)
        return scale, offset

    def output_bounds(self):
        if self.input_bounds is None:
            return None
        scale, offset = self._scale_offset()
        lower, upper = (np.asarray(b) * scale + offset for b in self.input_bounds)
        return np.minimum(lower, upper), np.maximum(lower, upper)

    def call(self, relevance, inputs, outputs, training=None):
        relevance = rules.as_factored(self._cast_relevance(relevance))
        if self.input_bounds is not None:
            return [relevance]
        scale, offset = self._scale_offset()
        # Normalization keeps a leading batch axis in its statistics.
        scale = self._cast(np.squeeze(scale, axis=0) if np.ndim(scale) == len(
            inputs[0].shape) else scale)
        offset = self._cast(np.squeeze(offset, axis=0) if np.ndim(offset) ==
                            len(inputs[0].shape) else offset)
        return [rules.affine_rule(relevance, self._cast(inputs[0]), scale,
                                  offset, self.epsilon)]


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
})
"""Classifier layer class -> mirror class. Exact classes only: a subclass
may change the computation, so it must be registered explicitly."""


def mirror_class(layer, mirrors=None):
    """Looks up the mirror class of `layer`.

    Args:
        layer: A classifier layer.
        mirrors: Optional mapping that extends or overrides
            `DEFAULT_MIRRORS`.

    Returns:
        A `Mirror` subclass.

    Raises:
        UnsupportedLayerError: naming the layer and its class.
    """
    registry = dict(DEFAULT_MIRRORS)
    registry.update(mirrors or {})
    cls = registry.get(type(layer))
    if cls is None:
        raise _unsupported(layer, "no LRP mirror is registered for this "
                           "layer type; add one with `mirrors={LayerClass: "
                           "MirrorClass}`.")
    return cls
