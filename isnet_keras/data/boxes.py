"""Bounding boxes as foreground masks.

A boxes CSV has the header `filename,x0,y0,x1,y1` and an optional `label`
column (kept, not used for the mask)::

    filename,x0,y0,x1,y1,label
    a.png,10,12,40,30,cat
    a.png,50,5,60,20,cat
    b.jpg,0,0,32,32,dog

Coordinates are whole pixels of the image file as stored: `x` counts
columns from the left edge, `y` rows from the top edge, both from 0. A box
covers columns `x0 <= x < x1` and rows `y0 <= y < y1` (`x1` and `y1`
exclusive, so a box's width is `x1 - x0`): the box `0,0,W,H` is the whole
`W`-wide, `H`-high image. An image may have several rows; its mask is the
union of its boxes. `filename` is relative to the images folder, as in
`labels.csv`.

A margin of `m` pixels widens each box by `m` on every side (to
`x0 - m <= x < x1 + m`), clipped to the image, so a loose box does not cut
off the object's edge.
"""

import csv
import dataclasses
from pathlib import Path

import numpy as np

BOX_COLUMNS = ("filename", "x0", "y0", "x1", "y1")

__all__ = [
    "BOX_COLUMNS",
    "BoxFileError",
    "box_mask",
    "expand_boxes",
    "read_boxes_csv",
]


class BoxFileError(ValueError):
    """A boxes CSV or a box that cannot become a mask.

    Attributes:
        problems: list of str, one per problem, each naming the file and
            line.
    """

    def __init__(self, problems):
        self.problems = list(problems)
        shown = "\n".join(f"  - {problem}" for problem in self.problems[:20])
        more = len(self.problems) - 20
        suffix = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the boxes:\n"
                         f"{shown}{suffix}")


@dataclasses.dataclass(frozen=True)
class Box:
    """One row of a boxes CSV.

    Attributes:
        x0, y0, x1, y1: int pixel coordinates (`x1`, `y1` exclusive).
        label: str or None, the optional `label` column.
        line: int, the row's line number in the CSV (for messages).
    """

    x0: int
    y0: int
    x1: int
    y1: int
    label: str = None
    line: int = 0


def _whole_number(text):
    """`int(text)` for whole numbers written as `12` or `12.0`, else None."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(value) or value != int(value):
        return None
    return int(value)


def read_boxes_csv(path):
    """Reads a boxes CSV into the boxes of each image.

    Args:
        path: str or Path of a CSV with header `filename,x0,y0,x1,y1`
            (and optionally `label`; other columns are ignored).

    Returns:
        dict: filename -> list of `Box`, in file order.

    Raises:
        BoxFileError: (a `ValueError`) every malformed row, each naming
            the file and line: a missing column or value, a coordinate that
            is not a whole number, a negative coordinate, `x1 <= x0` or
            `y1 <= y0`.
        FileNotFoundError: no such file.

    Example:

    >>> boxes = read_boxes_csv("boxes.csv")  # doctest: +SKIP
    >>> boxes["a.png"][0]  # doctest: +SKIP
    Box(x0=10, y0=12, x1=40, y1=30, label='cat', line=2)
    """
    path = Path(path)
    problems = []
    boxes = {}
    # utf-8-sig: spreadsheet programs often start the file with a BOM.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        columns = [name.strip().lower() for name in header or ()]
        missing = [name for name in BOX_COLUMNS if name not in columns]
        if missing:
            raise BoxFileError([
                f"{path}, line 1: the header must name the columns "
                f"{','.join(BOX_COLUMNS)}[,label]; missing "
                f"{', '.join(missing)}"])
        where = {name: columns.index(name) for name in BOX_COLUMNS}
        label_column = columns.index("label") if "label" in columns else None
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            box = _parse_row(row, where, label_column, f"{path}, line {line}",
                             problems)
            if box is not None:
                boxes.setdefault(row[where["filename"]].strip(), []).append(
                    dataclasses.replace(box, line=line))
    if problems:
        raise BoxFileError(problems)
    return boxes


def _parse_row(row, where, label_column, place, problems):
    """The `Box` of one CSV row, or None after recording its problem."""
    needed = max(where.values()) + 1
    if len(row) < needed:
        problems.append(f"{place}: {len(row)} value(s), expected at least "
                        f"{needed} ({','.join(BOX_COLUMNS)})")
        return None
    if not row[where["filename"]].strip():
        problems.append(f"{place}: empty filename")
        return None
    values = {}
    for name in BOX_COLUMNS[1:]:
        text = row[where[name]].strip()
        value = _whole_number(text)
        if value is None:
            problems.append(f"{place}: {name} is {text!r}, not a whole "
                            "number of pixels")
            return None
        if value < 0:
            problems.append(f"{place}: {name} is {value}; coordinates "
                            "start at 0")
            return None
        values[name] = value
    for low, high in (("x0", "x1"), ("y0", "y1")):
        if values[high] <= values[low]:
            problems.append(
                f"{place}: {high}={values[high]} must be greater than "
                f"{low}={values[low]} ({high} is exclusive)")
            return None
    label = None
    if label_column is not None and label_column < len(row):
        label = row[label_column].strip() or None
    return Box(label=label, **values)


def _as_array(boxes):
    """`(n, 4)` int64 `x0, y0, x1, y1` of `Box`es or of 4-sequences."""
    rows = [(box.x0, box.y0, box.x1, box.y1) if isinstance(box, Box)
            else tuple(box) for box in boxes]
    array = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    return array


def expand_boxes(boxes, image_size, margin=0, name="image"):
    """Checks boxes against an image size, widens them by `margin`, clips.

    Args:
        boxes: sequence of `Box` or `(x0, y0, x1, y1)`.
        image_size: `(height, width)` of the image, in pixels.
        margin: int >= 0. Pixels added on every side before clipping.
        name: what to call the image in messages (e.g. its file).

    Returns:
        int64 array `(n, 4)` of `x0, y0, x1, y1`, within the image.

    Raises:
        ValueError: a box that does not lie within the image (before the
            margin), `x1 <= x0` or `y1 <= y0`, or a negative margin.

    Example:

    >>> expand_boxes([(1, 1, 3, 2)], (4, 4), margin=1).tolist()
    [[0, 0, 4, 3]]
    """
    margin = _check_margin(margin)
    height, width = (int(value) for value in image_size)
    array = _as_array(boxes)
    problems = []
    for box, (x0, y0, x1, y1) in zip(boxes, array.tolist()):
        line = getattr(box, "line", 0)
        where = f"{name}" + (f" (boxes line {line})" if line else "")
        if x1 <= x0 or y1 <= y0:
            problems.append(f"{where}: box ({x0}, {y0}, {x1}, {y1}) needs "
                            "x1 > x0 and y1 > y0")
        elif x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            problems.append(
                f"{where}: box x {x0}..{x1}, y {y0}..{y1} lies outside the "
                f"{width}x{height} (width x height) image; x1 may be at "
                f"most {width} and y1 at most {height} (exclusive)")
    if problems:
        raise BoxFileError(problems)
    array = array + np.array([-margin, -margin, margin, margin])
    array[:, 0::2] = np.clip(array[:, 0::2], 0, width)
    array[:, 1::2] = np.clip(array[:, 1::2], 0, height)
    return array


def _check_margin(margin):
    if isinstance(margin, bool) or _whole_number(margin) is None or \
            int(margin) < 0:
        raise ValueError(f"margin must be a whole number of pixels >= 0; "
                         f"received {margin!r}")
    return int(margin)


def box_mask(boxes, image_size, margin=0, name="image"):
    """The binary mask of an image's boxes: 1 inside any box, 0 elsewhere.

    Args:
        boxes: sequence of `Box` or `(x0, y0, x1, y1)` (pixel coordinates,
            `x` right, `y` down, `x1`/`y1` exclusive).
        image_size: `(height, width)` of the image.
        margin: int >= 0. Pixels added on every side, clipped to the image.
            Defaults to 0.
        name: what to call the image in messages.

    Returns:
        uint8 array `(height, width)` of 0/1.

    Raises:
        ValueError: as `expand_boxes`.

    Example:

    >>> box_mask([(1, 0, 3, 2)], (3, 4))
    array([[0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]], dtype=uint8)
    """
    height, width = (int(value) for value in image_size)
    mask = np.zeros((height, width), dtype=np.uint8)
    for x0, y0, x1, y1 in expand_boxes(boxes, image_size, margin,
                                       name).tolist():
        mask[y0:y1, x0:x1] = 1
    return mask
