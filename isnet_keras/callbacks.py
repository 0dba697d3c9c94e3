"""Callbacks for ISNet training: heatmap-weight schedules, automatic
foreground bounds (C1, C2), best checkpoints once P is final, TensorBoard
logs with heatmap panels, batch-norm statistics recomputed after each
epoch, and a stop when training diverges."""

import os

import keras
import numpy as np

from isnet_keras.isnet import ISNet, _unpack
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


# Variables named in a divergence reason; the rest are counted.
_LISTED_VARIABLES = 5


def _is_floating(dtype):
    return "float" in str(dtype)


def non_finite_variables(variables):
    """The paths of the floating-point variables that hold a NaN or an
    infinity.

    Args:
        variables: An iterable of Keras variables (integer ones, such as an
            optimizer's step count, are skipped).

    Returns:
        list of str: the `path` of each non-finite variable, in order.

    Example:

    >>> non_finite_variables(model.weights)
    []
    """
    return [variable.path for variable in variables
            if _is_floating(variable.dtype) and not np.all(np.isfinite(
                keras.ops.convert_to_numpy(variable)))]


def _scalar(value):
    # Multi-worker logs hold shape-(1,) arrays.
    return float(np.mean(np.asarray(value, np.float64)))


def _loss_scale_still_falling(model):
    """Whether a mixed_float16 model's skipped steps may be the loss scale's
    search: its `LossScaleOptimizer` halves the scale (from 2**15) on every
    float16 overflow and counts those steps as skipped. Below a scale of 1
    the overflow is not the scale's."""
    optimizer = getattr(model, "optimizer", None)
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return False
    scale = getattr(optimizer, "dynamic_scale", None)
    return scale is not None and float(np.asarray(scale)) >= 1.0


class StopOnDivergence(keras.callbacks.Callback):
    """Stops training at the end of an epoch in which it diverged.

    An epoch diverged when its training loss is not finite, when every
    training step of the epoch was skipped (the ISNet skips steps with a
    non-finite loss or gradient and counts them in `skipped_steps`), or
    when any model weight (batch-norm moving statistics included) or
    optimizer variable holds a NaN or an infinity, or when steps were
    skipped and the validation loss is not finite. (Under mixed_float16 the
    steps a loss-scale optimizer skips while its scale is still 1 or more
    are its search for a scale, not divergence.) A few skipped steps
    alone are not divergence: they changed no weight, and the epoch's loss
    averages the applied steps only. Training then stops
    (`model.stop_training`), `diverged` describes the epoch and, with
    `restore_weights`, the model gets back the weights of the end of the
    last finite epoch (or of the start of training), so that callbacks
    after this one and code after `fit` never see non-finite weights.

    Put it before the callbacks that save the model: Keras runs callbacks
    in list order. Checkpoints that take `divergence=` (see
    `CheckpointUnlessDiverged`) then also skip the diverged epoch, leaving
    the last finite epoch's files in place.

    Args:
        restore_weights: bool. Put back the last finite weights when
            training diverges. Defaults to True.
        verbose: int. 1 prints a line when training stops. Defaults to 0.

    Attributes:
        diverged: None while training is finite; else a dict with `epoch`
            (from 0, as Keras callbacks count), `loss` (the epoch's
            training loss, a float or None) and `reasons` (list of str).

    Example:

    >>> stop = StopOnDivergence()
    >>> model.fit(x, y, epochs=10, callbacks=[
    ...     stop, keras.callbacks.ModelCheckpoint("last.keras")])
    >>> stop.diverged  # None, or {"epoch": 3, "loss": nan, "reasons": [...]}
    """

    def __init__(self, restore_weights=True, verbose=0):
        super().__init__()
        self.restore_weights = bool(restore_weights)
        self.verbose = int(verbose)
        self.diverged = None
        self._finite_weights = None

    def on_train_begin(self, logs=None):
        self.diverged = None
        self._finite_weights = None

    def on_epoch_begin(self, epoch, logs=None):
        # Taken here, not in `on_train_begin`: a `BackupAndRestore` later
        # in the list restores a run's weights in its `on_train_begin`.
        if self.restore_weights and self._finite_weights is None:
            self._finite_weights = self.model.get_weights()

    def divergence_reasons(self, logs):
        """Why the epoch that ended with `logs` diverged.

        Args:
            logs: The epoch-end logs of `fit`.

        Returns:
            list of str: empty when the epoch is finite.
        """
        logs = logs or {}
        reasons = []
        steps = (self.params or {}).get("steps")
        skipped = logs.get("skipped_steps")
        skipped = None if skipped is None else _scalar(skipped)
        loss = logs.get("loss")
        if loss is not None and not np.isfinite(_scalar(loss)):
            reasons.append("the training loss is not finite")
        val_loss = logs.get("val_loss")
        # The ISNet and the baselines leave skipped steps out of the epoch's
        # loss; skipped steps followed by a non-finite validation loss mean
        # the steps that were applied broke the model.
        if (skipped and val_loss is not None
                and not np.isfinite(_scalar(val_loss))):
            reasons.append(f"{skipped:g} training step(s) were skipped and "
                           "the validation loss is not finite")
        if (steps and skipped is not None and skipped >= steps
                and not _loss_scale_still_falling(self.model)):
            reasons.append(f"all {steps} training steps of the epoch were "
                           "skipped (non-finite loss or gradients)")
        variables = list(self.model.weights)
        if getattr(self.model, "optimizer", None) is not None:
            variables += list(self.model.optimizer.variables)
        bad = non_finite_variables(variables)
        if bad:
            more = (f" and {len(bad) - _LISTED_VARIABLES} more"
                    if len(bad) > _LISTED_VARIABLES else "")
            reasons.append(
                f"{len(bad)} variable(s) hold NaN or infinite values: "
                f"{', '.join(bad[:_LISTED_VARIABLES])}{more}")
        return reasons

    def on_epoch_end(self, epoch, logs=None):
        reasons = self.divergence_reasons(logs)
        if not reasons:
            if self.restore_weights:
                self._finite_weights = self.model.get_weights()
            return
        loss = (logs or {}).get("loss")
        steps = (self.params or {}).get("steps")
        if steps and _scalar((logs or {}).get("skipped_steps", 0)) >= steps:
            loss = float("nan")  # no step was applied: the mean is empty
        self.diverged = {"epoch": int(epoch),
                         "loss": None if loss is None else _scalar(loss),
                         "reasons": reasons}
        self.model.stop_training = True
        if self.restore_weights and self._finite_weights is not None:
            self.model.set_weights(self._finite_weights)
        if self.verbose:
            keras.utils.io_utils.print_msg(
                f"Epoch {epoch + 1}: training diverged ({'; '.join(reasons)})"
                "; stopping.")


class _UnlessDiverged:
    """Mixin for callbacks that save at the end of an epoch: nothing is
    saved once `divergence` (a `StopOnDivergence` earlier in the callback
    list) has flagged the run, so the files keep the last finite epoch.

    Restoring the finite weights alone would not do: the checkpoint would
    then record a diverged epoch as completed, with the optimizer state
    and P of that epoch.
    """

    def __init__(self, *args, divergence=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.divergence = divergence

    def on_epoch_end(self, epoch, logs=None):
        if (self.divergence is not None
                and self.divergence.diverged is not None):
            return
        super().on_epoch_end(epoch, logs)


class CheckpointUnlessDiverged(_UnlessDiverged,
                               keras.callbacks.ModelCheckpoint):
    """A `keras.callbacks.ModelCheckpoint` that saves nothing at the end of
    an epoch that a `StopOnDivergence` flagged as diverged.

    Args:
        *args, **kwargs: Those of `ModelCheckpoint` (saving at epoch ends).
        divergence: The `StopOnDivergence` of the same `fit`, placed before
            this callback; None saves as `ModelCheckpoint` does.

    Example:

    >>> stop = StopOnDivergence()
    >>> model.fit(x, y, epochs=10, callbacks=[
    ...     stop, CheckpointUnlessDiverged("last.keras", divergence=stop)])
    """


class BackupUnlessDiverged(_UnlessDiverged,
                           keras.callbacks.BackupAndRestore):
    """A `keras.callbacks.BackupAndRestore` whose backup keeps the last
    finite epoch: nothing is saved at the end of an epoch that a
    `StopOnDivergence` flagged as diverged.

    Args:
        *args, **kwargs: Those of `BackupAndRestore` (`save_freq="epoch"`).
        divergence: The `StopOnDivergence` of the same `fit`, placed before
            this callback in the list.

    Example:

    >>> stop = StopOnDivergence()
    >>> model.fit(x, y, epochs=10, callbacks=[
    ...     stop, BackupUnlessDiverged("backup", divergence=stop)])
    """


class BestCheckpointFromEpoch(_UnlessDiverged,
                              keras.callbacks.ModelCheckpoint):
    """A `keras.callbacks.ModelCheckpoint` that ignores epochs before
    `first_epoch`, epochs whose monitored value is not finite (with
    `save_best_only`) and, given `divergence`, an epoch that diverged.

    For best-only checkpoints under a P schedule: the loss of an epoch at
    P = 0 is the cross-entropy alone and would compare as better than the
    ISNet's.

    Args:
        first_epoch: int. The first epoch (from 0) that may be saved.
        *args, **kwargs: Those of `ModelCheckpoint`.
        divergence: Optional `StopOnDivergence` placed before this callback.

    Example:

    >>> BestCheckpointFromEpoch(3, "best.weights.h5", monitor="val_loss",
    ...                         save_best_only=True, save_weights_only=True)
    """

    def __init__(self, first_epoch, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.first_epoch = int(first_epoch)

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        # Keras saves the first value whatever it is, and after a NaN best
        # no value compares as better: a non-finite value is never best.
        if (self.save_best_only and current is not None
                and not np.isfinite(_scalar(current))):
            return
        if epoch >= self.first_epoch:
            super().on_epoch_end(epoch, logs)


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


def apply_foreground_bounds(isnet, bounds):
    """Sets the foreground bands (C1, C2) of an ISNet's GWRP heatmap losses.

    Args:
        isnet: An `ISNet` whose heatmap losses are `GWRPHeatmapLoss`es.
        bounds: dict with `C1` and `C2` (floats, or one per heatmap of an
            image) for the input heatmaps and, optionally, `hidden`: a dict
            `{layer name: {"C1": ..., "C2": ...}}` for deep-supervision
            layers (those not named keep their bands), as
            `AutoTuneForegroundBounds.result` holds them.

    Raises:
        ValueError: `hidden` names a layer that is not supervised.

    Example:

    >>> apply_foreground_bounds(isnet, {"C1": 2.0, "C2": 40.0})
    """
    hidden = dict(bounds.get("hidden") or {})
    unknown = sorted(set(hidden) - set(isnet.deep_supervision))
    if unknown:
        raise ValueError(f"Foreground bounds for {', '.join(unknown)}, which "
                         "the ISNet does not supervise (deep_supervision: "
                         f"{list(isnet.deep_supervision)}).")
    tuned = [(isnet.heatmap_loss, bounds)] + [
        (loss, hidden[name]) for loss, name in zip(
            isnet.hidden_losses, isnet.deep_supervision) if name in hidden]
    for loss, band in tuned:
        loss.C1, loss.C2 = band["C1"], band["C2"]
    # The loss constants are traced into the step functions: rebuild those
    # that exist.
    if getattr(isnet, "train_function", None) is not None:
        isnet.make_train_function(force=True)
    if getattr(isnet, "test_function", None) is not None:
        isnet.make_test_function(force=True)


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
        _require_isnet(self.model, type(self).__name__)
        if not isinstance(self.model.heatmap_loss, GWRPHeatmapLoss):
            raise TypeError("C1/C2 tuning needs a GWRPHeatmapLoss.")
        self._initial_weights = self.model.classifier.get_weights()
        # The optimizer's hyperparameters (a learning rate variable, a loss
        # scale) and its step count as they are now; slots made later
        # during the warm-up (momenta) start again from zero.
        self._initial_optimizer = {
            variable.path: variable.numpy()
            for variable in self.model.optimizer.variables}
        self._target_P = self.model.P
        self.model.P = 0.0

    def _totals(self):
        """Per-image, per-map totals `(N, K)` of the input heatmaps, then
        of each hidden map."""
        batches = self.data
        if isinstance(batches, np.ndarray):
            batches = [batches[i:i + 64] for i in range(0, len(batches), 64)]
        totals = []
        for batch in batches:
            images, labels = batch, None
            if isinstance(batch, (tuple, list)):
                images = batch[0]
                if self.model.explains_labels:
                    labels = _unpack(batch)[1]
            # In training mode, as the loss sees the relevance (batch
            # statistics, dropout): with batch norm, inference-mode totals
            # after a short warm-up can be orders of magnitude smaller.
            # Moving statistics updated here are reset with the weights.
            outputs = self.model.train_graph_outputs(images, labels,
                                                     training=True)
            totals.append([
                np.abs(np.asarray(maps)).sum(axis=(2, 3, 4))
                for maps in [outputs["heatmaps"], *outputs["hidden"]]])
        return [np.concatenate(parts) for parts in zip(*totals)]

    def _bounds(self, totals, where):
        if self.model.variant != "dual":
            return _band(totals.mean(axis=1), where)
        per_map = [_band(totals[:, k], f"{where} (map {k})")
                   for k in range(totals.shape[1])]
        return {key: [band[key] for band in per_map]
                for key in ("C1", "C2", "mean", "std")}

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 != self.warmup_epochs:
            return
        input_totals, *hidden_totals = self._totals()
        self.result = self._bounds(input_totals, "heatmaps")
        self.result["hidden"] = {
            name: self._bounds(totals, f"relevance maps of '{name}'")
            for name, totals in zip(self.model.deep_supervision,
                                    hidden_totals)}
        self.model.classifier.set_weights(self._initial_weights)
        for variable in self.model.optimizer.variables:
            variable.assign(self._initial_optimizer.get(
                variable.path, np.zeros(variable.shape, variable.dtype)))
        self.model.P = self._target_P
        apply_foreground_bounds(self.model, self.result)
        if logs is not None:
            for key in ("C1", "C2"):
                values = np.atleast_1d(self.result[key])
                logs.update({key: float(values[0])} if len(values) == 1 else {
                    f"{key}_map{k}": float(v) for k, v in enumerate(values)})


class TensorBoardHeatmaps(keras.callbacks.Callback):
    """A TensorBoard panel of LRP heatmaps of fixed validation images,
    written every epoch.

    The panel (tag `heatmaps`) shows the images with their mask outlines
    above the LRP-epsilon heatmaps of the predicted class (red positive,
    blue negative); `background_relevance_fraction` logs their mean BRF.
    Use it beside `keras.callbacks.TensorBoard`, which logs the loss terms.
    Only the chief worker writes.

    Args:
        log_dir: str. Folder of the event files.
        images: `(N, H, W, C)` fixed validation images in the model's
            input range.
        masks: `(N, H, W, 1)` masks of those images, or None.
        input_bounds: Z^B bounds of the heatmaps. Defaults to `(0, 1)`.

    Example:

    >>> isnet.fit(train, validation_data=val, callbacks=[
    ...     keras.callbacks.TensorBoard("runs/a/logs"),
    ...     TensorBoardHeatmaps("runs/a/logs/heatmaps", val_images[:4],
    ...                         val_masks[:4])])  # doctest: +SKIP
    """

    def __init__(self, log_dir, images, masks=None, input_bounds=(0.0, 1.0)):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.images = np.asarray(images, np.float32)
        self.masks = None if masks is None else np.asarray(masks, np.float32)
        self.input_bounds = input_bounds
        self._writer = None
        self._explainer = None

    def _should_write(self):
        strategy = self.model.distribute_strategy
        return getattr(strategy.extended, "should_checkpoint", True)

    def heatmap_panel(self):
        """Returns `(RGBA panel as a (H, W, 4) uint8 array, mean BRF)`."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        from isnet_keras.lrp.explain import Explainer
        from isnet_keras.metrics.attention import \
            background_relevance_fraction
        from isnet_keras.viz import plot_heatmaps

        classifier = getattr(self.model, "deploy_model", self.model)
        if self._explainer is None:
            # Tied to the classifier's layers: built once, sees new weights.
            self._explainer = Explainer(classifier,
                                        input_bounds=self.input_bounds)
        heatmaps = self._explainer(self.images, "predicted")[:, 0]
        brf = None
        if self.masks is not None:
            brf = float(np.mean(np.asarray(
                background_relevance_fraction(heatmaps, self.masks))))
        figure = plot_heatmaps(self.images, heatmaps, masks=self.masks,
                               row_titles=["LRP"])
        figure.canvas.draw()
        panel = np.asarray(figure.canvas.buffer_rgba()).copy()
        plt.close(figure)
        return panel, brf

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        if not self._should_write():
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        panel, brf = self.heatmap_panel()
        with self._writer.as_default(step=epoch):
            tf.summary.image("heatmaps", panel[None])
            if brf is not None:
                tf.summary.scalar("background_relevance_fraction", brf)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


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
        return (self.model.deploy_model if isinstance(self.model, ISNet)
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
