"""Heatmap losses against hand computations in NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from isnet_keras import losses


def _numpy_gwrp(values, d):
    ordered = np.sort(values)[::-1]
    weights = d ** np.arange(len(ordered))
    return (ordered * weights).sum() / weights.sum()


def _numpy_gwrp_loss(masks, maps, d, E, A, B, C1, C2, foreground):
    """The GWRP loss of docs/algorithm.md written out with loops, masks
    already at heatmap size."""
    total = []
    for b in range(maps.shape[0]):
        m = masks[b]
        bg_terms, lows, highs = [], [], []
        for k in range(maps.shape[1]):
            q = np.abs(maps[b, k])
            fg = (q * m).sum()
            mu = fg / (np.broadcast_to(m, q.shape).sum() + 1e-10)
            qn = q / (mu + 1e-10)
            for c in range(q.shape[-1]):
                g = _numpy_gwrp((qn[..., c] * (1 - m[..., 0])).ravel(), d)
                f = min(g / (g + E), 1 - 1e-7)
                bg_terms.append(-np.log(1 - f))
            lows.append((min(fg / C1, 1) - 1) ** 2)
            if foreground == "l2":
                highs.append((max(fg / C1, C2 / C1) - C2 / C1) ** 2)
            elif foreground == "l1":
                highs.append(max(fg - C2, 0))
            else:
                highs.append(fg - (C1 + C2) + 1 if fg > C1 + C2 else
                             (max(fg / C1, C2 / C1) - C2 / C1) ** 2)
        total.append(A * np.mean(bg_terms) + B * (np.mean(lows) +
                                                  np.mean(highs)))
    return np.mean(total)


@pytest.fixture
def maps_and_masks():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 2, 6, 6, 2))
    masks = np.zeros((3, 6, 6, 1))
    masks[:, 1:5, 2:5] = 1
    masks[1, 0, 0] = 1
    return maps, masks


@pytest.mark.parametrize("foreground", ["l2", "l1", "hybrid"])
@pytest.mark.parametrize("scale", [0.1, 3.0])
def test_gwrp_loss_matches_hand_computation(maps_and_masks, foreground,
                                            scale):
    maps, masks = maps_and_masks
    maps = maps * scale
    kwargs = dict(d=0.8, E=1.5, A=1.2, B=2.0, C1=2.0, C2=10.0,
                  foreground=foreground)
    value = losses.GWRPHeatmapLoss(**kwargs)(masks, tf.constant(maps))
    expected = _numpy_gwrp_loss(masks, maps, **kwargs)
    np.testing.assert_allclose(float(value), expected, rtol=1e-9)


def test_gwrp_pooling_limits_are_max_and_mean():
    values = tf.constant(np.random.default_rng(1).uniform(size=(4, 50)))
    np.testing.assert_allclose(losses.gwrp(values, 0.0),
                               values.numpy().max(-1))
    np.testing.assert_allclose(losses.gwrp(values, 1.0),
                               values.numpy().mean(-1))
    np.testing.assert_allclose(
        losses.gwrp(values, 0.7),
        [_numpy_gwrp(v, 0.7) for v in values.numpy()], rtol=1e-9)


def test_hybrid_band_is_continuous_at_c1_plus_c2():
    c1, c2 = 2.0, 10.0

    def high_penalty(total):
        # A single-pixel foreground holding `total`, no background.
        maps = np.zeros((1, 1, 2, 2, 1))
        maps[0, 0, 0, 0, 0] = total
        masks = np.zeros((1, 2, 2, 1))
        masks[0, 0, 0] = 1
        return float(losses.gwrp_heatmap_loss(masks, maps, A=0.0, B=1.0,
                                              C1=c1, C2=c2,
                                              foreground="hybrid"))

    below, above = high_penalty(c1 + c2 - 1e-7), high_penalty(c1 + c2 + 1e-7)
    assert abs(below - 1.0) < 1e-5 and abs(above - 1.0) < 1e-5


def test_variance_loss_matches_hand_computation(maps_and_masks):
    maps, masks = maps_and_masks
    value = losses.VarianceHeatmapLoss(E=3.0)(masks, tf.constant(maps))
    variance = maps.var(ddof=1)
    normalised = np.abs(maps) / np.sqrt(variance + 1e-4)
    outside = (normalised * (1 - masks[:, None])).sum(axis=(2, 3, 4))
    fraction = np.clip(outside / (outside + 3.0), 0, 1 - 1e-4)
    np.testing.assert_allclose(float(value), np.mean(-np.log(1 - fraction)),
                               rtol=1e-9)


def test_masks_are_resized_by_the_any_foreground_rule():
    masks = np.zeros((1, 5, 7, 1), np.float32)
    masks[0, 4, 6] = 1  # bottom-right cell only
    resized = losses.resize_masks(tf.constant(masks), 2, 3).numpy()[0, ..., 0]
    # Rows bins [0,3) and [2,5); column bins [0,3), [2,5), [4,7).
    expected = np.zeros((2, 3))
    expected[1, 2] = 1
    np.testing.assert_array_equal(resized, expected)
    masks[0, 2, 2] = 1  # shared by the overlapping bins
    resized = losses.resize_masks(tf.constant(masks), 2, 3).numpy()[0, ..., 0]
    np.testing.assert_array_equal(resized, [[1, 1, 0], [1, 1, 1]])


@pytest.mark.parametrize("size, target", [((64, 64), (16, 16)),
                                          ((12, 8), (3, 8)),
                                          ((6, 6), (6, 2))])
def test_whole_block_resizing_equals_the_bin_rule(size, target):
    # Sizes divisible by the target's take the blocks' maxima; the
    # reference is the bin matrices' any-foreground rule, by hand.
    rng = np.random.default_rng(0)
    masks = (rng.uniform(size=(3, *size, 2)) > 0.93).astype(np.float32)
    resized = losses.resize_masks(tf.constant(masks), *target).numpy()
    rows = losses._bin_matrix(size[0], target[0], "float32").numpy()
    cols = losses._bin_matrix(size[1], target[1], "float32").numpy()
    expected = (np.einsum("ih,bhwc,jw->bijc", rows, masks, cols) > 0)
    assert resized.shape == (3, *target, 2) and expected.any()
    np.testing.assert_array_equal(resized, expected.astype(np.float32))


def test_empty_foreground_images_are_excluded(maps_and_masks):
    maps, masks = maps_and_masks
    with_empty = masks.copy()
    with_empty[2] = 0
    value = losses.gwrp_heatmap_loss(with_empty, maps)
    expected = losses.gwrp_heatmap_loss(masks[:2], maps[:2])
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-12)


def test_non_binary_masks_raise(maps_and_masks):
    maps, masks = maps_and_masks
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-binary"):
        losses.GWRPHeatmapLoss()(masks * 0.5, maps)


def test_masks_of_the_wrong_shape_raise(maps_and_masks):
    maps, _ = maps_and_masks
    with pytest.raises(ValueError, match=r"\(B, H, W\) or \(B, H, W, 1\)"):
        losses.GWRPHeatmapLoss()(np.zeros((3, 6, 6, 3)), maps)


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(C1=5.0, C2=5.0), "0 < C1 < C2"), (dict(d=1.5), "d must"),
    (dict(foreground="l3"), "foreground"), (dict(E=0.0), "E must"),
    (dict(channels="max"), "channels must")])
def test_bad_loss_arguments_raise(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        losses.GWRPHeatmapLoss(**kwargs)


def test_summed_channels_score_the_background_of_the_summed_abs_map():
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(3, 2, 6, 6, 5))
    masks = np.zeros((3, 6, 6, 1))
    masks[:, 1:4, 2:5] = 1
    summed = np.abs(maps).sum(axis=-1, keepdims=True)
    expected = _numpy_gwrp_loss(masks, summed, 0.9, 1.0, 1.0, 3.0, 2.0,
                                40.0, "l2")
    value = losses.gwrp_heatmap_loss(masks, tf.constant(maps), C1=2.0,
                                     C2=40.0, channels="sum")
    np.testing.assert_allclose(float(value), expected, rtol=1e-9)
    # The foreground band sees the same total either way; the background
    # score differs.
    each = losses.gwrp_heatmap_loss(masks, tf.constant(maps), C1=2.0, C2=40.0)
    assert abs(float(each) - expected) > 1e-3


def test_losses_serialize_round_trip():
    import keras
    loss = losses.GWRPHeatmapLoss(d=0.5, C1=[1.0, 2.0], C2=[5.0, 9.0],
                                  foreground="hybrid", channels="sum")
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert restored.get_config() == loss.get_config()


def test_non_finite_heatmap_values_are_replaced_before_the_loss(
        maps_and_masks):
    # docs/algorithm.md, "Masks and numerical safety": NaN -> the foreground
    # mean of the finite |H| of its map, +Inf / -Inf -> the largest /
    # smallest finite H of its map; the gradient stays finite.
    maps, masks = maps_and_masks
    broken = maps.copy()
    broken[0, 1, 0, 0, 1] = np.nan  # background
    broken[2, 0, 2, 3, 0] = -np.inf  # foreground
    broken[2, 0, 0, 5, 1] = np.inf  # background
    repaired = np.abs(broken)
    map_0, map_2 = broken[0, 1], broken[2, 0]
    foreground_0 = np.broadcast_to(masks[0], map_0.shape) > 0
    repaired[0, 1, 0, 0, 1] = np.nanmean(np.abs(map_0[foreground_0]))
    finite_2 = map_2[np.isfinite(map_2)]
    repaired[2, 0, 2, 3, 0] = abs(finite_2.min())
    repaired[2, 0, 0, 5, 1] = abs(finite_2.max())
    assert np.all(np.isfinite(repaired))
    loss = losses.GWRPHeatmapLoss()
    tensor = tf.constant(broken)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        value = loss(masks, tensor)
    np.testing.assert_allclose(float(value), float(loss(masks, repaired)),
                               rtol=1e-12)
    gradient = tape.gradient(value, tensor).numpy()
    assert np.all(np.isfinite(gradient))
    assert gradient[0, 1, 0, 0, 1] == gradient[2, 0, 2, 3, 0] == 0


def test_gwrp_top_entries_have_top_ks_values_and_gradients():
    # `_largest` replaces top_k's gradient with a segment sum: first and
    # second derivatives must be those of `tf.math.top_k`.
    values = tf.Variable(np.random.default_rng(3).normal(size=(2, 3, 40)))
    weights = tf.constant(0.9 ** np.arange(7))
    results = []
    for top in (lambda x: tf.math.top_k(x, 7).values,
                lambda x: losses._largest(x, 7)):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                objective = tf.reduce_sum(tf.sin(top(values)) * weights)
            gradient = inner.gradient(objective, values)
            curvature = tf.reduce_sum(gradient ** 2)
        results.append((objective.numpy(), gradient.numpy(),
                        outer.gradient(curvature, values).numpy()))
    assert np.count_nonzero(results[0][1]) == 2 * 3 * 7
    for expected, actual in zip(*results):
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-15)
