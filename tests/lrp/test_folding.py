"""Batch-norm folding is exact (float64), with moving or batch statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.lrp import folding
from tests import support


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("kind", ["conv", "dense", "depthwise"])
def test_folded_layer_equals_layer_then_batch_norm(kind, training):
    rng = np.random.default_rng(0)
    with support.floatx("float64"):
        if kind == "conv":
            layer = keras.layers.Conv2D(5, 3, padding="same")
            x = rng.normal(size=(4, 6, 6, 3))
        elif kind == "depthwise":
            layer = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)
            x = rng.normal(size=(4, 6, 6, 3))
        else:
            layer = keras.layers.Dense(5)
            x = rng.normal(size=(8, 7))
        bn = keras.layers.BatchNormalization()
        hidden = layer(x)
        bn(hidden)
    layer.bias.assign(rng.normal(size=layer.bias.shape))
    support.randomize_batch_norms(keras.Sequential([bn]))
    reference = bn(layer(x), training=training).numpy()

    gain, shift = folding.batch_norm_affine(bn, layer(x), training, "float64")
    kernel = folding.fold_kernel(layer.kernel, gain, depthwise=kind ==
                                 "depthwise")
    bias = folding.fold_bias(layer.bias, gain, shift)
    if kind == "conv":
        folded = tf.nn.conv2d(x, kernel, 1, "SAME") + bias
    elif kind == "depthwise":
        folded = tf.nn.depthwise_conv2d(x, kernel, (1, 1, 1, 1), "VALID") + bias
    else:
        folded = tf.matmul(x, kernel) + bias
    np.testing.assert_allclose(folded.numpy(), reference, atol=1e-10)


def test_statistics_of_the_fold_carry_no_gradient():
    with support.floatx("float64"):
        bn = keras.layers.BatchNormalization()
        x = tf.constant(np.random.default_rng(1).normal(size=(6, 4)))
        bn(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        gain, shift = folding.batch_norm_affine(bn, x, True, "float64")
        total = tf.reduce_sum(gain) + tf.reduce_sum(shift)
    assert tape.gradient(total, x) is None
    assert tape.gradient(total, bn.gamma) is not None
