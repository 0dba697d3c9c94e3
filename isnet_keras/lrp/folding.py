"""Batch-normalisation folding.

A batch norm is a per-channel affine map `y = gain * x + shift` with
`gain = gamma / sqrt(var + eps)` and `shift = beta - gain * mean`. It is
folded into the linear layer before it (`W' = W * gain`,
`b' = gain * b + shift`) or into a pooling, or used as a standalone diagonal
layer. The statistics are those the layer used in the same forward pass:
the batch moments (biased variance, as Keras computes them) when it ran in
training mode, the moving averages otherwise. Either way they are constants
for the heatmap loss (`stop_gradient`), so gamma learns through `W'`.
"""

import tensorflow as tf

from isnet_keras.errors import UnsupportedLayerError


def check_batch_norm(layer, input_rank):
    """Raises `UnsupportedLayerError` for batch norms that cannot be folded."""
    if layer.axis not in (-1, input_rank - 1):
        raise UnsupportedLayerError(
            f"{layer.name} ({type(layer).__name__}): only channels-last batch "
            f"normalisation (axis=-1) is supported, got axis={layer.axis}."
        )
    if getattr(layer, "synchronized", False):
        raise UnsupportedLayerError(
            f"{layer.name} ({type(layer).__name__}): synchronized batch "
            "normalisation is not supported."
        )


def uses_batch_statistics(layer, training):
    """Whether the batch norm normalised with batch moments in this pass."""
    return bool(training) and layer.trainable


def batch_norm_affine(layer, bn_input, training, dtype):
    """Returns `(gain, shift)`, per channel, of a batch norm in this pass.

    Args:
        layer: A `keras.layers.BatchNormalization`.
        bn_input: The layer's input tensor in this pass (used for the batch
            moments in training mode).
        training: The `training` flag the layer was called with.
        dtype: The dtype of the LRP arithmetic.

    Returns:
        Two `(C,)` tensors, gradient-stopped statistics, gamma and beta live.
    """
    if uses_batch_statistics(layer, training):
        x = tf.cast(bn_input, dtype)
        axes = list(range(len(x.shape) - 1))
        mean, variance = tf.nn.moments(tf.stop_gradient(x), axes=axes)
    else:
        mean = tf.cast(layer.moving_mean, dtype)
        variance = tf.cast(layer.moving_variance, dtype)
    inverse_std = tf.math.rsqrt(tf.stop_gradient(variance) + layer.epsilon)
    gain = inverse_std
    if layer.scale:
        gain = gain * tf.cast(layer.gamma, dtype)
    shift = -tf.stop_gradient(mean) * gain
    if layer.center:
        shift = shift + tf.cast(layer.beta, dtype)
    return gain, shift


def fold_kernel(kernel, gain, depthwise=False):
    """`W * gain` on the output-channel axis.

    Args:
        kernel: Dense `(in, out)`, Conv2D `(kh, kw, in, out)` or depthwise
            `(kh, kw, in, multiplier)` kernel.
        gain: `(out,)` per-channel gain.
        depthwise: Whether `kernel` is a depthwise kernel, whose output
            channel `c * multiplier + m` sits at `[..., c, m]`.

    Returns:
        The folded kernel.
    """
    if depthwise:
        gain = tf.reshape(gain, kernel.shape[-2:])
    return kernel * gain


def fold_bias(bias, gain, shift):
    """`gain * b + shift` (just `shift` for a bias-free layer)."""
    return shift if bias is None else bias * gain + shift
