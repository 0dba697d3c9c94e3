"""Where the bias benchmarks draw: canvas sizes, the Shapes table, the
candidate cue regions, the foreground-mask rule and the records generators
return.

Definitions: docs/algorithm.md, "Synthetic background-bias benchmarks".

Every benchmark mask follows one rule (`foreground_masks`): the clean
digit's pixels > 0, dilated once with a 3x3 square, then cleared inside
every candidate cue region, so that a mask neither reveals where the cue is
nor ever covers one. The generators of `isnet_keras.data.bias` and of the
bias zoo (`isnet_keras.data.zoo`) share these definitions.

NumPy only; importing this module does not import TensorFlow.
"""

from typing import NamedTuple

import numpy as np

from isnet_keras.data.masks import dilate_mask

CLASS_COUNT = 10

DECOY_SIZE = 28
DECOY_PATCH = 4
# A patch covers rows 0-3 or 24-27 and, independently, columns 0-3 or 24-27.
DECOY_CORNER_STARTS = (0, DECOY_SIZE - DECOY_PATCH)
DECOY_MODES = ("biased", "clean", "randomized")

SHAPES_SIZE = 40
SHAPES_DIGIT_OFFSET = 6  # Rows and columns 6-33 hold the 28x28 digit.
SHAPE_SIZE = 5
SHAPES_MODES = ("biased", "unbiased", "confounding")

BENCHMARK_NAMES = ("shapes", "decoy")
BENCHMARK_FRACTIONS = (0.7, 0.1, 0.2)


class ShapeSpec(NamedTuple):
    """One row of the Shapes table (docs/algorithm.md, "Synthetic
    background-bias benchmarks").

    Attributes:
        label: int. The class the shape encodes.
        name: str. A readable name.
        origin: (row, column) of the 5x5 box's top-left pixel, 40x40 canvas.
        pattern: five strings of five characters, row i, column j;
            `"#"` marks a cell set to 1.0.
    """

    label: int
    name: str
    origin: tuple
    pattern: tuple


SHAPE_TABLE = (
    ShapeSpec(0, "filled square", (1, 1), (
        "#####",
        "#####",
        "#####",
        "#####",
        "#####",
    )),
    ShapeSpec(1, "hollow square", (1, 17), (
        "#####",
        "#...#",
        "#...#",
        "#...#",
        "#####",
    )),
    ShapeSpec(2, "plus", (1, 34), (
        "..#..",
        "..#..",
        "#####",
        "..#..",
        "..#..",
    )),
    ShapeSpec(3, "X", (17, 34), (
        "#...#",
        ".#.#.",
        "..#..",
        ".#.#.",
        "#...#",
    )),
    ShapeSpec(4, "horizontal bar", (34, 34), (
        ".....",
        ".....",
        "#####",
        ".....",
        ".....",
    )),
    ShapeSpec(5, "vertical bar", (34, 17), (
        "..#..",
        "..#..",
        "..#..",
        "..#..",
        "..#..",
    )),
    ShapeSpec(6, "triangle", (34, 1), (
        "..#..",
        "..#..",
        ".###.",
        ".###.",
        "#####",
    )),
    ShapeSpec(7, "diamond", (17, 1), (
        "..#..",
        ".###.",
        "#####",
        ".###.",
        "..#..",
    )),
    ShapeSpec(8, "ring", (1, 9), (
        ".###.",
        "#...#",
        "#...#",
        "#...#",
        ".###.",
    )),
    ShapeSpec(9, "L", (34, 26), (
        "#....",
        "#....",
        "#....",
        "#....",
        "#####",
    )),
)


class BiasedImages(NamedTuple):
    """What a generator returns.

    Attributes:
        images: float32 (N, H, W, 1) in [0, 1], the digits with their cue.
        masks: float32 (N, H, W, 1), exactly 0/1; 1 = digit foreground.
        bias_class: int64 (N,). The class whose cue was drawn (the shade t
            for DecoyMNIST, the shape for Shapes); -1 when none was.
        bias_origin: int64 (N, 2). Top-left (row, column) of the cue; -1
            when none was drawn.
    """

    images: np.ndarray
    masks: np.ndarray
    bias_class: np.ndarray
    bias_origin: np.ndarray


class ImageSet(NamedTuple):
    """Images ready for training or evaluation.

    Attributes:
        images: float32 (N, H, W, 1) in [0, 1].
        masks: float32 (N, H, W, 1), exactly 0/1.
        labels: int32 (N,), the true digit.
    """

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray


def shape_pattern(label):
    """Returns the 5x5 float32 pattern (0/1) of class `label`'s shape.

    Example:

    >>> shape_pattern(4)[2].tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    rows = SHAPE_TABLE[label].pattern
    cells = [[cell == "#" for cell in row] for row in rows]
    return np.array(cells, dtype=np.float32)


def decoy_candidate_regions():
    """Returns a (28, 28) bool map, True in the four 4x4 DecoyMNIST corners.

    Example:

    >>> int(decoy_candidate_regions().sum())
    64
    """
    regions = np.zeros((DECOY_SIZE, DECOY_SIZE), dtype=bool)
    for row in DECOY_CORNER_STARTS:
        for col in DECOY_CORNER_STARTS:
            regions[row : row + DECOY_PATCH, col : col + DECOY_PATCH] = True
    return regions


def shapes_candidate_regions():
    """Returns a (40, 40) bool map, True in all ten 5x5 shape boxes.

    Example:

    >>> int(shapes_candidate_regions().sum())
    250
    """
    regions = np.zeros((SHAPES_SIZE, SHAPES_SIZE), dtype=bool)
    for spec in SHAPE_TABLE:
        row, col = spec.origin
        regions[row : row + SHAPE_SIZE, col : col + SHAPE_SIZE] = True
    return regions


def foreground_masks(clean_digits, candidate_regions):
    """The benchmarks' mask rule: pixels > 0, dilated by 3x3, regions cleared.

    Args:
        clean_digits: array (N, H, W), the digits on their final canvas
            without any cue.
        candidate_regions: bool array (H, W), True wherever any image of
            the benchmark may carry a cue.

    Returns:
        float32 array (N, H, W, 1), exactly 0/1.

    Example:

    >>> digits = np.zeros((1, 28, 28))
    >>> digits[0, 2, 5] = 200  # Dilated: rows 1-3, columns 4-6.
    >>> foreground_masks(digits, decoy_candidate_regions())[0, :5, 3:7, 0]
    array([[0., 0., 0., 0.],
           [0., 1., 1., 1.],
           [0., 1., 1., 1.],
           [0., 1., 1., 1.],
           [0., 0., 0., 0.]], dtype=float32)
    """
    # A channel axis first: `dilate_mask` reads 3-D arrays as (H, W, C).
    inked = (np.asarray(clean_digits) > 0)[..., None]
    foreground = dilate_mask(inked, iterations=1)
    foreground &= ~np.asarray(candidate_regions, dtype=bool)[..., None]
    return foreground.astype(np.float32)


def _validate_digits(images, labels):
    """Returns (uint8 images (N, 28, 28), int64 labels (N,)) or raises."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.shape[1:] != (DECOY_SIZE, DECOY_SIZE) or images.ndim != 3:
        raise ValueError(
            "images must be (N, 28, 28) or (N, 28, 28, 1); "
            f"received {images.shape}"
        )
    if images.dtype != np.uint8:
        raise ValueError(
            "images must be uint8 in 0-255 as the loaders return them; "
            f"received dtype {images.dtype}"
        )
    if labels.shape != (len(images),):
        raise ValueError(
            f"labels must be ({len(images)},) to match the images; "
            f"received {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= CLASS_COUNT):
        raise ValueError(
            f"labels must lie in 0-{CLASS_COUNT - 1}; found "
            f"{labels.min()}..{labels.max()}"
        )
    return images, labels.astype(np.int64)
