"""Background-attention scores of LRP heatmaps.

See docs/algorithm.md, "Evaluation statistics".

Heatmaps H are (B, H, W, C) or (B, K, H, W, C); masks M are (B, H, W, 1) or
(B, H, W), 1 = foreground, 0 = background (-1 everywhere: an image without
annotation, which the running-mean metrics leave out). Per image (and
heatmap):

* BRF = Σ|H|(1−M) / (Σ|H| + 1e-12): share of |relevance| outside the mask.
* PFF = Σ max(H, 0)·M / (Σ max(H, 0) + 1e-12): share of positive relevance
  inside the mask.
"""

import math

import keras
import numpy as np
from keras import ops
from scipy import stats

from isnet_keras import data_checks

# Added to the denominators so that an all-zero heatmap gives 0, not NaN.
FRACTION_EPSILON = 1e-12


def background_relevance_fraction(heatmaps, masks):
    """Fraction of absolute relevance that falls on the background.

    BRF = Σ|H|(1−M) / (Σ|H| + 1e-12), summed over pixels and channels.

    Args:
        heatmaps: tensor or array of shape (B, H, W, C) or (B, K, H, W, C).
        masks: tensor or array of shape (B, H, W, 1) or (B, H, W) holding
            0/1 values (1 = foreground). Broadcast over K and C.

    Returns:
        A backend tensor of shape (B,), or (B, K) for 5-D heatmaps, with
        values in [0, 1].

    Example:

    >>> heatmaps = np.array([[[[1.0], [-3.0]]]])  # (1, 1, 2, 1)
    >>> masks = np.array([[[1.0, 0.0]]])          # (1, 1, 2)
    >>> round(float(background_relevance_fraction(heatmaps, masks)[0]), 6)
    0.75
    """
    heatmaps, foreground, pixel_axes = _prepare(heatmaps, masks)
    magnitude = ops.abs(heatmaps)
    background = ops.sum(magnitude * (1.0 - foreground), axis=pixel_axes)
    return background / (ops.sum(magnitude, axis=pixel_axes) + FRACTION_EPSILON)


def positive_foreground_fraction(heatmaps, masks):
    """Fraction of positive relevance that falls on the foreground.

    PFF = Σ max(H, 0)·M / (Σ max(H, 0) + 1e-12), summed over pixels and
    channels.

    Args:
        heatmaps: tensor or array of shape (B, H, W, C) or (B, K, H, W, C).
        masks: tensor or array of shape (B, H, W, 1) or (B, H, W) holding
            0/1 values (1 = foreground). Broadcast over K and C.

    Returns:
        A backend tensor of shape (B,), or (B, K) for 5-D heatmaps, with
        values in [0, 1].

    Example:

    >>> heatmaps = np.array([[[[1.0], [3.0], [-5.0]]]])  # (1, 1, 3, 1)
    >>> masks = np.array([[[1.0, 0.0, 1.0]]])            # (1, 1, 3)
    >>> round(float(positive_foreground_fraction(heatmaps, masks)[0]), 6)
    0.25
    """
    heatmaps, foreground, pixel_axes = _prepare(heatmaps, masks)
    positive = ops.maximum(heatmaps, 0.0)
    inside = ops.sum(positive * foreground, axis=pixel_axes)
    return inside / (ops.sum(positive, axis=pixel_axes) + FRACTION_EPSILON)


def summarize_fraction(values, confidence=0.95):
    """Mean, standard deviation and a Student-t interval of the mean.

    The interval is mean ± t_{(1+confidence)/2, n−1} · std / sqrt(n), the
    usual t interval for the mean of n per-image values (not a bootstrap and
    not a spread of the values themselves), clipped to [0, 1] since the
    values are fractions.

    Args:
        values: array-like or tensor of per-image fractions, any shape; all
            entries are pooled (pass one column of a (B, K) result to
            summarise one heatmap kind). At least two values.
        confidence: float in (0, 1). Coverage of the interval. Defaults to
            `0.95`.

    Returns:
        A dict `{"mean", "std", "ci_low", "ci_high", "n"}`; `std` is the
        sample standard deviation (ddof = 1).

    Example:

    >>> summary = summarize_fraction([0.1, 0.2, 0.3])
    >>> round(summary["mean"], 6), round(summary["std"], 6)
    (0.2, 0.1)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must be in (0, 1); got {confidence!r}.")
    flat = np.asarray(ops.convert_to_numpy(values), dtype=np.float64).ravel()
    if flat.size < 2:
        raise ValueError(
            f"`values` needs at least 2 entries for a spread; got {flat.size}."
        )
    if not np.all(np.isfinite(flat)):
        raise ValueError("`values` contains NaN or infinite entries.")
    mean = float(flat.mean())
    std = float(flat.std(ddof=1))
    quantile = float(stats.t.ppf((1 + confidence) / 2, df=flat.size - 1))
    half_width = quantile * std / math.sqrt(flat.size)
    return {
        "mean": mean,
        "std": std,
        "ci_low": max(0.0, mean - half_width),
        "ci_high": min(1.0, mean + half_width),
        "n": int(flat.size),
    }


@keras.saving.register_keras_serializable(package="isnet_keras")
class BackgroundRelevanceFraction(keras.metrics.Mean):
    """Running mean of the background relevance fraction (BRF) over images.

    Each `update_state(heatmaps, masks)` computes the per-image BRF (see
    `background_relevance_fraction`); with K heatmaps per image the K values
    are averaged first, so every image counts once. `result()` is the mean
    over all images seen since the last reset.

    The configuration is the one of `keras.metrics.Mean` (`name`, `dtype`).

    Args:
        name: str. Metric name. Defaults to `"background_relevance_fraction"`.
        dtype: dtype of the metric variables. Defaults to the Keras float
            type.

    Example:

    >>> metric = BackgroundRelevanceFraction()
    >>> metric.update_state(np.ones((2, 2, 2, 1)), np.zeros((2, 2, 2)))
    >>> round(float(metric.result()), 6)
    1.0
    """

    def __init__(self, name="background_relevance_fraction", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, heatmaps, masks, sample_weight=None):
        """Adds the BRF of a batch.

        Args:
            heatmaps: (B, H, W, C) or (B, K, H, W, C) heatmaps.
            masks: (B, H, W, 1) or (B, H, W) binary foreground masks.
            sample_weight: optional (B,) weights of the images.
        """
        values = background_relevance_fraction(heatmaps, masks)
        super().update_state(values, sample_weight=_annotated_weight(
            masks, values, sample_weight))


@keras.saving.register_keras_serializable(package="isnet_keras")
class PositiveForegroundFraction(keras.metrics.Mean):
    """Running mean of the positive foreground fraction (PFF) over images.

    Like `BackgroundRelevanceFraction`, with `positive_foreground_fraction`
    as the per-image value.

    Args:
        name: str. Metric name. Defaults to `"positive_foreground_fraction"`.
        dtype: dtype of the metric variables. Defaults to the Keras float
            type.

    Example:

    >>> metric = PositiveForegroundFraction()
    >>> metric.update_state(np.ones((2, 2, 2, 1)), np.ones((2, 2, 2)))
    >>> round(float(metric.result()), 6)
    1.0
    """

    def __init__(self, name="positive_foreground_fraction", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, heatmaps, masks, sample_weight=None):
        """Adds the PFF of a batch (arguments as in the BRF metric)."""
        values = positive_foreground_fraction(heatmaps, masks)
        super().update_state(values, sample_weight=_annotated_weight(
            masks, values, sample_weight))


def _annotated_weight(masks, values, sample_weight):
    """`sample_weight` (or 1) times 0 for images whose mask is -1
    everywhere (no annotation), so the running means skip them."""
    masks = ops.convert_to_tensor(masks)
    flat = ops.reshape(ops.cast(masks, "float32"), (ops.shape(masks)[0], -1))
    annotated = ops.cast(ops.max(flat, axis=1) >= 0.0, values.dtype)
    if sample_weight is None:
        return annotated
    return ops.cast(sample_weight, values.dtype) * annotated


def _prepare(heatmaps, masks):
    """Validates shapes and mask values; returns float heatmaps, a mask that
    broadcasts against them, and the axes to sum over."""
    heatmaps = ops.convert_to_tensor(heatmaps)
    if "float" not in keras.backend.standardize_dtype(heatmaps.dtype):
        heatmaps = ops.cast(heatmaps, "float32")
    heatmap_shape = tuple(heatmaps.shape)
    if len(heatmap_shape) not in (4, 5):
        raise ValueError(
            "`heatmaps` must have shape (B, H, W, C) or (B, K, H, W, C); got "
            f"shape {heatmap_shape}."
        )
    _check_binary(masks)
    masks = ops.convert_to_tensor(masks)
    mask_shape = tuple(masks.shape)
    if len(mask_shape) == 4 and mask_shape[-1] == 1:
        masks = ops.squeeze(masks, axis=-1)
    elif len(mask_shape) != 3:
        raise ValueError(
            f"`masks` must have shape (B, H, W, 1) or (B, H, W); got shape "
            f"{mask_shape}."
        )

    has_heatmap_axis = len(heatmap_shape) == 5
    heatmap_spatial = heatmap_shape[2:4] if has_heatmap_axis else heatmap_shape[1:3]
    expected = (heatmap_shape[0],) + heatmap_spatial
    if not _shapes_compatible(expected, tuple(masks.shape)):
        raise ValueError(
            f"`masks` of shape {mask_shape} do not match `heatmaps` of shape "
            f"{heatmap_shape}: batch and spatial sizes must agree."
        )

    # An unannotated image (-1 everywhere) counts as all background here;
    # the running-mean metrics leave it out.
    foreground = ops.maximum(ops.cast(masks, heatmaps.dtype),
                             0.0)[..., None]  # (B, H, W, 1)
    if has_heatmap_axis:
        foreground = foreground[:, None]  # (B, 1, H, W, 1)
        return heatmaps, foreground, (2, 3, 4)
    return heatmaps, foreground, (1, 2, 3)


def _shapes_compatible(expected, actual):
    """Equal shapes, where an unknown (None) size matches anything."""
    return all(a is None or b is None or a == b for a, b in zip(expected, actual))


def _check_binary(masks):
    """Raises if mask values are known now and are not all 0 or 1 (or -1
    throughout an image without annotation).

    Values of symbolic tensors (inside a traced function) are not available,
    so there the check is skipped.
    """
    values = _values_if_known(masks)
    if values is None:
        return
    values = np.asarray(values)
    if values.dtype == bool:
        return
    if values.ndim < 3:
        not_binary = (values != 0) & (values != 1)
        if np.any(not_binary):
            raise ValueError(
                "`masks` must be binary (0 = background, 1 = foreground); "
                f"found values such as {values[not_binary].ravel()[:3].tolist()}."
            )
        return
    data_checks.check_partial_masks(values, name="`masks`")


def _values_if_known(tensor):
    """NumPy values of NumPy data or eager TensorFlow tensors, else None."""
    if isinstance(tensor, (np.ndarray, list, tuple, int, float)):
        return np.asarray(tensor)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if tf.executing_eagerly() and tf.is_tensor(tensor) and hasattr(tensor, "numpy"):
            return tensor.numpy()
    return None
