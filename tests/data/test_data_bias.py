"""Bias generators checked against an independent restatement of the
benchmarks in docs/algorithm.md, "Synthetic background-bias benchmarks"."""

import numpy as np
import pytest
from scipy import ndimage

from isnet_keras.data import (
    decoy_mnist,
    load_digits_28,
    make_bias_benchmark,
    shapes_mnist,
    stratified_split,
)
from tests import support

# The Shapes table, written from its formulas, not from the package's
# data: class -> (cell predicate on (i, j), top-left (row, column)).
SHAPES_TABLE = {
    0: (lambda i, j: True, (1, 1)),
    1: (lambda i, j: i in (0, 4) or j in (0, 4), (1, 17)),
    2: (lambda i, j: i == 2 or j == 2, (1, 34)),
    3: (lambda i, j: i == j or i + j == 4, (17, 34)),
    4: (lambda i, j: i == 2, (34, 34)),
    5: (lambda i, j: j == 2, (34, 17)),
    6: (lambda i, j: abs(j - 2) <= i / 2, (34, 1)),
    7: (lambda i, j: abs(i - 2) + abs(j - 2) <= 2, (17, 1)),
    8: (lambda i, j: (i - 2) ** 2 + (j - 2) ** 2 in (4, 5), (1, 9)),
    9: (lambda i, j: j == 0 or i == 4, (34, 26)),
}
SHAPES_SETS = ("biased", "unbiased", "confounding")
DECOY_SETS = ("biased", "clean", "randomized")


def spec_shape_layer(shape_class):
    """40x40 layer with class `shape_class`'s shape at its table place."""
    predicate, (top, left) = SHAPES_TABLE[shape_class]
    layer = np.zeros((40, 40), np.float32)
    for i in range(5):
        for j in range(5):
            if predicate(i, j):
                layer[top + i, left + j] = 1.0
    return layer


def spec_candidate_regions(name):
    regions = np.zeros((40, 40) if name == "shapes" else (28, 28), bool)
    if name == "shapes":
        for _, (top, left) in SHAPES_TABLE.values():
            regions[top : top + 5, left : left + 5] = True
    else:
        for top in (0, 24):
            for left in (0, 24):
                regions[top : top + 4, left : left + 4] = True
    return regions


def spec_masks(clean_canvases, name):
    """The masks: > 0, one 3x3 dilation (scipy), candidate regions cleared."""
    regions = spec_candidate_regions(name)
    square = np.ones((3, 3))
    masks = [
        ndimage.binary_dilation(canvas > 0, structure=square) & ~regions
        for canvas in clean_canvases
    ]
    return np.array(masks, np.float32)[..., None]


def real_digits(count_per_class=12):
    """Handwritten digits in the MNIST layout (28x28 uint8, ink centred in
    20x20): scikit-learn's digits upscaled, the same on every machine."""
    digits = load_digits_28()
    images, labels = digits.images, digits.labels
    keep = np.concatenate(
        [np.flatnonzero(labels == k)[:count_per_class] for k in range(10)]
    )
    return images[keep], labels[keep].astype(np.int64)


def pasted(images):
    canvas = np.zeros((len(images), 40, 40), np.float32)
    canvas[:, 6:34, 6:34] = images / 255.0
    return canvas


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("mode", SHAPES_SETS)
def test_shapes_pixels_are_digit_plus_the_spec_shape(mode):
    images, labels = real_digits()
    out = shapes_mnist(images, labels, mode)
    assert out.images.shape == (len(images), 40, 40, 1)
    assert out.images.dtype == np.float32
    digit_layer = pasted(images)
    for index, label in enumerate(labels):
        expected = digit_layer[index].copy()
        origin = tuple(out.bias_origin[index])
        if mode == "unbiased":
            assert out.bias_class[index] == -1 and origin == (-1, -1)
        else:
            shape_class = label if mode == "biased" else (label + 1) % 10
            layer = spec_shape_layer(shape_class)
            expected = np.where(layer > 0, 1.0, expected)
            assert out.bias_class[index] == shape_class
            assert origin == SHAPES_TABLE[shape_class][1]
        np.testing.assert_array_equal(out.images[index, ..., 0], expected)


def test_shape_boxes_are_outside_the_digit_and_do_not_overlap():
    regions = np.zeros((40, 40), int)
    for _, (top, left) in SHAPES_TABLE.values():
        regions[top : top + 5, left : left + 5] += 1
    assert regions.max() == 1
    assert regions[6:34, 6:34].sum() == 0


def test_confounding_draws_the_next_class_on_blank_canvases():
    labels = np.arange(10)
    blank = np.zeros((10, 28, 28), np.uint8)
    out = shapes_mnist(blank, labels, "confounding")
    for label in labels:
        np.testing.assert_array_equal(
            out.images[label, ..., 0], spec_shape_layer((label + 1) % 10)
        )


# ---------------------------------------------------------------- decoy


def decoy_expected(image, origin, shade):
    expected = image.astype(np.float32) / 255.0
    if shade >= 0:
        top, left = origin
        expected[top : top + 4, left : left + 4] = (255 - 25 * shade) / 255
    return expected


@pytest.mark.parametrize("mode", DECOY_SETS)
def test_decoy_patch_is_a_grey_square_in_a_corner(mode):
    images, labels = real_digits()
    out = decoy_mnist(images, labels, mode, seed=4)
    assert out.images.shape == (len(images), 28, 28, 1)
    assert out.images.dtype == np.float32
    for index, label in enumerate(labels):
        shade = out.bias_class[index]
        origin = out.bias_origin[index]
        if mode == "biased":
            assert shade == label
        if mode == "clean":
            assert shade == -1 and tuple(origin) == (-1, -1)
        else:
            assert set(origin.tolist()) <= {0, 24}
        expected = decoy_expected(images[index], origin, shade)
        np.testing.assert_array_equal(out.images[index, ..., 0], expected)


def test_decoy_grey_per_label():
    blank = np.zeros((10, 28, 28), np.uint8)
    out = decoy_mnist(blank, np.arange(10), "biased", seed=0)
    greys = [out.images[k, ..., 0].max() for k in range(10)]
    expected = [(255 - 25 * k) / 255 for k in range(10)]
    np.testing.assert_allclose(greys, expected, rtol=0, atol=1e-7)
    assert greys[0] == 1.0


def test_decoy_corner_and_random_shade_statistics():
    count = 4000
    labels = np.arange(count) % 10
    blank = np.zeros((count, 28, 28), np.uint8)
    out = decoy_mnist(blank, labels, "randomized", seed=11)
    for axis in (0, 1):
        share_low = np.mean(out.bias_origin[:, axis] == 0)
        assert abs(share_low - 0.5) < 0.04  # About 5 standard deviations.
    # Row and column choices are independent: each corner about 1/4.
    corners = out.bias_origin[:, 0] // 24 * 2 + out.bias_origin[:, 1] // 24
    corner_shares = np.bincount(corners, minlength=4) / count
    assert np.all(np.abs(corner_shares - 0.25) < 0.035)
    # Random shades: uniform over 0-9 and unrelated to the label.
    shade_shares = np.bincount(out.bias_class, minlength=10) / count
    assert np.all(np.abs(shade_shares - 0.1) < 0.025)
    assert abs(np.mean(out.bias_class == labels) - 0.1) < 0.025


def test_decoy_is_seeded_and_modes_share_corners():
    images, labels = real_digits(5)
    first = decoy_mnist(images, labels, "biased", seed=3)
    again = decoy_mnist(images, labels, "biased", seed=3)
    randomized = decoy_mnist(images, labels, "randomized", seed=3)
    other = decoy_mnist(images, labels, "biased", seed=4)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.bias_origin, randomized.bias_origin)
    assert not np.array_equal(first.bias_origin, other.bias_origin)


# ---------------------------------------------------------------- masks


def generate_shapes(images, labels, mode):
    return shapes_mnist(images, labels, mode)


def generate_decoy(images, labels, mode):
    return decoy_mnist(images, labels, mode, seed=2)


@pytest.mark.parametrize(
    "name, generate, modes",
    [("shapes", generate_shapes, SHAPES_SETS),
     ("decoy", generate_decoy, DECOY_SETS)],
)
def test_masks_follow_one_rule_and_never_touch_a_cue(name, generate, modes):
    images, labels = real_digits()
    if name == "shapes":
        clean = pasted(images)
    else:
        clean = images.astype(np.float32) / 255.0
    expected = spec_masks(clean, name)
    assert expected.sum() > 0
    regions = spec_candidate_regions(name)
    shuffled_labels = np.roll(labels, 3)
    for mode in modes:
        out = generate(images, labels, mode)
        assert out.masks.dtype == np.float32
        assert set(np.unique(out.masks)) <= {0.0, 1.0}
        np.testing.assert_array_equal(out.masks, expected)
        assert out.masks[:, regions].sum() == 0
        # No mask pixel lies on a pixel the cue changed, and every changed
        # pixel is inside a candidate region.
        changed = out.images[..., 0] != clean
        assert not np.any(changed & (out.masks[..., 0] > 0))
        assert np.all(regions[changed.any(axis=0)])
        # The mask depends on the digit only, not on its label or cue.
        other = generate(images, shuffled_labels, mode)
        np.testing.assert_array_equal(other.masks, out.masks)


def test_generators_reject_bad_inputs():
    digit = np.zeros((1, 28, 28), np.uint8)
    with pytest.raises(ValueError, match="mode must be one of"):
        shapes_mnist(digit, [0], "clean")
    with pytest.raises(ValueError, match="mode must be one of"):
        decoy_mnist(digit, [0], "unbiased")
    with pytest.raises(ValueError, match="uint8"):
        decoy_mnist(digit.astype(np.float32), [0])
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        shapes_mnist(np.zeros((1, 32, 32), np.uint8), [0])
    with pytest.raises(ValueError, match="0-9"):
        shapes_mnist(digit, [10])


# ---------------------------------------------------------------- benchmark


@pytest.mark.parametrize("name", ["shapes", "decoy"])
def test_benchmark_splits_and_sets(name):
    bench = make_bias_benchmark(
        name, source="digits", seed=0, limit_per_class=30
    )
    assert bench.source.startswith("digits")
    expected_sets = SHAPES_SETS if name == "shapes" else DECOY_SETS
    assert tuple(bench.test) == expected_sets
    train, val, test = (
        bench.split_indices[key] for key in ("train", "val", "test")
    )
    assert (len(train), len(val), len(test)) == (210, 30, 60)
    assert not set(train) & set(val)
    assert not set(train) & set(test)
    assert not set(val) & set(test)
    size = 40 if name == "shapes" else 28
    for image_set in (bench.train, bench.val, *bench.test.values()):
        images, masks, labels = image_set
        assert images.shape[1:] == (size, size, 1)
        assert masks.shape == images.shape
        assert labels.dtype == np.int32 and len(labels) == len(images)
        assert 0 <= images.min() and images.max() <= 1
    assert np.bincount(bench.train.labels).tolist() == [21] * 10
    # Train is biased and built with the documented seed [seed, 0].
    digits = load_digits_28()
    if name == "shapes":
        again = shapes_mnist(digits.images[train], digits.labels[train])
    else:
        again = decoy_mnist(
            digits.images[train], digits.labels[train], seed=[0, 0]
        )
    np.testing.assert_array_equal(again.images, bench.train.images)
    np.testing.assert_array_equal(
        digits.labels[test], bench.test["biased"].labels
    )
    # The test sets hold the same digits, hence the same masks.
    for image_set in bench.test.values():
        np.testing.assert_array_equal(
            image_set.masks, bench.test["biased"].masks
        )


def test_benchmark_on_the_offline_mnist_split_is_seeded(tmp_path):
    # IDX files as ../shared/data/mnist holds them, written from
    # scikit-learn's digits (a user's machine has no ../shared).
    folder = tmp_path / "mnist"
    support.write_digits_as_mnist(folder)
    first = make_bias_benchmark("decoy", "idx", seed=1, limit_per_class=20,
                                mnist_dir=folder)
    again = make_bias_benchmark("decoy", "idx", seed=1, limit_per_class=20,
                                mnist_dir=folder)
    assert first.source.startswith("idx")
    np.testing.assert_array_equal(
        first.test["randomized"].images, again.test["randomized"].images
    )
    np.testing.assert_array_equal(
        first.split_indices["val"], again.split_indices["val"]
    )


def test_benchmark_uses_the_documented_split():
    bench = make_bias_benchmark("shapes", source="digits", seed=5)
    labels = load_digits_28().labels
    parts = stratified_split(labels, (0.7, 0.1, 0.2), seed=5)
    for key, part in zip(("train", "val", "test"), parts):
        np.testing.assert_array_equal(bench.split_indices[key], part)
