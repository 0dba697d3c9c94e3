"""Exceptions raised by isnet-keras."""


class UnsupportedLayerError(ValueError):
    """A classifier layer has no LRP mirror, or is used in an unsupported way.

    The message starts with the layer's name and class, for example
    `"lstm (LSTM): no LRP mirror is registered for this layer type."`.
    """


class TrainingDivergedError(RuntimeError):
    """Training diverged: the loss, or weights, stopped being finite.

    Raised by `isnet_keras.train.train` after `StopOnDivergence` stopped
    the run; no final model was written. The message says at which epoch,
    why, and what to change.

    Args:
        message: str. The full message.
        epoch: int. The epoch that diverged, counted from 1 (as the
            progress bar counts).
        loss: float or None. That epoch's training loss.
        reasons: list of str. What was not finite.
    """

    def __init__(self, message, epoch, loss=None, reasons=()):
        super().__init__(message)
        self.epoch = int(epoch)
        self.loss = loss
        self.reasons = list(reasons)


class InvalidDataError(ValueError):
    """A batch given to `ISNet.fit` or `ISNet.evaluate` failed one of the
    library's data checks inside the compiled step (labels out of range or
    not whole numbers, masks not exactly 0 or 1, images outside the Z^B
    input bounds or holding NaN).

    The message starts with the library's own, for example
    `"labels out of range: must lie in [0, 9]; received labels from 0 to
    10"`; TensorFlow's error is its `__cause__`. The error raised is also a
    `tf.errors.InvalidArgumentError`, which these checks raised before.
    """
