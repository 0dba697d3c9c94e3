"""Foreground bands (C1, C2) of the GWRP heatmap losses: set them, or
choose them from the heatmaps of a cross-entropy warm-up
(docs/algorithm.md, "Automatic C1 and C2")."""

import keras
import numpy as np

from isnet_keras.foreground_bands import apply_foreground_bounds
from isnet_keras.isnet import require_isnet
from isnet_keras.losses import GWRPHeatmapLoss


def _band(totals, where):
    """The foreground band from per-image relevance totals (docs/algorithm.md,
    "Automatic C1 and C2")."""
    mean, std = float(totals.mean()), float(totals.std(ddof=1))
    if mean <= 0:
        raise ValueError(f"Warm-up {where} carry no relevance (mean "
                         f"total {mean}); C1/C2 cannot be chosen.")
    c1 = max(mean / 5.0, mean - 3.0 * std)
    c2 = min(25.0 * c1, mean + 3.0 * std)
    return {"C1": c1, "C2": c2, "mean": mean, "std": std}


class AutoTuneForegroundBounds(keras.callbacks.Callback):
    """Chooses the GWRP loss's C1 and C2 from warm-up heatmaps.

    For `warmup_epochs` epochs the ISNet trains on cross-entropy alone
    (P = 0). At the end of the last warm-up epoch, heatmaps of `data`,
    computed in training mode as in the loss (batch statistics; pass
    batches of the training batch size), give per-image totals
    `v = mean_k sum |H|` (whole image); with their mean m
    and sample standard deviation s, `C1 = max(m / 5, m - 3 s)` and
    `C2 = min(25 C1, m + 3 s)` (docs/algorithm.md, "Automatic C1 and
    C2"). The Dual ISNet's two maps (z+ and LRP-epsilon relevance, of
    different scales) get a band each, from
    their own totals, as lists `[map 0, map 1]`. The warm-up weights and
    optimizer state are then discarded (the model restarts from its
    initial weights) and training goes on with the configured P. The values
    are kept in `self.result` (C1, C2, m, s) and C1, C2 in the logs of
    that epoch. With LRP deep supervision every supervised layer's loss
    gets its own C1 and C2, from the totals of its relevance map the same
    way (docs/algorithm.md, "LRP deep supervision"), kept in
    `self.result["hidden"]` by layer name.

    Args:
        data: Images (measured in batches of 64), or a dataset of
            `(images, targets)` or of images, to measure.
        warmup_epochs: int. Defaults to 5.

    Example:

    >>> tuner = AutoTuneForegroundBounds(train_images, warmup_epochs=5)
    >>> isnet.fit(train_ds, epochs=25, callbacks=[tuner])  # 20 ISNet epochs
    >>> tuner.result["C1"], tuner.result["C2"]
    """

    def __init__(self, data, warmup_epochs=5):
        super().__init__()
        if warmup_epochs < 1:
            raise ValueError("warmup_epochs must be >= 1.")
        self.data = data
        self.warmup_epochs = int(warmup_epochs)
        self.result = None

    def on_train_begin(self, logs=None):
        require_isnet(self.model, type(self).__name__)
        if not isinstance(self.model.heatmap_loss, GWRPHeatmapLoss):
            raise TypeError("C1/C2 tuning needs a GWRPHeatmapLoss.")
        # The weights, and the optimizer's hyperparameters (a learning rate
        # variable, a loss scale) and its step count as they are now; slots
        # made later during the warm-up (momenta) start again from zero.
        self._initial_state = self.model.training_state()
        self._target_P = self.model.P
        self.model.P = 0.0

    def _bounds(self, totals, where):
        """The band of `(N, M)` totals: one, or a list per map (M > 1)."""
        if totals.shape[1] == 1:
            return _band(totals[:, 0], where)
        per_map = [_band(totals[:, k], f"{where} (map {k})")
                   for k in range(totals.shape[1])]
        return {key: [band[key] for band in per_map]
                for key in ("C1", "C2", "mean", "std")}

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 != self.warmup_epochs:
            return
        input_totals, *hidden_totals = self.model.foreground_totals(
            self.data)
        self.result = self._bounds(input_totals, "heatmaps")
        self.result["hidden"] = {
            name: self._bounds(totals, f"relevance maps of '{name}'")
            for name, totals in zip(self.model.deep_supervision,
                                    hidden_totals)}
        # The forward passes of the totals updated the batch-norm moving
        # statistics too: they are reset with the weights.
        self.model.restore_training_state(self._initial_state)
        self.model.P = self._target_P
        apply_foreground_bounds(self.model, self.result)
        if logs is not None:
            for key in ("C1", "C2"):
                values = np.atleast_1d(self.result[key])
                logs.update({key: float(values[0])} if len(values) == 1 else {
                    f"{key}_map{k}": float(v) for k, v in enumerate(values)})
