"""LRP-0 equals input x gradient on ReLU networks (an independent check)."""

import numpy as np
import pytest

from isnet_keras.lrp.explain import explain
from tests import support


def _lrp0(model, images, class_index):
    return explain(model, images, classes=class_index, epsilon=1e-12,
                   first_layer_rule="epsilon")[:, 0]


@pytest.mark.parametrize("builder", [
    support.small_cnn,
    # An input-side Rescaling with an offset passes relevance unchanged
    # (docs/algorithm.md, "Element-wise, shape and merge layers"), which is
    # not gradient x input: leave it out here.
    lambda: support.branchy_cnn(rescale=False)])
def test_lrp0_equals_gradient_times_input_on_small_nets(builder):
    with support.floatx("float64"):
        model = builder()
    support.randomize_batch_norms(model)
    images = np.random.default_rng(1).uniform(
        0, 1, (3, *model.input_shape[1:]))
    for class_index in (0, 3):
        heatmaps = _lrp0(model, images, class_index)
        reference = support.gradient_times_input(model, images, class_index)
        assert support.relative_l1(heatmaps, reference) < 1e-6


@pytest.mark.parametrize(
    "name", ["VGG16", "ResNet50", "DenseNet121", "MobileNetV2"])
def test_lrp0_equals_gradient_times_input_on_applications(name):
    with support.floatx("float64"):
        model = support.application_classifier(name)
    support.randomize_batch_norms(model)
    images = np.random.default_rng(2).uniform(0, 1, (2, 32, 32, 3))
    heatmaps = _lrp0(model, images, 2)
    reference = support.gradient_times_input(model, images, 2)
    assert support.relative_l1(heatmaps, reference) < 1e-3


def test_lrp0_holds_in_float32_within_issue_tolerance():
    model = support.small_cnn()
    support.randomize_batch_norms(model)
    images = np.random.default_rng(3).uniform(0, 1, (4, 16, 16, 1)).astype(
        "float32")
    heatmaps = explain(model, images, classes=1, epsilon=1e-9,
                       first_layer_rule="epsilon")[:, 0]
    assert heatmaps.dtype == np.float32
    reference = support.gradient_times_input(model, images, 1)
    assert support.relative_l1(heatmaps, reference) < 1e-3


@pytest.mark.parametrize("first_layer_rule", ["epsilon", "zb"])
def test_input_rescaling_passes_relevance_unchanged_and_maps_bounds(
        first_layer_rule):
    import keras
    with support.floatx("float64"):
        scaled = support.branchy_cnn()
        plain = support.branchy_cnn(rescale=False)
    plain.set_weights(scaled.get_weights())
    # Multiples of 1/256: `explain` feeds float32 images, and these (and
    # 2x - 1) are exact in float32, so both nets see the same input.
    images = np.random.default_rng(4).integers(0, 257, (2, 16, 16, 3)) / 256
    with_layer = explain(scaled, images, 1, first_layer_rule=first_layer_rule)
    # The same net fed 2x - 1 directly, with the bounds mapped by hand.
    without = explain(plain, 2 * images - 1, 1,
                      first_layer_rule=first_layer_rule,
                      input_bounds=(-1.0, 1.0))
    np.testing.assert_allclose(with_layer, without, rtol=1e-5, atol=1e-9)
    assert isinstance(scaled.layers[1], keras.layers.Rescaling)
