"""A cosine learning-rate decay over the whole run, set batch by batch.

Keras' `LearningRateScheduler` sets the rate once per epoch; a schedule
object inside the optimizer counts the optimizer's own steps, which a
warm-up `fit` (`isnet train --tune-bounds`) or a resumed run would shift.
This callback reads the position in the run from `fit` itself.
"""

import math

import keras


class CosineLearningRate(keras.callbacks.Callback):
    """Decays the learning rate from `base_rate` to 0 along a half cosine.

    At batch `b` of epoch `e`, with `S` steps per epoch and `E` epochs in
    the `fit` call, the rate is `base_rate * (1 + cos(pi * t / (E S))) / 2`
    with `t = e S + b`. A resumed `fit` (`initial_epoch > 0`) continues the
    same curve; more epochs on resume stretch it. Each epoch's logs get
    `learning_rate`, the rate of its last step.

    Args:
        base_rate: float > 0, the rate of the first step.

    Example:

    >>> isnet.fit(data, epochs=15,
    ...           callbacks=[CosineLearningRate(3e-3)])
    """

    def __init__(self, base_rate):
        super().__init__()
        if not float(base_rate) > 0.0:
            raise ValueError(f"base_rate must be > 0, received {base_rate}.")
        self.base_rate = float(base_rate)
        self._epoch = 0

    def rate(self, epoch, batch, epochs, steps):
        """The rate at `batch` of `epoch` in a run of `epochs` x `steps`."""
        progress = min((epoch * steps + batch) / float(epochs * steps), 1.0)
        return self.base_rate * 0.5 * (1.0 + math.cos(math.pi * progress))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        steps = self.params.get("steps")
        epochs = self.params.get("epochs")
        if not steps or not epochs:
            raise ValueError(
                "CosineLearningRate needs the number of steps per epoch: "
                "give fit a dataset of known length or steps_per_epoch.")
        self.model.optimizer.learning_rate = self.rate(
            self._epoch, batch, epochs, steps)

    def on_epoch_end(self, epoch, logs=None):
        # The rate of the epoch's last step, for the history (CSVLogger).
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))
