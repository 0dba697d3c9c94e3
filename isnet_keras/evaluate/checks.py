"""Input checks of evaluation and auditing, made before any model runs.

Each check either returns the input in the form the statistics use or
raises a `ValueError` that names the shapes or values at fault. The
classifier's own shape checks (`image_input_shape`, `output_classes`) are
those of `isnet_keras.export.classifier`, which deployment and training
use too.

Example:

```python
from isnet_keras.evaluate import checks

labels = checks.check_labels([0, 2, 1], num_images=3, num_classes=3)
```
"""

import math
import numbers

import numpy as np

from isnet_keras import data_checks
from isnet_keras.export import classifier as classifier_lib

# Subject of the error messages of the classifier's shape checks.
PURPOSE = "Evaluation"


def num_classes(classifier, purpose=PURPOSE):
    """The number of classes of a classifier that can be evaluated.

    Args:
        classifier: keras.Model with one output of shape (batch, classes).
        purpose: str. What the caller does, the subject of the error
            message. Defaults to `"Evaluation"`.

    Returns:
        int K >= 2.

    Raises:
        ValueError: not one output of rank 2, or fewer than 2 classes.

    Example:

    >>> num_classes(classifier)  # doctest: +SKIP
    10
    """
    count = classifier_lib.output_classes(classifier, purpose=purpose)
    if count is None or count < 2:
        raise ValueError(
            f"The classifier must output at least 2 classes; model "
            f"'{classifier.name}' outputs {count}."
        )
    return count


def check_images(images, image_shape):
    """Returns the images as finite float32 (N, H, W, C), N >= 1.

    Args:
        images: array-like of images.
        image_shape: `(H, W, C)` the model takes; `None` sizes match any.

    Returns:
        float32 array (N, H, W, C).

    Raises:
        ValueError: wrong shape, empty, not numeric, or NaN/infinite.

    Example:

    >>> check_images(np.zeros((2, 8, 8, 1)), (8, 8, 1)).dtype
    dtype('float32')
    """
    array = np.asarray(images)
    expected = "(N, " + ", ".join(
        "?" if size is None else str(size) for size in image_shape
    ) + ")"
    fits = array.ndim == 4 and all(
        want is None or got == want for got, want in zip(array.shape[1:], image_shape)
    )
    if not fits:
        raise ValueError(
            f"`images` have shape {array.shape}, but the model takes images "
            f"of shape {expected}."
        )
    if len(array) == 0:
        raise ValueError("`images` is empty; evaluation needs at least one image.")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"`images` must be numeric; received dtype {array.dtype}.")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError("`images` contains NaN or infinite values.")
    return array


def check_labels(labels, num_images, num_classes):
    """Returns the labels as int64 (N,) class indices in [0, K).

    Args:
        labels: array-like of N integer class indices.
        num_images: int N, the number of images.
        num_classes: int K, the number of classifier outputs.

    Returns:
        int64 array (N,).

    Raises:
        ValueError: not 1-D, wrong length, not integers, or out of range.

    Example:

    >>> check_labels([0, 1, 1], 3, 2)
    array([0, 1, 1])
    """
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(
            f"`labels` must be 1-D (N,); received shape {array.shape}."
        )
    if len(array) != num_images:
        raise ValueError(
            f"`labels` has {len(array)} entries but `images` has {num_images}."
        )
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"`labels` must hold integer class indices; received dtype "
            f"{array.dtype}."
        )
    if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
        raise ValueError("`labels` must hold integer class indices.")
    array = array.astype(np.int64)
    out_of_range = (array < 0) | (array >= num_classes)
    if np.any(out_of_range):
        raise ValueError(
            f"`labels` must lie in [0, {num_classes}) for a classifier with "
            f"{num_classes} outputs; found "
            f"{sorted(set(array[out_of_range].tolist()))[:5]}."
        )
    return array


def check_class_names(class_names, num_classes):
    """Returns K class names as strings, "0".."K-1" when none are given.

    Args:
        class_names: sequence of K names, or None.
        num_classes: int K.

    Returns:
        list of K strings.

    Raises:
        ValueError: a single string, or not K names.

    Example:

    >>> check_class_names(None, 3)
    ['0', '1', '2']
    """
    if class_names is None:
        return [str(index) for index in range(num_classes)]
    if isinstance(class_names, str):
        raise ValueError(
            "`class_names` must be a sequence of strings, not one string."
        )
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"`class_names` has {len(names)} entries but there are "
            f"{num_classes} classes."
        )
    return names


def check_masks(masks, image_shape):
    """Returns float32 (N, H, W, 1) binary masks fitting the images.

    Args:
        masks: array (N, H, W, 1) or (N, H, W) of 0/1 (or bool) values;
            a mask of -1 everywhere marks an image without annotation.
        image_shape: shape (N, H, W, C) of the checked images.

    Returns:
        float32 array (N, H, W, 1).

    Raises:
        ValueError: naming both shapes when they do not fit, or the values
            when they are not binary (or a mask mixes -1 with 0/1).

    Example:

    >>> check_masks(np.ones((2, 8, 8)), (2, 8, 8, 1)).shape
    (2, 8, 8, 1)
    """
    array = np.asarray(masks)
    expected = tuple(image_shape[:3])
    if array.ndim == 4 and array.shape[-1] == 1:
        spatial = array.shape[:3]
    elif array.ndim == 3:
        spatial = array.shape
    else:
        spatial = None
    if spatial != expected:
        raise ValueError(
            f"`masks` have shape {array.shape}, but `images` have shape "
            f"{tuple(image_shape)}: masks must be {expected + (1,)} or "
            f"{expected}."
        )
    if array.dtype != bool:
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"`masks` must be numeric; received dtype {array.dtype}.")
        # 0/1, or -1 throughout the mask of an image without annotation.
        data_checks.check_partial_masks(array, name="`masks`")
    return array.reshape(expected + (1,)).astype(np.float32)


def check_max_heatmaps(max_heatmaps, num_images):
    """The number of images to explain; the t interval needs two.

    Args:
        max_heatmaps: int >= 2, or None for every image.
        num_images: int N, the number of images.

    Returns:
        int, at most N and at least 2.

    Raises:
        ValueError: a bad `max_heatmaps`, or fewer than 2 images.

    Example:

    >>> check_max_heatmaps(1000, 400)
    400
    """
    if max_heatmaps is None:
        count = num_images
    elif (
        isinstance(max_heatmaps, bool)
        or not isinstance(max_heatmaps, numbers.Integral)
        or max_heatmaps < 2
    ):
        raise ValueError(
            f"`max_heatmaps` must be None or an integer >= 2; received "
            f"{max_heatmaps!r}."
        )
    else:
        count = min(int(max_heatmaps), num_images)
    if count < 2:
        raise ValueError(
            "The background attention needs at least 2 images with masks; "
            f"received {num_images}."
        )
    return count


def check_sampler_settings(prior, num_samples, seed):
    """Refuses posterior-sampler settings that `bayesian_metrics` cannot use.

    Args:
        prior: finite float > 0, the Dirichlet concentration.
        num_samples: int >= 2, the posterior draws.
        seed: int in the int32 range.

    Raises:
        ValueError: naming the setting and the value received.

    Example:

    >>> check_sampler_settings(1.0, 100_000, 0)
    """
    if (
        isinstance(prior, bool)
        or not isinstance(prior, numbers.Real)
        or not math.isfinite(prior)
        or prior <= 0
    ):
        raise ValueError(f"`prior` must be a finite number > 0; received {prior!r}.")
    if (
        isinstance(num_samples, bool)
        or not isinstance(num_samples, numbers.Integral)
        or num_samples < 2
    ):
        raise ValueError(
            f"`num_samples` must be an integer >= 2; received {num_samples!r}."
        )
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not -(2**31) <= seed < 2**31
    ):
        raise ValueError(
            f"`seed` must be an integer in the int32 range; received {seed!r}."
        )
