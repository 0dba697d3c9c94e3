"""Mirrors of max pooling: winner-take-all (`rules.winner_take_all_rule`).

Average pooling is a linear layer (see `linear_mirrors.py`).
"""

import keras
import tensorflow as tf

from isnet_keras.lrp import linear_maps
from isnet_keras.lrp import relevance as relevance_lib
from isnet_keras.lrp import rules
from isnet_keras.lrp.mirror_base import Mirror


@keras.saving.register_keras_serializable(package="isnet_keras")
class MaxPooling2DMirror(Mirror):
    """Mirror of `MaxPooling2D`: winner-take-all.

    Windows that tile the input (strides equal to the pool size, the usual
    case) send relevance to their maximum with element-wise ops, ties split
    evenly (`linear_maps.window_winners`), and nearest-neighbour upsampling;
    the relevance is handed on as a `WindowRelevance`. Overlapping windows
    scatter-add it to the argmax of `max_pool_with_argmax`. XLA has kernels
    for neither the upsampling's gradient nor the argmax, so this mirror
    sets `supports_jit = False`: Keras then compiles a model holding it
    without XLA (`jit_compile="auto"` on a GPU, or with a warning for
    `True`).
    """

    absorbs_batch_norm = True
    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.supports_jit = False

    def propagate(self, relevance, inputs, outputs, training=None):
        layer = self.source
        x = self._layer_input(inputs[0])
        pooled = self._cast(outputs[0])
        gain, shift = self._folded_affine(outputs[0], training)
        pool_size = tuple(layer.pool_size)
        winners = None
        if linear_maps.tiles_windows(pool_size, tuple(layer.strides),
                                     layer.padding, tuple(x.shape)):
            # `x * scatter(s)` as `winners * broadcast(s * pooled)`: a
            # scatter at relevance size (B*K images) and its gather
            # gradient are slow, and the product with the activation is
            # cheaper at the pooled size.
            winners = (*linear_maps.window_winners(x, pooled, pool_size),
                       pool_size)

            def unpool(s):
                return linear_maps.broadcast_windows(s, pool_size,
                                                     tuple(x.shape))
        else:
            # Only the indices are used: the classifier's own pooled
            # tensor carries the (second-order) gradients.
            _, argmax = tf.nn.max_pool_with_argmax(
                x, pool_size, tuple(layer.strides), layer.padding.upper(),
                include_batch_in_index=False,
            )
            input_shape = tf.shape(x)

            def unpool(s):
                return linear_maps.max_unpool(s, argmax, input_shape)

        return [rules.winner_take_all_rule(
            relevance, x, pooled, unpool, self.epsilon, gain,
            self._absorbing(shift),
            winners=winners,
        )]


@keras.saving.register_keras_serializable(package="isnet_keras")
class GlobalMaxPooling2DMirror(Mirror):
    """Mirror of `GlobalMaxPooling2D`: winner-take-all per channel."""

    absorbs_batch_norm = True
    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        keepdims = self.source.keepdims
        x = self._layer_input(inputs[0])
        pooled = tf.reduce_max(x, axis=(1, 2), keepdims=keepdims)
        gain, shift = self._folded_affine(outputs[0], training)

        def unpool(s):
            return linear_maps.global_max_unpool(s, x, keepdims)

        return [rules.winner_take_all_rule(
            relevance, x, pooled, unpool, self.epsilon, gain,
            self._absorbing(shift),
        )]
