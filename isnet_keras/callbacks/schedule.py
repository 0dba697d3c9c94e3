"""The heatmap-weight (P) schedule: a callback that sets P per epoch, and
the parser of the command line's `--P-schedule` items (`EPOCH=P`)."""

import keras

from isnet_keras.isnet import require_isnet

SCHEDULE_ITEMS = "P_schedule items are EPOCH=P (like 0=0 3=0.7)"


def parse_heatmap_weight_schedule(items):
    """`EPOCH=P` items -> the `{epoch: P}` of `HeatmapWeightSchedule`.

    The syntax of `--P-schedule` on the command line
    (`--P-schedule 0=0 3=0.7`).

    Args:
        items: An iterable of `EPOCH=P` strings, or one string of them
            separated by spaces.

    Returns:
        dict: `{int epoch: float P}`, in the order given (a repeated epoch
        keeps its last value).

    Raises:
        ValueError: an item that is not `EPOCH=P`; the message names it.

    Example:

    >>> parse_heatmap_weight_schedule(["0=0", "3=0.7"])
    {0: 0.0, 3: 0.7}
    """
    if isinstance(items, str):
        items = items.split()
    schedule = {}
    for item in items:
        epoch, _, value = str(item).partition("=")
        try:
            schedule[int(epoch)] = float(value)
        except ValueError:
            raise ValueError(f"{SCHEDULE_ITEMS}; received {item!r}.") \
                from None
    return schedule


class HeatmapWeightSchedule(keras.callbacks.Callback):
    """Sets the ISNet's heatmap weight P at the start of each epoch.

    Args:
        schedule: A dict `{epoch: P}` (piecewise constant from each listed
            epoch on; epochs before the first key keep the current P) or a
            callable `epoch -> P`. `parse_heatmap_weight_schedule` reads the
            dict from `EPOCH=P` items.

    Example:

    >>> isnet.fit(data, epochs=20,
    ...           callbacks=[HeatmapWeightSchedule({0: 0.0, 3: 0.7})])
    """

    def __init__(self, schedule):
        super().__init__()
        if not (callable(schedule) or isinstance(schedule, dict)):
            raise TypeError("schedule must be a dict {epoch: P} or a "
                            f"callable, received {type(schedule).__name__}.")
        self.schedule = schedule

    def value_at(self, epoch, current):
        """P at `epoch`.

        Args:
            epoch: int, from 0.
            current: float. The P now, kept before the first listed epoch.

        Returns:
            float.
        """
        if callable(self.schedule):
            return float(self.schedule(epoch))
        started = [e for e in self.schedule if e <= epoch]
        return float(self.schedule[max(started)]) if started else current

    def on_epoch_begin(self, epoch, logs=None):
        require_isnet(self.model, type(self).__name__)
        self.model.P = self.value_at(epoch, self.model.P)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["P"] = self.model.P
