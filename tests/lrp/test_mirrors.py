"""Mirror layers: tied weights, no variables, clear errors."""

import keras
import numpy as np
import pytest

from isnet_keras.errors import UnsupportedLayerError
from isnet_keras.lrp import mirrors
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
    (keras.layers.LayerNormalization(name="norm"),
     r"norm \(LayerNormalization\).*no LRP mirror"),
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
