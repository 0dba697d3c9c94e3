"""LRP-0 equals input x gradient on ReLU networks (an independent check)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras import backbones
from isnet_keras.lrp import graph as graph_lib
from isnet_keras.lrp import outputs
from isnet_keras.lrp.explain import Explainer
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


def _eager_forward(lrp_graph, images, hidden):
    """Runs the re-traced classifier layer by layer, eagerly.

    Every layer is the classifier's own object (shared weights), called as
    in the traced graph, up to the logits layer. Returns the tape, which
    watched the activations at the `hidden` tensors (for gradients of the
    logits with respect to them), and `values`, mapping `id(tensor)` of
    every traced tensor to its concrete value.
    """
    values = {id(lrp_graph.input): tf.constant(images)}
    with tf.GradientTape() as tape:
        for call in lrp_graph.traced.calls:
            args = [values[id(t)] for t in call.inputs]
            value = call.layer(args if len(args) > 1 else args[0],
                               **call.kwargs)
            if any(call.output is t for t in hidden):
                tape.watch(value)
            values[id(call.output)] = value
            if call is lrp_graph.logits_call:
                break
    return tape, values


# The four nets have no Rescaling/Normalization layer, so LRP-0 is gradient
# x input from the first layer on, and no ReLU6 of MobileNetV2 clips (checked
# below). Measured (CPU, 2026-12): with epsilon=0 the float64 relevance
# differs from gradient x activation by about 1e-15 (relative L1) at the
# input and at every supervised block, float64 rounding only; 1e-10 leaves
# room for other kernels' summation order. Through `explain()` (float32
# images and heatmaps) with epsilon=1e-12, the setting this test used with a
# 1e-3 tolerance, the input error was 1.3e-7 (VGG16; 2.8e-8 with epsilon=0:
# the rest came from epsilon over the tiny z of deep units), 2.8e-8
# (MobileNetV2), 2.7e-8 (ResNet50) and 3.2e-8 (DenseNet121), i.e. float32
# rounding of the returned heatmaps. The small nets above check `explain()`.
@pytest.mark.parametrize(
    "name", ["VGG16", "ResNet50", "DenseNet121", "MobileNetV2"])
def test_lrp0_equals_gradient_times_input_on_applications(name):
    """LRP-0 relevance at the input and at each deep-supervision block is
    activation x gradient of the explained logit, in float64 to 1e-10.

    Covers the mirrors of every layer type the four nets use: folded and
    standalone batch norms (DenseNet's BN -> ReLU -> Conv), overlapping
    3x3/2 max pooling (ResNet50, DenseNet121), tiling max pooling (VGG16),
    average pooling, Concatenate, Add, DepthwiseConv2D, symmetric and
    asymmetric ZeroPadding2D (MobileNetV2 pads (0, 1)) and ReLU6.
    """
    with support.floatx("float64"):
        model = support.application_classifier(name)
    support.randomize_batch_norms(model)
    images = np.random.default_rng(2).uniform(0, 1, (2, 32, 32, 3))
    class_index = 2
    lrp_graph = graph_lib.LRPGraph(model, epsilon=0.0,
                                   first_layer_rule="epsilon")
    names = backbones.deep_supervision_layers(model)
    assert len(names) >= 4
    hidden = [lrp_graph.tensor_of(layer_name) for layer_name in names]
    seed = outputs.ClassLogitRelevance(lrp_graph.logits_layer,
                                       lrp_dtype="float64")
    classes = keras.Input((1,), dtype="int32")
    found = lrp_graph.propagate(
        lrp_graph.logits_call.output,
        seed(outputs.start_of_logits(lrp_graph), classes), targets=hidden)
    probe = keras.Model([lrp_graph.input, classes],
                        [found[id(lrp_graph.input)]]
                        + [found[id(t)] for t in hidden])
    relevances = probe([tf.constant(images),
                        tf.constant(np.full((2, 1), class_index, np.int32))],
                       training=False)
    assert all(r.dtype == tf.float64 for r in relevances)

    heatmaps = relevances[0].numpy()[:, 0]
    reference = support.gradient_times_input(model, images, class_index)
    assert support.relative_l1(heatmaps, reference) < 1e-10

    tape, values = _eager_forward(lrp_graph, images, hidden)
    logits = values[id(lrp_graph.logits_call.output)]
    # The layer-by-layer pass is the model's own forward pass.
    np.testing.assert_allclose(logits, model(images, training=False),
                               rtol=1e-12, atol=1e-12)
    gradients = tape.gradient(
        logits, [values[id(t)] for t in hidden],
        output_gradients=tf.one_hot([class_index] * 2, logits.shape[-1],
                                    dtype=logits.dtype))
    for layer_name, tensor, gradient, relevance in zip(
            names, hidden, gradients, relevances[1:]):
        expected = (values[id(tensor)] * gradient).numpy()
        assert np.abs(expected).sum() > 0, layer_name
        error = support.relative_l1(relevance.numpy()[:, 0], expected)
        assert error < 1e-10, (layer_name, error)

    # ReLU6 passes relevance unchanged, which is LRP-0 = gradient x input
    # only where it does not clip (see the test below): no unit clips here.
    relu6_inputs = [values[id(call.inputs[0])]
                    for call in lrp_graph.traced.calls
                    if isinstance(call.layer, keras.layers.ReLU)
                    and call.layer.max_value]
    assert (name == "MobileNetV2") == bool(relu6_inputs)
    for value in relu6_inputs:
        assert float(tf.reduce_max(value)) < 6.0


def test_relu6_passes_clipped_relevance_unchanged():
    """Where ReLU6 clips, LRP-0 is not gradient x input: the clipped unit's
    relevance `6 * w2` reaches the layer below, whose rule divides it by the
    unit's pre-activation `z > 6` (docs/algorithm.md: ReLU6 passes relevance
    unchanged), while the gradient through the clipped unit is 0."""
    with support.floatx("float64"):
        model = keras.Sequential([
            keras.Input((3,)),
            keras.layers.Dense(2),
            keras.layers.ReLU(6.0),
            keras.layers.Dense(2),
        ])
    w1 = np.array([[4.0, 0.5], [3.0, -0.25], [2.0, 1.0]])
    b1 = np.array([0.5, 0.125])
    w2 = np.array([[1.5, -1.0], [2.0, 0.5]])
    b2 = np.array([0.25, -0.5])
    model.set_weights([w1, b1, w2, b2])
    x = np.array([[1.0, 0.5, 0.75], [0.25, 0.5, 0.125]])
    z = x @ w1 + b1
    # Image 0: unit 0 clips (z = 7.5); image 1: no unit clips.
    assert z[0, 0] > 6 and (0 < z[1]).all() and (z[1] < 6).all()
    a = np.clip(z, 0, 6)
    class_index = 0
    # R_a = a * w2[:, c] (the logit z_c = a w2 + b2 divided by itself), and
    # R_x = x * sum_k w1[:, k] R_a[k] / z[k].
    relevance_a = a * w2[:, class_index]
    expected = x * ((relevance_a / z) @ w1.T)
    explainer = Explainer(model, epsilon=0.0, first_layer_rule="epsilon")
    heatmaps = explainer.function(1)(
        tf.constant(x), tf.constant([[class_index]] * 2)).numpy()[:, 0]
    np.testing.assert_allclose(heatmaps, expected, rtol=1e-12)
    reference = support.gradient_times_input(model, x, class_index)
    np.testing.assert_allclose(heatmaps[1], reference[1], rtol=1e-12)
    assert np.abs(heatmaps[0] - reference[0]).max() > 1.0


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
