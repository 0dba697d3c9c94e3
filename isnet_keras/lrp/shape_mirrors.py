"""Mirrors of shape and merge layers: Flatten/Reshape, ZeroPadding2D, Add,
Average and Concatenate.

They move relevance to where the layer took its values from; only the sums
(`Add`, `Average`) have a rule (`rules.sum_rule`).
"""

import keras
import numpy as np
import tensorflow as tf

from isnet_keras.lrp import relevance as relevance_lib
from isnet_keras.lrp import rules
from isnet_keras.lrp.mirror_base import Mirror


@keras.saving.register_keras_serializable(package="isnet_keras")
class ReshapeMirror(Mirror):
    """Flatten and Reshape: relevance takes the input's shape back.

    A `Factored` relevance is reshaped part by part. The base check refuses
    a channels-first `Flatten`, which reorders the values it flattens.
    """

    rules = ()
    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        input_shape = tf.shape(inputs[0])

        def reshaped(tensor):
            # Keeps the batch axis, and the class axis of a class part.
            leading_axes = len(tensor.shape) - len(outputs[0].shape) + 1
            lead = tf.shape(tensor)[:leading_axes]
            return tf.reshape(tensor, tf.concat([lead, input_shape[1:]], 0))

        if isinstance(relevance, relevance_lib.Factored):
            return [relevance_lib.Factored(*(reshaped(t) for t in relevance))]
        return [reshaped(relevance)]


@keras.saving.register_keras_serializable(package="isnet_keras")
class ZeroPadding2DMirror(Mirror):
    """ZeroPadding2D: relevance of the padded border is dropped (it is 0)."""

    rules = ()

    def _padding(self):
        (top, bottom), (left, right) = self.source.padding
        return top, bottom, left, right

    def output_bounds(self):
        if self.input_bounds is None:
            return None
        top, bottom, left, right = self._padding()
        return tuple(
            np.pad(np.asarray(b), ((top, bottom), (left, right), (0, 0)))
            for b in self.input_bounds
        )

    def propagate(self, relevance, inputs, outputs, training=None):
        top, bottom, left, right = self._padding()
        height = tf.shape(relevance)[2]
        width = tf.shape(relevance)[3]
        return [relevance[:, :, top:height - bottom, left:width - right]]


@keras.saving.register_keras_serializable(package="isnet_keras")
class AddMirror(Mirror):
    """Add and Average: `R_i = a_i * R / stab(sum)`."""

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        weights = None
        if isinstance(self.source, keras.layers.Average):
            weights = [1.0 / len(inputs)] * len(inputs)
        return rules.sum_rule(relevance, [self._cast(a) for a in inputs],
                              self.epsilon, weights)


@keras.saving.register_keras_serializable(package="isnet_keras")
class ConcatenateMirror(Mirror):
    """Concatenate: relevance is split back along the concatenation axis."""

    rules = ()

    def propagate(self, relevance, inputs, outputs, training=None):
        rank = len(inputs[0].shape)
        axis = self.source.axis % rank
        sizes = [int(a.shape[axis]) for a in inputs]
        return tf.split(relevance, sizes, axis=axis + 1)
