"""Foreground masks widened to whole patches, for patch-embedding networks.

A vision transformer's patch embedding (`Conv2D(width, p, strides=p)` on
the image) gives each token's relevance to its whole `p x p` patch, in
proportion to the pixels' contributions. A token on the object's edge
therefore always puts part of its relevance on the background pixels of
its patch, whatever the network has learned, so an exact mask asks the
heatmap loss for something no such network can give. The ISNet scores the
input heatmap of these networks against masks in which every patch that
holds foreground is foreground (docs/algorithm.md, "Masks of patch
networks").
"""

import keras
import tensorflow as tf

from isnet_keras import data_checks
from isnet_keras.lrp import keras_graph

# Layers that keep the image's grid pixel for pixel: a patch embedding
# behind them still sees the input's patches.
_PIXELWISE_LAYERS = (keras.layers.Rescaling, keras.layers.Normalization,
                     keras.layers.InputLayer)


def _is_patch_embedding(layer):
    if type(layer) is not keras.layers.Conv2D:
        return False
    kernel, strides = tuple(layer.kernel_size), tuple(layer.strides)
    return (kernel == strides and kernel[0] == kernel[1] and kernel[0] > 1
            and layer.padding == "valid"
            and tuple(layer.dilation_rate) == (1, 1))


def patch_embedding_size(classifier):
    """The patch size of a classifier that begins with a patch embedding.

    The first layer that changes the image (past `Rescaling` and
    `Normalization`) is a patch embedding when it is the input's only
    consumer and a `Conv2D` with a square kernel equal to its strides,
    `"valid"` padding and no dilation.

    Args:
        classifier: A Functional or Sequential `keras.Model`.

    Returns:
        int. The patch size, or 1 when the classifier does not begin with a
        patch embedding (a CNN).

    Example:

    >>> from isnet_keras.backbones import vit_small
    >>> patch_embedding_size(vit_small(10, 32))
    4
    """
    return traced_patch_size(keras_graph.trace(classifier))


def traced_patch_size(traced):
    """`patch_embedding_size` of a classifier already re-traced
    (`keras_graph.trace`)."""
    tensor = traced.input
    while True:
        consumers = traced.consumers(tensor)
        if len(consumers) != 1:
            return 1
        (call,) = consumers
        if not isinstance(call.layer, _PIXELWISE_LAYERS):
            break
        tensor = call.output
    return int(call.layer.kernel_size[0]) if _is_patch_embedding(
        call.layer) else 1


def resolve_patch_masks(patch_masks, traced):
    """The patch size an ISNet widens its masks to.

    Args:
        patch_masks: `"auto"` (the classifier's `patch_embedding_size`) or
            an int >= 1 (1: exact masks).
        traced: The ISNet's classifier, re-traced (`keras_graph.trace`).

    Returns:
        int >= 1.

    Raises:
        ValueError: another value.
    """
    if patch_masks == "auto":
        return traced_patch_size(traced)
    if isinstance(patch_masks, bool) or not isinstance(patch_masks, int) \
            or patch_masks < 1:
        raise ValueError("patch_masks must be 'auto' or an int >= 1 (1: "
                         f"exact masks), received {patch_masks!r}.")
    return patch_masks


def widen_masks_to_patches(masks, patch):
    """Masks in which every `patch x patch` cell that holds foreground is
    foreground.

    Cells are counted from the top-left corner, as a patch embedding with
    `"valid"` padding reads them; pixels past the last whole cell (which
    such an embedding does not see) keep their values. A mask of -1
    everywhere (an image without annotation) stays so.

    Args:
        masks: `(B, H, W)` or `(B, H, W, 1)` masks of 0 and 1 (or -1
            everywhere), static `H` and `W`.
        patch: int >= 1. 1 returns the masks as `(B, H, W, 1)`.

    Returns:
        `(B, H, W, 1)` masks, in the dtype of `masks`.

    Raises:
        ValueError: masks of another shape.

    Example:

    >>> masks = np.zeros((1, 4, 4, 1), "float32"); masks[0, 1, 2] = 1
    >>> widen_masks_to_patches(masks, 2)[0, :, :, 0]
    [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    """
    masks = data_checks.mask_batch(masks)
    if patch == 1:
        return masks
    dtype = masks.dtype
    height, width = masks.shape[1], masks.shape[2]
    rows, cols = height // patch, width // patch
    if rows == 0 or cols == 0:
        return masks
    values = tf.cast(masks, "float32")
    cells = tf.nn.max_pool2d(values[:, :rows * patch, :cols * patch],
                             patch, patch, "VALID")
    widened = tf.repeat(tf.repeat(cells, patch, axis=1), patch, axis=2)
    if cols * patch < width:
        widened = tf.concat(
            [widened, values[:, :rows * patch, cols * patch:]], axis=2)
    if rows * patch < height:
        widened = tf.concat([widened, values[:, rows * patch:]], axis=1)
    return tf.cast(widened, dtype)
