"""Exceptions raised by isnet-keras."""


class UnsupportedLayerError(ValueError):
    """A classifier layer has no LRP mirror, or is used in an unsupported way.

    The message starts with the layer's name and class, for example
    `"lstm (LSTM): no LRP mirror is registered for this layer type."`.
    """
