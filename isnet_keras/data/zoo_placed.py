"""Bias-zoo cues drawn at a fixed place: shapes, decoy patch, marker,
frame and watermark.

Each painter takes `(canvas, background, cue_classes, rng)` and returns
`(canvas, origins)` (see `isnet_keras.data.zoo_render.ZooFamily`). Every
place a cue may occupy is listed by a candidate-regions function and cleared
from every mask, so a mask never covers a cue. The 3x5 bitmap font that
draws the marker and the watermark lives here too.

NumPy only; importing this module does not import TensorFlow.
"""

import types

import numpy as np

from isnet_keras.data.bias_layout import (
    DECOY_CORNER_STARTS,
    DECOY_PATCH,
    SHAPE_TABLE,
    SHAPES_SIZE,
    shape_pattern,
)

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

# Watermark: the class digit at twice the font size (6 wide, 10 tall),
# blended with opacity 0.3 in the bottom-right corner, rows 29-38 and
# columns 33-38, where MNIST digits (centred in rows/columns 10-29) do
# not reach.
WATERMARK_SCALE = 2
WATERMARK_OPACITY = 0.3
WATERMARK_ORIGIN = (29, 33)


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


def _marker_candidate_regions():
    """Returns a (40, 40) bool map, True in both 5x7 marker boxes."""
    regions = np.zeros((SHAPES_SIZE, SHAPES_SIZE), dtype=bool)
    for left in MARKER_LEFTS:
        regions[
            MARKER_TOP : MARKER_TOP + GLYPH_HEIGHT, left : left + MARKER_WIDTH
        ] = True
    return regions
