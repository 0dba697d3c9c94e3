"""Baselines trained in the same harness as the ISNet.

* `PlainClassifier`: cross-entropy only (masks are checked and otherwise
  ignored), so it runs on the same data and logs the same way.
* `RRRClassifier`: Right for the Right Reasons (Ross et al., 2017):
  `CE + lambda * sum_b sum_pixels ((1 - M) * d/dx sum_n log p_n(x))^2`.
* `MaskedInputClassifier`: trains and predicts on `x * M`; an upper bound
  that needs a mask (a segmenter) at run time, which the ISNet does not.

All take data `(images, {"label": labels, "mask": masks})`, like the ISNet,
train with its step (`isnet_keras.trainer.Trainer`: the same data checks,
metrics and skipped non-finite steps), and their `deploy_model` is the
classifier. By default their losses are
means over the batch; `reduction="sum"` and `l2` give the RRR paper's form,
`sum_b CE + lambda * sum_b penalty + l2 * sum(theta^2)` (see
`isnet_keras.bench.rrr_protocol`).
"""

import keras
import tensorflow as tf

from isnet_keras import data_checks
from isnet_keras.export import classifier_outputs_probabilities
from isnet_keras.trainer import LossTerms, Trainer, regularization_loss


REDUCTIONS = ("mean", "sum")


class _Baseline(Trainer):
    """The classifier, its cross-entropy and the `Trainer`'s step: data
    checks (labels within the classes, binary masks), metrics, and skipped
    (non-finite) steps, which change no variable.

    Args:
        classifier: A Keras classifier (logits or softmax output).
        reduction: `"mean"` (default): the cross-entropy (and RRR's
            penalty) is averaged over the batch; `"sum"`: summed, as in the
            RRR paper's loss.
        l2: float. Weight of an explicit `l2 * sum(theta^2)` over every
            trainable variable of the classifier (kernels and biases), added
            to each step's loss once (not per image). Defaults to 0 (none).
            Keras `kernel_regularizer`s are not collected by these training
            steps: give the weight here.
        **kwargs: `Trainer` arguments (`name`, `num_classes`).
    """

    def __init__(self, classifier, reduction="mean", l2=0.0, **kwargs):
        kwargs.setdefault("name", f"{type(self).__name__.lower()}_"
                          f"{classifier.name}")
        super().__init__(classifier, **kwargs)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, "
                             f"received {reduction!r}.")
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, received {l2}.")
        self.reduction = reduction
        self.l2 = float(l2)
        self.built = True

    # Whether a mask of `data_checks.UNANNOTATED` (-1 everywhere: an image
    # without annotation) is accepted; masked input cannot mask such an
    # image, so only the baselines that can do without a mask say so.
    accepts_unannotated = False

    def _inputs(self, images, masks):
        return images

    def _checked_masks(self, masks):
        if not self.accepts_unannotated:
            return data_checks.check_masks(masks)
        masks = data_checks.mask_batch(masks)
        with tf.control_dependencies(data_checks.partial_mask_checks(masks)):
            return tf.identity(masks)

    def _reduce(self, values):
        """Per-image values -> the batch's term (mean or sum)."""
        if self.reduction == "sum":
            return tf.reduce_sum(values)
        return tf.reduce_mean(values)

    def _cross_entropy(self, labels, outputs):
        from_logits = not classifier_outputs_probabilities(self.classifier)
        return self._reduce(keras.losses.sparse_categorical_crossentropy(
            labels, outputs, from_logits=from_logits))

    def _weight_penalty(self, dtype):
        """`l2 * sum(theta^2)` over the classifier's trainable variables."""
        if not self.l2:
            return tf.zeros((), dtype)
        squares = [tf.reduce_sum(tf.square(tf.cast(v, dtype)))
                   for v in self.classifier.trainable_variables]
        return self.l2 * tf.add_n(squares)

    def _forward_with_penalty(self, images, masks, training=True):
        """The outputs and the extra loss term, from one pass."""
        outputs = self.classifier(images, training=training)
        return outputs, self._weight_penalty(outputs.dtype)

    def _loss_terms(self, images, labels, masks, training):
        labels = self.check_labels(labels)
        masks = self._checked_masks(masks)
        outputs, penalty = self._forward_with_penalty(
            self._inputs(images, masks), masks, training=training)
        classification = self._cross_entropy(labels, outputs)
        total = (classification + penalty
                 + regularization_loss(self.classifier, classification.dtype))
        return LossTerms(total=total, classification=classification,
                         logits=outputs, labels=labels, masks=masks)

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction,
                "l2": self.l2}


@keras.saving.register_keras_serializable(package="isnet_keras")
class PlainClassifier(_Baseline):
    """The classifier trained with cross-entropy only.

    Masks are checked but not used, so images without annotation (masks of
    -1 everywhere) are accepted.

    Args:
        classifier: A Keras classifier (logits or softmax output).

    Example:

    >>> plain = PlainClassifier(classifier)
    >>> plain.compile(optimizer="adam")
    >>> plain.fit(images, {"label": labels, "mask": masks})
    """

    accepts_unannotated = True


@keras.saving.register_keras_serializable(package="isnet_keras")
class RRRClassifier(_Baseline):
    """Right for the Right Reasons: an input-gradient penalty outside the
    mask. An image without annotation (mask of -1 everywhere) adds no
    penalty: it trains on cross-entropy only.

    Args:
        classifier: A Keras classifier (logits or softmax output).
        penalty: float. The weight lambda of the penalty. Defaults to 1000,
            the value of the RRR paper's MNIST experiments.
        pixel_scale: float. The penalty takes the input gradient per unit
            of `images * pixel_scale`, i.e. divides the squared gradients by
            `pixel_scale ** 2`. Defaults to 1 (per unit of the model input).
            The RRR paper's MNIST code feeds raw grey levels 0-255, so its
            lambda = 1000 weighs gradients per grey level: with images in
            [0, 1], `pixel_scale=255` gives that penalty.
        reduction: `"mean"` (default) or `"sum"` over the batch (`_Baseline`).
        l2: Weight of `l2 * sum(theta^2)` (`_Baseline`). Defaults to 0.

    Example:

    >>> rrr = RRRClassifier(classifier, penalty=1000.0)
    >>> paper = RRRClassifier(mlp, penalty=1000.0, pixel_scale=255.0,
    ...                       reduction="sum", l2=1e-4)
    """

    accepts_unannotated = True

    def __init__(self, classifier, penalty=1000.0, pixel_scale=1.0,
                 **kwargs):
        super().__init__(classifier, **kwargs)
        if penalty < 0:
            raise ValueError(f"penalty must be >= 0, received {penalty}.")
        if not pixel_scale > 0:
            raise ValueError(f"pixel_scale must be > 0, received "
                             f"{pixel_scale}.")
        self.penalty = float(penalty)
        self.pixel_scale = float(pixel_scale)
        self.penalty_tracker = keras.metrics.Mean(name="input_gradient_loss")

    @property
    def metrics(self):
        return super().metrics + [self.penalty_tracker]

    def get_config(self):
        return {**super().get_config(), "penalty": self.penalty,
                "pixel_scale": self.pixel_scale}

    def _forward_with_penalty(self, images, masks, training=True):
        # One pass serves both the cross-entropy and the input gradient (a
        # second training-mode pass would update batch-norm statistics
        # twice and draw new dropout masks).
        # In the classifier's variable dtype: float64 NumPy images would
        # otherwise give a float64 input gradient beside float32 losses.
        images = tf.cast(tf.convert_to_tensor(images), self.classifier.dtype)
        with tf.GradientTape() as inner:
            inner.watch(images)
            outputs = self.classifier(images, training=training)
            if classifier_outputs_probabilities(self.classifier):
                log_probs = tf.math.log(outputs + 1e-12)
            else:
                log_probs = tf.nn.log_softmax(outputs)
            summed = tf.reduce_sum(log_probs)
        gradient = inner.gradient(summed, images)
        masks = tf.reshape(masks, tf.shape(images)[:3])[..., None]
        annotated = tf.cast(data_checks.annotated_images(masks),
                            gradient.dtype)
        masks = tf.cast(masks, gradient.dtype)
        # An image without annotation (-1 mask) adds no penalty.
        per_image = annotated * tf.reduce_sum(
            tf.square((1.0 - masks) * gradient),
            axis=tf.range(1, tf.rank(gradient)))
        value = self._reduce(per_image) / self.pixel_scale ** 2
        # A non-finite penalty belongs to a skipped step: keep it out of
        # the running mean.
        finite = tf.math.is_finite(value)
        self.penalty_tracker.update_state(
            tf.where(finite, value, tf.zeros_like(value)),
            sample_weight=tf.cast(finite, value.dtype))
        return outputs, (self.penalty * value
                         + self._weight_penalty(outputs.dtype))


@keras.saving.register_keras_serializable(package="isnet_keras")
class MaskedInputClassifier(_Baseline):
    """Trains and evaluates on `images * masks` (background zeroed).

    At prediction time it also needs masks: `predict((images, masks))`. The
    classifier alone (`deploy_model`) expects masked images.
    """

    def _inputs(self, images, masks):
        images = tf.convert_to_tensor(images)
        masks = tf.cast(tf.reshape(masks, tf.shape(images)[:3])[..., None],
                        images.dtype)
        return images * masks

    def predict_step(self, data):
        # `predict((images, masks))` arrives as `((images, masks),)`; a
        # dataset of `(images, masks)` pairs arrives as the pair itself.
        if isinstance(data, (tuple, list)) and len(data) == 1:
            data = data[0]
        if not isinstance(data, (tuple, list)) or len(data) < 2:
            raise ValueError("MaskedInputClassifier.predict needs "
                             "(images, masks).")
        images, masks = data[0], data[1]
        return self.classifier(self._inputs(images, masks), training=False)
