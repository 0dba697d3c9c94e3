"""MultiHeadAttention with masks: LRP-0 against gradient x input of the
network with the masked attention probabilities held constant
(`attention_relevance="value"`), or with its two bilinear products passing
each factor half of the gradient (`"full"`, AttnLRP, the default)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.lrp.composites import Composite
from isnet_keras.lrp.mirror_base import Mirror
from tests import support

CLASS = 1
COMPOSITES = {rule: Composite(default="zero", first_layer=None,
                              attention_relevance=rule)
              for rule in ("value", "full")}
# Rows of a non-causal mask that hides some keys from every query.
PATTERN = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 1], [0, 0, 0, 1]],
                   bool)


class PatternMask(keras.layers.Layer):
    """`PATTERN` for each image of the batch: a mask computed in the
    graph, from the tokens' batch size."""

    def call(self, tokens):
        batch = keras.ops.shape(tokens)[0]
        return keras.ops.broadcast_to(PATTERN, (batch, 4, 4))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 4, 4)

    def compute_output_spec(self, tokens):
        return keras.KerasTensor((tokens.shape[0], 4, 4), dtype="bool")


class NoRelevanceMirror(Mirror):
    """The mask carries no relevance to its input."""

    rules = ()

    def propagate(self, relevance, inputs, outputs, training=None):
        shape = tf.concat([tf.shape(relevance)[:2], tf.shape(inputs[0])[1:]],
                          0)
        return [tf.zeros(shape, self.lrp_dtype)]


def masked_model(kind):
    """Tokens, a Dense embedding, masked self-attention, Flatten, logits."""
    inputs = keras.Input((2, 2, 3))
    tokens = keras.layers.Reshape((4, 3), name="tokens")(inputs)
    x = keras.layers.Dense(4, name="embed")(tokens)
    attention = keras.layers.MultiHeadAttention(2, 3, name="attention")
    if kind == "causal":
        x = attention(x, x, use_causal_mask=True)
    elif kind == "constant":
        x = attention(x, x, attention_mask=PATTERN[None])
    else:
        x = attention(x, x, attention_mask=PatternMask(name="mask")(tokens))
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs)


def _reference(model, images, mask, tape, rule="value"):
    """The model in TensorFlow ops, masked by `mask` (or not, for None):
    with the attention probabilities gradient-stopped (`rule="value"`), or
    with the bilinear products `q k^T` and `A v` halved (`"full"`)."""
    def weights(layer):
        return [tf.constant(w.numpy()) for w in layer.weights]

    kernel, bias = weights(model.get_layer("embed"))
    h = tf.reshape(images, (-1, 4, 3)) @ kernel + bias
    tape.watch(h)
    attention = support.reference_attention(model.get_layer("attention"),
                                            h, h, h, mask, rule)
    kernel, bias = weights(model.get_layer("logits"))
    logit = (tf.reshape(attention, (-1, 16)) @ kernel + bias)[:, CLASS]
    return logit, h


@pytest.mark.parametrize("rule", ["value", "full"])
@pytest.mark.parametrize("kind", ["causal", "constant", "tensor"])
def test_masked_attention_lrp0_is_gradient_times_input(kind, rule):
    keras.utils.set_random_seed(21)
    with support.floatx("float64"):
        model = masked_model(kind)
    rng = np.random.default_rng(22)
    for sub in ("_query_dense", "_key_dense", "_value_dense",
                "_output_dense"):
        dense = getattr(model.get_layer("attention"), sub)
        dense.bias.assign(rng.normal(0, 0.3, dense.bias.shape))
    images = rng.uniform(0, 1, (3, 2, 2, 3))
    mask = np.tril(np.ones((4, 4), bool)) if kind == "causal" else PATTERN
    with tf.GradientTape(persistent=True) as tape:
        x = tf.constant(images)
        tape.watch(x)
        logit, h = _reference(model, x, mask, tape, rule)
        total = tf.reduce_sum(logit)
    # The reference is the model, up to the rounding of Keras's fused
    # attention kernel (about 1e-9 relative in float64), and the mask
    # matters.
    np.testing.assert_allclose(logit, model(images)[:, CLASS], rtol=1e-7)
    with tf.GradientTape() as unmasked_tape:
        unmasked = _reference(model, x, None, unmasked_tape, rule)[0]
    assert np.abs(unmasked - logit).max() > 1e-3
    dx, dh = tape.gradient(total, [x, h])
    heatmaps, hidden = support.class_relevances(
        model, images, CLASS, COMPOSITES[rule], ("embed",),
        mirrors={PatternMask: NoRelevanceMirror})
    # Up to the fused kernel's rounding (about 1e-9 relative in float64).
    assert support.relative_l1(hidden["embed"], (h * dh).numpy()) < 1e-7
    assert support.relative_l1(heatmaps, (x * dx).numpy()) < 1e-7
