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
