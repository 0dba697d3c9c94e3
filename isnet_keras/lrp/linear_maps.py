"""Linear maps: a layer's bias-free operator and its tied transpose.

Each map has `forward(x, kernel)` and `transpose(s, kernel, input_shape)`.
The transpose is the vector-Jacobian product of `forward` with respect to
`x`, run as a forward op with the same kernel tensor, and it returns exactly
`input_shape` (never a guessed output padding). Rules in `rules.py` use these
maps without knowing which layer they come from.

A map whose kernel has its input channels on axis -2, each producing its own
input channel of the transpose (dense layers, full convolutions), sets
`stacks_input_channels = True`: the transposes of several kernels of one `s`
are then one transpose of their concatenation along that axis.
"""

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class DenseMap:
    """`x @ W` on the last axis."""

    stacks_input_channels = True

    def forward(self, x, kernel):
        return tf.matmul(x, kernel)

    def transpose(self, s, kernel, input_shape):
        del input_shape
        return tf.matmul(s, kernel, transpose_b=True)


@dataclasses.dataclass(frozen=True)
class Conv2DMap:
    """A 2-D convolution; its transpose is `conv2d_transpose`."""

    stacks_input_channels = True

    strides: tuple
    padding: str
    dilations: tuple = (1, 1)

    def forward(self, x, kernel):
        return tf.nn.conv2d(x, kernel, self.strides, self.padding.upper(),
                            dilations=self.dilations)

    def transpose(self, s, kernel, input_shape):
        return tf.nn.conv2d_transpose(
            s, kernel, input_shape, self.strides, self.padding.upper(),
            dilations=self.dilations,
        )


@dataclasses.dataclass(frozen=True)
class DepthwiseConv2DMap:
    """A depthwise convolution (kernel `(kh, kw, C, multiplier)`)."""

    strides: tuple
    padding: str
    dilations: tuple = (1, 1)

    def forward(self, x, kernel):
        return tf.nn.depthwise_conv2d(
            x, kernel, (1, *self.strides, 1), self.padding.upper(),
            dilations=self.dilations,
        )

    def transpose(self, s, kernel, input_shape):
        return tf.nn.depthwise_conv2d_backprop_input(
            input_shape, kernel, s, (1, *self.strides, 1),
            self.padding.upper(), dilations=(1, *self.dilations, 1),
        )


@dataclasses.dataclass(frozen=True)
class AveragePooling2DMap:
    """Average pooling times a per-channel gain (the kernel), no bias.

    The transpose is TensorFlow's average-pooling gradient, which also
    handles `same` padding, where padded cells are excluded from the mean.
    """

    pool_size: tuple
    strides: tuple
    padding: str

    def forward(self, x, kernel):
        pooled = tf.nn.avg_pool2d(x, self.pool_size, self.strides,
                                  self.padding.upper())
        return pooled * kernel

    def transpose(self, s, kernel, input_shape):
        return tf.raw_ops.AvgPoolGrad(
            orig_input_shape=input_shape,
            grad=s * kernel,
            ksize=(1, *self.pool_size, 1),
            strides=(1, *self.strides, 1),
            padding=self.padding.upper(),
        )


@dataclasses.dataclass(frozen=True)
class GlobalAveragePooling2DMap:
    """The spatial mean times a per-channel gain (the kernel)."""

    keepdims: bool = False

    def forward(self, x, kernel):
        return tf.reduce_mean(x, axis=(1, 2), keepdims=self.keepdims) * kernel

    def transpose(self, s, kernel, input_shape):
        s = s * kernel
        if not self.keepdims:
            s = s[:, None, None, :]
        area = tf.cast(input_shape[1] * input_shape[2], s.dtype)
        return tf.broadcast_to(s / area, input_shape)


def max_unpool(s, argmax, input_shape):
    """Scatter-adds `s` into the window maxima of a max pooling.

    Args:
        s: `(B, K, h, w, c)` values at the pooling output.
        argmax: `(B, h, w, c)` flat index of each window's maximum within
            its image, from `tf.nn.max_pool_with_argmax(...,
            include_batch_in_index=False)`.
        input_shape: The pooling input's shape `(B, H, W, C)` (a tensor).

    Returns:
        `(B, K, H, W, C)`; where windows overlap, their shares are summed.
    """
    num_classes = s.shape[1]
    per_image = tf.cast(tf.reduce_prod(input_shape[1:]), tf.int64)
    rows = tf.cast(tf.shape(s)[0] * num_classes, tf.int64)
    offsets = tf.reshape(tf.range(rows) * per_image, (-1, num_classes, 1, 1, 1))
    indices = tf.cast(argmax, tf.int64)[:, None] + offsets
    flat = tf.math.unsorted_segment_sum(
        tf.reshape(s, (-1,)), tf.reshape(indices, (-1,)), rows * per_image
    )
    return tf.reshape(
        flat, tf.concat([[-1, num_classes], input_shape[1:]], 0)
    )


def tiles_windows(pool_size, strides, padding, input_shape):
    """Whether max-pooling windows tile the input without overlap.

    True when the strides equal the pool size and every window starts at a
    multiple of it (always for `valid` padding; for `same` padding when the
    size divides the input). Only then does `broadcast_unpool` apply.

    Args:
        pool_size: `(ph, pw)`.
        strides: `(sh, sw)`.
        padding: `"valid"` or `"same"`.
        input_shape: Static `(B, H, W, C)`; `H`, `W`, `C` must be known.
    """
    if tuple(strides) != tuple(pool_size):
        return False
    height, width, channels = input_shape[1:]
    if None in (height, width, channels):
        return False
    if padding.lower() == "valid":
        return True
    return height % pool_size[0] == 0 and width % pool_size[1] == 0


def broadcast_windows(s, pool_size, input_shape):
    """Copies each pooled value over its (non-overlapping) window.

    Args:
        s: `(N, h, w, C)` or `(B, K, h, w, C)` values at the pooling output.
        pool_size: `(ph, pw)`, equal to the strides.
        input_shape: Static `(B, H, W, C)` of the pooling input; rows and
            columns that no window covers (`valid` padding) get zeros.

    Returns:
        `s`'s leading axes followed by `(H, W, C)`.
    """
    height, width = input_shape[1:3]
    (ph, pw), (h, w, c) = pool_size, s.shape[-3:]
    lead = tf.shape(s)[:-3]
    # Nearest-neighbour resizing by an integer factor copies each value
    # over its window; its gradient kernel sums the windows about three
    # times faster than the gradient of a broadcast (a strided reduction).
    tiles = tf.image.resize(tf.reshape(s, [-1, h, w, c]), (h * ph, w * pw),
                            method="nearest")
    tiles = tf.reshape(tiles, tf.concat([lead, [h * ph, w * pw, c]], 0))
    spare = [[0, 0]] * (len(s.shape) - 3) + [
        [0, height - h * ph], [0, width - w * pw], [0, 0]]
    if height > h * ph or width > w * pw:
        tiles = tf.pad(tiles, spare)
    return tiles


def window_winners(x, pooled, pool_size):
    """Where each window's maxima lie, and the share each of them gets.

    For windows that tile the input (`tiles_windows`) this replaces the
    argmax and scatter of `max_unpool`: `x * mask * broadcast_windows(share
    * s, ...)` sends each window's `s` to its maximum, where the scatter
    sends it to the argmax's pick among tied maxima. Splitting ties evenly
    (as `global_max_unpool` does) needs no argmax (`max_pool_with_argmax`
    took more time than the rest of the mirror and has no XLA kernel),
    conserves relevance, and is the same on every device. The share is
    returned at the pooled size, where multiplying by it is cheaper.

    Args:
        x: `(B, H, W, C)` pooling input.
        pooled: `(B, h, w, C)` its max pooling (exact maxima of `x`).
        pool_size: `(ph, pw)`, equal to the strides.

    Returns:
        `(mask, share)`, both gradient-stopped: `mask` `(B, H, W, C)` is 1
        at every maximum of a window, else 0 (also in cells no window
        covers, for `valid` padding); `share` `(B, h, w, C)` is 1 over the
        number of maxima of each window.

    Example:

    >>> x = tf.constant([[1.0, 2.0], [2.0, 0.0]])[None, ..., None]
    >>> mask, share = window_winners(x, tf.nn.max_pool2d(x, 2, 2, "VALID"),
    ...                              (2, 2))
    >>> mask[0, ..., 0].numpy(), share.numpy().ravel()
    (array([[0., 1.],
           [1., 0.]], dtype=float32), array([0.5], dtype=float32))
    """
    (ph, pw), (h, w, channels) = pool_size, pooled.shape[1:]
    height, width = x.shape[1:3]
    uncovered = height > h * ph or width > w * pw
    # A slice that keeps everything would still copy the tensor.
    covered = x[:, :h * ph, :w * pw] if uncovered else x
    cells = tf.reshape(covered, [-1, h, ph, w, pw, channels])
    peaks = tf.reshape(pooled, [-1, h, 1, w, 1, channels])
    mask = tf.reshape(tf.cast(tf.equal(cells, peaks), x.dtype),
                      [-1, h * ph, w * pw, channels])
    # Maxima per window by average pooling: a sum over axes 2 and 4 of the
    # 6-D tensor is a strided reduction, several times slower.
    share = tf.math.reciprocal(
        tf.nn.avg_pool2d(mask, pool_size, pool_size, "VALID")
        * float(ph * pw))
    if uncovered:
        mask = tf.pad(mask, [[0, 0], [0, height - h * ph],
                             [0, width - w * pw], [0, 0]])
    return tf.stop_gradient(mask), tf.stop_gradient(share)


def global_max_unpool(s, x, keepdims=False):
    """Sends `s` to each channel's spatial maximum, ties split evenly.

    Args:
        s: `(B, K, C)` (or `(B, K, 1, 1, C)` with `keepdims`).
        x: `(B, H, W, C)` the pooling input.
        keepdims: Whether the pooling kept its spatial axes.

    Returns:
        `(B, K, H, W, C)`.
    """
    peak = tf.reduce_max(x, axis=(1, 2), keepdims=True)
    winners = tf.cast(tf.equal(x, peak), s.dtype)
    winners = winners / tf.reduce_sum(winners, axis=(1, 2), keepdims=True)
    if not keepdims:
        s = s[:, :, None, None, :]
    return tf.expand_dims(winners, 1) * s
