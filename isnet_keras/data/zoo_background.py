"""Bias-zoo cues that fill the whole background: texture, brightness and
noise.

Each painter takes `(canvas, background, cue_classes, rng)` and returns
`(canvas, origins)` (see `isnet_keras.data.zoo_render.ZooFamily`), painting
the cue only where `background` is True (where the mask is 0). These cues
have no single place, so their origins are -1 and no region is cleared from
the masks.

NumPy only; importing this module does not import TensorFlow.
"""

import numpy as np

from isnet_keras.data.bias_layout import SHAPES_SIZE

# Texture: class k -> orientation 36 * (k mod 5) degrees, wavelength 4
# pixels (k < 5) or 8 pixels (k >= 5); values 0 to TEXTURE_AMPLITUDE.
TEXTURE_AMPLITUDE = 0.3
TEXTURE_ORIENTATIONS_DEG = (0.0, 36.0, 72.0, 108.0, 144.0)
TEXTURE_WAVELENGTHS = (4.0, 8.0)

# Brightness: class k -> background grey 0.05 + 0.05 k (0.05 to 0.5), dark
# enough that the white strokes stay clearly visible.
BRIGHTNESS_LEVELS = tuple(round(0.05 + 0.05 * k, 2) for k in range(10))

# Noise: class k -> Gaussian standard deviation 0.04 (k + 1).
NOISE_STDS = tuple(round(0.04 * (k + 1), 2) for k in range(10))


def _no_origin(count):
    """Returns the int64 (count, 2) origins of cues with no single place."""
    return np.full((count, 2), -1, dtype=np.int64)


def texture_layer(cue_class, size=SHAPES_SIZE):
    """Returns class `cue_class`'s grating, float32 (size, size) in [0, 0.3].

    value(row, col) = 0.3 * (1 + cos(2 pi (col cos t + row sin t) / w)) / 2
    with t and w the class's orientation and wavelength. The phase is fixed
    (0 at pixel (0, 0)), so two images of one class show the same pattern.

    Example:

    >>> [round(float(v), 2) for v in texture_layer(0)[0, :4]]  # 0 deg, 4 px
    [0.3, 0.15, 0.0, 0.15]
    """
    angle = np.deg2rad(TEXTURE_ORIENTATIONS_DEG[cue_class % 5])
    wavelength = TEXTURE_WAVELENGTHS[cue_class // 5]
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    phase = (cols * np.cos(angle) + rows * np.sin(angle)) / wavelength
    wave = 0.5 * (1.0 + np.cos(2.0 * np.pi * phase))
    return (TEXTURE_AMPLITUDE * wave).astype(np.float32)


def _paint_texture(canvas, background, cue_classes, rng):
    """A class-specific grating (orientation, wavelength), background only."""
    table = np.stack([texture_layer(k, canvas.shape[1]) for k in range(10)])
    painted = np.where(background, table[cue_classes], canvas)
    return painted, _no_origin(len(canvas))


def _paint_brightness(canvas, background, cue_classes, rng):
    """A uniform background grey whose level encodes the class."""
    levels = np.asarray(BRIGHTNESS_LEVELS, dtype=np.float32)[cue_classes]
    painted = np.where(background, levels[:, None, None], canvas)
    return painted, _no_origin(len(canvas))


def _paint_noise(canvas, background, cue_classes, rng):
    """Gaussian background noise whose standard deviation encodes the class.

    The standard normal draws do not depend on the class, so one seed gives
    the same noise field, only scaled, to every rendering of an image.
    """
    unit_noise = rng.standard_normal(canvas.shape).astype(np.float32)
    stds = np.asarray(NOISE_STDS, dtype=np.float32)[cue_classes]
    noise = np.clip(unit_noise * stds[:, None, None], 0.0, 1.0)
    painted = np.where(background, noise, canvas)
    return painted, _no_origin(len(canvas))


def _nothing_fixed():
    """Whole-background cues have no fixed place to clear from masks."""
    return np.zeros((SHAPES_SIZE, SHAPES_SIZE), dtype=bool)
