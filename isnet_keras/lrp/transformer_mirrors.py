"""Mirrors of the layers of vision transformers: LayerNorm, RMSNorm, a
learned position embedding, token pooling and multi-head attention.

The rules follow AttnLRP (Achtibat et al., "AttnLRP: Attention-aware
layer-wise relevance propagation for transformers", ICML 2024), see
docs/algorithm.md, "Transformer layers":

* `LayerNormalization`: a linear map with its normalisation held constant.
  `y = gamma * c * (x - mean(x)) + beta` with `c = 1 / sqrt(var(x) + eps)`
  read as the per-token linear map `W_jk = gamma_k c (delta_jk - 1/D)`
  (the centring included) plus the bias `beta`, under LRP-epsilon.
* `RMSNormalization`: `y = x * scale / rms(x)`, the same with the
  reciprocal RMS held constant: a diagonal map, no centring, no shift.
* `AddPositionEmbedding`: `y = x + p` with a learned `p`, a sum whose
  second term is a constant: LRP-epsilon, the constant's share absorbed.
* `GlobalAveragePooling1D`: the mean over the tokens, a linear layer.
* `MultiHeadAttention`: the value path, a linear map with the attention
  probabilities (masked ones included) as constants, under LRP-epsilon;
  query, key and mask get none.

Gates (`gelu`, `silu`, `hard_silu`, `mish`, also fused into a `Dense` or
`Conv2D`) take the identity rule, handled by `PassThroughMirror` and the
linear mirrors (`mirror_base.GATE_ACTIVATIONS`). A `Dense` layer on a
token tensor `(B, T, D)` is the `DenseMirror` of any rank; a `Reshape` of
the patch embedding is `ReshapeMirror`.

With epsilon = 0 these rules are gradient x input of the network whose
LayerNorm factors `c`, gate factors `gelu(z) / z` and attention
probabilities are constants (`tests/lrp/test_transformer_mirrors.py`).
"""

import keras
import tensorflow as tf

from isnet_keras.lrp import relevance as relevance_lib
from isnet_keras.lrp import rules
from isnet_keras.lrp.mirror_base import Mirror
from isnet_keras.lrp.mirror_base import unsupported


def layer_norm_rule(relevance, x, gain, beta=None, epsilon=1e-2,
                    center=True):
    """LRP-epsilon through a LayerNorm on the last axis, its factor fixed.

    The layer is `z = gain * (x - mean(x)) + sg(beta)` with the per-token
    gain `gain = gamma / sqrt(var(x) + eps)` read as a constant: the
    linear map `W_jk = gain_k (delta_jk - 1/D)` on each token. With
    `s = R / stab(z)`:

    `R_j = x_j * (gain_j s_j - mean_k(gain_k s_k))`,

    so that `sum_j R_j = sum_k R_k (z_k - beta_k) / stab(z_k)`: the
    relevance is conserved up to `beta`'s share and the epsilon terms.
    Without centring (`center=False`, RMS scaling) the map is diagonal.

    Args:
        relevance: `(B, K, ..., D)` relevance at the layer output, a
            tensor or `Factored`.
        x: `(B, ..., D)` layer input.
        gain: `(B, ..., D)` (or broadcastable) factor of the normalised
            input: `gamma` times the reciprocal standard deviation.
        beta: Optional `(D,)` shift; gradient-stopped.
        epsilon: The stabiliser.
        center: Whether the layer subtracts the mean.

    Returns:
        `Factored(x, ...)`: the `(B, K, ..., D)` relevance at the input.
    """
    centred = x - tf.reduce_mean(x, axis=-1, keepdims=True) if center else x
    z = centred * gain
    if beta is not None:
        z = z + tf.stop_gradient(beta)
    s = rules._ratio(relevance_lib.as_factored(relevance), z, epsilon,
                     per_image_factor=gain)
    if center:
        s = s - tf.reduce_mean(s, axis=-1, keepdims=True)
    return relevance_lib.Factored(x, s)


def _check_last_axis(layer, rank):
    """Raises `UnsupportedLayerError` unless `layer.axis` is the last."""
    axis = layer.axis
    axes = [axis] if isinstance(axis, int) else list(axis)
    if [a % rank for a in axes] != [rank - 1]:
        raise unsupported(layer, "only normalisation over the last axis is "
                          f"supported (axis={axis}).")


@keras.saving.register_keras_serializable(package="isnet_keras")
class LayerNormalizationMirror(Mirror):
    """Mirror of `keras.layers.LayerNormalization` on the last axis.

    LRP-epsilon with the normalisation held constant
    (`layer_norm_rule`): the reciprocal standard deviation of each token
    is a factor of the linear map, not a function of `x` that takes
    relevance. It is recomputed here from the layer input, as the layer
    computes it (and stays differentiable in the training step; the rule
    only treats it as a constant). `rms_scaling=True` (no centring, no
    `beta`) is a diagonal map.
    """

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        layer = self.source
        _check_last_axis(layer, len(inputs[0].shape))
        x = self._cast(inputs[0])
        _, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        gain = tf.math.rsqrt(variance + tf.constant(layer.epsilon, x.dtype))
        if layer.scale:
            gain = gain * self._cast(layer.gamma)
        center = not layer.rms_scaling
        beta = self._cast(layer.beta) if center and layer.center else None
        return [layer_norm_rule(relevance, x, gain, beta, self.epsilon,
                                center)]


@keras.saving.register_keras_serializable(package="isnet_keras")
class RMSNormalizationMirror(Mirror):
    """Mirror of `keras.layers.RMSNormalization` on the last axis (AttnLRP).

    The layer computes `y = x * scale / rms(x)` with
    `rms(x) = sqrt(mean(x**2) + eps)` per token. With `1 / rms(x)` held
    constant it is a diagonal linear map without bias, so LRP-epsilon
    gives `R_j = x_j * gain_j * R_j / stab(y_j)` with
    `gain = scale / rms(x)` (`layer_norm_rule` without centring or
    shift): conserved up to the epsilon terms. As for LayerNorm, `rms(x)`
    is recomputed from the layer input and stays differentiable in the
    training step; only the rule treats it as a constant.

    Example:

    >>> x = keras.layers.RMSNormalization(name="norm")(tokens)
    >>> heatmaps = explain(keras.Model(inputs, head(x)), images, 0)
    """

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        layer = self.source
        _check_last_axis(layer, len(inputs[0].shape))
        x = self._cast(inputs[0])
        mean_square = tf.reduce_mean(tf.square(x), axis=-1, keepdims=True)
        # The layer's epsilon (the Keras default when it has none).
        layer_epsilon = keras.config.epsilon() if layer.epsilon is None \
            else layer.epsilon
        gain = tf.math.rsqrt(mean_square + tf.constant(layer_epsilon,
                                                        x.dtype))
        gain = gain * self._cast(layer.scale)
        return [layer_norm_rule(relevance, x, gain, None, self.epsilon,
                                center=False)]


@keras.saving.register_keras_serializable(package="isnet_keras")
class AddPositionEmbedding(keras.layers.Layer):
    """Adds a learned tensor (a position embedding) to its input.

    `y = x + p`, with one learned `p` of the input's shape (without the
    batch axis), e.g. `(tokens, dim)` for the patch tokens of a vision
    transformer. Its LRP mirror is `PositionEmbeddingMirror`.

    Args:
        initializer: Initializer of `p`. Defaults to
            `RandomNormal(stddev=0.02)`.
        **kwargs: Base layer arguments.

    Example:

    >>> tokens = keras.layers.Reshape((16, 32))(patches)
    >>> tokens = AddPositionEmbedding()(tokens)
    """

    def __init__(self, initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(
            initializer or keras.initializers.RandomNormal(stddev=0.02))

    def build(self, input_shape):
        self.embedding = self.add_weight(
            shape=tuple(input_shape[1:]), initializer=self.initializer,
            name="embedding")

    def call(self, inputs):
        return inputs + keras.ops.cast(self.embedding, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["initializer"] = keras.initializers.serialize(self.initializer)
        return config


@keras.saving.register_keras_serializable(package="isnet_keras")
class PositionEmbeddingMirror(Mirror):
    """Mirror of `AddPositionEmbedding`: `R_x = x * R / stab(x + sg(p))`.

    The sum rule of `Add` with the learned tensor as a constant summand:
    its share `p * R / stab(x + p)` is absorbed, like a bias's.
    """

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        x = self._cast(inputs[0])
        embedding = self._cast(self.source.embedding)
        return [rules.affine_rule(relevance, x, 1.0, embedding,
                                  self.epsilon)]


@keras.saving.register_keras_serializable(package="isnet_keras")
class GlobalAveragePooling1DMirror(Mirror):
    """Mirror of `GlobalAveragePooling1D` (channels last, no mask).

    A linear layer without bias, `z = mean_t(x_t)`:
    `R_in = x * broadcast(R / stab(z)) / T`.
    """

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        keepdims = self.source.keepdims
        x = self._cast(inputs[0])
        z = tf.reduce_mean(x, axis=1, keepdims=keepdims)
        s = rules._ratio(relevance_lib.as_factored(relevance), z,
                         self.epsilon)
        if not keepdims:
            s = tf.expand_dims(s, 2)
        tokens = tf.cast(tf.shape(x)[1], x.dtype)
        shape = tf.concat([tf.shape(s)[:2], tf.shape(x)[1:]], 0)
        return [relevance_lib.Factored(x, tf.broadcast_to(s / tokens, shape))]


def _unused_letter(*equations):
    """A letter that no einsum equation of `equations` uses."""
    used = set("".join(equations))
    return next(c for c in "zyxwvutsrqponmlkjihgfedcba" if c not in used)


def _transposed(equation, letter):
    """`out,kernel->in` of `in,kernel->out`, with a class axis `letter`
    after the batch letter of `in` and `out` (the VJP of `in`)."""
    lhs, out = equation.split("->")
    term, kernel = lhs.split(",")

    def with_class(t):
        return t[0] + letter + t[1:]

    return f"{with_class(out)},{kernel}->{with_class(term)}"


@keras.saving.register_keras_serializable(package="isnet_keras")
class MultiHeadAttentionMirror(Mirror):
    """Mirror of `keras.layers.MultiHeadAttention` (AttnLRP).

    The attention probabilities `A = softmax(q k^T / sqrt(d))` are
    constants of the rule: the layer is the linear map of its value input
    `out = O(A (V x_v + b_v)) + b_o`, and LRP-epsilon runs through its
    three linear steps, the value projection, the attention-weighted sum
    over the keys (no bias) and the output projection. The query and key
    inputs get no relevance (zeros); `A` is recomputed from them, and
    stays differentiable in the training step.

    Masks (`attention_mask`, a tensor of the graph or a constant,
    `use_causal_mask=True`, explicit `query_mask`/`value_mask`/`key_mask`)
    only change which probabilities are zero: `A` is recomputed with the
    layer's own mask logic and the rule is otherwise the same. The mask
    tensor gets no relevance.

    Supported: 3-D inputs `(B, T, D)`, `layer(query, value)` or
    `layer(query, value, key)`, the default attention axes, no dropout,
    no gate. A Keras mask carried by the inputs themselves (from an
    `Embedding(mask_zero=True)`, say), which this mirror cannot see,
    makes the recomputed output differ from the layer's: a run-time check
    then fails.
    """

    _TOKEN_INPUTS = ("query", "value", "key")
    _MASKS = ("attention_mask", "query_mask", "value_mask", "key_mask")

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def check_layers(self):
        super().check_layers()
        layer = self.source
        if layer.dropout:
            raise unsupported(layer, "attention dropout is not supported "
                              "(its mask cannot be reproduced).")
        if getattr(layer, "_use_gate", False):
            raise unsupported(layer, "gated attention is not supported.")
        # Fail when the graph is built, not in the first training step.
        unknown = [n for n in self.input_names
                   if n not in self._TOKEN_INPUTS + self._MASKS]
        if unknown:
            raise unsupported(layer, f"the tensor argument(s) {unknown} are "
                              "not supported by its LRP mirror.")

    def _arguments(self, inputs):
        """The layer's inputs by argument name; without `input_names`
        (a mirror made by hand), `inputs` are `(query, value[, key])`."""
        names = self.input_names or self._TOKEN_INPUTS[:len(inputs)]
        if len(names) != len(inputs):
            raise unsupported(self.source, "its inputs cannot be matched to "
                              "the layer's arguments.")
        arguments = {k: v for k, v in self.call_kwargs.items()
                     if k in self._MASKS and v is not None}
        arguments.update(zip(names, inputs))
        return names, arguments

    def _mask(self, arguments):
        """The boolean `(B or 1, T_q, T_k)` mask of the call, or None."""
        layer = self.source
        masks = {k: arguments.get(k) for k in self._MASKS}
        causal = bool(self.call_kwargs.get("use_causal_mask", False))
        if not causal and all(m is None for m in masks.values()):
            return None
        # The layer's own logic, so that the mask is exactly the layer's.
        return layer._compute_attention_mask(
            arguments["query"], arguments["value"],
            use_causal_mask=causal, **masks)

    def _attention(self, query, key, mask=None):
        """The attention probabilities `(B, heads, T_q, T_k)`."""
        layer = self.source
        q = self._projection(layer.query_dense, query)
        k = self._projection(layer.key_dense, key)
        q = q * tf.constant(layer._inverse_sqrt_key_dim, q.dtype)
        scores = tf.einsum(layer._dot_product_equation, k, q)
        if mask is not None:
            mask = tf.cast(mask, tf.bool)
            for _ in range(len(scores.shape) - len(mask.shape)):
                mask = tf.expand_dims(mask, -3)  # the heads axis
            # Keras's masked softmax: masked scores set to -1e9 (exactly 0
            # after the softmax, also in float64).
            scores = tf.where(mask, scores, tf.constant(-1e9, scores.dtype))
        return tf.nn.softmax(scores, axis=-1)

    def _projection(self, dense, x, stop_bias=False):
        """An `EinsumDense` sublayer's output, computed in the LRP dtype."""
        z = tf.einsum(dense.equation, x, self._cast(dense.kernel))
        if dense.bias is not None:
            bias = self._cast(dense.bias)
            z = z + (tf.stop_gradient(bias) if stop_bias else bias)
        return z

    def _step(self, relevance, x, z, transposed, operand):
        """LRP-epsilon through a linear step `z` of `x`: `x * T(s)` with
        `s = R / stab(z)` and `T(s) = einsum(transposed, s, operand)`."""
        s = rules._ratio(relevance_lib.as_factored(relevance), z,
                         self.epsilon)
        return relevance_lib.Factored(x, tf.einsum(transposed, s, operand))

    def propagate(self, relevance, inputs, outputs, training=None):
        layer = self.source
        names, arguments = self._arguments(inputs)
        tokens = [arguments.get(n) for n in self._TOKEN_INPUTS]
        if tokens[0] is None or tokens[1] is None or any(
                t is not None and len(t.shape) != 3 for t in tokens):
            raise unsupported(layer, "only `layer(query, value[, key])` "
                              "on (batch, tokens, dim) tensors is "
                              "supported.")
        if tuple(layer.attention_axes) != (1,):
            raise unsupported(layer, "only the default attention axes are "
                              "supported.")
        query, value = self._cast(tokens[0]), self._cast(tokens[1])
        key = value if tokens[2] is None else self._cast(tokens[2])
        attention = self._attention(query, key, self._mask(arguments))
        v = self._projection(layer.value_dense, value, stop_bias=True)
        mixed = tf.einsum(layer._combine_equation, attention, v)
        out = self._projection(layer.output_dense, mixed, stop_bias=True)
        layer_output = self._cast(outputs[0])
        scale = tf.reduce_max(tf.abs(layer_output)) + 1.0
        tolerance = 1e-2 if outputs[0].dtype in ("float16", "bfloat16") \
            else 1e-4
        check = tf.debugging.Assert(
            tf.reduce_max(tf.abs(out - layer_output)) <= tolerance * scale,
            [f"{layer.name}: the attention recomputed by its LRP mirror "
             "differs from the layer's output; a Keras mask carried by the "
             "inputs themselves is not supported."])
        value_dense, output_dense = layer.value_dense, layer.output_dense
        if outputs[0].dtype == self.lrp_dtype:
            # The relevance arriving is the layer's output times a factor:
            # divided by that output (its bias stopped), not by the
            # recomputation, which Keras's fused kernel rounds otherwise.
            out = layer_output
            if output_dense.bias is not None:
                bias = self._cast(output_dense.bias)
                out = out - bias + tf.stop_gradient(bias)
        with tf.control_dependencies([check]):
            out = tf.identity(out)
        letter = _unused_letter(value_dense.equation, output_dense.equation,
                                layer._combine_equation)
        # The sum over keys, `einsum(combine, A, v)`, transposed for `v`.
        lhs, out_term = layer._combine_equation.split("->")
        weights, term = lhs.split(",")
        combine_t = (f"{out_term[0]}{letter}{out_term[1:]},{weights}->"
                     f"{term[0]}{letter}{term[1:]}")
        relevance = self._step(
            relevance, mixed, out, _transposed(output_dense.equation, letter),
            self._cast(output_dense.kernel))
        relevance = self._step(relevance, v, mixed, combine_t, attention)
        relevance = self._step(
            relevance, value, v, _transposed(value_dense.equation, letter),
            self._cast(value_dense.kernel))
        # No relevance for the query, key and masks (a value passed as the
        # query too gets the sum of both parts).
        leading = tf.shape(relevance.per_class)[:2]
        return [relevance if name == "value" else tf.zeros(
                    tf.concat([leading, tf.shape(tensor)[1:]], 0),
                    self.lrp_dtype)
                for name, tensor in zip(names, inputs)]
