"""Mirror layers: tied weights, no variables, clear errors."""

import inspect

import keras
import numpy as np
import pytest

from isnet_keras.errors import UnsupportedLayerError
from isnet_keras.lrp import mirrors
from isnet_keras.lrp.composites import Composite
from isnet_keras.lrp.explain import Explainer, build_heatmap_model, explain
from isnet_keras.lrp.graph import LRPGraph
from tests import support


def test_mirror_layers_own_no_variables_and_share_the_classifier_weights():
    model = support.branchy_cnn()
    heatmap_model = build_heatmap_model(LRPGraph(model), num_heatmaps=2)
    mirror_layers = [layer for layer in heatmap_model.layers
                     if isinstance(layer, mirrors.Mirror)]
    assert len(mirror_layers) >= 10
    assert all(not layer.weights for layer in mirror_layers)
    assert {id(w) for w in heatmap_model.weights} == {
        id(w) for w in model.weights}


def test_changing_a_classifier_weight_changes_the_heatmap():
    model = support.small_cnn()
    images = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 1))
    explainer = Explainer(model)
    before = explainer(images, classes=0)
    kernel = model.layers[0].kernel
    kernel.assign(kernel.numpy() * -1.5)
    after = explainer(images, classes=0)
    assert np.abs(after - before).max() > 1e-3


def test_every_default_mirror_is_a_mirror_subclass():
    for layer_class, mirror_class in mirrors.DEFAULT_MIRRORS.items():
        assert issubclass(mirror_class, mirrors.Mirror), layer_class


@pytest.mark.parametrize("layer,pattern", [
    (keras.layers.LeakyReLU(name="leaky"), r"leaky \(LeakyReLU\)"),
    (keras.layers.Activation("tanh", name="squash"),
     r"squash \(Activation\).*tanh"),
    (keras.layers.Conv2D(4, 3, activation="sigmoid", name="gate"),
     r"gate \(Conv2D\).*sigmoid"),
    (keras.layers.UnitNormalization(name="norm"),
     r"norm \(UnitNormalization\).*no LRP mirror"),
])
def test_unsupported_layers_fail_at_build_time_naming_layer_and_class(
        layer, pattern):
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3), layer,
        keras.layers.Flatten(), keras.layers.Dense(3)])
    with pytest.raises(UnsupportedLayerError, match=pattern):
        Explainer(model)


def test_subclassed_models_are_rejected_with_a_clear_error():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 4)))
    with pytest.raises(UnsupportedLayerError, match="subclassed"):
        Explainer(net)


def test_softmax_is_explained_at_its_logits():
    logits_model = support.small_cnn()
    probabilities_model = keras.Sequential(
        [keras.Input((16, 16, 1)), *logits_model.layers,
         keras.layers.Softmax()])
    images = np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 1))
    np.testing.assert_allclose(explain(probabilities_model, images, 3),
                               explain(logits_model, images, 3), rtol=1e-6)


@pytest.mark.parametrize("images,pattern", [
    (np.zeros((16, 16, 1)), "shape"),
    (np.zeros((2, 16, 16, 3)), "channel count 3"),
    (np.zeros((2, 15, 16, 1)), "height 15"),
])
def test_images_of_the_wrong_shape_are_rejected(images, pattern):
    with pytest.raises(ValueError, match=pattern):
        explain(support.small_cnn(), images)


@pytest.mark.parametrize("classes,pattern", [
    (10, r"\[0, 9\]"), (-1, r"\[0, 9\]"), (np.array([0, 11]), r"\[0, 9\]"),
    ("everything", "predicted"), (np.array([1.5, 2]), "integers"),
    (np.array([1, 2, 3]), "3 entries for 2 images"),
])
def test_classes_out_of_range_are_rejected(classes, pattern):
    images = np.zeros((2, 16, 16, 1))
    with pytest.raises(ValueError, match=pattern):
        explain(support.small_cnn(), images, classes=classes)


def _every_layer_type():
    """A tiny functional net holding every layer class of DEFAULT_MIRRORS."""
    layers = keras.layers
    inputs = keras.Input((8, 8, 2))
    x = layers.Rescaling(0.5, offset=0.25)(inputs)
    x = layers.Normalization(mean=[0.1, 0.2], variance=[1.0, 2.0])(x)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.Conv2D(4, 3)(x)
    x = layers.BatchNormalization()(x)  # folded into the conv
    x = layers.ReLU()(x)
    x = layers.SpatialDropout2D(0.1)(x)
    a = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    b = layers.Activation("relu")(layers.Conv2D(4, 1)(x))
    x = layers.Concatenate()([layers.Add()([a, b]), layers.Average()([a, b])])
    x = layers.BatchNormalization()(x)  # standalone
    x = layers.AveragePooling2D(2)(layers.MaxPooling2D(2)(x))
    flat = layers.Reshape((32,))(layers.Flatten()(x))
    tokens = mirrors.AddPositionEmbedding()(layers.Reshape((4, 8))(x))
    tokens = layers.Dense(8, activation="gelu")(
        layers.LayerNormalization()(tokens))
    tokens = layers.MultiHeadAttention(2, 4)(tokens, tokens)
    tokens = mirrors.ReLUAttention(2, 4)(tokens, tokens)
    tokens = layers.RMSNormalization()(tokens)
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x),
                              layers.GlobalMaxPooling2D()(x), flat,
                              layers.GlobalAveragePooling1D()(tokens)])
    outputs = layers.Dense(3)(layers.Dropout(0.1)(x))
    return keras.Model(inputs, outputs)


def test_every_mirror_config_round_trips_its_constructor_arguments():
    model = _every_layer_type()
    graph = LRPGraph(model)
    steps = graph._plan("epsilon", ())
    assert {type(layer) for layer in model.layers[1:]} == set(
        mirrors.DEFAULT_MIRRORS)
    assert {type(step.mirror) for step in steps} == set(
        mirrors.DEFAULT_MIRRORS.values())
    arguments = set(inspect.signature(mirrors.Mirror.__init__).parameters)
    arguments -= {"self", "layers", "kwargs"}
    for step in steps:
        mirror = step.mirror
        config = mirror.get_config()
        assert arguments | {"sources"} <= set(config), type(mirror)
        rebuilt = type(mirror).from_config(config, classifier=model)
        assert rebuilt.get_config() == config, type(mirror)
        assert rebuilt._sources == mirror._sources
    # The first conv has bounds (mapped through Rescaling, Normalization
    # and the padding) and Z^B; its config keeps both.
    first = next(s.mirror for s in steps
                 if isinstance(s.mirror, mirrors.Conv2DMirror))
    assert first.get_config()["rule"] == "zb"
    assert np.shape(first.get_config()["input_bounds"]) == (2, 10, 10, 2)
    with pytest.raises(NotImplementedError, match="rebuilt from the "
                       "classifier"):
        mirrors.DenseMirror.from_config(steps[-1].mirror.get_config())
    images = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 2))
    assert np.isfinite(Explainer(model)(images, "all")).all()


@pytest.mark.parametrize("layer", [
    keras.layers.Flatten(data_format="channels_first"),
    keras.layers.SpatialDropout2D(0.1, data_format="channels_first"),
])
def test_channels_first_layers_are_refused_by_every_mirror(layer):
    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Conv2D(
        2, 1), layer, keras.layers.Flatten(), keras.layers.Dense(3)])
    with pytest.raises(UnsupportedLayerError, match="channels_last"):
        LRPGraph(model)


@pytest.mark.parametrize("pooling", [keras.layers.MaxPooling2D(2),
                                     keras.layers.GlobalMaxPooling2D()])
def test_float32_max_pooling_in_a_float64_model_finds_its_maxima(pooling):
    """Keras rounds the float64 input of a float32 layer; the mirror must
    compare the rounded input with the pooled maxima, or it finds none
    (heatmaps of NaN)."""
    keras.utils.set_random_seed(0)
    with support.floatx("float64"):
        inputs = keras.Input((4, 4, 2))
        conv = keras.layers.Conv2D(2, 1, use_bias=False)(inputs)
    pooled = pooling(conv)
    with support.floatx("float64"):
        flat = keras.layers.Flatten()(pooled)
        model = keras.Model(inputs, keras.layers.Dense(3)(flat))
    assert pooling.compute_dtype == "float32"
    x = np.random.default_rng(1).uniform(0, 1, (2, 4, 4, 2))
    lrp0 = Composite(default="zero", first_layer=None)
    heatmaps, hidden = support.class_relevances(model, x, 1, lrp0,
                                                [pooling.name])
    assert np.isfinite(heatmaps).all()
    # LRP-0 through a bias-free convolution and the pooling conserves.
    np.testing.assert_allclose(
        heatmaps.sum((1, 2, 3)),
        np.asarray(hidden[pooling.name]).reshape(2, -1).sum(1), rtol=1e-6)
