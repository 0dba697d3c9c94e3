"""Callbacks for ISNet training: heatmap-weight schedules and automatic
foreground bounds (C1, C2)."""

import keras
import numpy as np

from isnet_keras.isnet import ISNet
from isnet_keras.losses import GWRPHeatmapLoss


def _require_isnet(model, who):
    if not isinstance(model, ISNet):
        raise TypeError(f"{who} works on an ISNet model, received "
                        f"{type(model).__name__}.")


class HeatmapWeightSchedule(keras.callbacks.Callback):
    """Sets the ISNet's heatmap weight P at the start of each epoch.

    Args:
        schedule: A dict `{epoch: P}` (piecewise constant from each listed
            epoch on; epochs before the first key keep the current P) or a
            callable `epoch -> P`.

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
        if callable(self.schedule):
            return float(self.schedule(epoch))
        started = [e for e in self.schedule if e <= epoch]
        return float(self.schedule[max(started)]) if started else current

    def on_epoch_begin(self, epoch, logs=None):
        _require_isnet(self.model, type(self).__name__)
        self.model.P = self.value_at(epoch, self.model.P)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["P"] = self.model.P


class AutoTuneForegroundBounds(keras.callbacks.Callback):
    """Chooses the GWRP loss's C1 and C2 from warm-up heatmaps.

    For `warmup_epochs` epochs the ISNet trains on cross-entropy alone
    (P = 0). At the end of the last warm-up epoch, heatmaps of `data` give
    per-image totals `v = mean_k sum |H|` (whole image); with their mean m
    and sample standard deviation s, `C1 = max(m / 5, m - 3 s)` and
    `C2 = min(25 C1, m + 3 s)`. The warm-up weights and optimizer state are
    then discarded (the model restarts from its initial weights) and
    training goes on with the configured P. The values are kept in
    `self.result` (C1, C2, m, s) and in the logs.

    Args:
        data: Images, or a dataset of `(images, ...)`, to measure.
        warmup_epochs: int. Defaults to 5.
    """

    def __init__(self, data, warmup_epochs=5):
        super().__init__()
        if warmup_epochs < 1:
            raise ValueError("warmup_epochs must be >= 1.")
        self.data = data
        self.warmup_epochs = int(warmup_epochs)
        self.result = None

    def on_train_begin(self, logs=None):
        _require_isnet(self.model, type(self).__name__)
        if not isinstance(self.model.heatmap_loss, GWRPHeatmapLoss):
            raise TypeError("C1/C2 tuning needs a GWRPHeatmapLoss.")
        self._initial_weights = self.model.classifier.get_weights()
        self._target_P = self.model.P
        self.model.P = 0.0

    def _totals(self):
        batches = self.data
        if isinstance(batches, np.ndarray):
            batches = [batches[i:i + 64] for i in range(0, len(batches), 64)]
        totals = []
        for batch in batches:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            heatmaps = self.model.train_graph_outputs(images)["heatmaps"]
            totals.append(np.abs(np.asarray(heatmaps)).sum(axis=(2, 3, 4))
                          .mean(axis=1))
        return np.concatenate(totals)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 != self.warmup_epochs:
            return
        totals = self._totals()
        mean, std = float(totals.mean()), float(totals.std(ddof=1))
        if mean <= 0:
            raise ValueError("Warm-up heatmaps carry no relevance (mean total "
                             f"{mean}); C1/C2 cannot be chosen.")
        c1 = max(mean / 5.0, mean - 3.0 * std)
        c2 = min(25.0 * c1, mean + 3.0 * std)
        loss = self.model.heatmap_loss
        loss.C1, loss.C2 = c1, c2
        self.result = {"C1": c1, "C2": c2, "mean": mean, "std": std}
        self.model.classifier.set_weights(self._initial_weights)
        for variable in self.model.optimizer.variables:
            variable.assign(np.zeros(variable.shape, variable.dtype))
        self.model.P = self._target_P
        # The loss constants are traced into the step functions: rebuild.
        self.model.make_train_function(force=True)
        self.model.make_test_function(force=True)
        if logs is not None:
            logs.update({"C1": c1, "C2": c2})
