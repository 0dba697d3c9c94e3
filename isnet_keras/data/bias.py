"""Synthetic background-bias benchmarks on MNIST digits.

Definitions: docs/algorithm.md, "Synthetic background-bias benchmarks".

Two generators add a class-dependent cue in the background, away from the
digit, so that a classifier can cheat by reading the cue:

* `decoy_mnist`: DecoyMNIST, 28x28, a 4x4 grey patch in a random corner whose
  shade encodes the class.
* `shapes_mnist`: 40x40, the digit pasted at (6, 6) and a 5x5 white shape
  whose form and place encode the class.

Both return images in [0, 1] as float32 (N, H, W, 1) and foreground masks
built by one rule for every image: the clean digit's pixels > 0, dilated once
with a 3x3 square, then cleared inside every candidate bias region. A mask
therefore neither reveals where the cue is nor ever covers one.
`make_bias_benchmark` loads digits, splits them 70/10/20 and builds the
biased train/validation sets and every test set.

The canvas sizes, the Shapes table, the candidate regions and the mask rule
live in `isnet_keras.data.bias_layout`; their names are importable from here
too.
"""

import dataclasses
import logging

import numpy as np

from isnet_keras.data.bias_layout import (
    BENCHMARK_FRACTIONS,
    BENCHMARK_NAMES,
    CLASS_COUNT,
    DECOY_CORNER_STARTS,
    DECOY_MODES,
    DECOY_PATCH,
    DECOY_SIZE,
    SHAPE_SIZE,
    SHAPE_TABLE,
    SHAPES_DIGIT_OFFSET,
    SHAPES_MODES,
    SHAPES_SIZE,
    BiasedImages,
    ImageSet,
    ShapeSpec,
    _validate_digits,
    decoy_candidate_regions,
    foreground_masks,
    shape_pattern,
    shapes_candidate_regions,
)
from isnet_keras.data.digits import load_digits_28
from isnet_keras.data.mnist import load_mnist
from isnet_keras.data.splits import stratified_split

__all__ = [
    "BENCHMARK_FRACTIONS",
    "BENCHMARK_NAMES",
    "CLASS_COUNT",
    "DECOY_CORNER_STARTS",
    "DECOY_MODES",
    "DECOY_PATCH",
    "DECOY_SIZE",
    "SHAPE_SIZE",
    "SHAPE_TABLE",
    "SHAPES_DIGIT_OFFSET",
    "SHAPES_MODES",
    "SHAPES_SIZE",
    "BiasBenchmark",
    "BiasedImages",
    "ImageSet",
    "ShapeSpec",
    "benchmark_test_sets",
    "decoy_candidate_regions",
    "decoy_mnist",
    "foreground_masks",
    "make_bias_benchmark",
    "shape_pattern",
    "shapes_candidate_regions",
    "shapes_mnist",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BiasBenchmark:
    """A bias benchmark split and generated (see `make_bias_benchmark`).

    Attributes:
        name: str. `"shapes"` or `"decoy"`.
        source: str. Where the digits came from, e.g. `"idx: <folder>"`.
        train: ImageSet. Biased training set (every image carries its cue).
        val: ImageSet. Biased validation set.
        test: dict from test-set name to ImageSet, in the order of
            `benchmark_test_sets(name)`.
        split_indices: dict `"train"`, `"val"`, `"test"` -> int64 indices
            into the loaded digit arrays.
    """

    name: str
    source: str
    train: ImageSet
    val: ImageSet
    test: dict
    split_indices: dict


def benchmark_test_sets(name):
    """Returns the test-set names of benchmark `name`, in report order.

    Example:

    >>> benchmark_test_sets("shapes")
    ('biased', 'unbiased', 'confounding')
    """
    if name == "shapes":
        return SHAPES_MODES
    if name == "decoy":
        return DECOY_MODES
    raise ValueError(
        f"name must be one of {BENCHMARK_NAMES}; received {name!r}"
    )


def decoy_mnist(images, labels, mode="biased", seed=0):
    """DecoyMNIST (Ross et al. 2017): a grey 4x4 corner patch encoding a class.

    For each image the patch rows are 0-3 or 24-27 and, independently, its
    columns 0-3 or 24-27, each with probability 1/2. Its grey level is
    (255 - 25 t) / 255 with t = the label (`"biased"`), t uniform in 0-9
    (`"randomized"`), or there is no patch (`"clean"`). The random corners
    and random t are drawn in every mode from the same seeded stream, so one
    seed gives the same corners to the three modes.

    Args:
        images: uint8 array (N, 28, 28) or (N, 28, 28, 1).
        labels: int array (N,), 0-9.
        mode: str. `"biased"`, `"clean"` or `"randomized"`.
            Defaults to `"biased"`.
        seed: int or sequence of ints, a NumPy seed. Defaults to 0.

    Returns:
        `BiasedImages(images, masks, bias_class, bias_origin)`: 28x28
        float32 (N, 28, 28, 1); `bias_class` is t; `bias_origin` the patch's
        top-left corner (each coordinate 0 or 24).

    Example:

    >>> digits = np.zeros((2, 28, 28), np.uint8)
    >>> out = decoy_mnist(digits, np.array([0, 9]))
    >>> out.bias_class.tolist(), round(float(out.images[1].max()), 4)
    ([0, 9], 0.1176)
    """
    if mode not in DECOY_MODES:
        raise ValueError(
            f"mode must be one of {DECOY_MODES}; received {mode!r}"
        )
    digits, labels = _validate_digits(images, labels)
    count = len(digits)
    rng = np.random.default_rng(seed)
    corner_rows = rng.choice(DECOY_CORNER_STARTS, size=count)
    corner_cols = rng.choice(DECOY_CORNER_STARTS, size=count)
    random_shades = rng.integers(0, CLASS_COUNT, size=count)

    canvas = digits.astype(np.float32) / 255.0
    if mode == "clean":
        bias_class = np.full(count, -1, dtype=np.int64)
        bias_origin = np.full((count, 2), -1, dtype=np.int64)
    else:
        if mode == "biased":
            bias_class = labels.copy()
        else:
            bias_class = random_shades.astype(np.int64)
        bias_origin = np.stack([corner_rows, corner_cols], axis=1)
        bias_origin = bias_origin.astype(np.int64)
        grey = (255.0 - 25.0 * bias_class) / 255.0
        for row in DECOY_CORNER_STARTS:
            for col in DECOY_CORNER_STARTS:
                in_corner = (corner_rows == row) & (corner_cols == col)
                chosen = np.flatnonzero(in_corner)
                rows = slice(row, row + DECOY_PATCH)
                cols = slice(col, col + DECOY_PATCH)
                canvas[chosen, rows, cols] = grey[chosen, None, None]
    masks = foreground_masks(digits, decoy_candidate_regions())
    return BiasedImages(canvas[..., None], masks, bias_class, bias_origin)


def shapes_mnist(images, labels, mode="biased"):
    """Shapes: a 5x5 shape whose form and place encode a class.

    The 28x28 digit is pasted at rows/columns 6-33 of a black 40x40 canvas.
    Class k's shape (`SHAPE_TABLE[k]`) is drawn with value 1.0 at its own
    place for k = the label (`"biased"`), k = (label + 1) mod 10
    (`"confounding"`), or not at all (`"unbiased"`). No randomness.

    Args:
        images: uint8 array (N, 28, 28) or (N, 28, 28, 1).
        labels: int array (N,), 0-9.
        mode: str. `"biased"`, `"unbiased"` or `"confounding"`.
            Defaults to `"biased"`.

    Returns:
        `BiasedImages(images, masks, bias_class, bias_origin)`: float32
        (N, 40, 40, 1); `bias_class` is the shape's class k;
        `bias_origin` its box's top-left corner.

    Example:

    >>> out = shapes_mnist(np.zeros((1, 28, 28), np.uint8), [3], "confounding")
    >>> out.bias_class.tolist(), out.bias_origin.tolist()
    ([4], [[34, 34]])
    """
    if mode not in SHAPES_MODES:
        raise ValueError(
            f"mode must be one of {SHAPES_MODES}; received {mode!r}"
        )
    digits, labels = _validate_digits(images, labels)
    count = len(digits)
    margin = SHAPES_DIGIT_OFFSET
    pasted = np.zeros((count, SHAPES_SIZE, SHAPES_SIZE), dtype=np.uint8)
    digit_area = slice(margin, margin + DECOY_SIZE)
    pasted[:, digit_area, digit_area] = digits
    canvas = pasted.astype(np.float32) / 255.0

    if mode == "unbiased":
        bias_class = np.full(count, -1, dtype=np.int64)
    elif mode == "biased":
        bias_class = labels.copy()
    else:
        bias_class = (labels + 1) % CLASS_COUNT
    bias_origin = np.full((count, 2), -1, dtype=np.int64)
    for spec in SHAPE_TABLE:
        chosen = np.flatnonzero(bias_class == spec.label)
        if len(chosen) == 0:
            continue
        row, col = spec.origin
        bias_origin[chosen] = (row, col)
        rows = slice(row, row + SHAPE_SIZE)
        cols = slice(col, col + SHAPE_SIZE)
        pattern = shape_pattern(spec.label).astype(bool)
        canvas[chosen, rows, cols] = np.where(
            pattern, np.float32(1.0), canvas[chosen, rows, cols]
        )
    masks = foreground_masks(pasted, shapes_candidate_regions())
    return BiasedImages(canvas[..., None], masks, bias_class, bias_origin)


def _load_digits(source, mnist_dir):
    """Returns `LoadedDigits` for a benchmark source name."""
    if source == "digits":
        logger.info("Using scikit-learn's 8x8 digits upscaled to 28x28")
        return load_digits_28()
    return load_mnist(source=source, mnist_dir=mnist_dir)


def _limit_per_class(labels, limit, seed):
    """Returns sorted indices of at most `limit` random items per class."""
    rng = np.random.default_rng([seed, 99])
    kept = [
        rng.permutation(np.flatnonzero(labels == label))[:limit]
        for label in np.unique(labels)
    ]
    return np.sort(np.concatenate(kept))


def make_bias_benchmark(
    name="shapes", source="auto", seed=0, limit_per_class=None, mnist_dir=None
):
    """Loads digits and builds one bias benchmark, ready to train and test.

    Steps: load (`source`), optionally keep `limit_per_class` seeded-random
    images per class, split 70/10/20 stratified with `seed`
    (`stratified_split`), then generate the biased train and validation
    sets and each test set. DecoyMNIST's corners and random shades use the
    NumPy seeds `[seed, 0]` (train), `[seed, 1]` (validation) and
    `[seed, 2]` (shared by the three test sets: same corners, so they differ
    only in the patch's shade or its absence).

    Args:
        name: str. `"shapes"` or `"decoy"`. Defaults to `"shapes"`.
        source: str. `"auto"`, `"idx"`, `"keras"` (see `load_mnist`) or
            `"digits"` (scikit-learn, offline). Defaults to `"auto"`.
        seed: int. Split, subsampling and corner seed. Defaults to 0.
        limit_per_class: int or None. Cap per class before splitting, for
            quick runs. Defaults to None (all).
        mnist_dir: str, Path or None. Folder of MNIST IDX files.

    Returns:
        A `BiasBenchmark`. Test sets: `"biased"`, `"unbiased"`,
        `"confounding"` (shapes) or `"biased"`, `"clean"`, `"randomized"`
        (decoy).

    Example:

    >>> bench = make_bias_benchmark(
    ...     "decoy", source="digits", limit_per_class=20)
    >>> list(bench.test), bench.train.images.shape
    (['biased', 'clean', 'randomized'], (140, 28, 28, 1))
    """
    if name not in BENCHMARK_NAMES:
        raise ValueError(
            f"name must be one of {BENCHMARK_NAMES}; received {name!r}"
        )
    if limit_per_class is not None and limit_per_class < 1:
        raise ValueError(
            f"limit_per_class must be >= 1; received {limit_per_class}"
        )
    loaded = _load_digits(source, mnist_dir)
    kept = np.arange(len(loaded.labels))
    if limit_per_class is not None:
        kept = _limit_per_class(loaded.labels, limit_per_class, seed)
    images, labels = loaded.images[kept], loaded.labels[kept]
    parts = stratified_split(labels, BENCHMARK_FRACTIONS, seed=seed)
    split_indices = {
        key: kept[part] for key, part in zip(("train", "val", "test"), parts)
    }

    def build(part, mode, part_number):
        if name == "shapes":
            generated = shapes_mnist(images[part], labels[part], mode)
        else:
            generated = decoy_mnist(
                images[part], labels[part], mode, seed=[seed, part_number]
            )
        part_labels = labels[part].astype(np.int32)
        return ImageSet(generated.images, generated.masks, part_labels)

    train_part, val_part, test_part = parts
    return BiasBenchmark(
        name=name,
        source=f"{loaded.source}: {loaded.location}",
        train=build(train_part, "biased", 0),
        val=build(val_part, "biased", 1),
        test={
            mode: build(test_part, mode, 2)
            for mode in benchmark_test_sets(name)
        },
        split_indices=split_indices,
    )
