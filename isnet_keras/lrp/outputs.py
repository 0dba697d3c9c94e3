"""Where relevance starts: the explained quantity of each ISNet variant.

Each seed is a small Keras layer that reads the classifier's logits layer
(tied weights, bias gradient-stopped) and returns the relevance at its
start tensor, with a class axis: `(B, K, ...)`.

* `ClassLogitRelevance`: explain given classes' logits (explain(),
  Original ISNet with all classes), or the predicted class.
* `SelectiveRelevance`: explain `eta_c = log(p_c / (1 - p_c))` for one class
  per image through a virtual layer on the logits layer's input.
* `StochasticRelevance`: the top logit with probability 1/2, else another
  class drawn uniformly, per image.
* `DualRelevance`: the sum of logits twice, for the z+ map and the epsilon
  map.
"""

import keras
import tensorflow as tf

from isnet_keras.errors import UnsupportedLayerError
from isnet_keras.lrp import rules

CLASS_POLICIES = ("lowest", "highest", "label")


def _dense_or_none(layer):
    return layer if type(layer) is keras.layers.Dense else None


class _Seed(keras.layers.Layer):
    """Holds an untracked reference to the classifier's logits layer."""

    def __init__(self, logits_layer, lrp_dtype="float32", **kwargs):
        super().__init__(dtype=lrp_dtype, **kwargs)
        object.__setattr__(self, "_logits_layer", logits_layer)
        self.lrp_dtype = lrp_dtype

    @property
    def dense(self):
        """The logits layer if it is a Dense layer, else None."""
        return _dense_or_none(self._logits_layer)

    def _require_dense(self, what):
        if self.dense is None:
            layer = self._logits_layer
            raise UnsupportedLayerError(
                f"{layer.name} ({type(layer).__name__}): {what} needs the "
                "logits to come from a Dense layer."
            )

    def _kernel_bias(self):
        dense = self.dense
        kernel = tf.cast(dense.kernel, self.lrp_dtype)
        bias = None
        if dense.use_bias:
            bias = tf.stop_gradient(tf.cast(dense.bias, self.lrp_dtype))
        return kernel, bias

    def logits(self, start):
        """Logits with the bias gradient-stopped, from the start tensor.

        For a Dense logits layer `start` is its input `a` and the logits are
        recomputed as `a W + sg(b)`; otherwise `start` is the logits tensor.
        """
        start = tf.cast(start, self.lrp_dtype)
        if self.dense is None:
            return start
        kernel, bias = self._kernel_bias()
        z = tf.matmul(start, kernel)
        return z if bias is None else z + bias

    def get_config(self):
        config = super().get_config()
        config.update({"logits_layer": self._logits_layer.name,
                       "lrp_dtype": self.lrp_dtype})
        return config


def start_of_logits(graph):
    """The tensor a logits seed reads: the Dense input, or the logits."""
    call = graph.logits_call
    if _dense_or_none(call.layer) is not None:
        return call.inputs[0]
    return call.output


@keras.saving.register_keras_serializable(package="isnet_keras")
class ClassLogitRelevance(_Seed):
    """`R[b, k, n] = z[b, n]` if `n == classes[b, k]` else 0.

    Called as `seed(start)` (explains the predicted class, K = 1, or every
    class, K = N, with `all_classes=True`) or `seed(start, classes)` with
    integer `classes` of shape `(B, K)`. Returns `(B, K, N)` relevance at
    the logits.
    """

    def __init__(self, logits_layer, all_classes=False, **kwargs):
        super().__init__(logits_layer, **kwargs)
        self.all_classes = all_classes

    def call(self, start, classes=None):
        z = self.logits(start)
        if self.all_classes:
            eye = tf.eye(z.shape[-1], dtype=z.dtype)
            return eye[None] * z[:, None, :]
        if classes is None:
            classes = tf.argmax(z, axis=-1, output_type=tf.int32)[:, None]
        one_hot = tf.one_hot(tf.cast(classes, tf.int32), tf.shape(z)[-1],
                             dtype=z.dtype)
        return one_hot * z[:, None, :]

    def get_config(self):
        config = super().get_config()
        config.update({"all_classes": self.all_classes})
        return config


@keras.saving.register_keras_serializable(package="isnet_keras")
class SelectiveRelevance(_Seed):
    """Relevance of `eta_c = log(p_c / (1 - p_c))` at the logits layer input.

    A virtual layer `z_cc' = a (w_c - w_c') + sg(b_c - b_c')`, `c' != c`,
    receives `R_c' = z_cc' pi_c'` with `pi = softmax_{c' != c}(-z_cc')`, and
    LRP-epsilon takes it to `a`. At epsilon -> 0 this is `a * d eta_c / d a`.

    Args:
        logits_layer: The classifier's final Dense layer.
        class_policy: `"lowest"` (argmin logit), `"highest"` (argmax) or
            `"label"` (the image's label, passed as second call argument).
        epsilon: The stabiliser of the virtual layer.

    Returns (when called): `(B, 1, d)` relevance at the Dense input.
    """

    def __init__(self, logits_layer, class_policy="lowest", epsilon=1e-2,
                 **kwargs):
        super().__init__(logits_layer, **kwargs)
        if class_policy not in CLASS_POLICIES:
            raise ValueError(f"class_policy must be one of {CLASS_POLICIES}, "
                             f"received {class_policy!r}.")
        self._require_dense("the Selective ISNet")
        self.class_policy = class_policy
        self.epsilon = float(epsilon)

    def call(self, start, labels=None):
        a = tf.cast(start, self.lrp_dtype)
        z = self.logits(a)
        num_classes = z.shape[-1]
        if self.class_policy == "lowest":
            chosen = tf.argmin(z, axis=-1, output_type=tf.int32)
        elif self.class_policy == "highest":
            chosen = tf.argmax(z, axis=-1, output_type=tf.int32)
        else:
            if labels is None:
                raise ValueError("class_policy='label' needs the labels.")
            chosen = tf.reshape(tf.cast(labels, tf.int32), (-1,))
        is_chosen = tf.one_hot(chosen, num_classes, dtype=z.dtype)
        z_chosen = tf.reduce_sum(z * is_chosen, axis=-1, keepdims=True)
        gaps = z_chosen - z  # z_cc', zero at c' = c
        others = 1.0 - is_chosen
        # Stable softmax over c' != c of -z_cc'.
        weights = tf.nn.softmax(-gaps + is_chosen * -1e30, axis=-1) * others
        ratios = others * gaps * weights / rules.stabilize(gaps, self.epsilon)
        kernel, _ = self._kernel_bias()
        w_chosen = tf.gather(tf.transpose(kernel), chosen)  # (B, d)
        t = w_chosen * tf.reduce_sum(ratios, -1, keepdims=True) - tf.matmul(
            ratios, kernel, transpose_b=True)
        return (a * t)[:, None, :]

    def get_config(self):
        config = super().get_config()
        config.update({"class_policy": self.class_policy,
                       "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="isnet_keras")
class StochasticRelevance(_Seed):
    """Explains, per image, the top logit with probability 1/2, else a class
    drawn uniformly among the others.

    Args:
        logits_layer: The classifier's logits layer.
        seed: int. Seeds a `keras.random.SeedGenerator`, so runs repeat.

    Returns (when called): `(B, 1, N)` relevance at the logits.
    """

    def __init__(self, logits_layer, seed=None, **kwargs):
        super().__init__(logits_layer, **kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, start):
        z = self.logits(start)
        num_classes = z.shape[-1]
        batch = tf.shape(z)[:1]
        top = tf.argmax(z, axis=-1, output_type=tf.int32)
        coin = keras.random.uniform(batch, seed=self.seed_generator)
        offset = keras.random.randint(batch, 1, num_classes,
                                      seed=self.seed_generator, dtype="int32")
        chosen = tf.where(coin < 0.5, top, (top + offset) % num_classes)
        one_hot = tf.one_hot(chosen, num_classes, dtype=z.dtype)
        return (one_hot * z)[:, None, :]

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="isnet_keras")
class DualRelevance(_Seed):
    """The sum of logits, as the z+ map and the epsilon map explain it.

    Returns (when called) two `(B, 1, N)` tensors: `z+_n = a+ W+_n + a- W-_n
    + max(sg(b_n), 0)` for the z+ map and `z_n` for the epsilon map.
    """

    def __init__(self, logits_layer, **kwargs):
        super().__init__(logits_layer, **kwargs)
        self._require_dense("the Dual ISNet")

    def call(self, start):
        a = tf.cast(start, self.lrp_dtype)
        kernel, bias = self._kernel_bias()
        positive = tf.matmul(tf.maximum(a, 0.0), tf.maximum(kernel, 0.0)) + \
            tf.matmul(tf.minimum(a, 0.0), tf.minimum(kernel, 0.0))
        if bias is not None:
            positive = positive + tf.maximum(bias, 0.0)
        return positive[:, None, :], self.logits(a)[:, None, :]
