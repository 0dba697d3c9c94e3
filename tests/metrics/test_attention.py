"""Tests of BRF/PFF against NumPy loops, and of the Keras metrics."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from isnet_keras.metrics import (
    BackgroundRelevanceFraction,
    PositiveForegroundFraction,
    background_relevance_fraction,
    positive_foreground_fraction,
    summarize_fraction,
)


def loop_fractions(heatmap, mask):
    """BRF and PFF of one (H, W, C) heatmap and (H, W) mask, pixel by pixel."""
    absolute_total = background = positive_total = positive_inside = 0.0
    height, width, channels = heatmap.shape
    for row in range(height):
        for col in range(width):
            for channel in range(channels):
                value = float(heatmap[row, col, channel])
                inside = mask[row, col] == 1
                absolute_total += abs(value)
                if not inside:
                    background += abs(value)
                if value > 0:
                    positive_total += value
                    if inside:
                        positive_inside += value
    return background / (absolute_total + 1e-12), positive_inside / (positive_total + 1e-12)


def random_case(batch=3, heatmaps_per_image=None, size=(4, 5), channels=2, seed=0):
    rng = np.random.default_rng(seed)
    leading = (batch,) if heatmaps_per_image is None else (batch, heatmaps_per_image)
    heatmaps = rng.normal(size=leading + size + (channels,)).astype(np.float32)
    masks = (rng.random((batch,) + size) > 0.5).astype(np.float32)
    return heatmaps, masks


@pytest.mark.parametrize("mask_has_channel", [False, True])
def test_fractions_of_4d_heatmaps_match_loops(mask_has_channel):
    heatmaps, masks = random_case()
    given_masks = masks[..., None] if mask_has_channel else masks
    brf = keras.ops.convert_to_numpy(background_relevance_fraction(heatmaps, given_masks))
    pff = keras.ops.convert_to_numpy(positive_foreground_fraction(heatmaps, given_masks))
    expected = np.array([loop_fractions(h, m) for h, m in zip(heatmaps, masks)])
    assert brf.shape == pff.shape == (3,)
    np.testing.assert_allclose(brf, expected[:, 0], rtol=1e-5)
    np.testing.assert_allclose(pff, expected[:, 1], rtol=1e-5)


def test_fractions_of_5d_heatmaps_match_loops_per_heatmap():
    heatmaps, masks = random_case(batch=2, heatmaps_per_image=3, seed=1)
    brf = keras.ops.convert_to_numpy(
        background_relevance_fraction(tf.constant(heatmaps), tf.constant(masks[..., None]))
    )
    pff = keras.ops.convert_to_numpy(positive_foreground_fraction(heatmaps, masks))
    assert brf.shape == pff.shape == (2, 3)
    for image in range(2):
        for kind in range(3):
            expected_brf, expected_pff = loop_fractions(heatmaps[image, kind], masks[image])
            assert brf[image, kind] == pytest.approx(expected_brf, rel=1e-5)
            assert pff[image, kind] == pytest.approx(expected_pff, rel=1e-5)


def test_fractions_of_zero_heatmap_are_zero_and_integer_input_works():
    masks = np.ones((1, 2, 2), dtype=bool)
    zeros = np.zeros((1, 2, 2, 1), dtype=np.int32)
    assert float(background_relevance_fraction(zeros, masks)[0]) == 0.0
    assert float(positive_foreground_fraction(zeros, masks)[0]) == 0.0
    ones = np.ones((1, 2, 2, 1), dtype=np.int32)
    assert float(positive_foreground_fraction(ones, masks)[0]) == pytest.approx(1.0)


def test_mask_of_other_spatial_size_names_both_shapes():
    heatmaps = np.zeros((2, 8, 8, 1), np.float32)
    masks = np.zeros((2, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match=r"\(2, 4, 4, 1\).*\(2, 8, 8, 1\)"):
        background_relevance_fraction(heatmaps, masks)
    with pytest.raises(ValueError, match=r"\(2, 4, 4\).*\(2, 3, 8, 8, 1\)"):
        positive_foreground_fraction(np.zeros((2, 3, 8, 8, 1)), masks[..., 0])


def test_mask_batch_size_mismatch_is_rejected():
    with pytest.raises(ValueError, match="do not match"):
        background_relevance_fraction(np.zeros((2, 4, 4, 1)), np.zeros((3, 4, 4)))


def test_non_binary_mask_is_rejected():
    masks = np.full((1, 2, 2), 0.5, np.float32)
    with pytest.raises(ValueError, match="binary"):
        background_relevance_fraction(np.ones((1, 2, 2, 1)), masks)
    with pytest.raises(ValueError, match="binary"):
        positive_foreground_fraction(np.ones((1, 2, 2, 1)), tf.constant(masks))


@pytest.mark.parametrize(
    "heatmap_shape, mask_shape, message",
    [
        ((2, 4, 4), (2, 4, 4), "heatmaps"),
        ((2, 4, 4, 1), (2, 4, 4, 3), "masks"),
        ((2, 4, 4, 1), (2, 4), "masks"),
    ],
)
def test_bad_ranks_are_rejected(heatmap_shape, mask_shape, message):
    with pytest.raises(ValueError, match=message):
        background_relevance_fraction(np.zeros(heatmap_shape), np.zeros(mask_shape))


# ---------------------------------------------------------------- summary


def test_summarize_fraction_matches_student_t_interval():
    values = np.array([0.1, 0.25, 0.3, 0.42, 0.2, 0.33])
    summary = summarize_fraction(values)
    low, high = stats.t.interval(
        0.95, df=values.size - 1, loc=values.mean(), scale=stats.sem(values)
    )
    assert summary["mean"] == pytest.approx(values.mean())
    assert summary["std"] == pytest.approx(values.std(ddof=1))
    assert summary["ci_low"] == pytest.approx(low)
    assert summary["ci_high"] == pytest.approx(high)
    assert summary["n"] == 6


def test_summarize_fraction_clips_interval_and_rejects_bad_input():
    summary = summarize_fraction([0.0, 0.0, 0.0, 0.9])
    assert summary["ci_low"] == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        summarize_fraction([0.5])
    with pytest.raises(ValueError, match="NaN"):
        summarize_fraction([0.5, np.nan])
    with pytest.raises(ValueError, match="confidence"):
        summarize_fraction([0.5, 0.2], confidence=1.0)


# ---------------------------------------------------------------- Keras metrics


def test_brf_metric_averages_over_images_of_two_batches():
    first_heatmaps, first_masks = random_case(batch=3, seed=2)
    second_heatmaps, second_masks = random_case(batch=2, seed=3)
    metric = BackgroundRelevanceFraction()
    metric.update_state(first_heatmaps, first_masks)
    metric.update_state(second_heatmaps, second_masks[..., None])
    per_image = [
        loop_fractions(h, m)[0]
        for h, m in zip(np.concatenate([first_heatmaps, second_heatmaps]),
                        np.concatenate([first_masks, second_masks]))
    ]
    assert float(metric.result()) == pytest.approx(np.mean(per_image), rel=1e-5)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_pff_metric_averages_heatmaps_within_an_image_first():
    heatmaps, masks = random_case(batch=2, heatmaps_per_image=2, seed=4)
    metric = PositiveForegroundFraction()
    metric.update_state(heatmaps, masks)
    per_image = [
        np.mean([loop_fractions(heatmaps[b, k], masks[b])[1] for k in range(2)])
        for b in range(2)
    ]
    assert float(metric.result()) == pytest.approx(np.mean(per_image), rel=1e-5)


def test_brf_metric_works_inside_a_traced_function():
    heatmaps, masks = random_case(batch=2, seed=5)
    metric = BackgroundRelevanceFraction()

    @tf.function
    def update(h, m):
        metric.update_state(h, m)

    update(tf.constant(heatmaps), tf.constant(masks))
    expected = np.mean([loop_fractions(h, m)[0] for h, m in zip(heatmaps, masks)])
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("metric_class", [BackgroundRelevanceFraction, PositiveForegroundFraction])
def test_metric_serialization_round_trip(metric_class):
    metric = metric_class(name="attention_score", dtype="float64")
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(restored) is metric_class
    assert restored.get_config() == metric.get_config()
    assert restored.name == "attention_score"
    from_config = metric_class.from_config(metric.get_config())
    assert from_config.get_config() == metric.get_config()
    heatmaps, masks = random_case(batch=2, seed=6)
    metric.update_state(heatmaps, masks)
    restored.update_state(heatmaps, masks)
    assert float(restored.result()) == pytest.approx(float(metric.result()))
