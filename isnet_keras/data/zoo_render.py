"""Renders digits with one bias-zoo family's cue: the family table,
`zoo_images` and the resizing of images and masks.

The 28x28 digit is pasted on the family's canvas, its mask built by the
benchmarks' rule (`bias_layout.foreground_masks`) with the family's candidate
regions cleared, and the cue painted by the family's painter
(`zoo_placed`, `zoo_background`).

NumPy and Pillow only; importing this module does not import TensorFlow.
"""

import types
from typing import Callable, NamedTuple

import numpy as np
from PIL import Image

from isnet_keras.data.bias_layout import (
    CLASS_COUNT,
    DECOY_SIZE,
    SHAPES_DIGIT_OFFSET,
    SHAPES_SIZE,
    BiasedImages,
    _validate_digits,
    decoy_candidate_regions,
    foreground_masks,
    shapes_candidate_regions,
)
from isnet_keras.data.zoo_background import (
    _no_origin,
    _nothing_fixed,
    _paint_brightness,
    _paint_noise,
    _paint_texture,
)
from isnet_keras.data.zoo_placed import (
    _marker_candidate_regions,
    _paint_decoy,
    _paint_frame,
    _paint_marker,
    _paint_shapes,
    _paint_watermark,
    frame_candidate_regions,
    watermark_candidate_regions,
)

ZOO_FAMILIES = (
    "shapes",
    "decoy",
    "marker",
    "frame",
    "texture",
    "brightness",
    "noise",
    "watermark",
)
ZOO_TEST_SETS = ("biased", "clean", "confounding")


class ZooFamily(NamedTuple):
    """How one family renders its cue.

    Attributes:
        size: int. Side of the square canvas.
        digit_offset: int. Row and column of the 28x28 digit's top-left
            pixel on the canvas.
        candidate_regions: callable returning a bool (size, size) map,
            True wherever any image may carry the cue at a fixed place;
            cleared from every mask. All False for whole-background cues.
        paint: callable `(canvas, background, cue_classes, rng)` returning
            `(painted canvas, origins)`; `canvas` is the float32
            (N, size, size) clean image, `background` the bool map where
            the mask is 0, `origins` the int64 (N, 2) top-left corner of the
            cue or -1 where it has no single place.
    """

    size: int
    digit_offset: int
    candidate_regions: Callable
    paint: Callable


_FAMILIES = types.MappingProxyType({
    "shapes": ZooFamily(
        SHAPES_SIZE, SHAPES_DIGIT_OFFSET, shapes_candidate_regions,
        _paint_shapes),
    "decoy": ZooFamily(DECOY_SIZE, 0, decoy_candidate_regions, _paint_decoy),
    "marker": ZooFamily(
        SHAPES_SIZE, SHAPES_DIGIT_OFFSET, _marker_candidate_regions,
        _paint_marker),
    "frame": ZooFamily(
        SHAPES_SIZE, SHAPES_DIGIT_OFFSET, frame_candidate_regions,
        _paint_frame),
    "texture": ZooFamily(
        SHAPES_SIZE, SHAPES_DIGIT_OFFSET, _nothing_fixed, _paint_texture),
    "brightness": ZooFamily(
        SHAPES_SIZE, SHAPES_DIGIT_OFFSET, _nothing_fixed, _paint_brightness),
    "noise": ZooFamily(
        SHAPES_SIZE, SHAPES_DIGIT_OFFSET, _nothing_fixed, _paint_noise),
    "watermark": ZooFamily(
        SHAPES_SIZE, SHAPES_DIGIT_OFFSET, watermark_candidate_regions,
        _paint_watermark),
})


def zoo_family(family):
    """Returns the `ZooFamily` record of `family`, or raises `ValueError`.

    Example:

    >>> zoo_family("frame").size
    40
    """
    if family not in _FAMILIES:
        raise ValueError(
            f"family must be one of {ZOO_FAMILIES}; received {family!r}"
        )
    return _FAMILIES[family]


def zoo_candidate_regions(family):
    """Returns the bool (H, W) map of places cleared from every mask.

    Example:

    >>> int(zoo_candidate_regions("watermark").sum())
    60
    """
    return np.asarray(zoo_family(family).candidate_regions(), dtype=bool)


# ---------------------------------------------------------------- resizing


def _resize_each(images, size, resample):
    """Resizes float32 (N, H, W) images one by one to (N, size, size)."""
    resized = np.zeros((len(images), size, size), dtype=np.float32)
    for index, image in enumerate(images.astype(np.float32)):
        picture = Image.fromarray(image).resize((size, size), resample)
        resized[index] = np.asarray(picture)
    return resized


def _resize_images(images, size):
    """Bilinear resize of float32 (N, H, W) images, kept in [0, 1]."""
    resized = _resize_each(images, size, Image.Resampling.BILINEAR)
    return np.clip(resized, 0.0, 1.0)


def _resize_masks(masks, size):
    """Resizes 0/1 (N, H, W) masks to (N, size, size), still exactly 0/1.

    Nearest neighbour gives the shape; a pixel stays 1 only when the
    bilinear resampling used for the images draws on mask pixels alone.
    Otherwise a cue painted just outside the mask would be blended into a
    foreground pixel of the resized image.
    """
    nearest = _resize_each(masks, size, Image.Resampling.NEAREST)
    blended = _resize_each(masks, size, Image.Resampling.BILINEAR)
    only_foreground = blended >= 1.0 - 1e-6
    return ((nearest > 0.5) & only_foreground).astype(np.float32)


# -------------------------------------------------------------- generation


def _cue_classes(labels, mode, classes):
    """The class whose cue each image gets, or None for `"clean"`."""
    if mode == "biased":
        return labels.copy()
    if mode == "confounding":
        return (labels + 1) % classes
    return None


def _check_classes(classes):
    if classes is None:
        return CLASS_COUNT
    if not isinstance(classes, (int, np.integer)) or not (
        2 <= classes <= CLASS_COUNT
    ):
        raise ValueError(
            f"classes must be None or an int in 2-{CLASS_COUNT}; "
            f"received {classes!r}"
        )
    return int(classes)


def zoo_images(
    family, images, labels, mode="biased", seed=0, classes=None,
    image_size=None,
):
    """Renders digits with one family's background cue.

    The 28x28 digit is pasted at rows/columns 6-33 of a black 40x40
    canvas (DecoyMNIST keeps the 28x28 canvas). Its mask is the clean
    digit's pixels > 0, dilated once by 3x3, with the family's candidate
    regions cleared. The cue is that of the label (`"biased"`), of
    (label + 1) mod `classes` (`"confounding"`), or absent (`"clean"`).
    Random choices (decoy corner, marker side, noise) come from
    `numpy.random.default_rng(seed)` and do not depend on the mode or the
    labels, so one seed gives the same corners, sides and noise field to
    every rendering.

    Args:
        family: str. One of `ZOO_FAMILIES`.
        images: uint8 array (N, 28, 28) or (N, 28, 28, 1).
        labels: int array (N,), in 0 to `classes` - 1.
        mode: str. One of `ZOO_TEST_SETS`. Defaults to `"biased"`.
        seed: int or sequence of ints, a NumPy seed. Defaults to 0.
        classes: int or None. Number of classes K, for the confounding
            cue (label + 1) mod K. Defaults to None (10).
        image_size: int or None. Resize the square output to this side
            (images bilinear, masks nearest and kept clear of any blended
            cue). Defaults to None (the family's own size).

    Returns:
        `BiasedImages(images, masks, bias_class, bias_origin)`: float32
        (N, H, W, 1) images in [0, 1] and 0/1 masks; `bias_class` the
        class of the cue drawn (-1 for clean); `bias_origin` the cue's
        top-left (row, column) on the native canvas, (-1, -1) for clean
        images and whole-background cues.

    Example:

    >>> digits = np.zeros((2, 28, 28), np.uint8)
    >>> out = zoo_images("brightness", digits, [0, 3], "confounding")
    >>> out.bias_class.tolist(), float(out.images[1, 0, 0, 0])
    ([1, 4], 0.25)
    """
    spec = zoo_family(family)
    if mode not in ZOO_TEST_SETS:
        raise ValueError(
            f"mode must be one of {ZOO_TEST_SETS}; received {mode!r}"
        )
    classes = _check_classes(classes)
    digits, labels = _validate_digits(images, labels)
    if len(labels) and labels.max() >= classes:
        raise ValueError(
            f"labels must lie in 0-{classes - 1} for classes={classes}; "
            f"found {labels.max()}"
        )
    count = len(digits)
    offset = spec.digit_offset
    pasted = np.zeros((count, spec.size, spec.size), dtype=np.uint8)
    pasted[:, offset : offset + DECOY_SIZE, offset : offset + DECOY_SIZE] = (
        digits
    )
    masks = foreground_masks(pasted, spec.candidate_regions())[..., 0]
    canvas = pasted.astype(np.float32) / 255.0

    cue_classes = _cue_classes(labels, mode, classes)
    if cue_classes is None:
        bias_class = np.full(count, -1, dtype=np.int64)
        bias_origin = _no_origin(count)
    else:
        rng = np.random.default_rng(seed)
        canvas, bias_origin = spec.paint(canvas, masks == 0, cue_classes, rng)
        bias_class = cue_classes.astype(np.int64)
    canvas = canvas.astype(np.float32)
    if image_size is not None:
        canvas = _resize_images(canvas, int(image_size))
        masks = _resize_masks(masks, int(image_size))
    return BiasedImages(
        canvas[..., None], masks[..., None], bias_class, bias_origin
    )
