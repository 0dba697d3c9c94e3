"""The one reader of image and mask files.

Training (`pipeline.folder_dataset`), the folder checks and loader
(`folders`), `isnet evaluate` and `isnet predict` all read files here, so a
file gives the same pixels wherever it is read:

* images become float32 `(H, W, C)` in [0, 1], scaled by their bit depth
  (8-bit values / 255, 16-bit values / 65535), C = 1 for grey files and 3
  for colour ones (alpha dropped), or the channels asked for;
* masks become uint8 `(H, W)` 0/1: values {0, 1}, {0, 255} or, in a 16-bit
  file, {0, 65535}; colour masks must be grey (equal channels).

Pillow decodes every format. It keeps the full 16 bits of grey files; of
16-bit colour (and grey + alpha) PNGs it keeps the high byte, i.e. 8-bit
precision.
"""

import numpy as np
from PIL import Image, UnidentifiedImageError

# Pillow's modes of one 16-bit channel.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# Pillow raises these for unreadable, truncated or unsupported files.
_PILLOW_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError)


class ImageReadError(ValueError):
    """A file that cannot be decoded into pixels (the message names no
    file; callers add it)."""


class MaskValueError(ValueError):
    """A decoded mask that is not binary or not grey (the message names no
    file; callers add it)."""


def _open(path):
    """Opens and fully decodes an image file (a truncated one fails here).

    Raises:
        FileNotFoundError: no such file.
        ImageReadError: the file is not a readable image.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except FileNotFoundError:
        raise
    except _PILLOW_ERRORS as error:
        raise ImageReadError(str(error)) from error


def _decoded(image):
    """A Pillow image -> (array as stored, the value that means full scale).

    Grey files give `(H, W)`, colour ones `(H, W, 3)`; alpha is dropped.
    """
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        return np.asarray(image).astype(np.uint16), 65535
    if mode == "I":
        # 32-bit integers: how some Pillow versions open 16-bit files.
        array = np.asarray(image)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise ImageReadError(
                f"{mode!r} pixels outside 0..65535; save the image with 8 or "
                "16 bits per channel")
        return array.astype(np.uint16), 65535
    if mode == "F":
        raise ImageReadError(
            "floating-point pixels; save the image with 8 or 16 bits per "
            "channel")
    if mode in ("1", "L", "LA", "La"):
        return np.asarray(image.convert("L")), 255
    if mode == "P":
        # Transparency goes through RGBA (RGB would warn), then is dropped.
        image = image.convert("RGBA" if "transparency" in image.info
                              else "RGB")
    elif mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, PA, ...
    return np.asarray(image)[..., :3], 255


def _with_channels(array, channels):
    """Grey `(H, W)` or colour `(H, W, 3)` -> `(H, W, channels)`, the
    dtype kept (None: as stored)."""
    if array.ndim == 2:
        array = array[..., None]
    stored = array.shape[-1]
    if channels is None or channels == stored:
        return array
    if channels == 3:
        return np.repeat(array, 3, axis=-1)
    # Colour is 8-bit (Pillow keeps 8 bits of 16-bit colour files), so
    # Pillow's own "L" conversion serves, rounding included.
    return np.asarray(Image.fromarray(np.ascontiguousarray(array)).convert(
        "L"))[..., None]


def read_image(path, channels=None):
    """Reads an image file as float32 pixels in [0, 1].

    Args:
        path: str or Path of the file (any format Pillow reads).
        channels: 1, 3 or None. Grey files are repeated to RGB, colour ones
            reduced to grey by Pillow's "L" conversion (ITU-R 601 luma
            weights, rounded to 8 bits); None keeps 1 for grey files and 3
            for colour ones. Defaults to None.

    Returns:
        float32 array `(H, W, C)`: 8-bit values / 255, 16-bit values /
        65535.

    Raises:
        FileNotFoundError: no such file.
        ImageReadError: (a `ValueError`) the file is not a readable image.

    Example:

    >>> read_image("scan_16bit.png", channels=1).shape  # doctest: +SKIP
    (512, 512, 1)
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3; received {channels}")
    array, full_scale = _decoded(_open(path))
    array = _with_channels(array, channels)
    return array.astype(np.float32) / np.float32(full_scale)


def resize_image(pixels, size):
    """Resizes float pixels bilinearly, antialiased when shrinking.

    Args:
        pixels: float array `(H, W, C)` in [0, 1].
        size: `(height, width)`.

    Returns:
        float32 array `(height, width, C)` in [0, 1]; `pixels` itself at its
        own size.
    """
    height, width = (int(value) for value in size)
    if pixels.shape[:2] == (height, width):
        return pixels
    # Pillow's float ("F") images keep the precision of 16-bit files; its
    # bilinear filter widens with the reduction, so shrinking is
    # antialiased.
    planes = [
        np.asarray(Image.fromarray(np.ascontiguousarray(
            pixels[..., channel], np.float32)).resize(
                (width, height), Image.Resampling.BILINEAR))
        for channel in range(pixels.shape[-1])]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0)


def _mask_values(image):
    """A decoded mask image -> uint8 `(H, W)` 0/1.

    Args:
        image: A Pillow image.

    Returns:
        uint8 array `(H, W)`, 1 = foreground.

    Raises:
        MaskValueError: a colour mask, or values other than {0, 1},
            {0, 255} and (16-bit files) {0, 65535}.
    """
    mode = image.mode
    if mode == "1":
        return np.asarray(image).astype(np.uint8)
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        array, full_scale = np.asarray(image), 65535
    elif mode == "F":
        array, full_scale = np.asarray(image), 255
    else:
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info
                                  else "RGB")
        elif mode not in ("L", "LA", "La", "RGB", "RGBA"):
            image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, PA, ...
        array, full_scale = np.asarray(image), 255
        if array.ndim == 3:
            colour = array[..., :3] if array.shape[-1] >= 3 \
                else array[..., :1]
            if not (colour == colour[..., :1]).all():
                raise MaskValueError(
                    "mask has colours; save it as a grey image with 0 and 1 "
                    "(or 255)")
            array = colour[..., 0]
    values = np.unique(array)
    found = set(values.tolist())
    if found <= {0, 1}:
        return array.astype(np.uint8)
    if found <= {0, 255}:
        return (array == 255).astype(np.uint8)
    if full_scale == 65535 and found <= {0, 65535}:
        return (array == 65535).astype(np.uint8)
    accepted = "{0, 1} or {0, 255}" if full_scale == 255 else \
        "{0, 1}, {0, 255} or {0, 65535}"
    shown = ", ".join(f"{value:g}" for value in values[:6].tolist())
    raise MaskValueError(
        f"non-binary mask, values must be {accepted}; found "
        f"{shown}{' ...' if len(values) > 6 else ''}"
        " (a JPEG mask is lossy: save masks as PNG)")


def read_mask(path):
    """Reads a binary mask file.

    Args:
        path: str or Path of the file (PNG, BMP, TIFF, ...).

    Returns:
        uint8 array `(H, W)` of 0 and 1 (1 = foreground): stored values
        {0, 1}, {0, 255} or, in a 16-bit file, {0, 65535}.

    Raises:
        FileNotFoundError: no such file.
        ImageReadError: (a `ValueError`) the file is not a readable image.
        MaskValueError: (a `ValueError`) the mask is not grey and binary.

    Example:

    >>> read_mask("masks/a.png").max()  # doctest: +SKIP
    1
    """
    return _mask_values(_open(path))
