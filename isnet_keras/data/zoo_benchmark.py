"""Builds a bias-zoo benchmark: loads digits, splits them 70/10/20 and
renders the biased and clean training sets and the three test sets.

Importing this module does not import TensorFlow.
"""

import dataclasses

import numpy as np

from isnet_keras.data.bias import _limit_per_class, _load_digits
from isnet_keras.data.bias_layout import BENCHMARK_FRACTIONS, ImageSet
from isnet_keras.data.splits import stratified_split
from isnet_keras.data.zoo_render import (
    ZOO_TEST_SETS,
    _check_classes,
    zoo_family,
    zoo_images,
)


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


def _top_up(test_part, labels, kept, classes, per_class, seed):
    """`test_part` plus, per class, seeded-random digits outside `kept`
    until the class has `per_class` test digits (or none are left)."""
    if per_class < 1:
        raise ValueError(f"test_per_class must be >= 1; received {per_class}")
    rng = np.random.default_rng([seed, 98])
    unused = np.setdiff1d(np.flatnonzero(labels < classes), kept)
    extra = []
    for label in range(classes):
        missing = per_class - int(np.sum(labels[test_part] == label))
        if missing > 0:
            pool = unused[labels[unused] == label]
            extra.append(rng.permutation(pool)[:missing])
    return np.concatenate([test_part, *extra]).astype(np.int64)


def make_zoo_benchmark(
    family, source="auto", seed=0, limit_per_class=None, mnist_dir=None,
    classes=None, image_size=None, test_per_class=None,
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
        test_per_class: int or None. Digits per class in the test sets:
            the split's own test digits, topped up with seeded-random
            digits that `limit_per_class` left out (as many as there
            are). Training and validation sets do not change. Defaults to
            None (the split's test digits only).

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
    parts = stratified_split(loaded.labels[kept], BENCHMARK_FRACTIONS,
                             seed=seed)
    train_part, val_part, test_part = (kept[part] for part in parts)
    if test_per_class is not None:
        test_part = _top_up(test_part, loaded.labels, kept, classes,
                            test_per_class, seed)
    split_indices = {"train": train_part, "val": val_part,
                     "test": test_part}

    def build(indices, mode, part_number):
        rendered = zoo_images(
            family, loaded.images[indices], loaded.labels[indices], mode,
            seed=[seed, part_number], classes=classes, image_size=image_size,
        )
        part_labels = loaded.labels[indices].astype(np.int32)
        return ImageSet(rendered.images, rendered.masks, part_labels)

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
