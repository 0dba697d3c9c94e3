"""explain() refuses non-finite images and names non-finite heatmaps."""

import keras
import numpy as np
import pytest

from isnet_keras.lrp.explain import Explainer, explain
from tests import support


@pytest.fixture(scope="module")
def model():
    return support.small_cnn(num_classes=4)


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(0, 1, (5, 16, 16, 1))


@pytest.mark.parametrize("rule", ["zb", "epsilon"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_for_every_first_layer_rule(
        model, images, rule, value):
    images[1, 3, 4, 0] = value
    images[3, 0, 0, 0] = value
    with pytest.raises(ValueError, match=r"images \[1, 3\] hold non-finite"):
        explain(model, images, first_layer_rule=rule)
    with pytest.raises(ValueError, match=r"images \[1, 3\] hold non-finite"):
        Explainer(model, first_layer_rule=rule)(images, "all")


def test_many_non_finite_images_are_counted(model):
    images = np.full((12, 16, 16, 1), np.nan)
    with pytest.raises(ValueError,
                       match=r"images \[0, 1, .*, 9, \.\.\.\] \(12 in all\)"):
        explain(model, images, first_layer_rule="epsilon")


def test_nan_weights_are_named(images):
    net = support.small_cnn(num_classes=4)
    dense = net.layers[-1]
    kernel = dense.kernel.numpy()
    kernel[0, 0] = np.nan
    dense.kernel.assign(kernel)
    for rule in ("zb", "epsilon"):
        with pytest.raises(ValueError, match=(
                r"heatmaps of images \[0, 1, 2, 3, 4\] are not finite[\s\S]*"
                r"weights or outputs are not finite[\s\S]*"
                + dense.kernel.path)):
            explain(net, images, first_layer_rule=rule)


def test_overflowing_activations_with_finite_weights_are_explained():
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((4, 4, 1)),
                            keras.layers.Conv2D(2, 3, activation="relu"),
                            keras.layers.Flatten(),
                            keras.layers.Dense(3)])
    conv = net.layers[0]
    conv.kernel.assign(np.ones(conv.kernel.shape))  # 9 * 3e38 overflows
    huge = np.full((2, 4, 4, 1), 3e38)
    huge[0] = 0.5  # finite maps for this image
    with pytest.raises(ValueError, match=(
            r"heatmaps of images \[1\] are not finite[\s\S]*"
            "weights are finite")):
        explain(net, huge, first_layer_rule="epsilon")


@pytest.mark.parametrize("epsilon", [np.nan, np.inf])
def test_non_finite_epsilon_is_refused(model, images, epsilon):
    with pytest.raises(ValueError, match="epsilon must be a finite number"):
        explain(model, images, epsilon=epsilon)
