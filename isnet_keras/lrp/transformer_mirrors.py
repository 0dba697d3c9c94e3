"""Mirrors of the layers of vision transformers: LayerNorm, a learned
position embedding, and token pooling.

The rules follow AttnLRP (Achtibat et al., "AttnLRP: Attention-aware
layer-wise relevance propagation for transformers", ICML 2024), see
docs/algorithm.md, "Transformer layers":

* `LayerNormalization`: a linear map with its normalisation held constant.
  `y = gamma * c * (x - mean(x)) + beta` with `c = 1 / sqrt(var(x) + eps)`
  read as the per-token linear map `W_jk = gamma_k c (delta_jk - 1/D)`
  (the centring included) plus the bias `beta`, under LRP-epsilon.
* `AddPositionEmbedding`: `y = x + p` with a learned `p`, a sum whose
  second term is a constant: LRP-epsilon, the constant's share absorbed.
* `GlobalAveragePooling1D`: the mean over the tokens, a linear layer.

Gates (`gelu`, `silu`, `hard_silu`, `mish`, also fused into a `Dense` or
`Conv2D`) take the identity rule, handled by `PassThroughMirror` and the
linear mirrors (`mirror_base.GATE_ACTIVATIONS`). A `Dense` layer on a
token tensor `(B, T, D)` is the `DenseMirror` of any rank; a `Reshape` of
the patch embedding is `ReshapeMirror`.

With epsilon = 0 these rules are gradient x input of the network whose
LayerNorm factors `c` and gate factors `gelu(z) / z` are constants
(`tests/lrp/test_transformer_mirrors.py`).
"""

import keras
import tensorflow as tf

from isnet_keras.lrp import relevance as relevance_lib
from isnet_keras.lrp import rules
from isnet_keras.lrp.mirror_base import Mirror
from isnet_keras.lrp.mirror_base import unsupported


def layer_norm_rule(relevance, x, gain, beta=None, epsilon=1e-2,
                    center=True):
    """LRP-epsilon through a LayerNorm on the last axis, its factor fixed.

    The layer is `z = gain * (x - mean(x)) + sg(beta)` with the per-token
    gain `gain = gamma / sqrt(var(x) + eps)` read as a constant: the
    linear map `W_jk = gain_k (delta_jk - 1/D)` on each token. With
    `s = R / stab(z)`:

    `R_j = x_j * (gain_j s_j - mean_k(gain_k s_k))`,

    so that `sum_j R_j = sum_k R_k (z_k - beta_k) / stab(z_k)`: the
    relevance is conserved up to `beta`'s share and the epsilon terms.
    Without centring (`center=False`, RMS scaling) the map is diagonal.

    Args:
        relevance: `(B, K, ..., D)` relevance at the layer output, a
            tensor or `Factored`.
        x: `(B, ..., D)` layer input.
        gain: `(B, ..., D)` (or broadcastable) factor of the normalised
            input: `gamma` times the reciprocal standard deviation.
        beta: Optional `(D,)` shift; gradient-stopped.
        epsilon: The stabiliser.
        center: Whether the layer subtracts the mean.

    Returns:
        `Factored(x, ...)`: the `(B, K, ..., D)` relevance at the input.
    """
    centred = x - tf.reduce_mean(x, axis=-1, keepdims=True) if center else x
    z = centred * gain
    if beta is not None:
        z = z + tf.stop_gradient(beta)
    s = rules._ratio(relevance_lib.as_factored(relevance), z, epsilon,
                     per_image_factor=gain)
    if center:
        s = s - tf.reduce_mean(s, axis=-1, keepdims=True)
    return relevance_lib.Factored(x, s)


@keras.saving.register_keras_serializable(package="isnet_keras")
class LayerNormalizationMirror(Mirror):
    """Mirror of `keras.layers.LayerNormalization` on the last axis.

    LRP-epsilon with the normalisation held constant
    (`layer_norm_rule`): the reciprocal standard deviation of each token
    is a factor of the linear map, not a function of `x` that takes
    relevance. It is recomputed here from the layer input, as the layer
    computes it (and stays differentiable in the training step; the rule
    only treats it as a constant). `rms_scaling=True` (no centring, no
    `beta`) is a diagonal map.
    """

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def _check_axis(self, rank):
        axis = self.source.axis
        axes = [axis] if isinstance(axis, int) else list(axis)
        if [a % rank for a in axes] != [rank - 1]:
            raise unsupported(self.source, "only normalisation over the last "
                              f"axis is supported (axis={axis}).")

    def propagate(self, relevance, inputs, outputs, training=None):
        layer = self.source
        self._check_axis(len(inputs[0].shape))
        x = self._cast(inputs[0])
        _, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        gain = tf.math.rsqrt(variance + tf.constant(layer.epsilon, x.dtype))
        if layer.scale:
            gain = gain * self._cast(layer.gamma)
        center = not layer.rms_scaling
        beta = self._cast(layer.beta) if center and layer.center else None
        return [layer_norm_rule(relevance, x, gain, beta, self.epsilon,
                                center)]


@keras.saving.register_keras_serializable(package="isnet_keras")
class AddPositionEmbedding(keras.layers.Layer):
    """Adds a learned tensor (a position embedding) to its input.

    `y = x + p`, with one learned `p` of the input's shape (without the
    batch axis), e.g. `(tokens, dim)` for the patch tokens of a vision
    transformer. Its LRP mirror is `PositionEmbeddingMirror`.

    Args:
        initializer: Initializer of `p`. Defaults to
            `RandomNormal(stddev=0.02)`.
        **kwargs: Base layer arguments.

    Example:

    >>> tokens = keras.layers.Reshape((16, 32))(patches)
    >>> tokens = AddPositionEmbedding()(tokens)
    """

    def __init__(self, initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(
            initializer or keras.initializers.RandomNormal(stddev=0.02))

    def build(self, input_shape):
        self.embedding = self.add_weight(
            shape=tuple(input_shape[1:]), initializer=self.initializer,
            name="embedding")

    def call(self, inputs):
        return inputs + keras.ops.cast(self.embedding, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["initializer"] = keras.initializers.serialize(self.initializer)
        return config


@keras.saving.register_keras_serializable(package="isnet_keras")
class PositionEmbeddingMirror(Mirror):
    """Mirror of `AddPositionEmbedding`: `R_x = x * R / stab(x + sg(p))`.

    The sum rule of `Add` with the learned tensor as a constant summand:
    its share `p * R / stab(x + p)` is absorbed, like a bias's.
    """

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        x = self._cast(inputs[0])
        embedding = self._cast(self.source.embedding)
        return [rules.affine_rule(relevance, x, 1.0, embedding,
                                  self.epsilon)]


@keras.saving.register_keras_serializable(package="isnet_keras")
class GlobalAveragePooling1DMirror(Mirror):
    """Mirror of `GlobalAveragePooling1D` (channels last, no mask).

    A linear layer without bias, `z = mean_t(x_t)`:
    `R_in = x * broadcast(R / stab(z)) / T`.
    """

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        keepdims = self.source.keepdims
        x = self._cast(inputs[0])
        z = tf.reduce_mean(x, axis=1, keepdims=keepdims)
        s = rules._ratio(relevance_lib.as_factored(relevance), z,
                         self.epsilon)
        if not keepdims:
            s = tf.expand_dims(s, 2)
        tokens = tf.cast(tf.shape(x)[1], x.dtype)
        shape = tf.concat([tf.shape(s)[:2], tf.shape(x)[1:]], 0)
        return [relevance_lib.Factored(x, tf.broadcast_to(s / tokens, shape))]
