"""Attention whose probabilities are ReLUs of the logits, and its mirror.

`ReLUAttention` is `keras.layers.MultiHeadAttention` with the softmax
replaced by `A = relu(l) / T_k` (`T_k` the number of keys), as in
Wortsman et al., "Replacing softmax with ReLU in vision transformers"
(2023). The layer is then piecewise bilinear in its inputs: no
normalisation couples the keys, so under the uniform rule of the bilinear
products (AttnLRP) and the identity rule of the ReLU, every step of the
attention passes on all of the relevance it receives (less the biases'
shares and epsilon). The softmax rule cannot: the softmax is shift
invariant, and its gradient x input neither sums to the relevance of the
probabilities nor vanishes for a logit that moves them all alike
(docs/algorithm.md, "Transformer layers"). `ReLUAttentionMirror` is its
LRP mirror.
"""

import keras
import tensorflow as tf

from isnet_keras.lrp import relevance as relevance_lib
from isnet_keras.lrp.transformer_mirrors import MultiHeadAttentionMirror


@keras.saving.register_keras_serializable(package="isnet_keras")
class ReLUAttention(keras.layers.MultiHeadAttention):
    """Multi-head attention with `A = relu(q k^T / sqrt(d)) / T_k`.

    Every argument, the call and the weights are those of
    `keras.layers.MultiHeadAttention`; only the probabilities differ: the
    ReLU of each logit divided by the number of keys `T_k` (masked keys
    get 0, and still count in `T_k`). The rows of `A` need not sum to 1.

    Example:

    >>> tokens = keras.Input((16, 32))
    >>> mixed = ReLUAttention(num_heads=4, key_dim=8)(tokens, tokens)
    >>> mixed.shape
    (None, 16, 32)
    """

    def _compute_attention(self, query, key, value, attention_mask=None,
                           training=None, return_attention_scores=False,
                           use_causal_mask=False):
        if use_causal_mask:
            # `call` leaves a causal mask to the fused kernel, which this
            # layer does not use: build it here.
            causal = self._compute_causal_mask(query, value)
            attention_mask = causal if attention_mask is None else \
                keras.ops.logical_and(
                    keras.ops.cast(attention_mask, "bool"), causal)
        # Converted straight to the query's dtype: a cast of the Python
        # float would round it to float32 first.
        query = keras.ops.multiply(query, keras.ops.convert_to_tensor(
            self._inverse_sqrt_key_dim, dtype=query.dtype))
        logits = keras.ops.einsum(self._dot_product_equation, key, query)
        probabilities = relu_probabilities(logits, attention_mask)
        if self._dropout > 0.0:
            dropped = self._dropout_layer(probabilities, training=training)
        else:
            dropped = probabilities
        mixed = keras.ops.einsum(self._combine_equation, dropped, value)
        return mixed, probabilities


def relu_probabilities(logits, mask=None):
    """`relu(logits) / T_k`, 0 where `mask` is False.

    Args:
        logits: `(B, heads, T_q, T_k)`.
        mask: None, or a boolean mask broadcastable to `logits` once a
            heads axis is added where it has three axes.

    Returns:
        Tensor like `logits`.
    """
    keys = keras.ops.cast(keras.ops.shape(logits)[-1], logits.dtype)
    probabilities = keras.ops.relu(logits) / keys
    if mask is None:
        return probabilities
    mask = keras.ops.cast(mask, "bool")
    while len(mask.shape) < len(logits.shape):
        mask = keras.ops.expand_dims(mask, -3)  # the heads axis
    return keras.ops.where(mask, probabilities,
                           keras.ops.zeros_like(probabilities))


@keras.saving.register_keras_serializable(package="isnet_keras")
class ReLUAttentionMirror(MultiHeadAttentionMirror):
    """Mirror of `ReLUAttention`: `MultiHeadAttentionMirror` with the
    identity rule at `A = relu(l) / T_k`.

    `A` is an element-wise function of `l` that is 0 or proportional to
    it, so the relevance of the probabilities goes to the logits one to
    one (`R_l = R_A`): with epsilon = 0 this is gradient x input at the
    ReLU's input, as the softmax rule is at the softmax's, but it conserves
    the relevance. Everything else, the `"value"` option included, is
    `MultiHeadAttentionMirror`'s.

    Args:
        layers: `(layer,)`, the `ReLUAttention` layer.
        attention_relevance: `"full"` (default) or `"value"`.
        **kwargs: `Mirror` arguments.
    """

    def _probabilities(self, q, k, mask=None):
        logits = tf.einsum(self.source._dot_product_equation, k, q)
        return relu_probabilities(logits, mask)

    def _probability_rule(self, c, attention, logits, mask):
        """`R_l = R_A = A * c`: masked entries of `A` are 0 already."""
        return relevance_lib.Factored(attention, c)
