"""Splitting an attention layer into its parts when the classifier is
re-traced.

The AttnLRP rules of `MultiHeadAttentionMirror` need the layer's
projections `q`, `k`, `v`, its logits `l`, probabilities `A` and mixed
values `h = A v`. Keras computes them inside the layer's call only, so the
mirror would recompute them: one more forward and backward pass of the
layer per training step, the largest part of a ViT ISNet's extra cost. When
the graph is re-traced, an exact `MultiHeadAttention` or `ReLUAttention`
is called as `AttentionParts(layer)` (the projections by the layer's own
sublayers, the logits, `A` and `h`) followed by `AttentionOutput(layer)`
(the output projection): the same maths with the same weights, and the
mirror reuses the parts ("z reuse" in docs/algorithm.md, "The LRP step of
a linear layer"), as it reuses the pre-activation of a linear layer.

Only layers the mirror supports are split, called on 3-D tokens with the
default attention axes, without dropout, gate, attention scores output, a
Keras mask carried by an input or an explicit `query_mask` (which Keras's
call ignores), and with a compute dtype equal to the variable dtype. A
`ReLUAttention` computes exactly as its own call does; a softmax
`MultiHeadAttention`, which Keras runs through its fused dot-product
attention, differs from it by rounding only.
"""

import keras
import tensorflow as tf

from isnet_keras.lrp import transformer_mirrors
from isnet_keras.lrp.pre_activation import ClassifierLayerPart
from isnet_keras.lrp.relu_attention import ReLUAttention
from isnet_keras.lrp.relu_attention import relu_probabilities

PARTS = ("query", "key", "value", "logits", "attention", "mixed")
"""The names of the tensors `AttentionParts` returns, in a dict."""

_TOKEN_EQUATIONS = ("aecd,abcd->acbe", "acbe,aecd->abcd")


def _has_keras_mask(tensor):
    return getattr(tensor, "_keras_mask", None) is not None


def splits_attention(layer, arguments):
    """Whether the re-trace calls `layer` as `AttentionParts` and
    `AttentionOutput`.

    Args:
        layer: A classifier layer.
        arguments: Dict of the call's arguments by name (tensors and
            constants), as the re-trace fills them in.

    Returns:
        bool.
    """
    if type(layer) not in (keras.layers.MultiHeadAttention, ReLUAttention):
        return False
    if layer.dropout or getattr(layer, "_use_gate", False):
        return False
    equations = (getattr(layer, "_dot_product_equation", None),
                 getattr(layer, "_combine_equation", None))
    if equations != _TOKEN_EQUATIONS:
        return False  # unbuilt, or not 3-D tokens on the default axes
    policy = layer.dtype_policy
    if policy.compute_dtype != policy.variable_dtype:
        return False
    if arguments.get("return_attention_scores") or \
            arguments.get("query_mask") is not None:
        return False
    tokens = [arguments.get(name) for name in ("query", "value", "key")]
    return not any(t is not None and _has_keras_mask(t) for t in tokens)


def attention_probabilities(layer, logits, mask=None):
    """The probabilities `A` of a layer that `splits_attention` accepts.

    Args:
        layer: A `MultiHeadAttention` or `ReLUAttention`.
        logits: `(B, heads, T_q, T_k)` scaled logits, unmasked.
        mask: None, or a boolean mask broadcastable to `logits`.

    Returns:
        Tensor like `logits`.
    """
    if isinstance(layer, ReLUAttention):
        return relu_probabilities(logits, mask)
    return transformer_mirrors.softmax_probabilities(logits, mask)


@keras.saving.register_keras_serializable(package="isnet_keras")
class AttentionParts(ClassifierLayerPart):
    """The projections, logits, probabilities and mixed values of an
    attention layer, by its own sublayers and equations.

    Used by the re-trace only; `AttentionOutput` finishes the layer.

    Args:
        layer: A layer for which `splits_attention` holds.

    Returns (when called):
        A dict with `PARTS`: `"query"`, `"key"`, `"value"` the projections
        `(B, T, heads, d)` (the query not yet scaled), `"logits"` the
        scaled logits `(B, heads, T_q, T_k)` before masking,
        `"attention"` the probabilities and `"mixed"` `h = A v`
        `(B, T_q, heads, d_v)`.

    Example:

    >>> parts = AttentionParts(attention)(tokens, tokens)
    >>> out = AttentionOutput(attention)(parts["mixed"])  # attention(tokens, tokens)
    """

    def __init__(self, layer, **kwargs):
        kwargs.setdefault("name", f"{layer.name}_parts")
        super().__init__(layer, **kwargs)

    def call(self, query, value, key=None, value_mask=None, key_mask=None,
             attention_mask=None, use_causal_mask=False, training=None):
        layer = self._layer
        mask = transformer_mirrors.attention_mask(layer, {
            "query": query, "value": value, "value_mask": value_mask,
            "key_mask": key_mask, "attention_mask": attention_mask},
            use_causal_mask)
        q = layer.query_dense(query)
        k = layer.key_dense(value if key is None else key)
        v = layer.value_dense(value)
        # As `ReLUAttention._compute_attention`: the query scaled first.
        scaled = tf.multiply(q, tf.constant(layer._inverse_sqrt_key_dim,
                                            q.dtype))
        logits = tf.einsum(layer._dot_product_equation, k, scaled)
        attention = attention_probabilities(layer, logits, mask)
        mixed = tf.einsum(layer._combine_equation, attention, v)
        return {"query": q, "key": k, "value": v, "logits": logits,
                "attention": attention, "mixed": mixed}

    def compute_output_spec(self, query, value, key=None, **kwargs):
        layer = self._layer
        batch, queries = query.shape[:2]
        keys = value.shape[1]
        heads, key_dim = layer.num_heads, layer.key_dim
        value_dim = layer.value_dim or key_dim
        spec = lambda *shape: keras.KerasTensor(shape, self.compute_dtype)
        return {"query": spec(batch, queries, heads, key_dim),
                "key": spec(batch, keys, heads, key_dim),
                "value": spec(batch, keys, heads, value_dim),
                "logits": spec(batch, heads, queries, keys),
                "attention": spec(batch, heads, queries, keys),
                "mixed": spec(batch, queries, heads, value_dim)}


@keras.saving.register_keras_serializable(package="isnet_keras")
class AttentionOutput(ClassifierLayerPart):
    """The output projection of an attention layer on its mixed values.

    Args:
        layer: A layer for which `splits_attention` holds.

    Example:

    >>> out = AttentionOutput(attention)(parts["mixed"])
    """

    def __init__(self, layer, **kwargs):
        kwargs.setdefault("name", f"{layer.name}_output")
        super().__init__(layer, **kwargs)

    def call(self, mixed):
        return self._layer.output_dense(mixed)

    def compute_output_shape(self, input_shape):
        return self._layer.output_dense.compute_output_shape(input_shape)
