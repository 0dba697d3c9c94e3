"""Transformer layers: LRP-0 against gradient x input of the network with
its LayerNorm factors and gates held constant, and conservation.

The attention tests here use the value-path rule
(`attention_relevance="value"`, the attention probabilities constant);
AttnLRP's full rule, the default, is tested in
`test_attention_query_key.py`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.errors import UnsupportedLayerError
from isnet_keras.lrp import relevance as relevance_lib
from isnet_keras.lrp.composites import Composite
from isnet_keras.lrp.explain import explain
from isnet_keras.lrp.graph import LRPGraph
from isnet_keras.lrp.transformer_mirrors import (
    AddPositionEmbedding,
    GlobalAveragePooling1DMirror,
    LayerNormalizationMirror,
    PositionEmbeddingMirror,
)
from tests import support

CLASS = 1
# Tensors whose relevance is compared, by the name of the layer making them.
HIDDEN = ("patches", "tokens", "position", "norm1", "mlp1", "mlp2",
          "residual", "norm2", "pool")


def tiny_vit(num_classes=3):
    """Patch embedding, position embedding, a pre-LN MLP block, pooling."""
    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 4, strides=4, name="patches")(inputs)
    x = layers.Reshape((4, 6), name="tokens")(x)
    tokens = AddPositionEmbedding(name="position")(x)
    x = layers.LayerNormalization(name="norm1")(tokens)
    x = layers.Dense(12, activation="gelu", name="mlp1")(x)
    x = layers.Dense(6, name="mlp2")(x)
    x = layers.Add(name="residual")([tokens, x])
    x = layers.LayerNormalization(name="norm2")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs)


def _randomized(model, seed=0):
    """Non-trivial biases, embedding and LayerNorm parameters."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for weight in layer.weights:
            name = weight.path.split("/")[-1]
            if name == "gamma":
                weight.assign(rng.uniform(0.5, 1.5, weight.shape))
            elif name in ("bias", "beta", "embedding"):
                weight.assign(rng.normal(0.0, 0.3, weight.shape))
    return model


@pytest.fixture(scope="module")
def vit64():
    keras.utils.set_random_seed(0)
    with support.floatx("float64"):
        model = _randomized(tiny_vit())
    images = np.random.default_rng(1).uniform(0, 1, (3, 8, 8, 3))
    return model, images


def _reference(model, images, tape=None):
    """The tiny ViT in TensorFlow ops, LayerNorm factors and GELU gates
    held constant (`tf.stop_gradient`).

    Returns:
        `(logit, tensors, constants)`: the class logit `(B,)`, the named
        hidden tensors and the named biases/shifts/embedding (watched by
        `tape`, when given).
    """
    weights = {layer.name: [tf.constant(w.numpy()) for w in layer.weights]
               for layer in model.layers}
    constants = {}

    def constant(layer, index, name):
        if tape is not None:
            tape.watch(weights[layer][index])
        constants[f"{layer}/{name}"] = weights[layer][index]
        return weights[layer][index]

    def layer_norm(x, layer):
        gamma = weights[layer][0]
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        factor = tf.stop_gradient(tf.math.rsqrt(
            variance + model.get_layer(layer).epsilon))
        return gamma * factor * (x - mean) + constant(layer, 1, "beta")

    def gate(z):
        return z * tf.stop_gradient(tf.nn.gelu(z, approximate=False) / z)

    def dense(x, layer):
        return tf.matmul(x, weights[layer][0]) + constant(layer, 1, "bias")

    x = tf.convert_to_tensor(images)
    t = {}
    t["patches"] = tf.nn.conv2d(x, weights["patches"][0], 4, "VALID") + \
        constant("patches", 1, "bias")
    t["tokens"] = tf.reshape(t["patches"], (-1, 4, 6))
    t["position"] = t["tokens"] + constant("position", 0, "embedding")
    t["norm1"] = layer_norm(t["position"], "norm1")
    t["mlp1"] = gate(dense(t["norm1"], "mlp1"))
    t["mlp2"] = dense(t["mlp1"], "mlp2")
    t["residual"] = t["position"] + t["mlp2"]
    t["norm2"] = layer_norm(t["residual"], "norm2")
    t["pool"] = tf.reduce_mean(t["norm2"], axis=1)
    logit = dense(t["pool"], "logits")[:, CLASS]
    return logit, t, constants


def _reference_gradients(model, images):
    """`(logit, x, dF/dx, tensors, dF/dtensors, constants, dF/dconstants)`."""
    with tf.GradientTape(persistent=True) as tape:
        x = tf.constant(images)
        tape.watch(x)
        logit, tensors, constants = _reference(model, x, tape)
        total = tf.reduce_sum(logit)
    grads = tape.gradient(total, {"x": x, "t": tensors, "c": constants})
    return logit, x, grads["x"], tensors, grads["t"], constants, grads["c"]


def _lrp(model, images, composite, **graph_kwargs):
    """LRP relevance of class `CLASS` at the input and the HIDDEN tensors."""
    return support.class_relevances(model, images, CLASS, composite, HIDDEN,
                                    **graph_kwargs)


LRP0 = Composite(default="zero", first_layer=None)
LRP0_VALUE = Composite(default="zero", first_layer=None,
                       attention_relevance="value")


def test_the_reference_network_is_the_model(vit64):
    model, images = vit64
    logit = _reference(model, images)[0]
    np.testing.assert_allclose(logit, model(images)[:, CLASS], rtol=1e-12)


def test_lrp0_equals_gradient_times_input_with_constant_factors(vit64):
    model, images = vit64
    heatmaps, hidden = _lrp(model, images, LRP0)
    _, x, dx, tensors, dt, _, _ = _reference_gradients(model, images)
    assert support.relative_l1(heatmaps, (x * dx).numpy()) < 1e-8
    # At every hidden tensor too: R(t) = t * dF/dt.
    for name in HIDDEN:
        expected = (tensors[name] * dt[name]).numpy()
        assert support.relative_l1(hidden[name], expected) < 1e-8, name
    # Without the constant factors, gradient x input is something else.
    with tf.GradientTape() as tape:
        x = tf.constant(images)
        tape.watch(x)
        logit = model(x)[:, CLASS]
    plain = (tape.gradient(logit, x) * x).numpy()
    assert support.relative_l1(heatmaps, plain) > 1e-3


def test_lrp0_conserves_relevance_up_to_the_absorbed_constants(vit64):
    """Per layer: `sum R(in) = sum R(out) - sum_b b * dF/db` over the
    layer's bias-like constants `b` (bias, LayerNorm beta, position
    embedding); and overall, with every layer's LayerNorm factor and gate
    fixed the logit is linear in the input and the constants, so
    `sum R(x) = F - sum_b b * dF/db`."""
    model, images = vit64
    heatmaps, hidden = _lrp(model, images, LRP0)
    logit, *_, constants, dc = _reference_gradients(model, images)

    def total(relevance):
        return relevance.reshape(len(images), -1).sum(axis=1)

    def absorbed(layer):
        return sum(np.sum((c * dc[name]).numpy())
                   for name, c in constants.items()
                   if name.startswith(layer + "/"))

    # `dc` sums over the batch: the checks compare batch totals. The
    # relevance at `position` is the sum of its two branches': the
    # residual sum's share of it (`R(residual) - R(mlp2)`, the sum has no
    # constant) is taken off to leave LayerNorm's.
    outputs = dict(hidden, logits=logit.numpy())
    from_norm1 = hidden["position"].sum() - (hidden["residual"].sum() -
                                             hidden["mlp2"].sum())
    chain = [("patches", heatmaps), ("position", hidden["tokens"]),
             ("norm1", from_norm1), ("mlp1", hidden["norm1"]),
             ("mlp2", hidden["mlp1"]), ("norm2", hidden["residual"]),
             ("logits", hidden["pool"])]
    gaps = {}
    for layer, relevance_in in chain:
        gaps[layer] = outputs[layer].sum() - relevance_in.sum()
        np.testing.assert_allclose(gaps[layer], absorbed(layer), rtol=1e-9,
                                   atol=1e-12, err_msg=layer)
    # Relevance-preserving layers: the reshape and the pooling.
    np.testing.assert_allclose(total(hidden["tokens"]),
                               total(hidden["patches"]), rtol=1e-12)
    np.testing.assert_allclose(total(hidden["pool"]), total(hidden["norm2"]),
                               rtol=1e-12)
    everything = sum(np.sum((c * dc[name]).numpy())
                     for name, c in constants.items())
    np.testing.assert_allclose(heatmaps.sum(),
                               logit.numpy().sum() - everything, rtol=1e-9)


def _epsilon_sums(mirror, relevance, x, z, shift):
    """`sum R(in)` from the mirror, and `sum_k R_k (z_k - shift_k) /
    stab(z_k)`, per image and class."""
    result = relevance_lib.materialize(mirror(relevance, [x], [z])[0])
    stab = z + np.where(z >= 0, mirror.epsilon, -mirror.epsilon)
    expected = relevance * ((z - shift) / stab)[:, None]
    def summed(r):
        return r.reshape(*r.shape[:2], -1).sum(axis=-1)

    return summed(result.numpy()), summed(expected)


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@pytest.mark.parametrize("rms_scaling", [False, True])
def test_epsilon_rules_conserve_up_to_the_shift_and_epsilon(rms_scaling):
    rng = np.random.default_rng(2)
    with support.floatx("float64"):
        norm = keras.layers.LayerNormalization(rms_scaling=rms_scaling)
        position = AddPositionEmbedding()
        pool = keras.layers.GlobalAveragePooling1D()
    x = rng.normal(0, 1, (2, 4, 5))
    for layer in (norm, position, pool):
        layer.build(x.shape)
    if not rms_scaling:
        norm.beta.assign(rng.normal(0, 0.3, 5))
    norm.gamma.assign(rng.uniform(0.5, 1.5, 5))
    position.embedding.assign(rng.normal(0, 0.3, (4, 5)))
    cases = [(LayerNormalizationMirror, norm,
              0.0 if rms_scaling else norm.beta.numpy()),
             (PositionEmbeddingMirror, position, position.embedding.numpy()),
             (GlobalAveragePooling1DMirror, pool, 0.0)]
    for mirror_class, layer, shift in cases:
        mirror = mirror_class((layer,), epsilon=0.1, lrp_dtype="float64")
        z = layer(x).numpy()
        relevance = rng.normal(0, 1, (2, 3, *z.shape[1:]))
        actual, expected = _epsilon_sums(mirror, relevance, x, z, shift)
        np.testing.assert_allclose(actual, expected, rtol=1e-10,
                                   err_msg=mirror_class.__name__)


@pytest.mark.parametrize("norm", ["LayerNormalization",
                                  "RMSNormalization"])
def test_a_normalization_over_other_axes_is_refused(norm):
    with support.floatx("float64"):
        model = keras.Sequential([
            keras.Input((2, 2, 3)), keras.layers.Reshape((4, 3)),
            getattr(keras.layers, norm)(axis=1, name="norm"),
            keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    with pytest.raises(UnsupportedLayerError,
                       match=rf"norm \({norm}\).*last axis"):
        explain(model, np.ones((1, 2, 2, 3)), 0)


@pytest.mark.parametrize("architecture", ["mlp", "attention"])
def test_build_isnet_trains_a_tiny_vit_one_step(architecture):
    from isnet_keras.builder import build_isnet

    keras.utils.set_random_seed(3)
    model = _randomized(tiny_vit() if architecture == "mlp"
                        else tiny_attention_vit())
    images = support.check_one_isnet_step(build_isnet(model), 8)
    assert np.isfinite(explain(model, images, "all")).all()


def tiny_attention_vit(num_classes=3):
    """Patch and position embedding, a pre-LN self-attention block."""
    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 4, strides=4, name="patches")(inputs)
    x = layers.Reshape((4, 6), name="tokens")(x)
    tokens = AddPositionEmbedding(name="position")(x)
    x = layers.LayerNormalization(name="norm1")(tokens)
    x = layers.MultiHeadAttention(2, 3, name="attention")(x, x)
    x = layers.Add(name="residual")([tokens, x])
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs)


def _attention_reference(model, x, tape):
    """The attention model in TensorFlow ops, attention probabilities and
    LayerNorm factor constant; returns the class logit, the named tensors
    and the value and output biases (watched)."""
    def weights(layer):
        return [tf.constant(w.numpy()) for w in layer.weights]

    wq, bq, wk, bk, wv, bv, wo, bo = support.attention_weights(
        model.get_layer("attention"))
    constants = {"value_bias": bv, "output_bias": bo}
    tape.watch(list(constants.values()))
    t = {}
    kernel, bias = weights(model.get_layer("patches"))
    patches = tf.nn.conv2d(x, kernel, 4, "VALID") + bias
    t["position"] = tf.reshape(patches, (-1, 4, 6)) + weights(
        model.get_layer("position"))[0]
    gamma, beta = weights(model.get_layer("norm1"))
    mean, variance = tf.nn.moments(t["position"], axes=[-1], keepdims=True)
    factor = tf.stop_gradient(tf.math.rsqrt(
        variance + model.get_layer("norm1").epsilon))
    t["norm1"] = gamma * factor * (t["position"] - mean) + beta
    h = t["norm1"]
    q = tf.einsum("btd,dhk->bthk", h, wq) + bq
    k = tf.einsum("btd,dhk->bthk", h, wk) + bk
    v = tf.einsum("btd,dhk->bthk", h, wv) + bv
    scores = tf.einsum("bshk,bthk->bhts", k, q) / np.sqrt(3.0)
    probabilities = tf.stop_gradient(tf.nn.softmax(scores, axis=-1))
    mixed = tf.einsum("bhts,bshk->bthk", probabilities, v)
    attention = tf.einsum("bthk,hkd->btd", mixed, wo) + bo
    # The values of Keras's fused attention kernel, which rounds otherwise
    # (about 1e-9 relative in float64), with the gradient of the above.
    fused = model.get_layer("attention")(h, h)
    t["attention"] = attention + tf.stop_gradient(fused - attention)
    t["residual"] = t["position"] + t["attention"]
    kernel, bias = weights(model.get_layer("logits"))
    logit = (tf.reduce_mean(t["residual"], axis=1) @ kernel + bias)[:, CLASS]
    return logit, t, constants


def test_value_attention_lrp0_equals_gradient_times_input_and_conserves():
    keras.utils.set_random_seed(5)
    with support.floatx("float64"):
        model = _randomized(tiny_attention_vit())
    for sub in ("_query_dense", "_key_dense", "_value_dense",
                "_output_dense"):
        dense = getattr(model.get_layer("attention"), sub)
        dense.bias.assign(np.random.default_rng(6).normal(
            0, 0.3, dense.bias.shape))
    images = np.random.default_rng(7).uniform(0, 1, (3, 8, 8, 3))
    with tf.GradientTape(persistent=True) as tape:
        x = tf.constant(images)
        tape.watch(x)
        logit, tensors, constants = _attention_reference(model, x, tape)
        total = tf.reduce_sum(logit)
    np.testing.assert_allclose(logit, model(images)[:, CLASS], rtol=1e-12)
    grads = tape.gradient(total, {"x": x, "t": tensors, "c": constants})
    names = ("norm1", "attention", "residual")
    heatmaps, hidden = support.class_relevances(model, images, CLASS,
                                                LRP0_VALUE, names)
    assert support.relative_l1(heatmaps, (x * grads["x"]).numpy()) < 1e-8
    for name in names:
        expected = (tensors[name] * grads["t"][name]).numpy()
        assert support.relative_l1(hidden[name], expected) < 1e-8, name
    # The attention layer's input feeds it alone (as query, key and
    # value): its relevance is the output's less the value and output
    # biases' shares, up to the fused kernel's rounding: the output
    # projection's rule divides by the layer's output, which differs from
    # `A v W_O + b_O` by about 1e-9.
    absorbed = sum(np.sum((c * grads["c"][n]).numpy())
                   for n, c in constants.items())
    np.testing.assert_allclose(
        hidden["attention"].sum() - hidden["norm1"].sum(), absorbed,
        rtol=1e-7)


def test_a_gate_before_max_pooling_divides_by_its_own_z():
    # The max pooling's window maxima are `gelu(z)`, not the `z` the
    # convolution's rule divides by: the relevance must reach it whole.
    keras.utils.set_random_seed(9)
    with support.floatx("float64"):
        model = keras.Sequential([
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(4, 3, padding="same", activation="gelu"),
            keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
            keras.layers.Dense(3)])
    conv, dense = model.layers[0], model.layers[-1]
    images = np.random.default_rng(10).normal(0, 1, (2, 6, 6, 2))
    with tf.GradientTape() as tape:
        x = tf.constant(images)
        tape.watch(x)
        z = tf.nn.conv2d(x, conv.kernel, 1, "SAME") + conv.bias
        gated = z * tf.stop_gradient(tf.nn.gelu(z) / z)
        pooled = tf.nn.max_pool2d(gated, 2, 2, "VALID")
        logit = (tf.reshape(pooled, (2, -1)) @ dense.kernel +
                 dense.bias)[:, CLASS]
    reference = (tape.gradient(logit, x) * x).numpy()
    graph = LRPGraph(model, composite=LRP0)
    from isnet_keras.lrp.explain import build_heatmap_model
    heatmaps = build_heatmap_model(graph, 1)(
        [images, np.full((2, 1), CLASS, np.int32)]).numpy()[:, 0]
    assert support.relative_l1(heatmaps, reference) < 1e-10
