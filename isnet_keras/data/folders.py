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
"""

import csv
import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from isnet_keras.data.image_files import (ImageReadError, MaskValueError,
                                          read_image, read_mask, resize_image)

# Tried in this order when no mask has the image's exact file name.
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")
CSV_COLUMNS = ("filename", "label")
# At most this many problems are spelled out in one error message.
MAX_LISTED_PROBLEMS = 20


class FolderDatasetError(ValueError):
    """A folder dataset failed validation.

    Attributes:
        problems: list of str, one per problem, each naming its file.
    """

    def __init__(self, problems):
        self.problems = list(problems)
        listed = self.problems[:MAX_LISTED_PROBLEMS]
        more = len(self.problems) - len(listed)
        lines = "\n".join(f"  - {problem}" for problem in listed)
        suffix = f"\n  ... and {more} more" if more > 0 else ""
        count = len(self.problems)
        super().__init__(
            f"{count} problem(s) in the folder dataset:\n{lines}{suffix}"
        )


@dataclasses.dataclass(frozen=True)
class FolderIndex:
    """The validated file list of a folder dataset (nothing decoded kept).

    Attributes:
        image_paths: tuple of Path, in CSV order.
        mask_paths: tuple of Path, the mask of each image.
        labels: int64 array (N,), indices into `class_names`.
        class_names: tuple of str.
        image_sizes: tuple of (height, width), each image's size on disk.
        mask_has_foreground: bool array (N,): whether each mask marks at
            least one foreground pixel (an empty mask leaves its image out
            of the heatmap loss). None when not known.
    """

    image_paths: tuple
    mask_paths: tuple
    labels: np.ndarray
    class_names: tuple
    image_sizes: tuple
    mask_has_foreground: np.ndarray = None


@dataclasses.dataclass(frozen=True)
class FolderDataset:
    """A folder dataset decoded into arrays.

    Attributes:
        images: float32 (N, H, W, C) in [0, 1].
        masks: float32 (N, H, W, 1), exactly 0/1.
        labels: int64 (N,), indices into `class_names`.
        class_names: tuple of str.
        files: tuple of Path, the image files in order.
    """

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    class_names: tuple
    files: tuple


def _parse_int(text):
    try:
        return int(text)
    except ValueError:
        return None


def _read_labels_csv(labels_csv, problems):
    """Returns [(row number, filename, label text)] and records CSV problems."""
    labels_csv = Path(labels_csv)
    try:
        # utf-8-sig: spreadsheet programs often start the file with a BOM.
        with labels_csv.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise FolderDatasetError(
            [f"{labels_csv}: cannot read the CSV ({error})"]
        ) from error
    # Line numbers count from 1, as editors show them; blank lines skipped.
    rows = [
        (number, row)
        for number, row in enumerate(rows, start=1)
        if any(cell.strip() for cell in row)
    ]
    if not rows:
        raise FolderDatasetError(
            [f"{labels_csv}: empty file, expected a header 'filename,label'"]
        )
    header = [cell.strip().lower() for cell in rows[0][1]]
    missing_columns = [column for column in CSV_COLUMNS if column not in header]
    if missing_columns:
        raise FolderDatasetError(
            [
                f"{labels_csv}: the first row must be a header with columns "
                f"'filename' and 'label'; found {rows[0][1]}"
            ]
        )
    file_column, label_column = (header.index(column) for column in CSV_COLUMNS)
    entries = []
    seen = {}
    for number, row in rows[1:]:
        cells = row + [""] * (len(header) - len(row))
        filename = cells[file_column].strip()
        label = cells[label_column].strip()
        if not filename:
            problems.append(f"{labels_csv} line {number}: empty filename")
            continue
        if filename in seen:
            problems.append(
                f"{filename}: listed twice in {labels_csv} "
                f"(lines {seen[filename]} and {number})"
            )
            continue
        seen[filename] = number
        if not label:
            problems.append(
                f"{filename}: empty label in {labels_csv} line {number}"
            )
            continue
        entries.append((number, filename, label))
    if not seen:
        problems.append(f"{labels_csv}: no data rows after the header")
    return entries


def _resolve_labels(entries, class_names, labels_csv, problems):
    """Returns (label indices, class names) and records unknown labels.

    With `class_names` given, a label is a class name or an integer index
    into it. Otherwise all labels must be integers >= 0 (classes "0".."max")
    or all be names (classes sorted alphabetically).
    """
    texts = [label for _, _, label in entries]
    if class_names is not None:
        class_names = tuple(str(name) for name in class_names)
        lookup = {name: index for index, name in enumerate(class_names)}
        indices = []
        for _, filename, label in entries:
            index = lookup.get(label)
            if index is None:
                number = _parse_int(label)
                if number is not None and 0 <= number < len(class_names):
                    index = number
            if index is None:
                problems.append(
                    f"{filename}: unknown label {label!r} "
                    f"(classes: {', '.join(class_names)})"
                )
                index = -1
            indices.append(index)
        return np.array(indices, dtype=np.int64), class_names

    numbers = [_parse_int(text) for text in texts]
    integer_rows = [
        index for index, number in enumerate(numbers) if number is not None
    ]
    if len(integer_rows) == len(texts):
        for (_, filename, _), number in zip(entries, numbers):
            if number < 0:
                problems.append(f"{filename}: negative label in {labels_csv}")
        top = max(numbers, default=-1)
        names = tuple(str(index) for index in range(top + 1))
        return np.array(numbers, dtype=np.int64), names
    if integer_rows:
        _, number_file, number_text = entries[integer_rows[0]]
        _, name_file, name_text = next(
            entry for entry, number in zip(entries, numbers) if number is None
        )
        problems.append(
            f"{labels_csv}: labels mix integers and class names "
            f"({number_file} has {number_text!r}, {name_file} has "
            f"{name_text!r}); use one kind, or pass class_names"
        )
    names = tuple(sorted(set(texts)))
    _check_label_spellings(entries, names, labels_csv, problems)
    lookup = {name: index for index, name in enumerate(names)}
    return np.array([lookup[text] for text in texts], dtype=np.int64), names


def _check_label_spellings(entries, names, labels_csv, problems):
    """Records class names that differ only in letter case ("Cat", "cat"):
    almost surely one class typed two ways, which would train as two."""
    spellings = {}
    for name in names:
        spellings.setdefault(name.casefold(), []).append(name)
    for variants in spellings.values():
        if len(variants) < 2:
            continue
        examples = []
        for variant in variants:
            filename = next(file for _, file, label in entries
                            if label == variant)
            examples.append(f"{variant!r} ({filename})")
        problems.append(
            f"{labels_csv}: labels {', '.join(examples)} differ only in "
            "letter case and would be separate classes; spell each class "
            "one way"
        )


def _find_mask(masks_dir, filename):
    """Returns (mask path or None, problem text or None)."""
    exact = masks_dir / filename
    if exact.is_file():
        return exact, None
    stem = Path(filename).with_suffix("")
    matches = [
        masks_dir / stem.with_suffix(extension)
        for extension in MASK_EXTENSIONS
        if (masks_dir / stem.with_suffix(extension)).is_file()
    ]
    if len(matches) == 1:
        return matches[0], None
    if len(matches) > 1:
        return None, (
            f"{filename}: several possible masks "
            f"({', '.join(path.name for path in matches)}) in {masks_dir}"
        )
    return None, (
        f"{filename}: no mask in {masks_dir} (looked for {filename} and "
        f"{stem.name} with {', '.join(MASK_EXTENSIONS)})"
    )


def _read(reader, path, problems):
    """`reader(path)`, or None after recording why the file is unusable."""
    try:
        return reader(path)
    except (ImageReadError, FileNotFoundError) as error:
        problems.append(f"{path}: unreadable or corrupt image ({error})")
    except MaskValueError as error:
        problems.append(f"{path}: {error}")
    return None


def _check_pair(image_path, mask_path, problems, channels=None):
    """Reads one image and its mask (`image_files.read_image` and
    `read_mask`, as training does).

    Returns:
        `(pixels, mask)`: float32 `(H, W, C)` in [0, 1] (C = `channels`, or
        as stored) and uint8 `(H, W)` 0/1; or `(None, None)` after
        recording the problems.
    """
    image = _read(lambda path: read_image(path, channels), image_path,
                  problems)
    mask = _read(read_mask, mask_path, problems)
    if image is None or mask is None:
        return None, None
    if image.shape[:2] != mask.shape:
        image_height, image_width = image.shape[:2]
        mask_height, mask_width = mask.shape
        problems.append(
            f"{image_path}: size {image_width}x{image_height} "
            f"(width x height) but its mask {mask_path} is "
            f"{mask_width}x{mask_height}"
        )
        return None, None
    return image, mask


def _index_entries(images_dir, masks_dir, labels_csv, class_names, problems):
    """Shared first half: CSV, labels and file existence."""
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder, role in ((images_dir, "images"), (masks_dir, "masks")):
        if not folder.is_dir():
            raise FolderDatasetError([f"{folder}: {role} folder not found"])
    entries = _read_labels_csv(labels_csv, problems)
    labels, names = _resolve_labels(entries, class_names, labels_csv, problems)
    pairs = []
    for (_, filename, _), label in zip(entries, labels):
        image_path = images_dir / filename
        if not image_path.is_file():
            problems.append(
                f"{filename}: listed in {labels_csv} but not found in "
                f"{images_dir}"
            )
            continue
        mask_path, problem = _find_mask(masks_dir, filename)
        if problem:
            problems.append(problem)
            continue
        pairs.append((image_path, mask_path, label))
    return pairs, names


def scan_folder_dataset(images_dir, masks_dir, labels_csv, class_names=None):
    """Validates a folder dataset; returns its file list, keeping no pixels.

    Every image and mask is decoded once to check it (readable, same size,
    binary mask), then released; use the result to read files lazily, e.g.
    in a `tf.data` pipeline.

    Args:
        images_dir: str or Path. Folder of the images.
        masks_dir: str or Path. Folder of the masks; a mask has the image's
            file name, or its stem with one of `MASK_EXTENSIONS`.
        labels_csv: str or Path. CSV with a header containing `filename`
            and `label` (other columns ignored). `filename` is relative to
            `images_dir`. Labels are all integers >= 0 or all class names.
        class_names: sequence of str or None. Fixes the class order; labels
            must then be one of these names or an index into them.
            Defaults to None (integers as given, names sorted).

    Returns:
        A `FolderIndex` (paths, int64 labels, class names, image sizes,
        which masks mark any foreground).

    Raises:
        FolderDatasetError: (a `ValueError`) listing every problem found,
            each naming its file: missing image or mask, unreadable or
            corrupt file, image/mask size mismatch, non-binary mask, empty
            or unknown label, class names differing only in letter case,
            duplicate row, missing header.

    Example:

    >>> index = scan_folder_dataset(
    ...     "images", "masks", "labels.csv")  # doctest: +SKIP
    >>> index.class_names, len(index.image_paths)  # doctest: +SKIP
    (('cat', 'dog'), 120)
    """
    problems = []
    pairs, names = _index_entries(
        images_dir, masks_dir, labels_csv, class_names, problems
    )
    sizes, foreground = [], []
    for image_path, mask_path, _ in pairs:
        image, mask = _check_pair(image_path, mask_path, problems)
        sizes.append(None if image is None else image.shape[:2])
        foreground.append(mask is not None and bool(mask.any()))
    if problems:
        raise FolderDatasetError(problems)
    return FolderIndex(
        image_paths=tuple(path for path, _, _ in pairs),
        mask_paths=tuple(path for _, path, _ in pairs),
        labels=np.array([label for _, _, label in pairs], dtype=np.int64),
        class_names=names,
        image_sizes=tuple(sizes),
        mask_has_foreground=np.array(foreground, dtype=bool),
    )


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
        images_dir, masks_dir, labels_csv, class_names, problems
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
        mask_image = Image.fromarray(mask * 255)
        if target is not None and size != target:
            image = resize_image(image, target)
            mask_image = mask_image.resize(
                (target[1], target[0]), Image.Resampling.NEAREST
            )
        images.append(image)
        masks.append((np.asarray(mask_image) > 0).astype(np.float32)[..., None])
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
