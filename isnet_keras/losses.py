"""Heatmap losses: penalise LRP relevance outside the foreground mask.

Both losses take `(masks, heatmaps)`, like a Keras loss takes
`(y_true, y_pred)`: masks `(B, H, W)` or `(B, H, W, 1)` with values exactly
0 or 1 (1 = foreground), or -1 everywhere for an image without annotation
(left out of the loss, like an empty mask), heatmaps `(B, K, h, w, C)`. Masks are resized to
the heatmap size by the any-foreground rule. Everything runs in float32 (or
float64 for float64 heatmaps).

* `GWRPHeatmapLoss` (default; "Version B"): per heatmap, relevance is
  normalised by its foreground mean, the background is scored by a
  geometric weighted ranked pooling (GWRP) per channel, and the raw
  foreground total is kept inside a band `[C1, C2]`.
* `VarianceHeatmapLoss` ("Version A"): background relevance normalised by
  the batch's heatmap standard deviation.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from isnet_keras import data_checks

FOREGROUND_PENALTIES = ("l2", "l1", "hybrid")
# How the background score treats a heatmap's channels: one GWRP per channel
# ("each"), or one GWRP over the channels' summed |relevance| ("sum").
CHANNEL_MODES = ("each", "sum")


def _bin_matrix(source, target, dtype):
    """`(target, source)` 0/1 matrix: row i covers the adaptive-pooling bin
    `[floor(i S / T), ceil((i + 1) S / T))`, or the nearest source index
    when upsampling."""
    matrix = np.zeros((target, source), dtype=np.float64)
    for i in range(target):
        if target > source:
            matrix[i, min(int(i * source / target), source - 1)] = 1.0
        else:
            start = (i * source) // target
            stop = -((-(i + 1) * source) // target)
            matrix[i, start:stop] = 1.0
    return tf.constant(matrix, dtype)


def resize_masks(masks, height, width):
    """Resizes binary masks with the any-foreground rule.

    A target cell is foreground when any source cell of its adaptive-pooling
    bin is (nearest neighbour when enlarging).

    Args:
        masks: `(B, H, W, 1)` binary masks with static `H`, `W`.
        height: Target height.
        width: Target width.

    Returns:
        `(B, height, width, 1)` binary masks of the same dtype.

    Example:

    >>> masks = tf.zeros((1, 4, 4, 1))
    >>> resize_masks(tf.tensor_scatter_nd_update(masks, [[0, 3, 3, 0]],
    ...                                          [1.0]), 2, 2)[0, ..., 0]
    [[0., 0.], [0., 1.]]
    """
    source_height, source_width = masks.shape[1], masks.shape[2]
    if (source_height, source_width) == (height, width):
        return masks
    if source_height is None or source_width is None:
        raise ValueError(
            "Masks need a static spatial size to be resized to the heatmap "
            f"size ({height}, {width}); received shape {masks.shape}."
        )
    if source_height % height == 0 and source_width % width == 0:
        # Whole blocks: the bins' maxima, without the bin matrices' products
        # (the heatmap loss resizes the masks of every supervised map, every
        # step).
        factor_h, factor_w = source_height // height, source_width // width
        blocks = tf.reshape(masks, (-1, height, factor_h, width, factor_w,
                                    masks.shape[-1]))
        return tf.reduce_max(blocks, axis=(2, 4))
    rows = _bin_matrix(source_height, height, masks.dtype)
    cols = _bin_matrix(source_width, width, masks.dtype)
    pooled = tf.einsum("ih,bhwc,jw->bijc", rows, masks, cols)
    return tf.cast(pooled > 0, masks.dtype)


def prepare_masks(masks, heatmaps):
    """Validates masks and shapes them `(B, 1, h, w, 1)` for `heatmaps`.

    Args:
        masks: `(B, H, W)` or `(B, H, W, 1)` with values exactly 0 or 1,
            or -1 everywhere (no annotation).
        heatmaps: `(B, K, h, w, C)`.

    Returns:
        Masks in the heatmaps' dtype, `(B, 1, h, w, 1)`; an unannotated
        image's mask is all 0 (empty foreground).

    Raises:
        ValueError: wrong rank or channel count (at trace time); an
            `InvalidArgumentError` naming a non-binary mask, or one that
            mixes -1 with other values, at run time.
    """
    masks = data_checks.mask_batch(masks)
    if heatmaps.shape.rank != 5:
        raise ValueError("Heatmaps must have shape (B, K, H, W, C); "
                         f"received shape {heatmaps.shape}.")
    masks = tf.cast(masks, heatmaps.dtype)
    with tf.control_dependencies(data_checks.partial_mask_checks(masks)):
        # An unannotated image (mask -1 everywhere) gets an empty
        # foreground, which leaves it out of the batch mean.
        masks = tf.maximum(masks, 0.0)
    masks = resize_masks(masks, heatmaps.shape[2], heatmaps.shape[3])
    return masks[:, None]


def _largest(values, k):
    """The `k` largest entries of the last axis, in descending order.

    Like `tf.math.top_k(values, k).values`, with the same gradient (each
    entry's upstream value sent back to where it came from), which is
    computed with `unsorted_segment_sum` instead of `top_k`'s `ScatterNd`,
    which takes longer than the search itself on CPUs for GWRP over
    deep-supervision feature maps.
    """
    width = values.shape[-1]

    @tf.custom_gradient
    def largest(values):
        top, where = tf.math.top_k(values, k)

        def grad(upstream):
            rows = tf.size(values) // width
            flat = tf.reshape(where, (-1, k)) + tf.range(rows)[:, None] * width
            back = tf.math.unsorted_segment_sum(
                tf.reshape(upstream, [-1]), tf.reshape(flat, [-1]),
                rows * width)
            return tf.reshape(back, tf.shape(values))

        return top, grad

    return largest(values)


def gwrp(values, decay):
    """Geometric weighted ranked pooling over the last axis.

    `sum_i d^i v_(i) / sum_i d^i` with `v` sorted in descending order,
    `0^0 = 1`: `d = 1` is the mean, `d = 0` the maximum. Only the top
    entries whose weight exceeds 1e-8 are sorted; the normaliser spans all
    entries.

    Args:
        values: `(..., n)` tensor.
        decay: float in [0, 1].

    Returns:
        `(...)` tensor.
    """
    n = values.shape[-1]
    if decay >= 1.0:
        return tf.reduce_mean(values, axis=-1)
    if decay <= 0.0:
        return tf.reduce_max(values, axis=-1)
    keep = min(n, int(math.ceil(math.log(1e-8) / math.log(decay))) + 1)
    top = _largest(values, keep)
    weights = tf.constant(decay ** np.arange(keep), values.dtype)
    normaliser = (1.0 - decay ** n) / (1.0 - decay)
    return tf.reduce_sum(top * weights, axis=-1) / normaliser


def _per_heatmap(value, num_heatmaps, name):
    """A scalar or a length-K sequence as a `(1, K)` array."""
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if array.size == 1:
        array = np.full(num_heatmaps, array[0])
    if array.size != num_heatmaps:
        raise ValueError(f"{name} has {array.size} values for "
                         f"{num_heatmaps} heatmaps per image.")
    return array[None]


def _finite_abs(heatmaps, masks):
    """`|H|` with non-finite entries replaced, per heatmap.

    The rule of docs/algorithm.md, "Masks and numerical safety": NaN
    becomes the foreground mean of the finite `|H|`, +Inf the largest
    and -Inf the smallest finite `H`. Replaced entries pass no gradient
    (and no NaN) back to `heatmaps`.
    """
    finite = tf.math.is_finite(heatmaps)
    # The replacement and its gradient are a dozen passes over the heatmaps;
    # skip them when, as nearly always, every value is finite.
    return tf.cond(tf.reduce_all(finite), lambda: tf.abs(heatmaps),
                   lambda: _replaced_abs(heatmaps, finite, masks))


def _replaced_abs(heatmaps, finite, masks):
    axes = (2, 3, 4)
    zeros = tf.zeros_like(heatmaps)
    # Through `where` first, so that `abs` never differentiates a NaN.
    clean = tf.where(finite, heatmaps, zeros)
    absolute = tf.abs(clean)
    weight = tf.cast(finite, heatmaps.dtype) * masks
    fg_mean = tf.reduce_sum(absolute * weight, axes, keepdims=True) / (
        tf.reduce_sum(weight, axes, keepdims=True) + 1e-10)
    huge = heatmaps.dtype.max
    largest = tf.reduce_max(tf.where(finite, heatmaps, zeros - huge), axes,
                            keepdims=True)
    smallest = tf.reduce_min(tf.where(finite, heatmaps, zeros + huge), axes,
                             keepdims=True)
    replacement = tf.where(tf.math.is_nan(heatmaps), fg_mean + zeros,
                           tf.abs(tf.where(heatmaps > 0, largest + zeros,
                                           smallest + zeros)))
    return tf.where(finite, absolute, tf.stop_gradient(replacement))


def _mean_over_valid(per_sample, masks):
    """Mean over samples with a non-empty foreground (0 if none).

    Unannotated images (-1 masks) reach here with an empty foreground, so
    they are left out too; a batch without any annotated image gives 0.
    """
    valid = tf.cast(tf.reduce_sum(masks, axis=(1, 2, 3, 4)) > 0,
                    per_sample.dtype)
    count = tf.reduce_sum(valid)
    total = tf.reduce_sum(tf.where(valid > 0, per_sample,
                                   tf.zeros_like(per_sample)))
    return tf.math.divide_no_nan(total, count)


def gwrp_heatmap_loss(masks, heatmaps, d=0.9, E=1.0, A=1.0, B=3.0, C1=1.0,
                      C2=25.0, foreground="l2", channels="each"):
    """The GWRP heatmap loss ("Version B"), a scalar.

    Args:
        masks: `(B, H, W[, 1])` binary foreground masks.
        heatmaps: `(B, K, h, w, C)` heatmaps.
        d: GWRP decay of the background score (1 = mean, 0 = max).
        E: Saturation of the background term `-log(1 - g / (g + E))`.
        A: Weight of the background term.
        B: Weight of the foreground band.
        C1: Lower bound of the raw foreground relevance (scalar or per map).
        C2: Upper bound (scalar or per map), `C1 < C2`.
        foreground: `"l2"`, `"l1"` or `"hybrid"` penalty above `C2`.
        channels: `"each"`: one background GWRP per channel, averaged;
            `"sum"`: the channels' `|relevance|` summed first, then one GWRP
            over positions. The foreground band is the same in both.

    Returns:
        Scalar loss, averaged over images with a non-empty foreground.
    """
    if channels not in CHANNEL_MODES:
        raise ValueError(f"channels must be one of {CHANNEL_MODES}, "
                         f"received {channels!r}.")
    heatmaps = tf.convert_to_tensor(heatmaps)
    masks = prepare_masks(masks, heatmaps)
    dtype = heatmaps.dtype
    num_heatmaps = heatmaps.shape[1]
    c1 = tf.constant(_per_heatmap(C1, num_heatmaps, "C1"), dtype)
    c2 = tf.constant(_per_heatmap(C2, num_heatmaps, "C2"), dtype)
    absolute = _finite_abs(heatmaps, masks)
    if channels == "sum":
        # A deep feature map has tens to hundreds of channels: one ranked
        # pooling per channel costs more than the whole LRP pass, while a
        # background position whose channels carry relevance still ranks
        # high in the summed map.
        absolute = tf.reduce_sum(absolute, axis=4, keepdims=True)
    fg_mask = tf.broadcast_to(masks, tf.shape(absolute))
    foreground_total = tf.reduce_sum(absolute * fg_mask, axis=(2, 3, 4))
    fg_mean = foreground_total / (
        tf.reduce_sum(fg_mask, axis=(2, 3, 4)) + 1e-10)
    normalised = absolute / (fg_mean[:, :, None, None, None] + 1e-10)
    background = normalised * (1.0 - masks)
    shape = tf.shape(background)
    # (B, K, H, W, C) -> (B, K, C, H*W): one GWRP per channel.
    per_channel = tf.reshape(
        tf.transpose(background, (0, 1, 4, 2, 3)),
        tf.stack([shape[0], shape[1], shape[4], shape[2] * shape[3]]))
    per_channel.set_shape([None, num_heatmaps, background.shape[4],
                           heatmaps.shape[2] * heatmaps.shape[3]])
    score = gwrp(per_channel, d)
    fraction = tf.minimum(score / (score + E), 1.0 - 1e-7)
    background_loss = tf.reduce_mean(-tf.math.log(1.0 - fraction),
                                     axis=(1, 2))

    ratio = foreground_total / c1
    low = tf.square(tf.minimum(ratio, 1.0) - 1.0)
    l2_high = tf.square(tf.maximum(ratio, c2 / c1) - c2 / c1)
    if foreground == "l2":
        high = l2_high
    elif foreground == "l1":
        high = tf.maximum(foreground_total - c2, 0.0)
    else:
        beyond = tf.stop_gradient(foreground_total) > c1 + c2
        high = tf.where(beyond, foreground_total - (c1 + c2) + 1.0, l2_high)
    foreground_loss = tf.reduce_mean(low, 1) + tf.reduce_mean(high, 1)
    return _mean_over_valid(A * background_loss + B * foreground_loss, masks)


def variance_heatmap_loss(masks, heatmaps, E=10.0, e=1e-4):
    """The variance-normalised heatmap loss ("Version A"), a scalar.

    Args:
        masks: `(B, H, W[, 1])` binary foreground masks.
        heatmaps: `(B, K, h, w, C)` heatmaps.
        E: Slope and saturation of `-log(1 - u / (u + E))`.
        e: Added to the variance so `0 / 0` cannot occur.

    Returns:
        Scalar loss, the mean over the B*K heatmaps of images with a
        non-empty foreground.
    """
    heatmaps = tf.convert_to_tensor(heatmaps)
    masks = prepare_masks(masks, heatmaps)
    flat = tf.reshape(heatmaps, (-1,))
    count = tf.cast(tf.size(flat), heatmaps.dtype)
    mean = tf.reduce_mean(flat)
    variance = tf.reduce_sum(tf.square(flat - mean)) / (count - 1.0)
    normalised = tf.abs(heatmaps) / tf.sqrt(variance + e)
    outside = tf.reduce_sum((1.0 - masks) * normalised, axis=(2, 3, 4))
    fraction = tf.clip_by_value(outside / (outside + E), 0.0, 1.0 - 1e-4)
    per_image = tf.reduce_mean(-tf.math.log(1.0 - fraction), axis=1)
    return _mean_over_valid(per_image, masks)


class _HeatmapLoss(keras.losses.Loss):
    """Common base: the functions above return the batch mean already."""

    def __init__(self, name, **kwargs):
        super().__init__(name=name, reduction=None, **kwargs)

    def __call__(self, masks, heatmaps, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("Heatmap losses do not take sample weights.")
        return self.call(masks, heatmaps)


@keras.saving.register_keras_serializable(package="isnet_keras")
class GWRPHeatmapLoss(_HeatmapLoss):
    """Background relevance by geometric weighted ranked pooling, and a band
    on the foreground relevance ("Version B", the default).

    Args:
        d: float. GWRP decay (1 = mean, 0 = max). Defaults to `0.9`.
        E: float. Background saturation. Defaults to `1.0`.
        A: float. Background weight. Defaults to `1.0`.
        B: float. Foreground-band weight. Defaults to `3.0`.
        C1: float or per-heatmap list. Lower foreground bound.
            Defaults to `1.0`.
        C2: float or per-heatmap list. Upper foreground bound.
            Defaults to `25.0`.
        foreground: `"l2"`, `"l1"` or `"hybrid"`. Defaults to `"l2"`.
        channels: `"each"` (a background GWRP per channel) or `"sum"` (one
            over the channels' summed `|relevance|`, far cheaper on deep
            feature maps). Defaults to `"each"`.

    Example:

    >>> loss = GWRPHeatmapLoss()
    >>> value = loss(masks, heatmaps)  # masks (B, H, W, 1), maps (B, K, ...)
    """

    def __init__(self, d=0.9, E=1.0, A=1.0, B=3.0, C1=1.0, C2=25.0,
                 foreground="l2", channels="each", name="gwrp_heatmap_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        if channels not in CHANNEL_MODES:
            raise ValueError(f"channels must be one of {CHANNEL_MODES}, "
                             f"received {channels!r}.")
        foreground = foreground.lower()
        if foreground not in FOREGROUND_PENALTIES:
            raise ValueError(f"foreground must be one of "
                             f"{FOREGROUND_PENALTIES}, received {foreground!r}.")
        if not 0.0 <= d <= 1.0:
            raise ValueError(f"d must lie in [0, 1], received {d}.")
        if E <= 0:
            raise ValueError(f"E must be positive, received {E}.")
        low, high = np.asarray(C1, float), np.asarray(C2, float)
        if np.any(low <= 0) or np.any(low >= high):
            raise ValueError(f"Need 0 < C1 < C2, received C1={C1}, C2={C2}.")
        self.d, self.E, self.A, self.B = float(d), float(E), float(A), float(B)
        self.C1 = C1 if np.ndim(C1) else float(C1)
        self.C2 = C2 if np.ndim(C2) else float(C2)
        self.foreground = foreground
        self.channels = channels

    def call(self, masks, heatmaps):
        return gwrp_heatmap_loss(masks, heatmaps, self.d, self.E, self.A,
                                 self.B, self.C1, self.C2, self.foreground,
                                 self.channels)

    def get_config(self):
        config = super().get_config()
        config.pop("reduction", None)
        config.update({"d": self.d, "E": self.E, "A": self.A, "B": self.B,
                       "C1": self.C1, "C2": self.C2,
                       "foreground": self.foreground,
                       "channels": self.channels})
        return config


@keras.saving.register_keras_serializable(package="isnet_keras")
class VarianceHeatmapLoss(_HeatmapLoss):
    """Background relevance normalised by the heatmaps' standard deviation
    ("Version A").

    Args:
        E: float. Slope and saturation. Defaults to `10.0`.
        e: float. Variance stabiliser. Defaults to `1e-4`.

    Example:

    >>> value = VarianceHeatmapLoss()(masks, heatmaps)
    """

    def __init__(self, E=10.0, e=1e-4, name="variance_heatmap_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        if E <= 0 or e <= 0:
            raise ValueError(f"E and e must be positive, received E={E}, "
                             f"e={e}.")
        self.E, self.e = float(E), float(e)

    def call(self, masks, heatmaps):
        return variance_heatmap_loss(masks, heatmaps, self.E, self.e)

    def get_config(self):
        config = super().get_config()
        config.pop("reduction", None)
        config.update({"E": self.E, "e": self.e})
        return config

