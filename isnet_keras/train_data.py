"""The data of a training run: checking every file, then splitting.

`scan_data` reads the folder dataset of `isnet train` (and its separate
validation folder, if any), refuses data that cannot make a classifier and
its validation report, and returns the split; `fixed_images` picks the
validation images shown in TensorBoard's heatmap panel.

Example:

```python
from isnet_keras.train_data import scan_data

data = scan_data({"data_dir": "data/train", "val_dir": None,
                  "val_split": 0.2, "seed": 0})
len(data["train_indices"]), data["class_names"]
```
"""

import pathlib
import warnings

import numpy as np

from isnet_keras.data import (
    FolderDatasetError,
    scan_folder_dataset,
    stratified_split,
)
from isnet_keras.data.pipeline import dataset_arrays, folder_dataset


def data_folders(data_dir):
    """`(images_dir, masks_dir, labels_csv)` of a dataset folder.

    Args:
        data_dir: str or Path of a folder with `images/`, `masks/` and
            `labels.csv`.

    Returns:
        A tuple of three `pathlib.Path`s.

    Example:

    >>> data_folders("data/train")[2]
    PosixPath('data/train/labels.csv')
    """
    data_dir = pathlib.Path(data_dir)
    return data_dir / "images", data_dir / "masks", data_dir / "labels.csv"


# The report's heatmap panel and background attention need this many
# validation images.
MIN_VAL_IMAGES = 2
# Empty training masks listed by name in the warning.
LISTED_EMPTY_MASKS = 5


def _check_classes(index, labels_csv, split):
    """Refuses training data that cannot make a classifier and its report.

    Args:
        index: The training `FolderIndex`.
        labels_csv: Path of its labels CSV (named in the messages).
        split: bool. The validation set is split off this data.

    Raises:
        FolderDatasetError: fewer than 2 classes with images, a class with
            no image, or (with `split`) a class of a single image.
    """
    counts = np.bincount(index.labels, minlength=len(index.class_names))
    present = [name for name, count in zip(index.class_names, counts)
               if count]
    if len(present) < 2:
        raise FolderDatasetError([
            f"{labels_csv}: the images hold {len(present)} class "
            f"({', '.join(map(repr, present))}); a classifier needs images "
            "of at least 2 classes"])
    problems = []
    for name, count in zip(index.class_names, counts):
        if count == 0:
            # Only integer labels leave a class without images.
            problems.append(
                f"{labels_csv}: class {name!r} has no image (integer labels "
                "are class indices from 0, each class needs images)")
        elif count == 1 and split:
            # A stratified split puts a class's only image in one part.
            problems.append(
                f"{labels_csv}: class {name!r} has 1 image; splitting off "
                f"the validation set needs at least 2 per class (or pass "
                "--val-dir)")
    if problems:
        raise FolderDatasetError(problems)


def _check_masks(index, indices, masks_dir):
    """Refuses training masks that are all empty; warns about some empty.

    An empty mask (no foreground pixel) leaves its image out of the heatmap
    loss; with every mask empty that loss is 0 and ISNet trains as a plain
    classifier.

    Raises:
        FolderDatasetError: every mask of `indices` is empty.
    """
    annotated = index.annotated
    if annotated is not None and not annotated[indices].any():
        raise FolderDatasetError([
            f"{masks_dir}: none of the {len(indices)} training images has a "
            "mask: the heatmap loss would be 0, so the ISNet penalty would "
            "be off; give at least some images a mask (or boxes)"])
    if annotated is not None:
        indices = [i for i in indices if annotated[i]]
    empty = [i for i in indices if not index.mask_has_foreground[i]]
    if not empty:
        return
    if len(empty) == len(indices):
        raise FolderDatasetError([
            f"{masks_dir}: all {len(empty)} training masks are empty (no "
            "foreground pixel): the heatmap loss would be 0, so the ISNet "
            "penalty would be off; masks mark the object with 1 or 255"])
    names = ", ".join((index.mask_paths[i] or index.image_paths[i]).name
                      for i in empty[:LISTED_EMPTY_MASKS])
    more = " ..." if len(empty) > LISTED_EMPTY_MASKS else ""
    warnings.warn(
        f"{len(empty)} of {len(indices)} training masks in {masks_dir} are "
        f"empty (no foreground pixel): {names}{more}. The heatmap loss "
        "leaves those images out.", UserWarning, stacklevel=3)


def scan_data(config):
    """Validates every file and splits the data, before any training.

    Args:
        config: The run configuration (`data_dir`, `val_dir`, `val_split`,
            `seed` and, if present, `partial_masks`, `boxes` and
            `box_margin` are read).

    Returns:
        dict with `train_index`, `train_indices`, `val_index`,
        `val_indices`, `class_names` and `num_train_annotated` (training
        images with a mask).

    Raises:
        FolderDatasetError: every problem of the folders, each naming its
            file; fewer than 2 classes, a class without images (or, when
            the validation set is split off, with one image), only empty
            training masks, or no training image with a mask.
        ValueError: a validation set of fewer than `MIN_VAL_IMAGES`
            images, or no training image left.

    Warns:
        UserWarning: some training masks are empty (named, up to
            `LISTED_EMPTY_MASKS`).

    Example:

    >>> scan_data(config)["class_names"]  # doctest: +SKIP
    ('cat', 'dog')
    """
    images_dir, masks_dir, labels_csv = data_folders(config["data_dir"])
    # Missing masks (or box rows) become unannotated images with
    # `partial_masks`; boxes replace the mask files of the training folder.
    partial = {"partial_masks": bool(config.get("partial_masks"))}
    boxes = config.get("boxes")
    index = scan_folder_dataset(images_dir, masks_dir, labels_csv,
                                boxes=boxes,
                                box_margin=config.get("box_margin") or 0,
                                **partial)
    if boxes:
        masks_dir = boxes
    _check_classes(index, labels_csv, split=not config["val_dir"])
    if config["val_dir"]:
        val_index = scan_folder_dataset(*data_folders(config["val_dir"]),
                                        class_names=index.class_names,
                                        **partial)
        train_indices = np.arange(len(index.labels))
        val_indices = np.arange(len(val_index.labels))
        if len(val_indices) < MIN_VAL_IMAGES:
            raise ValueError(
                f"--val-dir {config['val_dir']} holds {len(val_indices)} "
                f"image(s); the validation report needs at least "
                f"{MIN_VAL_IMAGES}.")
    else:
        fraction = config["val_split"]
        train_indices, val_indices = stratified_split(
            index.labels, (1.0 - fraction, fraction), seed=config["seed"])
        val_index = index
        if len(val_indices) < MIN_VAL_IMAGES or len(train_indices) == 0:
            raise ValueError(
                f"val_split {fraction} leaves {len(train_indices)} training "
                f"and {len(val_indices)} validation images of the "
                f"{len(index.labels)}; training needs at least 1 and the "
                f"validation report at least {MIN_VAL_IMAGES}: change "
                "--val-split or pass --val-dir.")
    _check_masks(index, train_indices, masks_dir)
    annotated = index.annotated
    num_annotated = (len(train_indices) if annotated is None
                     else int(annotated[train_indices].sum()))
    return {"train_index": index, "train_indices": train_indices,
            "val_index": val_index, "val_indices": val_indices,
            "class_names": index.class_names,
            "num_train_annotated": num_annotated}


def fixed_images(index, indices, image_size, channels, count):
    """The first `count` validation images and masks (for the panel).

    Args:
        index: The validation `FolderIndex`.
        indices: int array, the validation images in `index`.
        image_size: `(height, width)` of the model's input.
        channels: 1 or 3.
        count: int >= 0. Images wanted.

    Returns:
        `(images, masks)` arrays, or `(None, None)` when `count` is 0.

    Example:

    >>> images, masks = fixed_images(index, val_indices, (64, 64), 3, 4)
    ... # doctest: +SKIP
    """
    if count == 0:
        return None, None
    images, _, masks = dataset_arrays(folder_dataset(
        index, indices[:count], image_size, channels, count, cache=False))
    return images, masks
