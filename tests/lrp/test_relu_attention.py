"""`ReLUAttention` and its mirror.

The oracle, in float64: with epsilon = 0 the mirror is gradient x input of
the same network in TensorFlow ops whose bilinear products `q k^T` and
`A v` pass each factor half of the gradient (`support.halved_einsum`),
with `A = relu(l) / T_k`. Unlike the softmax rule, it conserves relevance:
without biases the input heatmap sums to the logit.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.backbones import vit_small
from isnet_keras.isnet import build_isnet
from isnet_keras.lrp.composites import Composite
from isnet_keras.lrp.relu_attention import ReLUAttention
from isnet_keras.lrp.relu_attention import relu_probabilities
from tests import support

CLASS = 1
HEADS, KEY_DIM, WIDTH, TOKENS = 2, 3, 4, 4
LRP0 = Composite(default="zero", first_layer=None)
MASKS = {None: None, "causal": np.tril(np.ones((TOKENS, TOKENS), bool)),
         "constant": np.array([[1, 1, 1, 0]] * TOKENS, bool)}


def _model(attention_class=ReLUAttention, mask=None, use_bias=True,
           seed=7):
    """Tokens, a Dense embedding, one attention layer, Flatten, logits;
    float64, biases random when used."""
    keras.utils.set_random_seed(seed)
    with support.floatx("float64"):
        inputs = keras.Input((2, 2, 3))
        tokens = keras.layers.Reshape((TOKENS, 3))(inputs)
        embedded = keras.layers.Dense(WIDTH, use_bias=use_bias,
                                      name="embed")(tokens)
        kwargs = {}
        if mask == "causal":
            kwargs["use_causal_mask"] = True
        elif mask == "constant":
            kwargs["attention_mask"] = MASKS[mask][None]
        mixed = attention_class(HEADS, KEY_DIM, use_bias=use_bias,
                                name="attention")(embedded, embedded,
                                                  **kwargs)
        flat = keras.layers.Flatten()(mixed)
        logits = keras.layers.Dense(3, use_bias=use_bias,
                                    name="logits")(flat)
        model = keras.Model(inputs, logits)
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if weight.path.split("/")[-1] == "bias":
            weight.assign(rng.normal(0.0, 0.3, weight.shape))
    return model


def _images(seed=3, count=3):
    return np.random.default_rng(seed).uniform(0, 1, (count, 2, 2, 3))


def _oracle(model, images, mask):
    """Gradient x input of the halved-bilinear network, at the input and
    at the embedding."""
    def weights(name):
        return [tf.constant(w.numpy()) for w in model.get_layer(name).weights]

    boolean = None if mask is None else tf.constant(MASKS[mask][None, None])
    with tf.GradientTape() as tape:
        x = tf.constant(images)
        tape.watch(x)
        embed = weights("embed")
        h = tf.reshape(x, (-1, TOKENS, 3)) @ embed[0]
        if len(embed) > 1:
            h = h + embed[1]
        out = support.reference_attention(model.get_layer("attention"), h,
                                          h, h, boolean, rule="relu")
        head = weights("logits")
        logit = tf.reshape(out, (-1, TOKENS * WIDTH)) @ head[0]
        if len(head) > 1:
            logit = logit + head[1]
        logit = logit[:, CLASS]
        total = tf.reduce_sum(logit)
    np.testing.assert_allclose(logit, model(images)[:, CLASS], rtol=1e-10)
    grad_x, grad_h = tape.gradient(total, [x, h])
    return (x * grad_x).numpy(), (h * grad_h).numpy(), logit.numpy()


def test_the_layer_computes_relu_probabilities_over_the_keys():
    logits = tf.constant([[[[2.0, -1.0, 0.5, 0.0]]]])
    np.testing.assert_allclose(relu_probabilities(logits),
                               [[[[0.5, 0.0, 0.125, 0.0]]]])
    hidden = np.array([[True, False, True, True]])
    np.testing.assert_allclose(relu_probabilities(logits, hidden[None]),
                               [[[[0.5, 0.0, 0.125, 0.0]]]])
    np.testing.assert_allclose(
        relu_probabilities(logits, np.array([[[False, True, True, True]]])),
        [[[[0.0, 0.0, 0.125, 0.0]]]])


@pytest.mark.parametrize("mask", list(MASKS))
def test_layer_output_is_the_reference_and_returns_its_probabilities(mask):
    model = _model(mask=mask)
    layer = model.get_layer("attention")
    tokens = tf.constant(np.random.default_rng(5).normal(
        size=(2, TOKENS, WIDTH)))
    boolean = None if mask is None else tf.constant(MASKS[mask][None, None])
    expected = support.reference_attention(layer, tokens, tokens, tokens,
                                           boolean, rule="relu")
    kwargs = {"use_causal_mask": True} if mask == "causal" else (
        {"attention_mask": MASKS[mask][None]} if mask else {})
    output, probabilities = layer(tokens, tokens, **kwargs,
                                  return_attention_scores=True)
    np.testing.assert_allclose(output, expected, rtol=1e-10, atol=1e-12)
    assert (probabilities.numpy() >= 0).all()
    if mask is not None:
        hidden = ~np.broadcast_to(MASKS[mask], probabilities.shape)
        assert (probabilities.numpy()[hidden] == 0).all()


@pytest.mark.parametrize("mask", list(MASKS))
def test_lrp0_equals_halved_bilinear_gradient_times_input(mask):
    model = _model(mask=mask)
    images = _images()
    heatmaps, hidden = support.class_relevances(model, images, CLASS, LRP0,
                                                ["embed"])
    expected, expected_embed, _ = _oracle(model, images, mask)
    scale = np.abs(expected).max()
    assert np.abs(heatmaps - expected).max() <= 1e-8 * scale
    assert np.abs(hidden["embed"] - expected_embed).max() <= \
        1e-8 * np.abs(expected_embed).max()


def test_without_biases_lrp0_conserves_the_logit_where_softmax_does_not():
    images = _images(count=4)
    sums = {}
    for name, attention_class in (("relu", ReLUAttention),
                                  ("softmax",
                                   keras.layers.MultiHeadAttention)):
        model = _model(attention_class, use_bias=False, seed=11)
        heatmaps, _ = support.class_relevances(model, images, CLASS, LRP0)
        logit = model(images)[:, CLASS].numpy()
        sums[name] = (heatmaps.reshape(len(images), -1).sum(1), logit)
    total, logit = sums["relu"]
    np.testing.assert_allclose(total, logit, rtol=1e-9)
    total, logit = sums["softmax"]
    assert np.abs(total - logit).max() > 1e-3 * np.abs(logit).max()


def test_a_saved_model_with_relu_attention_loads_and_explains(tmp_path):
    model = _model(use_bias=False, seed=13)
    path = tmp_path / "relu_attention.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("attention"), ReLUAttention)
    images = _images()
    np.testing.assert_allclose(loaded(images), model(images), rtol=1e-12)
    before, _ = support.class_relevances(model, images, CLASS, LRP0)
    after, _ = support.class_relevances(loaded, images, CLASS, LRP0)
    np.testing.assert_allclose(after, before, rtol=1e-10)


def test_build_isnet_trains_a_relu_attention_vit_one_step():
    keras.utils.set_random_seed(0)
    vit = vit_small(3, 16, attention="relu", pooling="class_token",
                    mlp_activation="relu")
    assert isinstance(vit.get_layer("block1_attention"), ReLUAttention)
    support.check_one_isnet_step(build_isnet(vit, seed=0), 16)
