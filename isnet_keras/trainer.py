"""The training harness shared by the ISNet and the baselines.

`Trainer` is a `keras.Model` around a classifier whose `call()` is the
classifier's and whose `train_step`/`test_step` take data
`(images, {"label": labels, "mask": masks})` (or `(images, (labels,
masks))`), check it (integer labels within the classes, binary masks),
compute the subclass's loss (`_loss_terms`, returning a `LossTerms`), skip a
step whose loss or gradients are not finite (counted in `skipped_steps`) and
log the metrics. `fit` and `evaluate` raise a failed data check of the
compiled step as an `InvalidDataError` (`data_checks`) that starts with the
library's message.
"""

from typing import NamedTuple, Optional

import keras
import numpy as np
import tensorflow as tf

from isnet_keras import data_checks


class LossTerms(NamedTuple):
    """The loss of one batch and the values its metrics need.

    Attributes:
        total: The scalar loss that the optimizer minimises.
        classification: The scalar cross-entropy.
        logits: `(B, N)` outputs of the classifier (logits, or
            probabilities for a softmax head).
        labels: `(B,)` int32 labels, checked.
        heatmap: The scalar heatmap loss (ISNet), else None.
        heatmaps: `(B, K, H, W, C)` input heatmaps (ISNet), else None.
        masks: The masks of the batch, as the loss took them.
    """

    total: tf.Tensor
    classification: tf.Tensor
    logits: tf.Tensor
    labels: tf.Tensor
    heatmap: Optional[tf.Tensor] = None
    heatmaps: Optional[tf.Tensor] = None
    masks: Optional[tf.Tensor] = None


def unpack_batch(data):
    """`(images, labels, masks)` of a training batch.

    Args:
        data: `(images, {"label": labels, "mask": masks})` or
            `(images, (labels, masks))`.

    Returns:
        The tuple `(images, labels, masks)`.

    Raises:
        ValueError: `data` has neither form.
    """
    if not isinstance(data, (tuple, list)) or len(data) < 2:
        raise ValueError(
            "ISNet data must be (images, {'label': labels, 'mask': masks}) "
            "or (images, (labels, masks)).")
    images, targets = data[0], data[1]
    if isinstance(targets, dict):
        missing = {"label", "mask"} - set(targets)
        if missing:
            raise ValueError(f"The targets dict lacks {sorted(missing)}; it "
                             "needs 'label' and 'mask'.")
        return images, targets["label"], targets["mask"]
    if isinstance(targets, (tuple, list)) and len(targets) == 2:
        return images, targets[0], targets[1]
    raise ValueError("ISNet targets must be {'label': ..., 'mask': ...} or "
                     "(labels, masks).")


def step_logs(metrics):
    """Metric results as the step's logs.

    Under multi-worker collectives Keras averages each logged value along
    axis 0 across workers, so there they get a length-1 axis (reduced back
    to scalars by that average).

    Args:
        metrics: An iterable of Keras metrics.

    Returns:
        A dict `{name: result}`.
    """
    strategy = tf.distribute.get_strategy()
    multi_worker = isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy) and getattr(
            strategy.extended, "_in_multi_worker_mode", lambda: False)()
    logs = {m.name: m.result() for m in metrics}
    if multi_worker:
        logs = {name: tf.reshape(value, (1,)) for name, value in logs.items()}
    return logs


def snapshot_variables(variables):
    """The values of `variables` now, to put back after a skipped step.

    Args:
        variables: Variables that the forward pass updates (batch-norm
            moving statistics).

    Returns:
        A list of `(variable, value)` pairs.
    """
    return [(v, tf.identity(v.value)) for v in variables]


def _finite_on_every_replica(finite):
    """Whether the step is finite on all replicas.

    Every replica must take the same branch: the optimizer's update
    all-reduces the gradients, and a replica that skipped it would leave the
    others waiting on that collective.
    """
    if tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return finite
    failures = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, "float32"))
    return tf.equal(failures, 0.0)


def apply_if_finite(optimizer, loss, gradients, variables, snapshot=()):
    """Applies the gradients of a finite step; a skipped step changes no
    variable.

    Zero gradients would not do: Adam's moments and `iterations` still
    advance on them, and momentum still moves the weights. The update runs
    under a `tf.cond` instead, as in Keras's `LossScaleOptimizer`: where the
    strategy's updates go through `merge_call` (which a branch in replica
    context may not call), the cond runs in cross-replica context and the
    update in `call_for_each_replica`. A `LossScaleOptimizer` gets every
    step: it skips non-finite ones itself, and must see them to lower its
    loss scale (the only variable it then changes).

    Args:
        optimizer: The compiled `keras.optimizers.Optimizer` (built).
        loss: This replica's scalar loss.
        gradients: One gradient (or None) per variable.
        variables: The trainable variables.
        snapshot: `snapshot_variables()` of the variables the forward pass
            updated; put back when the step is skipped.

    Returns:
        The scalar boolean tensor of whether the step was applied (finite
        on every replica).
    """
    finite = tf.math.is_finite(loss) & tf.reduce_all([
        tf.reduce_all(tf.math.is_finite(g)) for g in gradients
        if g is not None])
    finite = _finite_on_every_replica(finite)

    def skip():
        return None

    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        # It skips a step (and lowers its scale) when a gradient is not
        # finite; a non-finite loss with finite gradients must be skipped
        # too, so it gets NaN gradients.
        not_a_number = tf.where(finite, 1.0, float("nan"))
        gradients = [None if g is None else g * tf.cast(not_a_number, g.dtype)
                     for g in gradients]
        optimizer.apply(gradients, variables)
    elif tf.__internal__.distribute.strategy_supports_no_merge_call():
        def apply():
            optimizer.apply(gradients, variables)
            return None

        tf.cond(finite, apply, skip)
    else:
        def cross_replica(distribution, gradients, variables, finite):
            # `finite` is the same on every replica (all-reduced above).
            finite = distribution.experimental_local_results(finite)[0]

            def apply():
                distribution.extended.call_for_each_replica(
                    optimizer.apply, args=(gradients, variables))
                return None

            tf.cond(finite, apply, skip)

        tf.distribute.get_replica_context().merge_call(
            cross_replica, args=(gradients, variables, finite))
    # A select, not a cond: these assignments run in replica context, like
    # the forward pass's own updates of the same variables.
    for variable, value in snapshot:
        variable.assign(tf.where(finite, variable.value, value))
    return finite


def regularization_loss(classifier, dtype):
    """The sum of the classifier's own losses (weight regularizers such as
    `kernel_regularizer`, activity regularizers), which Keras adds to a
    compiled model's loss: a custom training step must add them itself.

    Args:
        classifier: A Keras model.
        dtype: The dtype of the result.

    Returns:
        A scalar tensor (0 without such losses).
    """
    losses = classifier.losses
    if not losses:
        return tf.constant(0.0, dtype)
    return tf.cast(tf.add_n([tf.cast(loss, dtype) for loss in losses]), dtype)


def update_if_finite(finite, update_metrics):
    """Runs `update_metrics()` only for an applied step.

    A skipped step's NaN loss would make the epoch's means NaN although no
    weight took it: the metrics average the applied steps only.

    Args:
        finite: Scalar boolean tensor, from `apply_if_finite`.
        update_metrics: A callable of no arguments.
    """

    def update():
        update_metrics()
        return tf.constant(True)

    tf.cond(finite, update, lambda: tf.constant(False))


def _output_classes(classifier):
    """The classifier's number of classes, or None when unknown."""
    try:
        outputs = classifier.outputs
    except (AttributeError, ValueError):
        return None
    if not outputs or len(outputs) != 1:
        return None
    return outputs[0].shape[-1]


@keras.saving.register_keras_serializable(package="isnet_keras")
class Trainer(keras.Model):
    """A classifier with a training step of its own loss.

    Subclasses define `_loss_terms` (and extend `metrics` and
    `_update_metrics` for extra terms). `call()` and `predict()` run the
    classifier alone.

    Args:
        classifier: A Keras classifier (logits or softmax output).
        num_classes: int or None. The number of classes that labels must
            lie below; defaults to the width of the classifier's output
            (unchecked when that is unknown).
        **kwargs: `keras.Model` arguments (`name`).
    """

    def __init__(self, classifier, num_classes=None, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.num_classes = (num_classes if num_classes is not None
                            else _output_classes(classifier))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.classification_tracker = keras.metrics.Mean(
            name="classification_loss")
        self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(
            name="accuracy")
        self.skipped_tracker = keras.metrics.Sum(name="skipped_steps")

    @property
    def deploy_model(self):
        """The classifier itself: the graph to export and serve."""
        return self.classifier

    @property
    def metrics(self):
        return [self.loss_tracker, self.classification_tracker,
                self.accuracy_metric, self.skipped_tracker]

    def call(self, inputs, training=False):
        return self.classifier(inputs, training=training)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds compiled metrics from a data batch that it first
        # averages across replicas, which fails on multi-worker datasets.
        # The metrics here exist from __init__: only the optimizer needs
        # building, inside the strategy scope.
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.classifier.trainable_variables)

    def check_labels(self, labels):
        """Labels as int32 `(B,)`, asserted whole numbers within the
        classes (checked when the step runs).

        Args:
            labels: Integer or float class indices.

        Returns:
            The int32 labels, flattened.
        """
        return data_checks.check_labels(labels, self.num_classes)

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, after checking that in-memory labels (of `y`
        and `validation_data`) are integers.

        Raises:
            InvalidDataError: (`isnet_keras.errors`; also a
                `tf.errors.InvalidArgumentError`) when a batch fails a check
                of the compiled step: labels out of range, non-binary
                masks, images outside the Z^B input bounds or holding NaN.
                Its message starts with the check's own.
        """
        data_checks.check_integer_labels(y)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) >= 2:
            data_checks.check_integer_labels(validation[1])
        with data_checks.library_data_errors_first(self):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, after checking that in-memory labels (of
        `y`) are integers; raises `InvalidDataError` as `fit` does."""
        data_checks.check_integer_labels(y)
        with data_checks.library_data_errors_first(self):
            return super().evaluate(x, y, *args, **kwargs)

    def _loss_terms(self, images, labels, masks, training):
        """The loss of a batch.

        Args:
            images: The batch's images.
            labels: Its labels, unchecked.
            masks: Its masks, unchecked.
            training: bool. Whether the classifier runs in training mode.

        Returns:
            A `LossTerms`.
        """
        raise NotImplementedError

    def _update_metrics(self, terms):
        """Adds a batch's `LossTerms` to the metrics."""
        self.loss_tracker.update_state(terms.total)
        self.classification_tracker.update_state(terms.classification)
        self.accuracy_metric.update_state(terms.labels, terms.logits)

    def train_step(self, data):
        images, labels, masks = unpack_batch(data)
        variables = self.classifier.trainable_variables
        # The training-mode pass updates batch-norm statistics; a skipped
        # step puts them back (a NaN image would make them NaN for good).
        snapshot = snapshot_variables(self.classifier.non_trainable_weights)
        with tf.GradientTape() as tape:
            terms = self._loss_terms(images, labels, masks, training=True)
            # Gradients are summed over replicas: average the loss here.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(terms.total / replicas)
        gradients = tape.gradient(scaled, variables)
        # A non-finite step is counted and changes no variable, so that a
        # bad batch cannot make the weights NaN.
        finite = apply_if_finite(self.optimizer, terms.total, gradients,
                                 variables, snapshot)
        # Each replica adds its share: the tracker sums over replicas.
        self.skipped_tracker.update_state(
            (1.0 - tf.cast(finite, "float32")) / replicas)
        update_if_finite(finite, lambda: self._update_metrics(terms))
        return step_logs(self.metrics)

    def test_step(self, data):
        images, labels, masks = unpack_batch(data)
        self._update_metrics(self._loss_terms(images, labels, masks,
                                              training=False))
        return step_logs(m for m in self.metrics
                         if m is not self.skipped_tracker)

    def predict_step(self, data):
        images = data[0] if isinstance(data, (tuple, list)) else data
        return self.classifier(images, training=False)

    def training_state(self):
        """The classifier's weights and the optimizer's variables now.

        Returns:
            A dict, for `restore_training_state`.
        """
        return {"weights": self.classifier.get_weights(),
                "optimizer": {variable.path: variable.numpy()
                              for variable in self.optimizer.variables}}

    def restore_training_state(self, state):
        """Puts back the classifier's weights and the optimizer's variables
        of `training_state()`; optimizer variables made since (momenta)
        start again from zero.

        Args:
            state: What `training_state()` returned.
        """
        self.classifier.set_weights(state["weights"])
        saved = state["optimizer"]
        for variable in self.optimizer.variables:
            variable.assign(saved.get(
                variable.path, np.zeros(variable.shape, variable.dtype)))

    def get_config(self):
        return {"name": self.name,
                "classifier": keras.saving.serialize_keras_object(
                    self.classifier),
                "num_classes": self.num_classes}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(
            config["classifier"])
        return cls(**config)
