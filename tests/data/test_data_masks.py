"""Mask helpers: binary check, 3x3 dilation, any-foreground resize."""

import math

import numpy as np
import pytest
from scipy import ndimage

from isnet_keras.data import check_binary_mask, dilate_mask, resize_mask


def test_binary_check_accepts_zeros_ones_and_bools():
    masks = (
        np.array([0.0, 1.0]),
        np.array([[1, 0]], np.uint8),
        np.array([True, False]),
    )
    for mask in masks:
        np.testing.assert_array_equal(check_binary_mask(mask), mask)


@pytest.mark.parametrize("bad", [0.5, 255, -1, np.nan, 1.0000001])
def test_binary_check_rejects_anything_else(bad):
    with pytest.raises(ValueError, match=r"non-binary mask scan_07\.png"):
        check_binary_mask(np.array([0.0, 1.0, bad]), name="scan_07.png")


def test_dilation_matches_scipy_with_a_square():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 17, 13, 1)) > 0.93
    for iterations in (1, 2):
        ours = dilate_mask(masks, iterations=iterations)
        for index in range(len(masks)):
            expected = ndimage.binary_dilation(
                masks[index, ..., 0],
                structure=np.ones((3, 3)),
                iterations=iterations,
            )
            np.testing.assert_array_equal(ours[index, ..., 0], expected)


def test_dilation_of_a_plain_image_does_not_wrap():
    mask = np.zeros((5, 5))
    mask[0, 4] = 1
    expected = np.zeros((5, 5), bool)
    expected[0:2, 3:5] = True
    np.testing.assert_array_equal(dilate_mask(mask), expected)
    np.testing.assert_array_equal(
        dilate_mask(mask, iterations=0), mask.astype(bool)
    )


def reference_resize(mask, height, width):
    """The mask resizing rule (docs/algorithm.md, "Masks and numerical
    safety") with loops: bins when shrinking, nearest when growing."""
    in_height, in_width = mask.shape

    def source(index, size_in, size_out):
        if size_out > size_in:
            return [index * size_in // size_out]
        start = math.floor(index * size_in / size_out)
        stop = math.ceil((index + 1) * size_in / size_out)
        return list(range(start, stop))

    out = np.zeros((height, width), np.float32)
    for i in range(height):
        for j in range(width):
            rows = source(i, in_height, height)
            cols = source(j, in_width, width)
            out[i, j] = float(mask[np.ix_(rows, cols)].mean() > 0)
    return out


@pytest.mark.parametrize(
    "size", [(7, 5), (4, 4), (1, 1), (20, 3), (31, 26), (13, 13)]
)
def test_resize_follows_the_adaptive_pooling_bins(size):
    rng = np.random.default_rng(1)
    mask = (rng.random((13, 13)) > 0.9).astype(np.float32)
    np.testing.assert_array_equal(
        resize_mask(mask, size), reference_resize(mask, *size)
    )


def test_resize_keeps_a_single_foreground_pixel_and_batches():
    masks = np.zeros((2, 28, 28, 1), np.float32)
    masks[0, 27, 27, 0] = 1
    small = resize_mask(masks, (3, 3))
    assert small.shape == (2, 3, 3, 1) and small.dtype == np.float32
    assert small[0, 2, 2, 0] == 1 and small.sum() == 1


def test_resize_rejects_non_binary_masks():
    with pytest.raises(ValueError, match="non-binary mask"):
        resize_mask(np.full((4, 4), 0.5), (2, 2))
