"""Mirrors of element-wise layers: batch norms that could not be folded,
pass-through activations and dropout, and `Rescaling`/`Normalization`.
"""

import keras
import numpy as np

from isnet_keras.lrp import folding
from isnet_keras.lrp import relevance as relevance_lib
from isnet_keras.lrp import rules
from isnet_keras.lrp.mirror_base import GATE_ACTIVATIONS
from isnet_keras.lrp.mirror_base import Mirror
from isnet_keras.lrp.mirror_base import activation_name
from isnet_keras.lrp.mirror_base import unsupported


@keras.saving.register_keras_serializable(package="isnet_keras")
class BatchNormalizationMirror(Mirror):
    """A batch norm that could not be folded: a diagonal affine layer.

    Its axis is checked in `propagate`, where the input rank is known.
    """

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        layer = self.source
        folding.check_batch_norm(layer, len(inputs[0].shape))
        x = self._cast(inputs[0])
        gain, shift = folding.batch_norm_affine(
            layer, inputs[0], self._training(training), self.lrp_dtype
        )
        return [rules.affine_rule(relevance, x, gain,
                                  self._absorbing(shift), self.epsilon)]


@keras.saving.register_keras_serializable(package="isnet_keras")
class PassThroughMirror(Mirror):
    """ReLU, ReLU6, Activation('relu'|'linear'|gate), Dropout: relevance
    unchanged.

    ReLUs pass relevance unchanged because the next rule down uses their
    pre-activation `z` (reused or recomputed). So do the gates of
    `GATE_ACTIVATIONS` (`y = x * g(x)`, e.g. GELU), by the identity rule:
    `R_x = R_y`, the LRP-0 rule of the map `y = g(x) * x` with its gate
    `g(x)` held constant. Dropout passes relevance unchanged
    because that rule uses the dropped tensor of the same pass, so dropped
    units get zero.
    """

    rules = ()
    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED,
                       relevance_lib.WINDOW)

    def check_layers(self):
        super().check_layers()
        layer = self.source
        if isinstance(layer, keras.layers.ReLU):
            if float(layer.negative_slope) != 0.0 or float(layer.threshold) != 0:
                raise unsupported(layer, "ReLU with negative_slope or "
                                  "threshold has no LRP pass-through rule.")
            if layer.max_value not in (None, 6, 6.0):
                raise unsupported(layer, "only ReLU and ReLU6 are supported "
                                  f"(max_value={layer.max_value}).")
        if isinstance(layer, keras.layers.Activation):
            name = activation_name(layer)
            allowed = {"relu", "linear", "relu6", *GATE_ACTIVATIONS}
            if self.is_logits:
                allowed |= {"softmax", "sigmoid"}
            if name not in allowed:
                raise unsupported(layer, f"activation '{name}' has no LRP "
                                  "rule; only relu, relu6, linear and the "
                                  f"gates {GATE_ACTIVATIONS} pass relevance "
                                  "unchanged.")

    def output_bounds(self):
        return self.input_bounds

    def _keeps_positive_values(self):
        """Whether every positive input passes unchanged (ReLU, linear)."""
        layer = self.source
        if isinstance(layer, keras.layers.ReLU):
            return layer.max_value is None
        return isinstance(layer, keras.layers.Activation) and \
            activation_name(layer) in ("relu", "linear")

    def accepted_forms(self):
        # A `WindowRelevance`'s peaks are values of this layer's output;
        # they stay those of its input only where positive values pass.
        if self._keeps_positive_values():
            return self.relevance_forms
        return (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        return [relevance]


@keras.saving.register_keras_serializable(package="isnet_keras")
class RescalingMirror(Mirror):
    """Rescaling and Normalization, `x' = scale * x + offset`.

    Between the model input and the first linear layer relevance passes
    unchanged (the map is one-to-one per pixel) and the Z^B bounds are mapped
    through it. Deeper in the network it is a diagonal affine layer.
    """

    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def check_layers(self):
        super().check_layers()
        if isinstance(self.source, keras.layers.Normalization) and \
                self.source.invert:
            raise unsupported(self.source, "invert=True is not supported.")

    def _scale_offset(self, rank):
        """`(scale, offset)` for a `rank`-D example (no batch axis)."""
        layer = self.source
        if isinstance(layer, keras.layers.Normalization):
            std = np.sqrt(np.asarray(layer.variance, dtype=np.float64))
            scale = 1.0 / np.maximum(std, keras.backend.epsilon())
            offset = -np.asarray(layer.mean, dtype=np.float64) * scale
        else:
            scale = np.asarray(layer.scale, dtype=np.float64)
            offset = np.asarray(layer.offset, dtype=np.float64)
        # Normalization keeps a leading batch axis in its statistics.
        return tuple(np.squeeze(v, axis=0) if np.ndim(v) > rank else v
                     for v in (scale, offset))

    def output_bounds(self):
        if self.input_bounds is None:
            return None
        scale, offset = self._scale_offset(np.ndim(self.input_bounds[0]))
        lower, upper = (np.asarray(b) * scale + offset for b in self.input_bounds)
        return np.minimum(lower, upper), np.maximum(lower, upper)

    def propagate(self, relevance, inputs, outputs, training=None):
        if self.input_bounds is not None:
            return [relevance]
        scale, offset = self._scale_offset(len(inputs[0].shape) - 1)
        return [rules.affine_rule(relevance, self._cast(inputs[0]),
                                  self._cast(scale),
                                  self._absorbing(self._cast(offset)),
                                  self.epsilon)]
