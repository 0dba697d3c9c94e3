"""Masks widened to whole patches for classifiers that begin with a patch
embedding."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras import backbones, patch_masks
from isnet_keras.isnet import build_isnet
from isnet_keras.lrp import keras_graph


def _reference_widening(masks, patch):
    """Loop over the cells: one cell with any foreground is all foreground."""
    widened = masks.copy()
    height, width = masks.shape[1:3]
    for image in range(len(masks)):
        for top in range(0, height - patch + 1, patch):
            for left in range(0, width - patch + 1, patch):
                cell = masks[image, top:top + patch, left:left + patch]
                widened[image, top:top + patch, left:left + patch] = \
                    cell.max()
    return widened


@pytest.mark.parametrize("size,patch", [(16, 4), (18, 4), (17, 8)])
def test_widening_marks_every_patch_with_foreground_as_foreground(size,
                                                                  patch):
    rng = np.random.default_rng(size)
    masks = (rng.uniform(size=(3, size, size, 1)) > 0.93).astype("float32")
    widened = np.asarray(patch_masks.widen_masks_to_patches(masks, patch))
    np.testing.assert_array_equal(widened,
                                  _reference_widening(masks, patch))
    assert widened.sum() > masks.sum()  # the test widens something


def test_widening_keeps_unannotated_masks_and_takes_three_axes():
    masks = np.full((2, 8, 8), -1.0, "float32")
    masks[1] = 0
    masks[1, 5, 6] = 1
    widened = np.asarray(patch_masks.widen_masks_to_patches(masks, 4))
    assert widened.shape == (2, 8, 8, 1)
    assert (widened[0] == -1).all()
    assert widened[1, 4:, 4:].min() == 1 and widened[1].sum() == 16


def test_patch_embedding_size_finds_vit_patches_and_not_cnn_strides():
    assert patch_masks.patch_embedding_size(backbones.vit_small(2, 32)) == 4
    assert patch_masks.patch_embedding_size(backbones.vit_small(2, 64)) == 8
    inputs = keras.Input((32, 32, 3))
    scaled = keras.layers.Rescaling(2.0, offset=-1.0)(inputs)
    patches = keras.layers.Conv2D(8, 2, strides=2)(scaled)
    vit_like = keras.Model(inputs, keras.layers.Flatten()(patches))
    assert patch_masks.patch_embedding_size(vit_like) == 2
    # A strided convolution whose kernel is wider than its stride (a CNN
    # stem) is not a patch embedding.
    stem = keras.layers.Conv2D(8, 3, strides=2)(inputs)
    cnn = keras.Model(inputs, keras.layers.Flatten()(stem))
    assert patch_masks.patch_embedding_size(cnn) == 1


def test_resolve_patch_masks_refuses_bad_values():
    traced = keras_graph.trace(backbones.vit_small(2, 32, depth=1))
    assert patch_masks.resolve_patch_masks(1, traced) == 1
    assert patch_masks.resolve_patch_masks("auto", traced) == 4
    for bad in (0, 2.5, "exact", True):
        with pytest.raises(ValueError, match="patch_masks must be"):
            patch_masks.resolve_patch_masks(bad, traced)


def test_isnet_of_a_vit_scores_the_input_heatmap_on_widened_masks():
    keras.utils.set_random_seed(0)
    model = backbones.vit_small(3, 16, 1, width=8, depth=1, num_heads=2)
    auto = build_isnet(model)
    exact = build_isnet(model, patch_masks=1)
    assert auto.mask_patch_size == 4 and exact.mask_patch_size == 1
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (2, 16, 16, 1)).astype("float32")
    masks = np.zeros((2, 16, 16, 1), "float32")
    masks[:, 5:9, 5:9] = 1  # straddles four patches
    heatmaps = exact.train_graph_outputs(images)["heatmaps"]
    widened = _reference_widening(masks, 4)
    np.testing.assert_allclose(
        float(auto.heatmap_loss(auto._input_heatmap_masks(masks), heatmaps)),
        float(exact.heatmap_loss(widened, heatmaps)), rtol=1e-6)
    assert float(exact.heatmap_loss(masks, heatmaps)) != pytest.approx(
        float(exact.heatmap_loss(widened, heatmaps)))
    # The setting survives a config round trip.
    assert type(auto).from_config(auto.get_config()).mask_patch_size == 4


def test_isnet_of_a_vit_still_refuses_a_mixed_partial_mask():
    model = backbones.vit_small(3, 16, 1, width=8, depth=1, num_heads=2)
    isnet = build_isnet(model)
    masks = np.zeros((1, 16, 16, 1), "float32")
    masks[0, :4, :4] = -1  # unannotated pixels inside one patch only
    masks[0, 1, 1] = 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="-1"):
        isnet._input_heatmap_masks(tf.constant(masks))
