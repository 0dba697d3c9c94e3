"""keras-hub's ViT backbone as an ISNet classifier (`isnet_keras.hub`).

keras-hub is the optional extra `hub`, which CI does not install: the tests
that build a keras-hub model skip without it (`pytest.importorskip`), the
others run everywhere.
"""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras import hub
from isnet_keras.lrp import relevance as relevance_lib
from isnet_keras.lrp.composites import Composite
from tests import support

CLASS = 1
COMPOSITES = {rule: Composite(default="zero", first_layer=None,
                              attention_relevance=rule)
              for rule in ("value", "full")}


def test_without_keras_hub_the_error_names_the_extra(monkeypatch):
    # `None` in `sys.modules` makes `import keras_hub` fail, as when the
    # extra is not installed.
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    with pytest.raises(ImportError, match=r'pip install "isnet-keras\[hub\]"'):
        hub.vit_classifier(object(), 3)


def _backbone(keras_hub, seed=0, **config):
    """A small random ViT backbone with non-trivial biases and norms."""
    keras.utils.set_random_seed(seed)
    settings = dict(image_shape=(16, 16, 3), patch_size=8, num_layers=2,
                    num_heads=2, hidden_dim=8, mlp_dim=16)
    settings.update(config)
    backbone = keras_hub.models.ViTBackbone(**settings)
    rng = np.random.default_rng(seed)
    for weight in backbone.weights:
        name = weight.path.split("/")[-1]
        if name == "gamma":
            weight.assign(rng.uniform(0.5, 1.5, weight.shape))
        elif name in ("bias", "beta"):
            weight.assign(rng.normal(0.0, 0.3, weight.shape))
    return backbone


def _images(count=3, seed=1):
    return np.random.default_rng(seed).uniform(0, 1, (count, 16, 16, 3))


@pytest.mark.parametrize("config", [
    {},
    {"use_class_token": False, "use_mlp_bias": False, "use_mha_bias": False,
     "use_patch_bias": False, "pooling": "gap"},
])
def test_the_classifier_computes_the_backbone(config):
    keras_hub = pytest.importorskip("keras_hub")
    config = dict(config)
    pooling = config.pop("pooling", "token")
    backbone = _backbone(keras_hub, **config)
    classifier = hub.vit_classifier(backbone, 3, pooling=pooling)
    images = _images().astype("float32")
    features = keras.Model(classifier.input,
                           classifier.get_layer("final_norm").output)
    np.testing.assert_allclose(features(images), backbone(images),
                               atol=1e-5, rtol=1e-5)
    head = classifier.get_layer("logits")
    tokens = backbone(images).numpy()
    pooled = tokens[:, 0] if pooling == "token" else tokens.mean(axis=1)
    np.testing.assert_allclose(classifier(images), head(pooled), atol=1e-5,
                               rtol=1e-5)


def _reference(classifier, x, rule):
    """The classifier in TensorFlow ops, with its LayerNorm factors and
    GELU gates held constant, and its attention probabilities too
    (`rule="value"`) or its attention's bilinear products `q k^T` and
    `A v` passing each factor half of the gradient (`"full"`, AttnLRP);
    returns the class logit."""
    def weights(name):
        return [tf.constant(w.numpy())
                for w in classifier.get_layer(name).weights]

    def layer_norm(t, name):
        gamma, beta = weights(name)
        mean, variance = tf.nn.moments(t, axes=[-1], keepdims=True)
        factor = tf.stop_gradient(tf.math.rsqrt(
            variance + classifier.get_layer(name).epsilon))
        return gamma * factor * (t - mean) + beta

    def dense(t, name):
        kernel, bias = weights(name)
        return tf.tensordot(t, kernel, 1) + bias

    def attention(h, name):
        mha = classifier.get_layer(name)
        out = support.reference_attention(mha, h, h, h, rule=rule)
        # The values of Keras's fused attention kernel, which rounds
        # otherwise, with the gradient of the above.
        return out + tf.stop_gradient(mha(h, h) - out)

    kernel, bias = weights("patch_embedding")
    patch = kernel.shape[0]
    t = tf.nn.conv2d(x, kernel, patch, "VALID") + bias
    t = tf.reshape(t, (tf.shape(t)[0], -1, t.shape[-1]))
    token = weights("class_token")[0]
    t = tf.concat([tf.tile(token, (tf.shape(t)[0], 1, 1)), t], axis=1)
    t = t + weights("position_embedding")[0]
    for i in (1, 2):
        t = t + attention(layer_norm(t, f"block{i}_norm1"),
                          f"block{i}_attention")
        z = dense(layer_norm(t, f"block{i}_norm2"), f"block{i}_mlp1")
        y = z * tf.stop_gradient(tf.nn.gelu(z, approximate=False) / z)
        t = t + dense(y, f"block{i}_mlp2")
    t = layer_norm(t, "final_norm")
    return dense(t[:, 0], "logits")[:, CLASS]


@pytest.mark.parametrize("rule", ["value", "full"])
def test_lrp0_equals_gradient_times_input_with_constant_factors(rule):
    keras_hub = pytest.importorskip("keras_hub")
    with support.floatx("float64"):
        classifier = hub.vit_classifier(_backbone(keras_hub), 3)
    images = _images()
    with tf.GradientTape() as tape:
        x = tf.constant(images)
        tape.watch(x)
        logit = _reference(classifier, x, rule)
        total = tf.reduce_sum(logit)
    np.testing.assert_allclose(logit, classifier(images)[:, CLASS],
                               rtol=1e-10)
    expected = (x * tape.gradient(total, x)).numpy()
    heatmaps, _ = support.class_relevances(classifier, images, CLASS,
                                           COMPOSITES[rule])
    assert support.relative_l1(heatmaps, expected) < 1e-8


def test_build_isnet_trains_one_step():
    keras_hub = pytest.importorskip("keras_hub")
    from isnet_keras.builder import build_isnet

    backbone = _backbone(keras_hub)
    classifier = hub.vit_classifier(backbone, 3)
    backbone_before = [w.numpy().copy() for w in backbone.weights]
    support.check_one_isnet_step(build_isnet(classifier), 16)
    # The classifier holds a copy: the backbone is untouched.
    for b, w in zip(backbone_before, backbone.weights):
        np.testing.assert_array_equal(b, w.numpy())


def test_token_pooling_needs_a_class_token():
    keras_hub = pytest.importorskip("keras_hub")
    backbone = _backbone(keras_hub, use_class_token=False)
    with pytest.raises(ValueError, match="pooling='gap'"):
        hub.vit_classifier(backbone, 3)
    with pytest.raises(TypeError, match="ViTBackbone"):
        hub.vit_classifier(keras.Sequential([keras.Input((2,))]), 3)


@pytest.mark.parametrize("layer_class, mirror_class", [
    (hub.ClassToken, hub.ClassTokenMirror),
    (hub.ClassTokenPooling, hub.ClassTokenPoolingMirror),
])
@pytest.mark.parametrize("factored", [False, True])
def test_token_mirrors_are_gradient_times_input(layer_class, mirror_class,
                                                factored):
    """Without keras-hub: each layer is linear in its input (the class
    token a constant), so LRP-0 gives `x * d(sum_k R_k y_k / y_k)/dx`,
    per class `k`, a relevance `R` in either form."""
    rng = np.random.default_rng(5)
    with support.floatx("float64"):
        layer = layer_class()
    x = tf.constant(rng.normal(0, 1, (2, 4, 3)))
    y = layer(x)
    relevance = rng.normal(0, 1, (2, 3, *y.shape[1:]))
    mirror = mirror_class((layer,), lrp_dtype="float64")
    if factored:
        given = relevance_lib.Factored(y, tf.constant(relevance) / y[:, None])
    else:
        given = tf.constant(relevance)
    actual = relevance_lib.materialize(mirror(given, [x], [y])[0]).numpy()
    for k in range(relevance.shape[1]):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x)
            total = tf.reduce_sum(out * tf.stop_gradient(
                relevance[:, k] / out))
        expected = (x * tape.gradient(total, x)).numpy()
        np.testing.assert_allclose(actual[:, k], expected, rtol=1e-10,
                                   atol=1e-12)


def test_a_saved_class_token_classifier_loads_in_a_fresh_process(tmp_path):
    """Without keras-hub: `load_keras_file` registers the token layers."""
    import json
    import subprocess

    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Reshape((4, 3))(
        keras.layers.Conv2D(3, 2, strides=2)(inputs))
    x = hub.ClassTokenPooling()(hub.ClassToken()(x))
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    path = tmp_path / "classifier.keras"
    model.save(path)
    code = ("import json\n"
            "import numpy as np\n"
            "from isnet_keras.export import load_keras_file\n"
            f"model = load_keras_file({str(path)!r})\n"
            "logits = model(np.ones((1, 4, 4, 3)))\n"
            "print(json.dumps(np.asarray(logits).tolist()))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, check=True)
    np.testing.assert_allclose(json.loads(result.stdout.splitlines()[-1]),
                               model(np.ones((1, 4, 4, 3))), rtol=1e-6)
