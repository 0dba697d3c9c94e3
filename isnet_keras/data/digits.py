"""scikit-learn's 8x8 digits, laid out like MNIST: an offline substitute.

The 1,797 images ship inside scikit-learn, so this works with no download.
They are smaller and easier than MNIST; use them for smoke tests and demos,
not for numbers to compare with the literature.
"""

import numpy as np
from PIL import Image

from isnet_keras.data.mnist import LoadedDigits

DIGITS_INK_MAX = 16  # sklearn digits count ink in 0..16 per 4x4 block.
DIGITS_BOX = 20  # MNIST centres each digit in a 20x20 box ...
DIGITS_MARGIN = 4  # ... with a 4-pixel empty border, for 28x28 in all.


def upscale_digit(image_8x8):
    """Turns one 8x8 sklearn digit (0..16) into a 28x28 uint8 MNIST-like image.

    The 8x8 grid is scaled to 0..255, resized to 20x20 with Pillow's bilinear
    filter (`Image.Resampling.BILINEAR`, on float pixels), rounded, and padded
    with a 4-pixel zero border, as MNIST centres digits in a 20x20 box. The
    border keeps the digit clear of the DecoyMNIST corner patches.

    Args:
        image_8x8: array-like (8, 8), values 0..16.

    Returns:
        uint8 array (28, 28).

    Example:

    >>> upscale_digit(np.full((8, 8), 16)).shape
    (28, 28)
    """
    grid = np.asarray(image_8x8, dtype=np.float32) * (255.0 / DIGITS_INK_MAX)
    resized = Image.fromarray(grid, mode="F").resize(
        (DIGITS_BOX, DIGITS_BOX), resample=Image.Resampling.BILINEAR
    )
    box = np.clip(np.rint(np.asarray(resized)), 0, 255).astype(np.uint8)
    return np.pad(box, DIGITS_MARGIN)


def load_digits_28():
    """Loads scikit-learn's digits as 28x28 uint8 images (offline).

    See `upscale_digit` for the resizing: bilinear 8x8 -> 20x20, then a
    4-pixel zero border. Background pixels stay exactly 0, so masks made with
    "pixel > 0" work as for MNIST.

    Returns:
        A `LoadedDigits(images, labels, source="digits", location=...)`:
        uint8 (1797, 28, 28) and uint8 (1797,).

    Example:

    >>> data = load_digits_28()
    >>> data.images.shape, data.images.dtype.name, data.source
    ((1797, 28, 28), 'uint8', 'digits')
    """
    # Imported here: scikit-learn takes about a second to import.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.stack([upscale_digit(image) for image in bunch.images])
    labels = bunch.target.astype(np.uint8)
    location = "sklearn.datasets.load_digits"
    return LoadedDigits(images, labels, "digits", location)
