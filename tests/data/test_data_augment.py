"""Joint image + mask augmentation."""

import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.data.augment import FLIP_MODES, JointAugmentation
from isnet_keras import run_config


def _blobs(count=6, size=32, seed=0):
    """Images whose foreground is exactly their mask: 0.9 inside, 0.1 out."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, size, size, 1), np.float32)
    for mask in masks:
        top, left = rng.integers(4, 14, 2)
        height, width = rng.integers(6, 14, 2)
        mask[top:top + height, left:left + width] = 1.0
        mask[top + 2, left + width:left + width + 3] = 1.0  # a thin spur
    return masks * 0.8 + 0.1, masks


@pytest.mark.parametrize("flip", ["horizontal", "horizontal_and_vertical"])
def test_geometric_augmentation_keeps_foreground_exactly_on_the_mask(flip):
    images, masks = _blobs()
    augment = JointAugmentation(flip=flip, rotation=0.1, translation=0.15,
                                zoom=0.2, interpolation="nearest", seed=3)
    out_images, out_masks = (np.asarray(t) for t in augment(
        tf.constant(images), tf.constant(masks), training=True))
    assert set(np.unique(out_masks).tolist()) <= {0.0, 1.0}
    # Same transformation for both: the foreground pixels of each
    # augmented image are exactly its augmented mask (fill is background).
    np.testing.assert_array_equal(out_images > 0.5, out_masks > 0.5)
    assert not np.array_equal(out_masks, masks)  # something did move


def test_bilinear_images_differ_from_their_masks_only_at_mask_edges():
    images, masks = _blobs(seed=1)
    augment = JointAugmentation(rotation=0.1, zoom=0.2, seed=5)
    out_images, out_masks = (np.asarray(t) for t in augment(
        tf.constant(images), tf.constant(masks), training=True))
    disagree = (out_images > 0.5) != (out_masks > 0.5)
    padded = np.pad(out_masks[..., 0], ((0, 0), (1, 1), (1, 1)), mode="edge")
    neighbours = np.stack([padded[:, 1 + dy:padded.shape[1] - 1 + dy,
                                  1 + dx:padded.shape[2] - 1 + dx]
                           for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    edge = neighbours.min(axis=0) != neighbours.max(axis=0)
    assert disagree[..., 0][~edge].sum() == 0


def test_photometric_changes_touch_images_only():
    images, masks = _blobs(seed=2)
    augment = JointAugmentation(brightness=0.3, contrast=0.5, seed=1)
    out_images, out_masks = augment(tf.constant(images), tf.constant(masks),
                                    training=True)
    np.testing.assert_array_equal(np.asarray(out_masks), masks)
    out_images = np.asarray(out_images)
    assert not np.allclose(out_images, images)
    assert out_images.min() >= 0.0 and out_images.max() <= 1.0


def test_augmentation_is_identity_outside_training():
    images, masks = _blobs(seed=3)
    augment = JointAugmentation(flip="horizontal", rotation=0.2,
                                brightness=0.5, seed=0)
    out_images, out_masks = augment(tf.constant(images), tf.constant(masks),
                                    training=False)
    np.testing.assert_array_equal(np.asarray(out_images), images)
    np.testing.assert_array_equal(np.asarray(out_masks), masks)


def test_config_round_trip_and_bad_values():
    augment = JointAugmentation(flip="vertical", zoom=0.1, seed=4)
    clone = JointAugmentation.from_config(augment.get_config())
    assert clone.get_config() == augment.get_config()
    with pytest.raises(ValueError, match="rotation"):
        JointAugmentation(rotation=0.8)
    with pytest.raises(ValueError, match="flip"):
        JointAugmentation(flip="sideways")
    assert run_config.FLIP_MODES == FLIP_MODES
