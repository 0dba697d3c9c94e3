"""Composites choose each layer's rule; checked against independent maths."""

import pathlib
import re

import keras
import numpy as np
import pytest

from isnet_keras.errors import UnsupportedLayerError
from isnet_keras.lrp import explain as explain_lib
from isnet_keras.lrp import mirrors
from isnet_keras.lrp.composites import Composite, default_composite
from isnet_keras.lrp.explain import Explainer, build_heatmap_model, explain
from isnet_keras.lrp.graph import LRPGraph
from tests import support

ARCHITECTURE = pathlib.Path(__file__).parents[2] / "docs" / "architecture.md"


def _images(shape, count=3, seed=1):
    return np.random.default_rng(seed).uniform(0, 1, (count, *shape))


def _heatmaps64(model, images, class_index, **graph_kwargs):
    """Heatmaps of one class in the model's precision (`explain` returns
    float32)."""
    graph = LRPGraph(model, **graph_kwargs)
    classes = np.full((len(images), 1), class_index, dtype=np.int32)
    return build_heatmap_model(graph, 1)([images, classes]).numpy()[:, 0]


@pytest.fixture(scope="module")
def branchy():
    keras.utils.set_random_seed(0)
    model = support.branchy_cnn()
    support.randomize_batch_norms(model)
    return model, _images(model.input_shape[1:])


def _plan(graph):
    return [(type(step.mirror), step.mirror.rule, step.mirror.epsilon,
             step.mirror.input_bounds is None)
            for step in graph._plan("epsilon", ())]


@pytest.mark.parametrize("first_layer_rule", ["zb", "epsilon"])
def test_the_default_composite_gives_the_default_heatmaps(first_layer_rule):
    keras.utils.set_random_seed(0)
    with support.floatx("float64"):
        model = support.branchy_cnn()
    support.randomize_batch_norms(model)
    images = _images(model.input_shape[1:])
    default = Explainer(model, first_layer_rule=first_layer_rule)
    spelled_out = Composite(
        default="epsilon",
        first_layer="zb" if first_layer_rule == "zb" else None)
    expected = default(images, "all")
    for composite in (default_composite(first_layer_rule), spelled_out):
        explainer = Explainer(model, composite=composite)
        # The same mirrors with the same rules; TensorFlow's CPU kernels
        # are not bitwise reproducible from one traced graph to the next,
        # hence float64 and a rounding-level tolerance.
        assert _plan(explainer.graph) == _plan(default.graph)
        np.testing.assert_allclose(explainer(images, "all"), expected,
                                   rtol=1e-12, atol=1e-15)


def test_an_epsilon_first_layer_composite_equals_first_layer_rule_epsilon(
        branchy):
    model, images = branchy
    expected = explain(model, images, "all", first_layer_rule="epsilon")
    for first_layer in ("epsilon", None):
        np.testing.assert_allclose(
            explain(model, images, "all",
                    composite=Composite(first_layer=first_layer)),
            expected, rtol=1e-5, atol=1e-9)
    assert np.abs(explain(model, images, "all") - expected).max() > 1e-4


def test_the_lrp0_composite_equals_gradient_times_input():
    keras.utils.set_random_seed(3)
    with support.floatx("float64"):
        model = support.small_cnn()
    support.randomize_batch_norms(model)
    images = _images(model.input_shape[1:])
    lrp0 = Composite(default="zero", first_layer=None)
    # `epsilon` is the stabiliser of the "epsilon" rule only: LRP-0 ignores it.
    heatmaps = _heatmaps64(model, images, 2, epsilon=0.3, composite=lrp0)
    reference = support.gradient_times_input(model, images, 2)
    assert support.relative_l1(heatmaps, reference) < 1e-10
    epsilon = Explainer(model, epsilon=0.3,
                        first_layer_rule="epsilon")(images, 2)[:, 0]
    assert support.relative_l1(epsilon, reference) > 1e-3


def _stab(z, epsilon):
    return z + np.where(z >= 0, epsilon, -epsilon)


def _reference_heatmaps(conv_kernel, conv_bias, dense_kernel, dense_bias,
                        images, class_index, conv_rule, epsilon):
    """NumPy LRP of `conv (valid, input-sized kernel) -> ReLU -> Dense`.

    The convolution covers its whole input, so it is the matrix product
    with its kernel flattened to `(H*W*C, filters)`.
    """
    x = images.reshape(len(images), -1)
    kernel = conv_kernel.reshape(-1, conv_kernel.shape[-1])
    a = np.maximum(x @ kernel + conv_bias, 0.0)
    logits = a @ dense_kernel + dense_bias
    relevance = np.zeros_like(logits)
    relevance[:, class_index] = logits[:, class_index]
    relevance_a = a * ((relevance / _stab(logits, epsilon)) @ dense_kernel.T)
    if conv_rule == "epsilon":
        z = x @ kernel + conv_bias
        relevance_x = x * ((relevance_a / _stab(z, epsilon)) @ kernel.T)
    else:  # z+ for signed inputs
        x_pos, x_neg = np.maximum(x, 0), np.minimum(x, 0)
        k_pos, k_neg = np.maximum(kernel, 0), np.minimum(kernel, 0)
        z = x_pos @ k_pos + x_neg @ k_neg + np.maximum(conv_bias, 0)
        s = relevance_a / (z + epsilon)
        relevance_x = x_pos * (s @ k_pos.T) + x_neg * (s @ k_neg.T)
    return relevance_x.reshape(images.shape)


@pytest.mark.parametrize("conv_rule", ["zplus", "epsilon"])
def test_a_conv_rule_from_the_composite_matches_a_numpy_reference(conv_rule):
    keras.utils.set_random_seed(4)
    with support.floatx("float64"):
        model = keras.Sequential([
            keras.Input((3, 3, 2)),
            keras.layers.Conv2D(5, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ])
    conv, dense = model.layers[0], model.layers[-1]
    rng = np.random.default_rng(5)
    conv.bias.assign(rng.normal(0, 0.3, conv.bias.shape))
    dense.bias.assign(rng.normal(0, 0.3, dense.bias.shape))
    images = rng.normal(0, 1, (4, 3, 3, 2))  # signed: z+ in its general form
    composite = Composite({keras.layers.Conv2D: conv_rule}, first_layer=None)
    heatmaps = _heatmaps64(model, images, 1, epsilon=0.05,
                           composite=composite)
    expected = _reference_heatmaps(
        conv.kernel.numpy(), conv.bias.numpy(), dense.kernel.numpy(),
        dense.bias.numpy(), images, 1, conv_rule, 0.05)
    np.testing.assert_allclose(heatmaps, expected, rtol=1e-10, atol=1e-13)


def test_a_composite_refuses_rules_a_layer_cannot_take():
    model = support.small_cnn()
    with pytest.raises(ValueError, match=r"MaxPooling2D.*'zplus'"):
        Explainer(model, composite=Composite(
            {keras.layers.MaxPooling2D: "zplus"}))
    # Z^B needs the input's bounds: only first layers have them.
    with pytest.raises(ValueError, match=r"dense.*'zb'"):
        Explainer(model, composite=Composite({keras.layers.Dense: "zb"}))
    with pytest.raises(ValueError, match="default must be one of"):
        Composite(default="alpha2beta1")
    with pytest.raises(ValueError, match="Keras layer classes"):
        Composite({"Conv2D": "epsilon"})
    with pytest.raises(ValueError, match="composite must be"):
        Explainer(model, composite={"Conv2D": "epsilon"})


def test_rules_follow_the_most_specific_class_and_the_first_layer():
    composite = Composite({keras.layers.Layer: "zero",
                           keras.layers.Conv2D: "zplus"}, first_layer="zb")
    conv = keras.layers.Conv2D(2, 3)
    assert composite.rule_for(conv) == "zplus"
    assert composite.rule_for(conv, first_layer=True) == "zb"
    assert composite.rule_for(keras.layers.Dense(2)) == "zero"
    # The default applies where the mirror has it, else LRP-epsilon.
    assert Composite(default="zplus").rule_for(
        keras.layers.MaxPooling2D(), supported=("epsilon", "zero")) == \
        "epsilon"


def test_composites_round_trip_through_their_config_and_key_the_cache():
    composite = Composite({keras.layers.Conv2D: "zplus",
                           keras.layers.Dense: "zero"}, first_layer=None)
    config = keras.saving.serialize_keras_object(composite)
    restored = keras.saving.deserialize_keras_object(config)
    assert restored == composite and restored is not composite
    assert restored.layer_rules == composite.layer_rules
    assert Composite() == default_composite()
    assert Composite() != composite

    model = support.small_cnn()
    images = _images(model.input_shape[1:], count=2)
    first = explain(model, images, 0, composite=composite)
    again = explain(model, images, 0, composite=restored)
    default = explain(model, images, 0)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - default).max() > 1e-4
    cache = vars(model)[explain_lib._CACHE_ATTRIBUTE]
    assert len(cache.explainers) == 2


def _documented_mirror_code():
    text = ARCHITECTURE.read_text()
    section = text.split("## Adding a layer type", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_documented_custom_layer_mirror_works():
    # The code of docs/architecture.md, "Adding a layer type", as it is.
    # The registration lives on the layer class it defines, so it ends
    # with this test.
    namespace = {}
    exec(compile(_documented_mirror_code(), str(ARCHITECTURE), "exec"),
         namespace)
    layer_class = namespace["ChannelScale"]
    assert mirrors.mirror_class(layer_class()) is \
        namespace["ChannelScaleMirror"]
    # Exact classes only: a subclass may compute something else.
    subclass = type("ScaledAgain", (layer_class,), {})
    with pytest.raises(UnsupportedLayerError, match="ScaledAgain"):
        mirrors.mirror_class(subclass())
    keras.utils.set_random_seed(6)
    with support.floatx("float64"):
        inputs = keras.Input((6, 6, 2))
        x = keras.layers.Conv2D(3, 3, activation="relu")(inputs)
        scale = layer_class()
        x = scale(x)
        x = keras.layers.Conv2D(4, 3, activation="relu")(x)
        outputs = keras.layers.Dense(3)(keras.layers.Flatten()(x))
        model = keras.Model(inputs, outputs)
    scale.scale.assign([1.5, -0.7, 0.4])
    images = _images((6, 6, 2))
    heatmaps = _heatmaps64(model, images, 1, composite=Composite(
        default="zero", first_layer=None))
    reference = support.gradient_times_input(model, images, 1)
    assert support.relative_l1(heatmaps, reference) < 1e-10
    # With the default composite (Z^B first, epsilon elsewhere) it runs too.
    assert np.isfinite(explain(model, images, "all")).all()


def test_build_isnet_trains_with_the_composite_it_is_given():
    from isnet_keras.isnet import ISNet, build_isnet

    keras.utils.set_random_seed(7)
    model = support.small_cnn(num_classes=3)
    images = _images(model.input_shape[1:], count=2)
    composite = Composite({keras.layers.Conv2D: "zplus"}, default="zero",
                          first_layer=None)
    isnet = build_isnet(model, variant="original", deep_supervision=(),
                        composite=composite)
    heatmaps = isnet.train_graph(images, training=False)["heatmaps"]
    np.testing.assert_allclose(
        heatmaps.numpy(), Explainer(model, composite=composite)(images, "all"),
        rtol=1e-4, atol=1e-7)
    assert isnet.composite is composite
    restored = ISNet.from_config(isnet.get_config())
    assert restored.composite == composite
