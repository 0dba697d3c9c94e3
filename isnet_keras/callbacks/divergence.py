"""Guards against divergence: `StopOnDivergence` stops training (and puts
back the last finite weights) after an epoch whose loss or variables are
not finite, and the checkpoint callbacks here save nothing for such an
epoch."""

import keras
import numpy as np


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
