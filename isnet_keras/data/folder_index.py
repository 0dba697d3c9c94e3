"""Reads and validates a folder dataset's files: the labels CSV, each image's
mask, and every image/mask pair, without keeping any pixels.

`scan_folder_dataset` returns a `FolderIndex` (paths, labels, class names,
image sizes) or raises one `FolderDatasetError` listing every problem found,
each line naming its file. The layout is described in
`isnet_keras.data.folders`; files are read by `isnet_keras.data.image_files`,
as in training.
"""

import csv
import dataclasses
from pathlib import Path

import numpy as np

from isnet_keras.data.boxes import (BoxFileError, box_mask, expand_boxes,
                                    read_boxes_csv)
from isnet_keras.data.image_files import (ImageReadError, MaskValueError,
                                          read_image, read_mask)

# Tried in this order when no mask has the image's exact file name.
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")
CSV_COLUMNS = ("filename", "label")
# The mask value of an image without annotation (`partial_masks=True`).
UNANNOTATED = -1
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
        mask_paths: tuple of Path, the mask file of each image; None for
            an image without one (its mask comes from `mask_boxes`, or, if
            none, it is unannotated).
        labels: int64 array (N,), indices into `class_names`.
        class_names: tuple of str.
        image_sizes: tuple of (height, width), each image's size on disk.
        mask_has_foreground: bool array (N,): whether each mask marks at
            least one foreground pixel (an empty mask leaves its image out
            of the heatmap loss). None when not known.
        annotated: bool array (N,): whether each image has a mask (a file
            or boxes); with `partial_masks`, the others train on
            cross-entropy only. None when not known (all annotated).
        mask_boxes: tuple with, per image, an int64 `(n, 4)` array of its
            boxes `x0, y0, x1, y1` (margin added, clipped to the image),
            or None (a mask file, or no annotation). None without boxes.
    """

    image_paths: tuple
    mask_paths: tuple
    labels: np.ndarray
    class_names: tuple
    image_sizes: tuple
    mask_has_foreground: np.ndarray = None
    annotated: np.ndarray = None
    mask_boxes: tuple = None


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

    `mask_path` may also be None (no annotation: the mask is
    `UNANNOTATED` everywhere) or a `_Boxes` (the mask of its boxes).

    Returns:
        `(pixels, mask)`: float32 `(H, W, C)` in [0, 1] (C = `channels`, or
        as stored) and int8 `(H, W)` 0/1 (or all -1); or `(None, None)`
        after recording the problems.
    """
    image = _read(lambda path: read_image(path, channels), image_path,
                  problems)
    if image is None:
        if not isinstance(mask_path, Path):
            return None, None
        # The mask is still checked, so that its problems are listed too.
        _read(read_mask, mask_path, problems)
        return None, None
    if mask_path is None:
        return image, np.full(image.shape[:2], UNANNOTATED, np.int8)
    if isinstance(mask_path, _Boxes):
        try:
            mask_path.expanded = expand_boxes(
                mask_path.boxes, image.shape[:2], mask_path.margin,
                name=str(image_path))
        except BoxFileError as error:
            problems.extend(error.problems)
            return None, None
        return image, box_mask(mask_path.expanded, image.shape[:2]).astype(
            np.int8)
    mask = _read(read_mask, mask_path, problems)
    if mask is None:
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


@dataclasses.dataclass
class _Boxes:
    """The boxes of one image, in place of its mask file."""

    boxes: list
    margin: int
    expanded: np.ndarray = None


def _index_entries(images_dir, masks_dir, labels_csv, class_names, problems,
                   partial_masks=False, boxes=None, box_margin=0):
    """Shared first half: CSV, labels and file existence.

    Returns `(pairs, names)`: `(image path, mask, label)` triples, where
    the mask is a Path, a `_Boxes` or None (unannotated), and the class
    names.
    """
    images_dir = Path(images_dir)
    masks_dir = None if masks_dir is None else Path(masks_dir)
    folders = [(images_dir, "images")]
    if boxes is None and not (partial_masks and (
            masks_dir is None or not masks_dir.exists())):
        folders.append((masks_dir, "masks"))
    for folder, role in folders:
        if folder is None or not folder.is_dir():
            raise FolderDatasetError([f"{folder}: {role} folder not found"])
    box_rows = None
    if boxes is not None:
        try:
            box_rows = read_boxes_csv(boxes)
        except BoxFileError as error:
            raise FolderDatasetError(error.problems) from None
        except FileNotFoundError:
            raise FolderDatasetError([f"{boxes}: boxes file not found"]) \
                from None
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
        if box_rows is not None:
            if filename in box_rows:
                pairs.append((image_path, _Boxes(box_rows[filename],
                                                 box_margin), label))
            elif partial_masks:
                pairs.append((image_path, None, label))
            else:
                problems.append(
                    f"{filename}: no box in {boxes} (pass partial_masks / "
                    "--partial-masks to train it on cross-entropy only)")
            continue
        if masks_dir is None or not masks_dir.is_dir():
            pairs.append((image_path, None, label))
            continue
        mask_path, problem = _find_mask(masks_dir, filename)
        if problem and mask_path is None and partial_masks and \
                "no mask in" in problem:
            pairs.append((image_path, None, label))
            continue
        if problem:
            problems.append(problem)
            continue
        pairs.append((image_path, mask_path, label))
    if box_rows is not None:
        listed = {filename for _, filename, _ in entries}
        for filename, rows in box_rows.items():
            if filename not in listed:
                problems.append(
                    f"{boxes}, line {rows[0].line}: {filename} is not "
                    f"listed in {labels_csv}")
    return pairs, names


def scan_folder_dataset(images_dir, masks_dir, labels_csv, class_names=None,
                        partial_masks=False, boxes=None, box_margin=0):
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
        partial_masks: bool. Accept images without a mask (no mask file,
            or no row in `boxes`): their mask is -1 everywhere and they
            train on cross-entropy only. Defaults to False (a missing mask
            is an error).
        boxes: str, Path or None. A boxes CSV (`isnet_keras.data.boxes`)
            whose boxes make the masks instead of `masks_dir`'s files.
            Defaults to None.
        box_margin: int >= 0. Pixels added around every box, clipped to
            the image. Defaults to 0.

    Returns:
        A `FolderIndex` (paths, int64 labels, class names, image sizes,
        which masks mark any foreground, which images are annotated).

    Raises:
        FolderDatasetError: (a `ValueError`) listing every problem found,
            each naming its file: missing image or mask, unreadable or
            corrupt file, image/mask size mismatch, non-binary mask, empty
            or unknown label, class names differing only in letter case,
            duplicate row, missing header; with `boxes`, malformed box
            rows and boxes outside their image.

    Example:

    >>> index = scan_folder_dataset(
    ...     "images", "masks", "labels.csv")  # doctest: +SKIP
    >>> index.class_names, len(index.image_paths)  # doctest: +SKIP
    (('cat', 'dog'), 120)
    """
    problems = []
    pairs, names = _index_entries(
        images_dir, masks_dir, labels_csv, class_names, problems,
        partial_masks=partial_masks, boxes=boxes, box_margin=box_margin,
    )
    sizes, foreground = [], []
    for image_path, mask_path, _ in pairs:
        image, mask = _check_pair(image_path, mask_path, problems)
        sizes.append(None if image is None else image.shape[:2])
        foreground.append(mask is not None and bool((mask == 1).any()))
    if problems:
        raise FolderDatasetError(problems)
    return FolderIndex(
        image_paths=tuple(path for path, _, _ in pairs),
        mask_paths=tuple(path if isinstance(path, Path) else None
                         for _, path, _ in pairs),
        labels=np.array([label for _, _, label in pairs], dtype=np.int64),
        class_names=names,
        image_sizes=tuple(sizes),
        mask_has_foreground=np.array(foreground, dtype=bool),
        annotated=np.array([path is not None for _, path, _ in pairs],
                           dtype=bool),
        mask_boxes=None if boxes is None else tuple(
            path.expanded if isinstance(path, _Boxes) else None
            for _, path, _ in pairs),
    )
