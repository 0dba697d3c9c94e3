"""RMSNormalization (AttnLRP): LRP-0 against gradient x input of the
network with the reciprocal RMS held constant, and conservation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.lrp import relevance as relevance_lib
from isnet_keras.lrp.composites import Composite
from isnet_keras.lrp.transformer_mirrors import RMSNormalizationMirror
from tests import support

CLASS = 2
LRP0 = Composite(default="zero", first_layer=None)
HIDDEN = ("embed", "norm", "pool")


def tiny_rms_model():
    """Tokens -> Dense -> RMSNormalization -> mean over tokens -> logits."""
    inputs = keras.Input((4, 5))
    x = keras.layers.Dense(6, name="embed")(inputs)
    x = keras.layers.RMSNormalization(name="norm")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def rms64():
    keras.utils.set_random_seed(11)
    with support.floatx("float64"):
        model = tiny_rms_model()
    rng = np.random.default_rng(12)
    model.get_layer("norm").scale.assign(rng.uniform(0.5, 1.5, 6))
    for name in ("embed", "logits"):
        bias = model.get_layer(name).bias
        bias.assign(rng.normal(0, 0.3, bias.shape))
    tokens = rng.normal(0, 1, (3, 4, 5))
    return model, tokens


def _reference(model, tokens, tape):
    """The model in TensorFlow ops, `1 / rms(x)` gradient-stopped; returns
    the class logit, the named hidden tensors and the (watched) biases."""
    def weights(name):
        return [tf.constant(w.numpy()) for w in model.get_layer(name).weights]

    kernel, bias = weights("embed")
    head_kernel, head_bias = weights("logits")
    (scale,) = weights("norm")
    biases = {"embed": bias, "logits": head_bias}
    tape.watch(list(biases.values()))
    t = {"embed": tokens @ kernel + bias}
    rms = tf.sqrt(tf.reduce_mean(tf.square(t["embed"]), -1, keepdims=True)
                  + model.get_layer("norm").epsilon)
    t["norm"] = t["embed"] * scale / tf.stop_gradient(rms)
    t["pool"] = tf.reduce_mean(t["norm"], axis=1)
    logit = (t["pool"] @ head_kernel + head_bias)[:, CLASS]
    return logit, t, biases


def _lrp0(model, tokens):
    return support.class_relevances(model, tokens, CLASS, LRP0, HIDDEN)


def test_rms_norm_lrp0_is_gradient_times_input_and_conserves(rms64):
    model, tokens = rms64
    with tf.GradientTape(persistent=True) as tape:
        x = tf.constant(tokens)
        tape.watch(x)
        logit, tensors, biases = _reference(model, x, tape)
        total = tf.reduce_sum(logit)
    np.testing.assert_allclose(logit, model(tokens)[:, CLASS], rtol=1e-12)
    grads = tape.gradient(total, {"x": x, "t": tensors, "b": biases})
    heatmaps, hidden = _lrp0(model, tokens)
    assert support.relative_l1(heatmaps, (x * grads["x"]).numpy()) < 1e-10
    for name in HIDDEN:
        expected = (tensors[name] * grads["t"][name]).numpy()
        assert support.relative_l1(hidden[name], expected) < 1e-10, name
    # The RMS norm has no shift: with epsilon 0 it conserves exactly, per
    # image; overall only the two biases' shares are absorbed.
    np.testing.assert_allclose(hidden["embed"].sum(axis=(1, 2)),
                               hidden["norm"].sum(axis=(1, 2)), rtol=1e-10)
    absorbed = sum(np.sum((b * grads["b"][n]).numpy())
                   for n, b in biases.items())
    np.testing.assert_allclose(heatmaps.sum(), logit.numpy().sum() - absorbed,
                               rtol=1e-10)
    # Without the constant factor, gradient x input is something else.
    with tf.GradientTape() as tape:
        tape.watch(x)
        plain_logit = model(x)[:, CLASS]
    plain = (tape.gradient(plain_logit, x) * x).numpy()
    assert support.relative_l1(heatmaps, plain) > 1e-3


def test_rms_norm_epsilon_rule_conserves_up_to_the_epsilon_terms():
    rng = np.random.default_rng(13)
    with support.floatx("float64"):
        norm = keras.layers.RMSNormalization()
    x = rng.normal(0, 1, (2, 4, 5))
    norm.build(x.shape)
    norm.scale.assign(rng.uniform(0.5, 1.5, 5))
    mirror = RMSNormalizationMirror((norm,), epsilon=0.1, lrp_dtype="float64")
    z = norm(x).numpy()
    relevance = rng.normal(0, 1, (2, 3, 4, 5))
    result = relevance_lib.materialize(mirror(relevance, [x], [z])[0])
    stab = z + np.where(z >= 0, 0.1, -0.1)
    # Diagonal: conserved element-wise up to the epsilon terms.
    np.testing.assert_allclose(result.numpy(),
                               relevance * (z / stab)[:, None], rtol=1e-10)
