"""Counterfactual images for a shortcut audit: same object, other background.

A classifier that ignores the background gives the same answer whatever
surrounds the object. These NumPy/SciPy helpers build the two backgrounds
`isnet_keras.audit()` shows a classifier:

* `swap_background`: the object pasted onto the background of another image
  (the donor), whose own object was first erased by `fill_foreground`, so
  that only the donor's background, with whatever cue it holds, remains.
* `neutral_background`: the object on one flat colour, the mean background
  colour of the whole image set. A flat colour holds no localized cue at
  all, where a heavy blur of the image's own background still leaves a
  faint blob where a high-contrast marker or patch was; and one colour for
  every image, rather than each image's own mean, carries no information
  about any single image (an image's mean brightness can itself encode the
  class, e.g. a larger background marker raises it).

Every function takes images `(H, W, C)` or `(N, H, W, C)` and binary masks of
the same spatial size with 1 = foreground; foreground pixels are copied
unchanged, so the object seen by the classifier is exactly the original one.

Example:

```python
from isnet_keras.data.counterfactuals import make_counterfactuals

images_cf = make_counterfactuals(images, masks, labels, seed=0)
classifier.predict(images_cf.swapped)   # donor backgrounds
classifier.predict(images_cf.neutral)   # flat background
```
"""

import dataclasses

import numpy as np
from scipy import ndimage

# Standard deviation (pixels) of the blur that smooths an erased object's
# region after the nearest-background fill, which leaves streaks along the
# lines where the nearest background pixel changes. One pixel smooths them
# without spreading the surrounding background's own details far.
FILL_BLUR_SIGMA = 1.0


@dataclasses.dataclass(frozen=True)
class Counterfactuals:
    """The counterfactual images of an image set.

    Attributes:
        swapped: float32 array (N, H, W, C). Image i's foreground on the
            (object-erased) background of image `donors[i]`.
        neutral: float32 array (N, H, W, C). Image i's foreground on the
            flat colour `neutral_colour`.
        donors: int64 array (N,). The donor index of every image; its label
            differs from the image's.
        neutral_colour: float32 array (C,). Mean background colour of the
            image set.
    """

    swapped: np.ndarray
    neutral: np.ndarray
    donors: np.ndarray
    neutral_colour: np.ndarray


def fill_foreground(image, mask, blur_sigma=FILL_BLUR_SIGMA):
    """Erases the object of one image by filling it from its surroundings.

    Every foreground pixel takes the value of the nearest background pixel
    (Euclidean distance, `scipy.ndimage.distance_transform_edt`); the filled
    region is then blurred lightly, so that it reads as background rather
    than as streaks. Background pixels keep their values.

    Args:
        image: array (H, W, C).
        mask: binary array (H, W) or (H, W, 1), 1 = foreground. At least one
            background pixel is needed to fill from.
        blur_sigma: float >= 0. Gaussian blur (pixels) inside the filled
            region; 0 keeps the plain nearest-pixel fill. Defaults to
            `FILL_BLUR_SIGMA`.

    Returns:
        float32 array (H, W, C) whose foreground region holds only values
        taken from, and smoothed between, the image's background.

    Raises:
        ValueError: the mask has no background pixel or does not fit.

    Example:

    >>> image = np.zeros((5, 5, 1), np.float32); image[2, 2] = 1.0
    >>> mask = np.zeros((5, 5)); mask[2, 2] = 1
    >>> float(fill_foreground(image, mask)[2, 2, 0])
    0.0
    """
    image = np.asarray(image, dtype=np.float32)
    foreground = _spatial_mask(mask, image.shape)
    if foreground.all():
        raise ValueError(
            "fill_foreground: the mask covers the whole image, so there is "
            "no background to fill the object from."
        )
    if not foreground.any():
        return image.copy()
    # distance_transform_edt measures the distance to the nearest zero;
    # with the background as zeros, `nearest` points every foreground pixel
    # at its closest background pixel.
    nearest = ndimage.distance_transform_edt(
        foreground, return_distances=False, return_indices=True
    )
    filled = image[nearest[0], nearest[1]]
    if blur_sigma > 0:
        blurred = ndimage.gaussian_filter(
            filled, sigma=(blur_sigma, blur_sigma, 0), mode="nearest"
        )
        filled = np.where(foreground[..., None], blurred, filled)
    return filled.astype(np.float32)


def swap_background(image, mask, donor_image, donor_mask,
                    blur_sigma=FILL_BLUR_SIGMA):
    """Pastes one image's foreground onto another image's background.

    The donor's own object is erased first (`fill_foreground`), so none of
    its pixels leak into the result.

    Args:
        image: array (H, W, C) whose foreground is kept.
        mask: binary array (H, W) or (H, W, 1) of `image`, 1 = foreground.
        donor_image: array (H, W, C) whose background is used.
        donor_mask: binary array (H, W) or (H, W, 1) of `donor_image`.
        blur_sigma: float >= 0. Blur of the donor's erased region. Defaults
            to `FILL_BLUR_SIGMA`.

    Returns:
        float32 array (H, W, C): `image` where `mask` is 1, the donor's
        object-erased background elsewhere.

    Example:

    ```python
    swapped = swap_background(images[0], masks[0], images[7], masks[7])
    ```
    """
    image = np.asarray(image, dtype=np.float32)
    donor_image = np.asarray(donor_image, dtype=np.float32)
    if donor_image.shape != image.shape:
        raise ValueError(
            f"swap_background: the donor image has shape {donor_image.shape} "
            f"but the image has shape {image.shape}."
        )
    foreground = _spatial_mask(mask, image.shape)
    background = fill_foreground(donor_image, donor_mask, blur_sigma)
    return np.where(foreground[..., None], image, background)


def neutral_background(image, mask, colour):
    """Replaces an image's background by one flat colour.

    Args:
        image: array (H, W, C) whose foreground is kept.
        mask: binary array (H, W) or (H, W, 1), 1 = foreground.
        colour: float, or array (C,): the background value per channel.

    Returns:
        float32 array (H, W, C): `image` where `mask` is 1, `colour`
        elsewhere.

    Example:

    >>> image = np.ones((2, 2, 1)); mask = np.array([[1, 0], [0, 0]])
    >>> neutral_background(image, mask, 0.5)[..., 0].tolist()
    [[1.0, 0.5], [0.5, 0.5]]
    """
    image = np.asarray(image, dtype=np.float32)
    foreground = _spatial_mask(mask, image.shape)
    colour = np.broadcast_to(
        np.asarray(colour, dtype=np.float32), image.shape[-1:]
    )
    return np.where(foreground[..., None], image, colour).astype(np.float32)


def mean_background_colour(images, masks):
    """Mean value of every channel over all background pixels of a set.

    Args:
        images: array (N, H, W, C).
        masks: binary array (N, H, W) or (N, H, W, 1), 1 = foreground.

    Returns:
        float32 array (C,).

    Raises:
        ValueError: no image has a background pixel.

    Example:

    >>> images = np.stack([np.full((2, 2, 1), 0.2), np.full((2, 2, 1), 0.4)])
    >>> float(mean_background_colour(images, np.zeros((2, 2, 2)))[0])
    0.3
    """
    images = np.asarray(images, dtype=np.float32)
    background = ~_spatial_masks(masks, images.shape)
    if not background.any():
        raise ValueError(
            "mean_background_colour: every mask covers its whole image; "
            "there is no background pixel."
        )
    # float64 sums: float32 drifts over millions of pixels.
    return images[background].astype(np.float64).mean(axis=0).astype(
        np.float32
    )


def choose_donors(labels, seed=0):
    """Picks, for every image, a random image of another class.

    Args:
        labels: int array (N,) with at least two distinct classes.
        seed: int. Seed of the NumPy generator. Defaults to 0.

    Returns:
        int64 array (N,): `donors[i]` is an index with
        `labels[donors[i]] != labels[i]`, drawn uniformly among those.

    Raises:
        ValueError: fewer than two classes are present.

    Example:

    >>> donors = choose_donors(np.array([0, 0, 1, 2]), seed=0)
    >>> bool(np.all(np.array([0, 0, 1, 2])[donors] != [0, 0, 1, 2]))
    True
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(
            "choose_donors needs images of at least 2 classes to swap "
            f"backgrounds between; all images are of class {classes.tolist()}."
        )
    # The modulo maps negative seeds onto the non-negative ones NumPy takes.
    rng = np.random.default_rng(seed % 2**32)
    donors = np.empty(len(labels), dtype=np.int64)
    for label in classes:
        members = np.flatnonzero(labels == label)
        others = np.flatnonzero(labels != label)
        donors[members] = others[rng.integers(len(others), size=len(members))]
    return donors


def make_counterfactuals(images, masks, labels, seed=0,
                         blur_sigma=FILL_BLUR_SIGMA):
    """Builds the swapped and neutral version of every image of a set.

    Args:
        images: array (N, H, W, C).
        masks: binary array (N, H, W) or (N, H, W, 1), 1 = foreground; each
            needs a background pixel.
        labels: int array (N,) with at least two classes.
        seed: int. Seed of the donor choice. Defaults to 0.
        blur_sigma: float >= 0. Blur of each donor's erased object.
            Defaults to `FILL_BLUR_SIGMA`.

    Returns:
        A `Counterfactuals`.

    Example:

    ```python
    images_cf = make_counterfactuals(images, masks, labels, seed=0)
    images_cf.swapped.shape == images.shape   # True
    ```
    """
    images = np.asarray(images, dtype=np.float32)
    foregrounds = _spatial_masks(masks, images.shape)
    donors = choose_donors(labels, seed)
    backgrounds = {}  # one erased background per donor, reused
    swapped = np.empty_like(images)
    for index, donor in enumerate(donors):
        if donor not in backgrounds:
            backgrounds[donor] = fill_foreground(
                images[donor], foregrounds[donor], blur_sigma
            )
        swapped[index] = np.where(
            foregrounds[index][..., None], images[index], backgrounds[donor]
        )
    colour = mean_background_colour(images, foregrounds)
    neutral = np.where(foregrounds[..., None], images, colour)
    return Counterfactuals(
        swapped=swapped,
        neutral=neutral.astype(np.float32),
        donors=donors,
        neutral_colour=colour,
    )


def _spatial_mask(mask, image_shape):
    """A boolean (H, W) mask from (H, W) or (H, W, 1), checked against the
    image's (H, W, C)."""
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.shape != tuple(image_shape[:2]) or len(image_shape) != 3:
        raise ValueError(
            f"The mask has shape {np.shape(mask)} but the image has shape "
            f"{tuple(image_shape)}; a mask must be (H, W) or (H, W, 1)."
        )
    return array.astype(bool)


def _spatial_masks(masks, images_shape):
    """A boolean (N, H, W) mask array from (N, H, W) or (N, H, W, 1)."""
    array = np.asarray(masks)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.shape != tuple(images_shape[:3]) or len(images_shape) != 4:
        raise ValueError(
            f"The masks have shape {np.shape(masks)} but the images have "
            f"shape {tuple(images_shape)}; masks must be (N, H, W) or "
            "(N, H, W, 1)."
        )
    return array.astype(bool)
