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
* `MultiHeadAttention`: LRP-epsilon through the four projections, the
  uniform rule (half of the relevance to each factor) through the two
  bilinear products `A v` and `q k^T`, and gradient x input through the
  softmax, so that query, key and value all get relevance; the mask gets
  none. `attention_relevance="value"` (a composite option) keeps the
  earlier rule: the value path alone, `A` a constant.

Gates (`gelu`, `silu`, `hard_silu`, `mish`, also fused into a `Dense` or
`Conv2D`) take the identity rule, handled by `PassThroughMirror` and the
linear mirrors (`mirror_base.GATE_ACTIVATIONS`). A `Dense` layer on a
token tensor `(B, T, D)` is the `DenseMirror` of any rank; a `Reshape` of
the patch embedding is `ReshapeMirror`.

With epsilon = 0 these rules are gradient x input of the network whose
LayerNorm factors `c` and gate factors `gelu(z) / z` are constants and
whose bilinear products pass each factor half of the gradient
(`tests/lrp/test_attention_query_key.py`); with the attention
probabilities constants instead for `"value"`
(`tests/lrp/test_transformer_mirrors.py`).
"""

import keras
import tensorflow as tf

from isnet_keras.lrp import composites
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
        return [layer_norm_rule(relevance, x, gain, self._absorbing(beta),
                                self.epsilon, center)]


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
    its share `p * R / stab(x + p)` is absorbed, like a bias's. Under
    `bias_relevance="ignore"` all of `R` goes to `x` (up to epsilon).
    """

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        x = self._cast(inputs[0])
        embedding = self._cast(self.source.embedding)
        return [rules.affine_rule(relevance, x, 1.0,
                                  self._absorbing(embedding), self.epsilon)]


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


_MASK_ARGUMENTS = ("attention_mask", "query_mask", "value_mask", "key_mask")


def attention_mask(layer, arguments, use_causal_mask=False):
    """The boolean `(B or 1, 1, T_q, T_k)` mask of an attention call (a
    heads axis added), or None when the call has none.

    Args:
        layer: The `MultiHeadAttention` layer.
        arguments: Dict of the call's tensors by argument name: `"query"`,
            `"value"` and any of the masks (`"attention_mask"`,
            `"query_mask"`, `"value_mask"`, `"key_mask"`).
        use_causal_mask: The call's flag.

    Returns:
        A boolean tensor, or None.
    """
    masks = {name: arguments.get(name) for name in _MASK_ARGUMENTS}
    if not use_causal_mask and all(m is None for m in masks.values()):
        return None
    # The layer's own logic, so that the mask is exactly the layer's.
    mask = tf.cast(layer._compute_attention_mask(
        arguments["query"], arguments["value"],
        use_causal_mask=use_causal_mask, **masks), tf.bool)
    for _ in range(4 - len(mask.shape)):
        mask = tf.expand_dims(mask, -3)  # the heads axis
    return mask


def softmax_probabilities(logits, mask=None):
    """`softmax(l)` over the keys, masked logits set to -1e9 first, as in
    Keras's masked softmax (exactly 0 after it, also in float64).

    Args:
        logits: `(B, heads, T_q, T_k)` scaled logits.
        mask: None, or a boolean mask broadcastable to `logits`.

    Returns:
        Tensor like `logits`.
    """
    if mask is not None:
        logits = tf.where(mask, logits, tf.constant(-1e9, logits.dtype))
    return tf.nn.softmax(logits, axis=-1)


def _unused_letter(*equations):
    """A letter that no einsum equation of `equations` uses."""
    used = set("".join(equations))
    return next(c for c in "zyxwvutsrqponmlkjihgfedcba" if c not in used)


def _with_class(term, letter):
    """An einsum term with the class axis `letter` after its batch letter."""
    return term[0] + letter + term[1:]


def _terms(equation):
    """`(first, second, out)`: the terms of `first,second->out`."""
    lhs, out = equation.split("->")
    first, second = lhs.split(",")
    return first, second, out


def _transposed(equation, letter):
    """`out,kernel->in` of `in,kernel->out`, with a class axis `letter`
    after the batch letter of `in` and `out` (the VJP of `in`)."""
    term, kernel, out = _terms(equation)
    return (f"{_with_class(out, letter)},{kernel}->"
            f"{_with_class(term, letter)}")


def _added(first, second):
    """The sum of two relevances of one tensor; kept `Factored` when both
    are factored on the same tensor (a key that is the value input)."""
    if (isinstance(first, relevance_lib.Factored) and
            isinstance(second, relevance_lib.Factored) and
            first.per_image is second.per_image):
        return relevance_lib.Factored(first.per_image,
                                      first.per_class + second.per_class)
    return relevance_lib.materialize(first) + relevance_lib.materialize(
        second)


@keras.saving.register_keras_serializable(package="isnet_keras")
class MultiHeadAttentionMirror(Mirror):
    """Mirror of `keras.layers.MultiHeadAttention` (AttnLRP).

    Per head, the layer computes the projections
    `q = (x_q W_Q + b_Q) / sqrt(d)`, `k = x_k W_K + b_K` and
    `v = x_v W_V + b_V`, the logits `l = q k^T` (masked ones set to a large
    negative number), `A = softmax(l)` over the keys, `h = A v` and
    `out = h W_O + b_O`.

    With `attention_relevance="full"` (the default) every step passes
    relevance, by AttnLRP's rules:

    * the four projections: LRP-epsilon, each bias absorbing its share
      (none under `bias_relevance="ignore"`);
    * the two bilinear products `h = A v` and `l = q k^T`: the uniform
      rule, each factor taking half of the relevance by LRP-epsilon:
      with `s = R_h / stab(h)`, `R_v = v * (A^T s) / 2` and
      `R_A = A * (s v^T) / 2`, and likewise `R_q`, `R_k` from `R_l`;
    * the softmax: gradient x input at its input, `R_l = l * A *
      (c - sum_j A_j c_j)` over the keys for `R_A = A * c`. It is not
      conservative (the softmax is shift invariant, and `l` is not centred).

    So the query and key inputs get relevance as well as the value input:
    an attention that picks tokens by their keys shows in the heatmap.
    With epsilon = 0 the rules are gradient x input of the network whose
    two bilinear products pass each factor half of the gradient
    (`x y -> (sg(x) y + x sg(y)) / 2`), the softmax left as it is.

    With `attention_relevance="value"`, the rule of earlier versions, `A`
    is a constant of the rule: the layer is the linear map of its value
    input, LRP-epsilon runs through the value projection, `h = A v` and
    the output projection, and the query and key inputs get no relevance.

    A tensor passed as several of query, key and value gets the sum of its
    parts: the graph builder adds the relevances of the inputs that are one
    tensor (`layer(x, x)`), and a key that is not passed, the value, gets
    its part added to the value's here.

    `A` is recomputed from the query and key with their live biases and
    stays differentiable in the training step; the rules' own factors and
    `z`s (`q`, `k`, `v`, `l`, `h`) take the biases gradient-stopped, as all
    rules do.

    Masks (`attention_mask`, a tensor of the graph or a constant,
    `use_causal_mask=True`, explicit `query_mask`/`value_mask`/`key_mask`)
    only change which probabilities are zero: `A` is recomputed with the
    layer's own mask logic; masked logits get exactly zero relevance, and
    so does the mask tensor.

    Supported: 3-D inputs `(B, T, D)`, `layer(query, value)` or
    `layer(query, value, key)`, the default attention axes, no dropout,
    no gate. A Keras mask carried by the inputs themselves (from an
    `Embedding(mask_zero=True)`, say), which this mirror cannot see,
    makes the recomputed output differ from the layer's: a run-time check
    then fails.

    Args:
        layers: `(layer,)`, the `MultiHeadAttention` layer.
        attention_relevance: `"full"` (default) or `"value"`, see above.
            The graph builder passes the composite's
            (`Composite(attention_relevance=...)`).
        **kwargs: `Mirror` arguments.

    Example:

    >>> composite = default_composite(attention_relevance="value")
    >>> heatmaps = explain(vit, images, composite=composite)
    """

    _TOKEN_INPUTS = ("query", "value", "key")
    _MASKS = _MASK_ARGUMENTS

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)
    composite_options = ("attention_relevance", "bias_relevance")

    def __init__(self, layers, attention_relevance="full", **kwargs):
        composites.check_attention_relevance(attention_relevance)
        super().__init__(layers, **kwargs)
        self.attention_relevance = attention_relevance

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

    def get_config(self):
        config = super().get_config()
        config["attention_relevance"] = self.attention_relevance
        return config

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

    def _token_inputs(self, arguments):
        """`(query, value, key)` in the LRP dtype; `key` is `value` (the
        same tensor object) when the call passes none."""
        layer = self.source
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
        return query, value, key

    def _mask(self, arguments):
        """The boolean `(B or 1, 1, T_q, T_k)` mask of the call (a heads
        axis added), or None."""
        return attention_mask(
            self.source, arguments,
            bool(self.call_kwargs.get("use_causal_mask", False)))

    def _logits(self, q, k):
        """The logits `(B, heads, T_q, T_k)` of the scaled queries `q` and
        the keys `k`, unmasked."""
        return tf.einsum(self.source._dot_product_equation, k, q)

    def _projection(self, dense, x):
        """`(z, z_stopped)`: an `EinsumDense` sublayer's output in the LRP
        dtype, with its bias live and gradient-stopped."""
        z = tf.einsum(dense.equation, x, self._cast(dense.kernel))
        if dense.bias is None:
            return z, z
        bias = self._cast(dense.bias)
        return z + bias, z + tf.stop_gradient(bias)

    def _rule_z(self, z, dense):
        """The `z` of a projection's LRP-epsilon step: `z` itself (its
        bias stopped, absorbing a share), or, under
        `bias_relevance="ignore"`, `z` without the bias."""
        if self.bias_relevance == "absorb" or dense.bias is None:
            return z
        return z - tf.stop_gradient(self._cast(dense.bias))

    def _bias_stopper(self, dense):
        """`stop_gradient(b) - b` of a projection's bias `b` (0, with the
        gradient -1 with respect to `b`), or None without a bias: added to
        a forward tensor of the layer, it stops the bias's gradient there
        as `_projection`'s `z_stopped` does, leaving the value unchanged."""
        if dense.bias is None:
            return None
        bias = self._cast(dense.bias)
        return tf.stop_gradient(bias) - bias

    def forward_z(self, outputs, split_pre_activation):
        """The layer's `AttentionParts` (see `attention_parts.py`), when the
        re-trace split the layer and they are in the LRP dtype."""
        if (isinstance(split_pre_activation, dict) and
                self.source.compute_dtype == self.lrp_dtype):
            return split_pre_activation
        return None

    def _reused_parts(self, parts):
        """`(q, k, v, logits, attention, mixed)` of the rules from the
        layer's own forward tensors (`AttentionParts`), the values those
        of the recomputation, the biases of `q`, `k`, `v` gradient-stopped
        in `q`, `k`, `v`, in the logits `(q / sqrt(d)) k^T` and in
        `h = A v`, as there (`A` stays live)."""
        layer = self.source
        q, k, v = parts["query"], parts["key"], parts["value"]
        logits, attention = parts["logits"], parts["attention"]
        mixed = parts["mixed"]
        q_stop = self._bias_stopper(layer.query_dense)
        k_stop = self._bias_stopper(layer.key_dense)
        v_stop = self._bias_stopper(layer.value_dense)
        scale = tf.constant(layer._inverse_sqrt_key_dim, self.lrp_dtype)
        # Equations of `(B, T, heads, d)` projections and `(B, heads, T_q,
        # T_k)` logits, the only layout `splits_attention` accepts:
        # `(q + dq)(k + dk)^T = q k^T + q dk^T + dq k^T` (`dq dk^T` has
        # value and gradient 0).
        if k_stop is not None:
            logits += scale * tf.einsum("abcd,cd->acb", q, k_stop)[..., None]
        if q_stop is not None:
            logits += scale * tf.einsum("aecd,cd->ace", k,
                                        q_stop)[:, :, None, :]
            q = q + q_stop
        if k_stop is not None:
            k = k + k_stop
        if v_stop is not None:
            mixed += tf.einsum("acbe,cd->abcd", attention, v_stop)
            v = v + v_stop
        return q, k, v, logits, attention, mixed

    def _output_z(self, layer_output):
        """The output projection's `z`: the layer's output, its bias
        gradient-stopped."""
        out = self._cast(layer_output)
        bias = self.source.output_dense.bias
        if bias is None:
            return out
        bias = self._cast(bias)
        return out - bias + tf.stop_gradient(bias)

    def _checked_output(self, out, layer_output):
        """The `z` of the output projection, after a run-time check that
        `out`, the recomputed output, equals the layer's."""
        layer = self.source
        recomputed = out
        # The layer's compute dtype, not `layer_output.dtype`: Keras casts
        # a mirror's tensor arguments to the mirror's dtype when it is
        # called, so a float16 output arrives here as float32.
        out_dtype = layer.compute_dtype
        layer_output = self._cast(layer_output)
        scale = tf.reduce_max(tf.abs(layer_output)) + 1.0
        tolerance = 1e-2 if out_dtype in ("float16", "bfloat16") else 1e-4
        check = tf.debugging.Assert(
            tf.reduce_max(tf.abs(recomputed - layer_output))
            <= tolerance * scale,
            [f"{layer.name}: the attention recomputed by its LRP mirror "
             "differs from the layer's output; a Keras mask carried by the "
             "inputs themselves is not supported."])
        if out_dtype == self.lrp_dtype:
            # The relevance arriving is the layer's output times a factor:
            # divided by that output (its bias stopped), not by the
            # recomputation, which Keras's fused kernel rounds otherwise.
            out = self._output_z(layer_output)
        with tf.control_dependencies([check]):
            return tf.identity(out)

    def _step(self, relevance, x, z, transposed, operand):
        """LRP-epsilon through a linear step `z` of `x`: `x * T(s)` with
        `s = R / stab(z)` and `T(s) = einsum(transposed, s, operand)`."""
        s = rules._ratio(relevance_lib.as_factored(relevance), z,
                         self.epsilon)
        return relevance_lib.Factored(x, tf.einsum(transposed, s, operand))

    def _value_only(self, relevance, v, mixed, attention, letter):
        """`{"value": R_v}`: `h = A v` as a linear map of `v`, `A` constant
        (`attention_relevance="value"`)."""
        weights, v_term, h_term = _terms(self.source._combine_equation)
        combine_t = (f"{_with_class(h_term, letter)},{weights}->"
                     f"{_with_class(v_term, letter)}")
        return {"value": self._step(relevance, v, mixed, combine_t,
                                    attention)}

    def _probabilities(self, q, k, mask=None):
        """The attention probabilities `A = softmax(l)` `(B, heads, T_q,
        T_k)` of the scaled queries `q` and the keys `k` (masked ones 0)."""
        return softmax_probabilities(self._logits(q, k), mask)

    def _probability_rule(self, c, attention, logits, mask):
        """Gradient x input at the softmax's input.

        Args:
            c: `(B, K, heads, T_q, T_k)` class part of the relevance of
                the probabilities, `R_A = A * c`.
            attention: `(B, heads, T_q, T_k)` probabilities `A`.
            logits: `(B, heads, T_q, T_k)` unmasked logits.
            mask: The boolean mask (broadcastable), or None.

        Returns:
            `Factored(l * A, c - sum_j A_j c_j)`, the relevance of the
            logits, exactly 0 where masked: there the softmax's input is
            the mask's constant, not `l`, and takes none.
        """
        centred = c - tf.reduce_sum(rules.per_class(attention) * c, axis=-1,
                                    keepdims=True)
        per_image = logits * attention
        if mask is not None:
            per_image = tf.where(mask, per_image, tf.zeros_like(per_image))
        return relevance_lib.Factored(per_image, centred)

    def _query_key_value(self, relevance, q, k, v, mixed, attention, mask,
                         logits=None):
        """AttnLRP from the relevance of `h = A v` to `q`, `k` and `v`
        (`attention_relevance="full"`).

        The products of the two bilinear steps run as batched matrix
        products with the heads first, `(B, K, heads, T, d)`: `einsum` on
        the tokens-first layout transposes inside every call, which costs
        more than the product at ViT sizes on CPUs.

        Args:
            relevance: `(B, K, T_q, heads, d_v)` relevance of `h`.
            q, k, v: `(B, T, heads, d)` projections, biases stopped; `q`
                not yet scaled by `1 / sqrt(d)`.
            mixed: `h`, the `z` of the attention-weighted sum.
            attention: The probabilities `A`, `(B, heads, T_q, T_k)`.
            mask: The boolean mask (broadcastable), or None.
            logits: The scaled logits `(q / sqrt(d)) k^T`, unmasked, biases
                stopped, or None to compute them.

        Returns:
            `{"query": R_q, "key": R_k, "value": R_v}`, each `Factored` on
            its projection.
        """
        layer = self.source
        half = tf.constant(0.5, self.lrp_dtype)
        scale = tf.constant(layer._inverse_sqrt_key_dim, self.lrp_dtype)

        def heads_first(tensor):
            """`(B, T, heads, d)` -> `(B, 1, heads, T, d)`."""
            return tf.transpose(tensor, [0, 2, 1, 3])[:, None]

        def tokens_first(tensor):
            """`(B, K, heads, T, d)` -> `(B, K, T, heads, d)`."""
            return tf.transpose(tensor, [0, 1, 3, 2, 4])

        # `h = A v`, the uniform rule: half of `s = R_h / stab(h)` to each
        # factor, `R_v = v * (A^T s) / 2` and `R_A = A * (s v^T) / 2`. The
        # halves go into the (per-image) operands.
        s = rules._ratio(relevance_lib.as_factored(relevance), mixed,
                         self.epsilon)
        s = tf.transpose(s, [0, 1, 3, 2, 4])  # heads first
        r_v = relevance_lib.Factored(v, tokens_first(tf.matmul(
            (half * attention)[:, None], s, transpose_a=True)))
        c = tf.matmul(s, heads_first(half * v), transpose_b=True)
        # The probabilities' rule, then `l = (q / sqrt(d)) k^T`, the
        # uniform rule again: `R_q = q * (s k) / (2 sqrt(d))`, the
        # relevance of the scaled query, which the scaling passes on
        # unchanged (one-to-one), and `R_k = k * (s^T q) / (2 sqrt(d))`.
        if logits is None:
            logits = self._logits(q * scale, k)
        r_logits = self._probability_rule(c, attention, logits, mask)
        s = rules._ratio(r_logits, logits, self.epsilon)
        r_q = relevance_lib.Factored(q, tokens_first(tf.matmul(
            s, heads_first((half * scale) * k))))
        r_k = relevance_lib.Factored(k, tokens_first(tf.matmul(
            s, heads_first((half * scale) * q), transpose_a=True)))
        return {"query": r_q, "key": r_k, "value": r_v}

    def propagate(self, relevance, inputs, outputs, training=None,
                  pre_activation=None):
        layer = self.source
        names, arguments = self._arguments(inputs)
        query, value, key = self._token_inputs(arguments)
        mask = self._mask(arguments)
        if pre_activation is not None:
            # The layer's own forward tensors (`forward_z`): no recompute.
            q, k, v, logits, attention, mixed = self._reused_parts(
                pre_activation)
            out = self._output_z(outputs[0])
        else:
            q_live, q = self._projection(layer.query_dense, query)
            k_live, k = self._projection(layer.key_dense, key)
            _, v = self._projection(layer.value_dense, value)
            scale = tf.constant(layer._inverse_sqrt_key_dim, self.lrp_dtype)
            # Live biases: the training step differentiates `A` in full.
            attention = self._probabilities(q_live * scale, k_live, mask)
            mixed = tf.einsum(layer._combine_equation, attention, v)
            _, out = self._projection(layer.output_dense, mixed)
            out = self._checked_output(out, outputs[0])
            logits = None
        dense = {"query": layer.query_dense, "key": layer.key_dense,
                 "value": layer.value_dense}
        letter = _unused_letter(
            layer._combine_equation, layer._dot_product_equation,
            layer.output_dense.equation,
            *(d.equation for d in dense.values()))
        relevance = self._step(
            relevance, mixed, self._rule_z(out, layer.output_dense),
            _transposed(layer.output_dense.equation, letter),
            self._cast(layer.output_dense.kernel))
        leading = tf.shape(relevance.per_class)[:2]
        if self.attention_relevance == "value":
            parts = self._value_only(relevance, v, mixed, attention, letter)
        else:
            parts = self._query_key_value(relevance, q, k, v, mixed,
                                          attention, mask, logits)
        # Through the projections to the inputs.
        tokens = {"query": (query, q), "key": (key, k), "value": (value, v)}
        found = {}
        for name, part in parts.items():
            x, z = tokens[name]
            found[name] = self._step(
                part, x, self._rule_z(z, dense[name]),
                _transposed(dense[name].equation, letter),
                self._cast(dense[name].kernel))
        if "key" in found and "key" not in names:
            # The key is the value input: one relevance, the sum.
            found["value"] = _added(found["value"], found.pop("key"))
        # The masks (and, for "value", the query and key) get none.
        return [found[name] if name in found else tf.zeros(
                    tf.concat([leading, tf.shape(tensor)[1:]], 0),
                    self.lrp_dtype)
                for name, tensor in zip(names, inputs)]
