"""z reuse and the split of fused ReLUs: same heatmaps, same gradients.

The reference is the LRP block with every `z` recomputed from the layer
input (`LRPGraph.propagate(..., values=...)` on the live activations never
reuses a forward tensor), in float64.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.lrp import keras_graph
from isnet_keras.lrp import linear_maps
from isnet_keras.lrp import mirrors
from isnet_keras.lrp import outputs
from isnet_keras.lrp import pre_activation
from isnet_keras.lrp import rules
from isnet_keras.lrp.graph import LRPGraph
from tests import support


def _mixed_cnn(num_classes=3):
    """Fused-ReLU convs, a linear conv with a batch norm, fused-ReLU Dense."""
    return keras.Sequential([
        keras.Input((12, 12, 2)),
        keras.layers.Conv2D(5, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(6, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Conv2D(7, 3, strides=2, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(num_classes),
    ])


class _RuleSpy:
    """Counts how often the epsilon and Z^B rules get a reused `z`."""

    def __init__(self, monkeypatch):
        self.reused, self.recomputed = 0, 0
        epsilon_rule, zb_rule = rules.epsilon_rule, rules.zb_rule

        def spy_epsilon(*args, linear_output=None, **kwargs):
            self._count(linear_output)
            return epsilon_rule(*args, linear_output=linear_output, **kwargs)

        def spy_zb(*args, linear_output=None, **kwargs):
            self._count(linear_output)
            return zb_rule(*args, linear_output=linear_output, **kwargs)

        monkeypatch.setattr(rules, "epsilon_rule", spy_epsilon)
        monkeypatch.setattr(rules, "zb_rule", spy_zb)

    def _count(self, given):
        if given is None:
            self.recomputed += 1
        else:
            self.reused += 1


def _heatmaps_and_gradients(model, images, masks, training, reuse, spy,
                            monkeypatch, first_layer_rule="zb"):
    """Heatmaps of all classes and d(GWRP loss)/d(every variable).

    With `reuse=False` no mirror is offered a forward tensor, so every `z`
    is recomputed. `spy` counts the rule calls of the run (not of the
    symbolic build).
    """
    with monkeypatch.context() as patch:
        if not reuse:
            patch.setattr(mirrors.Mirror, "forward_z",
                          lambda self, outputs, split: None)
            patch.setattr(mirrors._WeightedMirror, "forward_z",
                          lambda self, outputs, split: None)
        block = support.all_class_block(
            LRPGraph(model, first_layer_rule=first_layer_rule))
    spy.reused = spy.recomputed = 0
    return support.heatmap_loss_gradients(block, images, masks,
                                          model.trainable_variables, training)


def _images_and_masks(shape, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (4, *shape))
    masks = np.zeros((4, *shape[:2], 1))
    masks[:, 3:9, 2:10] = 1
    return images, masks


def test_fused_relus_are_split_at_retrace_without_changing_outputs():
    keras.utils.set_random_seed(0)
    model = _mixed_cnn()
    graph = LRPGraph(model)
    split = {c.layer.name: c.pre_activation is not None
             for c in graph.traced.calls}
    conv_names = [layer.name for layer in model.layers
                  if isinstance(layer, (keras.layers.Conv2D,
                                        keras.layers.Dense))]
    relu_fused = [name for name in conv_names
                  if model.get_layer(name).activation.__name__ == "relu"]
    assert relu_fused and all(split[name] for name in relu_fused)
    assert not any(split[name] for name in conv_names
                   if name not in relu_fused)
    images, _ = _images_and_masks((12, 12, 2))
    retraced = keras.Model(graph.input, graph.traced.output)
    np.testing.assert_array_equal(retraced(images).numpy(),
                                  model(images).numpy())
    # The split layers own no weights: the classifier's are used.
    assert not retraced.weights or {id(v) for v in retraced.weights} <= {
        id(v) for v in model.weights}


@pytest.mark.parametrize("training, first_layer_rule",
                         [(False, "zb"), (False, "epsilon"), (True, "zb")])
def test_z_reuse_gives_recomputed_heatmaps_and_gradients(
        monkeypatch, training, first_layer_rule):
    keras.utils.set_random_seed(1)
    with support.floatx("float64"):
        model = _mixed_cnn()
        support.randomize_batch_norms(model)
    images, masks = _images_and_masks((12, 12, 2))
    spy = _RuleSpy(monkeypatch)
    reused_maps, reused_grads = _heatmaps_and_gradients(
        model, images, masks, training, True, spy, monkeypatch,
        first_layer_rule)
    # Every linear layer reuses z: three convs and both Dense layers. The
    # conv with a folded batch norm reuses its own output, also in training
    # mode, where the batch norm's output depends on batch moments whose
    # gradient the fold stops.
    assert (spy.reused, spy.recomputed) == (5, 0)
    maps, grads = _heatmaps_and_gradients(
        model, images, masks, training, False, spy, monkeypatch,
        first_layer_rule)
    assert (spy.reused, spy.recomputed) == (0, 5)
    np.testing.assert_allclose(reused_maps, maps, rtol=1e-10, atol=1e-13)
    support.assert_same_gradients(model.trainable_variables, reused_grads,
                                  grads)
    for name in ("kernel", "gamma"):
        live = [g for v, g in zip(model.trainable_variables, grads)
                if name in v.path]
        assert live and all(np.abs(g.numpy()).max() > 0 for g in live), name


@pytest.mark.parametrize("layer_class", ["Conv2D", "Dense"])
def test_reused_z_passes_no_gradient_to_the_bias(layer_class):
    # With the layer input held fixed, the relevance depends on the bias
    # only through z = z_fwd - b + sg(b): its gradient must vanish.
    rng = np.random.default_rng(3)
    if layer_class == "Conv2D":
        layer = keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                                    dtype="float64")
        x = tf.constant(rng.normal(size=(2, 6, 6, 3)))
    else:
        layer = keras.layers.Dense(4, activation="relu", dtype="float64")
        x = tf.constant(rng.normal(size=(2, 5)))
    layer.build(x.shape)
    layer.bias.assign(rng.normal(size=4))
    mirror_class = mirrors.Conv2DMirror if layer_class == "Conv2D" \
        else mirrors.DenseMirror
    mirror = mirror_class((layer,), lrp_dtype="float64")
    split = pre_activation.PreActivation(layer)
    weights = tf.constant(rng.normal(size=(2, 1, *x.shape[1:])))
    with tf.GradientTape() as tape:
        z_forward = split(x)
        # The seed relevance is held fixed too: only the block's path counts.
        seed = tf.stop_gradient(tf.nn.relu(z_forward)[:, None])
        heatmap = rules.materialize(mirror(
            seed, [x], [tf.nn.relu(z_forward)], pre_activation=z_forward)[0])
        objective = tf.reduce_sum(weights * heatmap)
    bias_gradient, kernel_gradient = tape.gradient(
        objective, [layer.bias, layer.kernel])
    # `z_fwd - b` cancels b's two gradient paths; they are summed by two
    # reductions whose rounding may differ (it does under load), so zero up
    # to float64 rounding, relative to the kernel's gradient.
    scale = np.abs(kernel_gradient.numpy()).max()
    assert scale > 0
    assert bias_gradient is None or np.all(
        np.abs(bias_gradient.numpy()) <= 1e-12 * scale)


def test_no_split_under_mixed_precision_or_without_a_relu():
    mixed = keras.layers.Conv2D(3, 3, activation="relu",
                                dtype="mixed_float16")
    linear = keras.layers.Conv2D(3, 3)
    tanh = keras.layers.Dense(3, activation="tanh")
    depthwise = keras.layers.DepthwiseConv2D(3, activation="relu")
    for layer in (mixed, linear, tanh, depthwise):
        assert not pre_activation.splits_activation(layer), layer.name
    assert pre_activation.splits_activation(
        keras.layers.Dense(3, activation="relu"))
    with pytest.raises(ValueError, match="no fused ReLU"):
        pre_activation.PreActivation(linear)


def test_mixed_precision_classifier_recomputes_z(monkeypatch):
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu", dtype="mixed_float16"),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    graph = LRPGraph(model)
    assert all(c.pre_activation is None for c in graph.traced.calls)
    spy = _RuleSpy(monkeypatch)
    seed = outputs.ClassLogitRelevance(graph.logits_layer)
    found = graph.propagate(graph.logits_call.output,
                            seed(outputs.start_of_logits(graph)))
    block = keras.Model(graph.input, found[id(graph.input)])
    spy.reused = spy.recomputed = 0
    block(np.random.default_rng(0).uniform(size=(2, 8, 8, 1)))
    # The float32 Dense reuses its z, the float16 conv recomputes.
    assert (spy.reused, spy.recomputed) == (1, 1)


@pytest.mark.parametrize("policy, form", [
    ("float32", "WindowRelevance"), ("mixed_bfloat16", "Factored"),
    ("mixed_float16", "Factored")])
def test_pooled_relevance_of_a_low_precision_pool_is_factored(policy, form):
    # Below float32 the window maxima are rounded: they must not become the
    # z of the convolution below. Keras casts the mirror's arguments to its
    # float32 on the way in, so the output's dtype cannot tell.
    from isnet_keras.lrp.pooling_mirrors import MaxPooling2DMirror

    pool = keras.layers.MaxPooling2D(2, dtype=policy)
    x = tf.random.uniform((1, 4, 4, 2))
    pooled = pool(x)
    mirror = MaxPooling2DMirror([pool])
    (relevance,) = mirror(tf.ones((1, 1, 2, 2, 2)),
                          [tf.cast(x, pooled.dtype)], [pooled])
    assert type(relevance).__name__ == form


@pytest.mark.parametrize("shape, pool, padding", [
    ((7, 9), 2, "valid"), ((8, 6), 2, "same"), ((9, 7), 3, "valid"),
    ((6, 6), 3, "same")])
def test_broadcast_unpool_equals_the_scatter_unpool(shape, pool, padding):
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=(2, *shape, 3)))  # no ties
    pooled, argmax = tf.nn.max_pool_with_argmax(
        x, pool, pool, padding.upper(), include_batch_in_index=False)
    assert linear_maps.tiles_windows((pool, pool), (pool, pool), padding,
                                     tuple(x.shape))
    s = tf.constant(rng.normal(size=(2, 3, *argmax.shape[1:])))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, s])
        scattered = x[:, None] * linear_maps.max_unpool(s, argmax,
                                                        tf.shape(x))
        # The product with the activation moves to the pooled size, so
        # the gradient reaches `x` through the pooling.
        live = tf.nn.max_pool2d(x, pool, pool, padding.upper())
        mask, share = linear_maps.window_winners(x, live, (pool, pool))
        broadcast = mask[:, None] * linear_maps.broadcast_windows(
            s * (live * share)[:, None], (pool, pool), tuple(x.shape))
    np.testing.assert_array_equal(broadcast.numpy(), scattered.numpy())
    assert np.all(mask.numpy().sum(axis=(1, 2)) == argmax.shape[1] *
                  argmax.shape[2])
    np.testing.assert_array_equal(share.numpy(), 1.0)
    weights = tf.constant(rng.normal(size=scattered.shape))
    for variable in (x, s):
        np.testing.assert_allclose(
            tape.gradient(broadcast, variable, output_gradients=weights),
            tape.gradient(scattered, variable, output_gradients=weights),
            rtol=1e-12, atol=1e-14)


def test_tied_window_maxima_share_the_window_relevance_evenly():
    x = np.zeros((1, 4, 4, 1))
    x[0, :2, :2, 0] = [[0.5, 0.5], [0.2, 0.5]]  # three tied maxima
    x[0, :2, 2:, 0] = [[0.1, 0.9], [0.3, 0.2]]  # one maximum
    x[0, 2:, :, 0] = 0.7  # two windows of four tied maxima
    x = tf.constant(x)
    pooled = tf.nn.max_pool2d(x, 2, 2, "VALID")
    mask, share = linear_maps.window_winners(x, pooled, (2, 2))
    winners = mask * linear_maps.broadcast_windows(share, (2, 2),
                                                   tuple(x.shape))
    np.testing.assert_array_equal(winners.numpy()[0, ..., 0], [
        [1 / 3, 1 / 3, 0, 1], [0, 1 / 3, 0, 0],
        [0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]])


def test_overlapping_or_uneven_same_windows_keep_the_scatter():
    assert not linear_maps.tiles_windows((3, 3), (2, 2), "valid",
                                         (None, 9, 9, 1))
    assert not linear_maps.tiles_windows((2, 2), (2, 2), "same",
                                         (None, 7, 8, 1))
    assert not linear_maps.tiles_windows((2, 2), (2, 2), "valid",
                                         (None, None, None, 1))


def test_retrace_records_the_pre_activation_tensor():
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(2)])
    traced = keras_graph.trace(model)
    first, second = traced.calls
    assert first.pre_activation is not None
    assert second.pre_activation is None
    x = np.random.default_rng(6).normal(size=(5, 4)).astype("float32")
    pre = keras.Model(traced.input, first.pre_activation)(x).numpy()
    layer = model.layers[0]
    expected = x @ layer.kernel.numpy() + layer.bias.numpy()
    np.testing.assert_allclose(pre, expected, rtol=1e-6, atol=1e-6)


def _pooled_cnn():
    """Max pools after a fused ReLU, a ReLU layer, and a ReLU6 + dropout."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input((16, 16, 2)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(5, 3, padding="same"),
        layers.ReLU(),
        layers.MaxPooling2D(2),
        layers.Conv2D(6, 3, padding="same"),
        layers.ReLU(max_value=6.0),
        layers.Dropout(0.25),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(3),
    ])


@pytest.mark.parametrize("first_layer_rule, divided_at_peaks",
                         [("epsilon", 2), ("zb", 1)])
def test_division_at_the_window_maxima_gives_full_size_results(
        monkeypatch, first_layer_rule, divided_at_peaks):
    # A linear layer whose ReLU (fused or its own layer) feeds a max pool
    # divides by stab(z) at the pooled size; the reference divides at full
    # size. ReLU6 and dropout change values, so the third conv must not,
    # and Z^B (first layer) has its own z.
    keras.utils.set_random_seed(2)
    with support.floatx("float64"):
        model = _pooled_cnn()
    images = np.random.default_rng(7).uniform(0, 1, (4, 16, 16, 2))
    masks = np.zeros((4, 16, 16, 1))
    masks[:, 4:12, 3:13] = 1
    original = mirrors._WeightedMirror._output_at_maxima
    used = []

    def counted(relevance, bias, gain):
        z = original(relevance, bias, gain)
        used.append(z is not None)
        return z

    spy = _RuleSpy(monkeypatch)
    with monkeypatch.context() as patch:
        patch.setattr(mirrors._WeightedMirror, "_output_at_maxima",
                      staticmethod(counted))
        fast_maps, fast_grads = _heatmaps_and_gradients(
            model, images, masks, False, True, spy, monkeypatch,
            first_layer_rule)
    # Build and run call each mirror: the run's calls are the second half.
    assert sum(used[len(used) // 2:]) == divided_at_peaks
    with monkeypatch.context() as patch:
        patch.setattr(mirrors._WeightedMirror, "_output_at_maxima",
                      staticmethod(lambda relevance, bias, gain: None))
        maps, grads = _heatmaps_and_gradients(
            model, images, masks, False, True, spy, monkeypatch,
            first_layer_rule)
    assert np.abs(maps).max() > 0
    np.testing.assert_allclose(fast_maps, maps, rtol=1e-10, atol=1e-13)
    support.assert_same_gradients(model.trainable_variables, fast_grads,
                                  grads)
