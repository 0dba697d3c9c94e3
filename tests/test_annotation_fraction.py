"""`training/annotation_fraction.py`: box masks made from exact masks."""

import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))

import annotation_fraction  # noqa: E402


def test_each_mask_becomes_the_filled_box_around_its_foreground():
    masks = np.zeros((2, 8, 10, 1), np.float32)
    masks[0, 2, 3] = masks[0, 5, 6] = 1       # two pixels: box rows 2-5, cols 3-6
    masks[1, 0:2, 8:10] = 1                   # a corner block
    boxed = annotation_fraction.bounding_box_masks(masks)
    expected = np.zeros_like(masks)
    expected[0, 2:6, 3:7] = 1
    expected[1, 0:2, 8:10] = 1
    np.testing.assert_array_equal(boxed, expected)
    widened = annotation_fraction.bounding_box_masks(masks, margin=1)
    assert widened[0, 1:7, 2:8].all() and widened[0].sum() == 6 * 6
    # Clipped at the image border.
    assert widened[1].sum() == 3 * 3
