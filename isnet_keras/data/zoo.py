"""A zoo of background-bias generators on MNIST digits.

Every family puts a real digit on a black canvas and adds a cue that
depends on a class, always in the background: outside the foreground mask,
which is built from the digit alone (pixels > 0, one 3x3 dilation, as
`foreground_masks` does). Families with a cue at a known place (a shape, a
patch, a marker, a frame, a watermark) clear every candidate place from
every mask, as `bias.py` does; families whose cue fills the background (a
texture, a grey level, noise) paint it only where the mask is 0.

Each family has three renderings of the same digits (`ZOO_TEST_SETS`):
`"biased"` (the cue of the image's own class), `"clean"` (no cue) and
`"confounding"` (the cue of class (y + 1) mod K). `make_zoo_benchmark`
loads digits, splits them 70/10/20 and builds biased and clean training
sets and the three test sets. The families are described in
`docs/data.md`, section "Bias zoo".

NumPy, SciPy and Pillow only; importing this module does not import
TensorFlow.
"""

import dataclasses
import types
from typing import Callable, NamedTuple

import numpy as np
from PIL import Image

from isnet_keras.data.bias import (
    BENCHMARK_FRACTIONS,
    CLASS_COUNT,
    DECOY_CORNER_STARTS,
    DECOY_PATCH,
    DECOY_SIZE,
    SHAPE_SIZE,
    SHAPE_TABLE,
    SHAPES_DIGIT_OFFSET,
    SHAPES_SIZE,
    BiasedImages,
    ImageSet,
    _limit_per_class,
    _load_digits,
    _validate_digits,
    decoy_candidate_regions,
    foreground_masks,
    shape_pattern,
    shapes_candidate_regions,
)
from isnet_keras.data.splits import stratified_split

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

# A 3x5 bitmap font: three columns, five rows, "#" = lit. The digits give
# the class; the letters name the side of a burned-in marker.
GLYPH_WIDTH = 3
GLYPH_HEIGHT = 5
GLYPH_FONT = types.MappingProxyType({
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", "###", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    "L": ("#..", "#..", "#..", "#..", "###"),
    "R": ("##.", "#.#", "##.", "#.#", "#.#"),
})

# Marker: side letter, one blank column, class digit, in the top band
# (rows 1-5) above the digit area (rows 6-33), at the left or right.
MARKER_TOP = 1
MARKER_WIDTH = 2 * GLYPH_WIDTH + 1
MARKER_LEFTS = (1, SHAPES_SIZE - 1 - MARKER_WIDTH)  # Columns 1-7 or 32-38.
MARKER_SIDE_LETTERS = ("L", "R")

# Frame: a 2-pixel border cut into 8 segments, each side in two halves,
# clockwise from the top-left. Class k lights the segments marked "1" in
# FRAME_CODES[k]: every code lights 4 of the 8, and any two codes differ in
# at least 2 segments, so no class is a subset of another.
FRAME_WIDTH = 2
FRAME_CODES = (
    "11110000",
    "00001111",
    "11000011",
    "00111100",
    "10101010",
    "01010101",
    "11001100",
    "00110011",
    "10011001",
    "01100110",
)

# Texture: class k -> orientation 36 * (k mod 5) degrees, wavelength 4
# pixels (k < 5) or 8 pixels (k >= 5); values 0 to TEXTURE_AMPLITUDE.
TEXTURE_AMPLITUDE = 0.3
TEXTURE_ORIENTATIONS_DEG = (0.0, 36.0, 72.0, 108.0, 144.0)
TEXTURE_WAVELENGTHS = (4.0, 8.0)

# Brightness: class k -> background grey 0.05 + 0.05 k (0.05 to 0.5), dark
# enough that the white strokes stay clearly visible.
BRIGHTNESS_LEVELS = tuple(round(0.05 + 0.05 * k, 2) for k in range(10))

# Noise: class k -> Gaussian standard deviation 0.04 (k + 1).
NOISE_STDS = tuple(round(0.04 * (k + 1), 2) for k in range(10))

# Watermark: the class digit at twice the font size (6 wide, 10 tall),
# blended with opacity 0.3 in the bottom-right corner, rows 29-38 and
# columns 33-38, where MNIST digits (centred in rows/columns 10-29) do
# not reach.
WATERMARK_SCALE = 2
WATERMARK_OPACITY = 0.3
WATERMARK_ORIGIN = (29, 33)


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


# ------------------------------------------------------------------ glyphs


def glyph_pattern(character, scale=1):
    """Returns the float32 0/1 bitmap of one character of the 3x5 font.

    Args:
        character: str. A digit `"0"`-`"9"`, `"L"` or `"R"`.
        scale: int. Each font pixel becomes a `scale` x `scale` block.

    Returns:
        float32 array (5 * scale, 3 * scale).

    Example:

    >>> glyph_pattern("7")[0].tolist()
    [1.0, 1.0, 1.0]
    """
    rows = GLYPH_FONT[character]
    cells = np.array([[cell == "#" for cell in row] for row in rows])
    block = np.ones((scale, scale), dtype=np.float32)
    return np.kron(cells.astype(np.float32), block)


def marker_pattern(side, cue_class):
    """Returns the 5x7 marker bitmap: side letter, gap, class digit.

    Example:

    >>> marker_pattern(0, 7)[:, 3].tolist()  # The blank column.
    [0.0, 0.0, 0.0, 0.0, 0.0]
    """
    letter = glyph_pattern(MARKER_SIDE_LETTERS[side])
    digit = glyph_pattern(str(cue_class))
    gap = np.zeros((GLYPH_HEIGHT, 1), dtype=np.float32)
    return np.concatenate([letter, gap, digit], axis=1)


def _stamp(canvas, index, origin, pattern, opacity=1.0):
    """Blends white `pattern` into image `index` at `origin`, in place.

    Where the pattern is 1 the pixel becomes (1 - opacity) * old + opacity
    (exactly 1.0 for opacity 1); where it is 0 the pixel is unchanged.
    """
    top, left = origin
    height, width = pattern.shape
    window = canvas[index, top : top + height, left : left + width]
    weight = np.float32(opacity) * pattern
    window[...] = (1.0 - weight) * window + weight


def _no_origin(count):
    return np.full((count, 2), -1, dtype=np.int64)


# ---------------------------------------------------------------- painters
# Each painter takes (canvas, background, cue_classes, rng) and returns
# (canvas, origins); the canvas passed in is a fresh copy it may modify.


def _paint_shapes(canvas, background, cue_classes, rng):
    """The Shapes cue: class k's 5x5 white shape at its own place."""
    origins = np.zeros((len(canvas), 2), dtype=np.int64)
    for index, cue_class in enumerate(cue_classes):
        origin = SHAPE_TABLE[cue_class].origin
        _stamp(canvas, index, origin, shape_pattern(cue_class))
        origins[index] = origin
    return canvas, origins


def _paint_decoy(canvas, background, cue_classes, rng):
    """The DecoyMNIST cue: a 4x4 grey patch in a random corner.

    The corners are drawn as `decoy_mnist` draws them (rows, then columns,
    from the same stream), so one seed puts the patch in the same corner.
    """
    count = len(canvas)
    corner_rows = rng.choice(DECOY_CORNER_STARTS, size=count)
    corner_cols = rng.choice(DECOY_CORNER_STARTS, size=count)
    greys = (255.0 - 25.0 * np.asarray(cue_classes)) / 255.0
    for index in range(count):
        top, left = corner_rows[index], corner_cols[index]
        canvas[index, top : top + DECOY_PATCH, left : left + DECOY_PATCH] = (
            greys[index]
        )
    origins = np.stack([corner_rows, corner_cols], axis=1)
    return canvas, origins.astype(np.int64)


def _paint_marker(canvas, background, cue_classes, rng):
    """A burned-in "L7"/"R7" marker in a random top corner."""
    sides = rng.integers(0, len(MARKER_LEFTS), size=len(canvas))
    origins = np.zeros((len(canvas), 2), dtype=np.int64)
    for index, (side, cue_class) in enumerate(zip(sides, cue_classes)):
        origin = (MARKER_TOP, MARKER_LEFTS[side])
        _stamp(canvas, index, origin, marker_pattern(side, cue_class))
        origins[index] = origin
    return canvas, origins


def frame_segments(size=SHAPES_SIZE, width=FRAME_WIDTH):
    """Returns the 8 frame segments as (row slice, column slice), clockwise.

    Top-left half, top-right, right-top, right-bottom, bottom-right,
    bottom-left, left-bottom, left-top. The top and bottom sides span every
    column; the left and right sides the rows between them.

    Example:

    >>> frame_segments()[0]
    (slice(0, 2, None), slice(0, 20, None))
    """
    half = size // 2
    first, last = slice(0, width), slice(size - width, size)
    left_half, right_half = slice(0, half), slice(half, size)
    upper_side, lower_side = slice(width, half), slice(half, size - width)
    return (
        (first, left_half),
        (first, right_half),
        (upper_side, last),
        (lower_side, last),
        (last, right_half),
        (last, left_half),
        (lower_side, first),
        (upper_side, first),
    )


def frame_layer(cue_class, size=SHAPES_SIZE):
    """Returns the float32 (size, size) 0/1 frame of class `cue_class`.

    Example:

    >>> int(frame_layer(0).sum())  # Top side and upper right side.
    152
    """
    layer = np.zeros((size, size), dtype=np.float32)
    for segment, lit in zip(frame_segments(size), FRAME_CODES[cue_class]):
        if lit == "1":
            layer[segment] = 1.0
    return layer


def frame_candidate_regions():
    """Returns a (40, 40) bool map, True on the whole 2-pixel frame."""
    regions = np.ones((SHAPES_SIZE, SHAPES_SIZE), dtype=bool)
    regions[FRAME_WIDTH:-FRAME_WIDTH, FRAME_WIDTH:-FRAME_WIDTH] = False
    return regions


def _paint_frame(canvas, background, cue_classes, rng):
    """A white border code: which segments are lit encodes the class."""
    for index, cue_class in enumerate(cue_classes):
        _stamp(canvas, index, (0, 0), frame_layer(cue_class))
    return canvas, np.zeros((len(canvas), 2), dtype=np.int64)


def texture_layer(cue_class, size=SHAPES_SIZE):
    """Returns class `cue_class`'s grating, float32 (size, size) in [0, 0.3].

    value(row, col) = 0.3 * (1 + cos(2 pi (col cos t + row sin t) / w)) / 2
    with t and w the class's orientation and wavelength. The phase is fixed
    (0 at pixel (0, 0)), so two images of one class show the same pattern.

    Example:

    >>> [round(float(v), 2) for v in texture_layer(0)[0, :4]]  # 0 deg, 4 px
    [0.3, 0.15, 0.0, 0.15]
    """
    angle = np.deg2rad(TEXTURE_ORIENTATIONS_DEG[cue_class % 5])
    wavelength = TEXTURE_WAVELENGTHS[cue_class // 5]
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    phase = (cols * np.cos(angle) + rows * np.sin(angle)) / wavelength
    wave = 0.5 * (1.0 + np.cos(2.0 * np.pi * phase))
    return (TEXTURE_AMPLITUDE * wave).astype(np.float32)


def _paint_texture(canvas, background, cue_classes, rng):
    """A class-specific grating (orientation, wavelength), background only."""
    table = np.stack([texture_layer(k, canvas.shape[1]) for k in range(10)])
    painted = np.where(background, table[cue_classes], canvas)
    return painted, _no_origin(len(canvas))


def _paint_brightness(canvas, background, cue_classes, rng):
    """A uniform background grey whose level encodes the class."""
    levels = np.asarray(BRIGHTNESS_LEVELS, dtype=np.float32)[cue_classes]
    painted = np.where(background, levels[:, None, None], canvas)
    return painted, _no_origin(len(canvas))


def _paint_noise(canvas, background, cue_classes, rng):
    """Gaussian background noise whose standard deviation encodes the class.

    The standard normal draws do not depend on the class, so one seed gives
    the same noise field, only scaled, to every rendering of an image.
    """
    unit_noise = rng.standard_normal(canvas.shape).astype(np.float32)
    stds = np.asarray(NOISE_STDS, dtype=np.float32)[cue_classes]
    noise = np.clip(unit_noise * stds[:, None, None], 0.0, 1.0)
    painted = np.where(background, noise, canvas)
    return painted, _no_origin(len(canvas))


def watermark_candidate_regions():
    """Returns a (40, 40) bool map, True in the 10x6 watermark box."""
    regions = np.zeros((SHAPES_SIZE, SHAPES_SIZE), dtype=bool)
    top, left = WATERMARK_ORIGIN
    height = GLYPH_HEIGHT * WATERMARK_SCALE
    width = GLYPH_WIDTH * WATERMARK_SCALE
    regions[top : top + height, left : left + width] = True
    return regions


def _paint_watermark(canvas, background, cue_classes, rng):
    """A large faint class digit in the bottom-right corner."""
    for index, cue_class in enumerate(cue_classes):
        glyph = glyph_pattern(str(cue_class), scale=WATERMARK_SCALE)
        _stamp(canvas, index, WATERMARK_ORIGIN, glyph, WATERMARK_OPACITY)
    origins = np.tile(np.int64(WATERMARK_ORIGIN), (len(canvas), 1))
    return canvas, origins


def _nothing_fixed():
    """Whole-background cues have no fixed place to clear from masks."""
    return np.zeros((SHAPES_SIZE, SHAPES_SIZE), dtype=bool)


def _marker_candidate_regions():
    regions = np.zeros((SHAPES_SIZE, SHAPES_SIZE), dtype=bool)
    for left in MARKER_LEFTS:
        regions[
            MARKER_TOP : MARKER_TOP + GLYPH_HEIGHT, left : left + MARKER_WIDTH
        ] = True
    return regions


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


# --------------------------------------------------------------- benchmark


@dataclasses.dataclass(frozen=True)
class ZooBenchmark:
    """A bias-zoo benchmark split and generated (see `make_zoo_benchmark`).

    Attributes:
        family: str. One of `ZOO_FAMILIES`.
        source: str. Where the digits came from, e.g. `"idx: <folder>"`.
        train: ImageSet. Biased training set (cue of the label).
        val: ImageSet. Biased validation set.
        train_clean: ImageSet. The training images without any cue.
        val_clean: ImageSet. The validation images without any cue.
        test: dict `"biased"`, `"clean"`, `"confounding"` -> ImageSet, all
            on the same test images.
        split_indices: dict `"train"`, `"val"`, `"test"` -> int64 indices
            into the loaded digit arrays.
    """

    family: str
    source: str
    train: ImageSet
    val: ImageSet
    train_clean: ImageSet
    val_clean: ImageSet
    test: dict
    split_indices: dict


def _check_image_size(image_size):
    if image_size is None:
        return None
    if not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(
            f"image_size must be None or an int >= 8; received {image_size!r}"
        )
    return int(image_size)


def make_zoo_benchmark(
    family, source="auto", seed=0, limit_per_class=None, mnist_dir=None,
    classes=None, image_size=None,
):
    """Loads digits and builds one bias-zoo benchmark.

    Steps, as `make_bias_benchmark`: load (`source`), keep the digits
    0 to `classes` - 1, optionally keep `limit_per_class` seeded-random
    images per class, split 70/10/20 stratified with `seed`, then render
    every part. Random cue choices use the NumPy seeds `[seed, 0]`
    (train), `[seed, 1]` (validation) and `[seed, 2]` (the three test
    sets, which therefore share decoy corners, marker sides and noise
    fields).

    Args:
        family: str. One of `ZOO_FAMILIES`.
        source: str. `"auto"`, `"idx"`, `"keras"` (see `load_mnist`) or
            `"digits"` (scikit-learn, offline). Defaults to `"auto"`.
        seed: int. Split, subsampling and cue seed. Defaults to 0.
        limit_per_class: int or None. Cap per class before splitting.
        mnist_dir: str, Path or None. Folder of MNIST IDX files.
        classes: int or None. Keep digits 0 to K - 1 only (labels stay
            0 to K - 1). Defaults to None (all 10).
        image_size: int or None. Resize every set to this square size.
            Defaults to None (40x40, or 28x28 for `"decoy"`).

    Returns:
        A `ZooBenchmark`.

    Example:

    >>> bench = make_zoo_benchmark(
    ...     "frame", source="digits", limit_per_class=10, classes=4)
    >>> list(bench.test), bench.train.images.shape
    (['biased', 'clean', 'confounding'], (28, 40, 40, 1))
    """
    zoo_family(family)
    classes = _check_classes(classes)
    image_size = _check_image_size(image_size)
    if limit_per_class is not None and limit_per_class < 1:
        raise ValueError(
            f"limit_per_class must be >= 1; received {limit_per_class}"
        )
    loaded = _load_digits(source, mnist_dir)
    kept = np.flatnonzero(loaded.labels < classes)
    if limit_per_class is not None:
        limited = _limit_per_class(loaded.labels[kept], limit_per_class, seed)
        kept = kept[limited]
    images, labels = loaded.images[kept], loaded.labels[kept]
    parts = stratified_split(labels, BENCHMARK_FRACTIONS, seed=seed)
    split_indices = {
        key: kept[part] for key, part in zip(("train", "val", "test"), parts)
    }

    def build(part, mode, part_number):
        rendered = zoo_images(
            family, images[part], labels[part], mode,
            seed=[seed, part_number], classes=classes, image_size=image_size,
        )
        part_labels = labels[part].astype(np.int32)
        return ImageSet(rendered.images, rendered.masks, part_labels)

    train_part, val_part, test_part = parts
    return ZooBenchmark(
        family=family,
        source=f"{loaded.source}: {loaded.location}",
        train=build(train_part, "biased", 0),
        val=build(val_part, "biased", 1),
        train_clean=build(train_part, "clean", 0),
        val_clean=build(val_part, "clean", 1),
        test={mode: build(test_part, mode, 2) for mode in ZOO_TEST_SETS},
        split_indices=split_indices,
    )
