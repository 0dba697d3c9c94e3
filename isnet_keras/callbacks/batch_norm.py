"""Batch-norm statistics recomputed from training batches ("precise batch
norm"), after each epoch or on demand."""

import keras

from isnet_keras.trainer import Trainer


def _trainable_batch_norms(model):
    """The batch-normalisation layers of `model` that update their moving
    statistics in training (frozen ones are left as they are)."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
            and layer.trainable]


def recompute_batch_norm_statistics(model, images, max_batches=None):
    """Replaces every batch-norm layer's moving statistics by their average
    over `images` ("precise batch norm").

    The moving averages of `BatchNormalization` (momentum 0.99, 0.999 in
    MobileNetV2) lag far behind the weights on a small training set, so the
    inference-mode network can predict one class while the training-mode
    network is accurate. Here each batch is run in training mode and the
    moving statistics become the plain mean of the batches' moments, the
    estimate of Wu & Johnson (2021); Keras has no built-in for it.

    Args:
        model: A Keras model (the classifier, not the ISNet).
        images: An iterable of image batches, e.g. a `tf.data.Dataset` of
            images, or of `(images, targets)` pairs (the first item is used).
        max_batches: int or None. Stop after this many batches.

    Returns:
        int: the number of batches used (0 leaves the model unchanged, as
        does a model without trainable batch-norm layers).

    Example:

    >>> recompute_batch_norm_statistics(
    ...     isnet.deploy_model, train_data, max_batches=50)  # doctest: +SKIP
    """
    layers = _trainable_batch_norms(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy())
             for layer in layers]
    used = 0
    try:
        for batch in images:
            if max_batches is not None and used >= max_batches:
                break
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            used += 1
            # Momentum (n - 1) / n makes the moving value the running mean
            # of the n batch moments seen so far.
            for layer in layers:
                layer.momentum = (used - 1) / used
            model(batch, training=True)
    except BaseException:
        for layer, (mean, variance) in zip(layers, saved):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
        raise
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return used


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recomputes the classifier's batch-norm statistics after training
    epochs, before they are used: before validation, at the end of each
    epoch (so checkpoints hold them) and at the end of training.

    See `recompute_batch_norm_statistics`. Costs one forward pass over
    `max_batches` training batches per epoch.

    Args:
        data: A dataset of `(images, targets)` or of images, e.g. the
            training dataset.
        max_batches: int. Batches to average over (default 50).

    Example:

    >>> isnet.fit(train_data, validation_data=val_data, epochs=15,
    ...           callbacks=[PreciseBatchNorm(train_data)])
    """

    def __init__(self, data, max_batches=50):
        super().__init__()
        if int(max_batches) < 1:
            raise ValueError(f"max_batches must be >= 1, received "
                             f"{max_batches}.")
        self.data = data
        self.max_batches = int(max_batches)
        self._stale = False

    def _target(self):
        return (self.model.deploy_model if isinstance(self.model, Trainer)
                else self.model)

    def _refresh(self):
        if self._stale:
            recompute_batch_norm_statistics(self._target(), self.data,
                                            self.max_batches)
            self._stale = False

    def on_train_batch_end(self, batch, logs=None):
        self._stale = True

    def on_test_begin(self, logs=None):
        # fit() validates before `on_epoch_end`.
        self._refresh()

    def on_epoch_end(self, epoch, logs=None):
        self._refresh()

    def on_train_end(self, logs=None):
        self._refresh()
