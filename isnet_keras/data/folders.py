"""User datasets from folders: images, same-named binary masks, a labels CSV.

Layout::

    images/   a.png, b.jpg, sub/c.png ...
    masks/    a.png, b.png, sub/c.png ...   (1, 255 or 65535 = foreground)
    labels.csv
        filename,label
        a.png,cat
        b.jpg,dog

Every file is opened and checked before anything is returned, so a bad file
stops the program before training starts. All problems found are reported
together in one `FolderDatasetError`, each line naming its file. Files are
read by `isnet_keras.data.image_files`, as in training.

Validation (the CSV, mask matching, file checks, `scan_folder_dataset`)
lives in `isnet_keras.data.folder_index`; this module decodes a dataset into
arrays (`load_folder_dataset`) and writes arrays as one
(`write_folder_dataset`). Every name is importable from here.
"""

import csv
import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from isnet_keras.data.folder_index import (
    CSV_COLUMNS,
    MASK_EXTENSIONS,
    MAX_LISTED_PROBLEMS,
    UNANNOTATED,
    FolderDatasetError,
    FolderIndex,
    _check_pair,
    _index_entries,
    scan_folder_dataset,
)
from isnet_keras.data.image_files import resize_image

__all__ = [
    "CSV_COLUMNS",
    "MASK_EXTENSIONS",
    "MAX_LISTED_PROBLEMS",
    "FolderDataset",
    "FolderDatasetError",
    "FolderIndex",
    "load_folder_dataset",
    "scan_folder_dataset",
    "write_folder_dataset",
]


@dataclasses.dataclass(frozen=True)
class FolderDataset:
    """A folder dataset decoded into arrays.

    Attributes:
        images: float32 (N, H, W, C) in [0, 1].
        masks: float32 (N, H, W, 1), exactly 0/1, or -1 everywhere for an
            image without annotation (`partial_masks`).
        labels: int64 (N,), indices into `class_names`.
        class_names: tuple of str.
        files: tuple of Path, the image files in order.
    """

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    class_names: tuple
    files: tuple


def _target_size(image_size):
    """Returns (height, width) from an int, a pair, or None."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    height, width = (int(value) for value in image_size)
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be positive; received {image_size}")
    return height, width


def load_folder_dataset(
    images_dir,
    masks_dir,
    labels_csv,
    image_size=None,
    channels=1,
    class_names=None,
    partial_masks=False,
    boxes=None,
    box_margin=0,
):
    """Loads and validates a folder dataset into float32 arrays.

    Images are read by `image_files.read_image`: scaled to [0, 1] by
    their bit depth and converted to grey (`channels=1`, luma weights) or
    RGB (`channels=3`). With `image_size`, images are resized by
    `image_files.resize_image` (bilinear) and masks by nearest neighbour
    (so they stay 0/1); without it, every image must already have the
    same size.

    Args:
        images_dir: str or Path. Folder of the images.
        masks_dir: str or Path. Folder of the masks (see `scan_folder_dataset`).
        labels_csv: str or Path. CSV with header `filename,label`.
        image_size: int, (height, width) or None. Output size.
            Defaults to None (keep the common size).
        channels: int, 1 or 3. Defaults to 1.
        class_names: sequence of str or None. See `scan_folder_dataset`.
        partial_masks: bool. Images without a mask file (or without a row
            in `boxes`) get a mask of -1 everywhere instead of being an
            error. Defaults to False.
        boxes: str, Path or None. A boxes CSV whose boxes make the masks
            (see `isnet_keras.data.boxes`); `masks_dir` is then not read.
        box_margin: int >= 0. Pixels added around every box.

    Returns:
        A `FolderDataset(images, masks, labels, class_names, files)`.

    Raises:
        FolderDatasetError: every problem of `scan_folder_dataset`, plus
            images of different sizes when `image_size` is None.

    Example:

    >>> data = load_folder_dataset(
    ...     "images", "masks", "labels.csv", image_size=64)  # doctest: +SKIP
    >>> data.images.shape, data.masks.shape  # doctest: +SKIP
    ((120, 64, 64, 1), (120, 64, 64, 1))
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; received {channels}")
    target = _target_size(image_size)
    problems = []
    pairs, names = _index_entries(
        images_dir, masks_dir, labels_csv, class_names, problems,
        partial_masks=partial_masks, boxes=boxes, box_margin=box_margin,
    )
    images, masks, labels, files = [], [], [], []
    first_size = None
    for image_path, mask_path, label in pairs:
        image, mask = _check_pair(image_path, mask_path, problems,
                                  channels)
        if image is None:
            continue
        size = image.shape[:2]
        if target is None:
            if first_size is None:
                first_size = (image_path, size)
            elif size != first_size[1]:
                first_path, (first_height, first_width) = first_size
                problems.append(
                    f"{image_path}: size {size[0]}x{size[1]} (height x width) "
                    f"differs from {first_path.name}'s "
                    f"{first_height}x{first_width}; pass image_size to resize"
                )
                continue
        unannotated = mask_path is None
        mask_image = Image.fromarray(np.maximum(mask, 0).astype(np.uint8)
                                     * 255)
        if target is not None and size != target:
            image = resize_image(image, target)
            mask_image = mask_image.resize(
                (target[1], target[0]), Image.Resampling.NEAREST
            )
        images.append(image)
        mask = (np.asarray(mask_image) > 0).astype(np.float32)[..., None]
        masks.append(np.full_like(mask, UNANNOTATED) if unannotated
                     else mask)
        labels.append(label)
        files.append(image_path)
    if problems:
        raise FolderDatasetError(problems)
    return FolderDataset(
        images=np.stack(images),
        masks=np.stack(masks),
        labels=np.array(labels, dtype=np.int64),
        class_names=names,
        files=tuple(files),
    )


def write_folder_dataset(out_dir, images, masks, labels, class_names=None,
                         prefix="image"):
    """Writes arrays as a folder dataset (PNG images, PNG masks, CSV).

    The inverse of `load_folder_dataset`, e.g. to turn a segmenter's output
    masks into the layout `isnet train` reads. Refuses to write into a
    folder that already holds an `images/`, `masks/` or `labels.csv`.

    Args:
        out_dir: str or Path. Created if missing; receives `images/`,
            `masks/` and `labels.csv`.
        images: array `(N, H, W)` or `(N, H, W, C)`, C in {1, 3}; floats in
            [0, 1] or uint8.
        masks: array `(N, H, W)` or `(N, H, W, 1)` of 0/1 (or booleans).
        labels: N integers; with `class_names`, indices into it.
        class_names: sequence of str or None. When given, the CSV holds
            these names instead of integers.
        prefix: str. File names are `<prefix>_<index>.png`.

    Returns:
        Path of the written `labels.csv`.

    Raises:
        FileExistsError: `out_dir` already holds a dataset.
        ValueError: shapes that do not match, or non-binary masks.

    Example:

    >>> write_folder_dataset("data/train", images, masks, labels)
    ... # doctest: +SKIP
    PosixPath('data/train/labels.csv')
    """
    out_dir = Path(out_dir)
    images = np.asarray(images)
    masks = np.asarray(masks)
    labels = np.asarray(labels).reshape(-1)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if not (len(images) == len(masks) == len(labels)):
        raise ValueError(
            f"{len(images)} images, {len(masks)} masks and {len(labels)} "
            "labels: the counts must be equal."
        )
    if masks.shape[:3] != images.shape[:3]:
        raise ValueError(
            f"masks {masks.shape} do not match images {images.shape} "
            "(height and width must agree)."
        )
    if not set(np.unique(masks).tolist()) <= {0, 1}:
        raise ValueError("masks must hold only 0 and 1.")
    for name in ("images", "masks", "labels.csv"):
        if (out_dir / name).exists():
            raise FileExistsError(
                f"{out_dir / name} already exists; choose an empty folder."
            )
    if images.dtype != np.uint8:
        images = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
    (out_dir / "images").mkdir(parents=True)
    (out_dir / "masks").mkdir()
    width = len(str(max(len(images) - 1, 0)))
    rows = []
    for number, (image, mask, label) in enumerate(zip(images, masks, labels)):
        filename = f"{prefix}_{number:0{width}d}.png"
        Image.fromarray(image).save(out_dir / "images" / filename)
        Image.fromarray(mask.astype(np.uint8) * 255).save(
            out_dir / "masks" / filename
        )
        rows.append(
            (filename, class_names[int(label)] if class_names else int(label))
        )
    labels_csv = out_dir / "labels.csv"
    with labels_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    return labels_csv
