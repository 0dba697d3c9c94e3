"""Foreground-mask helpers in NumPy: binary check, dilation, resizing.

Masks follow the project convention (docs/algorithm.md, "Conventions"):
1 = foreground, 0 = background, channels-last. These helpers prepare and
validate masks on the host, before any tensor exists; the heatmap losses
repeat the binary check inside the graph.
"""

import numpy as np


def check_binary_mask(mask, name="mask"):
    """Raises `ValueError` unless every value of `mask` is exactly 0 or 1.

    Args:
        mask: array-like. Any shape, any numeric or boolean dtype.
        name: str. What to call the array in the error message (a file
            name, a set name). Defaults to `"mask"`.

    Returns:
        The input as a NumPy array, unchanged.

    Example:

    >>> check_binary_mask(np.array([[0.0, 1.0]])).shape
    (1, 2)
    >>> check_binary_mask(np.array([0.5]), name="a.png")
    Traceback (most recent call last):
    ...
    ValueError: non-binary mask a.png: values must be exactly 0 or 1, found 0.5
    """
    array = np.asarray(mask)
    if array.dtype == bool:
        return array
    # NaN is neither 0 nor 1, so `isin` rejects it as well.
    is_binary = np.isin(array, (0, 1))
    if not is_binary.all():
        offending = np.unique(array[~is_binary])[:5]
        shown = ", ".join(f"{value:g}" for value in offending.tolist())
        raise ValueError(
            f"non-binary mask {name}: values must be exactly 0 or 1, "
            f"found {shown}"
        )
    return array


def _spatial_axes(ndim):
    """Returns the (row, column) axes of a (H, W) or (..., H, W, C) array."""
    if ndim == 2:
        return 0, 1
    if ndim >= 3:
        return ndim - 3, ndim - 2
    raise ValueError(
        "a mask needs at least 2 dimensions, (H, W) or (..., H, W, C); "
        f"received {ndim}"
    )


def dilate_mask(mask, iterations=1):
    """Binary dilation with a 3x3 square (8-neighbourhood), zero-padded.

    A pixel becomes foreground when it or any of its 8 neighbours is
    foreground. Pixels beyond the border count as background, so dilation
    never wraps around the image.

    Args:
        mask: array-like of 0/1 or bool, shape (H, W) or (..., H, W, C).
        iterations: int >= 0. How many times to dilate. Defaults to 1.

    Returns:
        A bool array of the input's shape.

    Example:

    >>> dilate_mask(np.eye(3, dtype=bool)[:1]).astype(int)
    array([[1, 1, 0]])
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0; received {iterations}")
    grown = np.asarray(mask) != 0
    row_axis, col_axis = _spatial_axes(grown.ndim)
    height, width = grown.shape[row_axis], grown.shape[col_axis]
    for _ in range(iterations):
        padding = [(0, 0)] * grown.ndim
        padding[row_axis] = (1, 1)
        padding[col_axis] = (1, 1)
        padded = np.pad(grown, padding)
        result = np.zeros_like(grown)
        for row_shift in range(3):
            for col_shift in range(3):
                window = [slice(None)] * grown.ndim
                window[row_axis] = slice(row_shift, row_shift + height)
                window[col_axis] = slice(col_shift, col_shift + width)
                result |= padded[tuple(window)]
        grown = result
    return grown


def _any_foreground_matrix(size_in, size_out):
    """Returns a (size_out, size_in) 0/1 matrix: which inputs feed each output.

    Shrinking (size_out <= size_in) uses adaptive-pooling bins: output i covers
    inputs [floor(i * in / out), ceil((i + 1) * in / out)). Growing uses
    nearest neighbour: output i reads input floor(i * in / out).
    """
    outputs = np.arange(size_out)
    selection = np.zeros((size_out, size_in), dtype=np.float64)
    if size_out > size_in:
        selection[outputs, (outputs * size_in) // size_out] = 1.0
        return selection
    starts = (outputs * size_in) // size_out
    # Integer ceiling of (i + 1) * in / out.
    stops = -((-(outputs + 1) * size_in) // size_out)
    columns = np.arange(size_in)
    selection[(columns >= starts[:, None]) & (columns < stops[:, None])] = 1.0
    return selection


def resize_mask(mask, size):
    """Resizes a binary mask; any foreground in a bin gives 1.

    The rule of docs/algorithm.md, "Masks and numerical safety".

    Each output pixel covers an adaptive-average-pooling bin of the input
    (rows [floor(iH/h), ceil((i+1)H/h)), same for columns); it is 1 when that
    bin holds any foreground, i.e. when the bin average is > 0. Along an axis
    that grows (h > H), nearest neighbour is used instead. The result is
    always exactly 0/1, so a thin foreground structure never disappears when
    the mask is shrunk to a coarse feature map.

    Args:
        mask: array-like of 0/1 values, shape (H, W) or (..., H, W, C).
        size: tuple `(h, w)` of positive ints, the output spatial size.

    Returns:
        A float32 array with the spatial axes resized to (h, w).

    Example:

    >>> small = np.zeros((4, 4)); small[3, 0] = 1
    >>> resize_mask(small, (2, 2))
    array([[0., 0.],
           [1., 0.]], dtype=float32)
    """
    target_height, target_width = (int(value) for value in size)
    if target_height <= 0 or target_width <= 0:
        raise ValueError(f"size must be two positive ints; received {size}")
    binary = check_binary_mask(mask).astype(np.float64)
    row_axis, col_axis = _spatial_axes(binary.ndim)
    rows = _any_foreground_matrix(binary.shape[row_axis], target_height)
    cols = _any_foreground_matrix(binary.shape[col_axis], target_width)
    # Move the spatial axes last, apply rows @ m @ cols.T, move them back.
    moved = np.moveaxis(binary, (row_axis, col_axis), (-2, -1))
    pooled = rows @ moved @ cols.T
    pooled = np.moveaxis(pooled, (-2, -1), (row_axis, col_axis))
    return (pooled > 0).astype(np.float32)
