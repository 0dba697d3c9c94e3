"""A diverging run stops at the end of the epoch, says how to fix it, and
never leaves non-finite weights in a checkpoint, backup or final model."""

import functools
import io
import json
import zipfile

import h5py
import keras
import numpy as np
import pytest

from isnet_keras import run_config, train
from isnet_keras.callbacks import (BestCheckpointFromEpoch,
                                   CheckpointUnlessDiverged, StopOnDivergence)
from isnet_keras.errors import TrainingDivergedError
from tests import support


_folders = support.tiny_folder_set
# A two-epoch run of the compact CNN on 8x8 images, quiet.
_train = functools.partial(support.quick_isnet_train, epochs=2)


def _cnn():
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="conv"),
        keras.layers.BatchNormalization(name="norm"),
        keras.layers.Flatten(), keras.layers.Dense(2, name="logits")])


def _h5_is_finite(source):
    """Whether every floating-point dataset of an HDF5 file is finite."""
    finite = []

    def visit(_, item):
        if isinstance(item, h5py.Dataset) and item.dtype.kind == "f":
            finite.append(bool(np.all(np.isfinite(item[()]))))

    with h5py.File(source, "r") as handle:
        handle.visititems(visit)
    return bool(finite) and all(finite)


def _keras_file_is_finite(path):
    with zipfile.ZipFile(path) as archive:
        return _h5_is_finite(io.BytesIO(archive.read("model.weights.h5")))


def _callback(model, steps=3):
    stop = StopOnDivergence()
    stop.set_model(model)
    stop.set_params({"epochs": 2, "steps": steps})
    stop.on_train_begin()
    stop.on_epoch_begin(0)
    return stop


# StopOnDivergence on a plain Keras model ------------------------------------


def test_nan_weights_stop_training_and_the_finite_weights_come_back():
    model = _cnn()
    stop = _callback(model)
    stop.on_epoch_end(0, {"loss": 0.5})
    assert stop.diverged is None
    assert not getattr(model, "stop_training", False)
    finite = model.get_weights()

    kernel = model.get_layer("logits").kernel
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    stop.on_epoch_begin(1)
    stop.on_epoch_end(1, {"loss": 0.4})
    assert model.stop_training
    assert stop.diverged["epoch"] == 1
    assert stop.diverged["loss"] == pytest.approx(0.4)
    assert "logits/kernel" in " ".join(stop.diverged["reasons"])
    for restored, expected in zip(model.get_weights(), finite):
        np.testing.assert_array_equal(restored, expected)


def test_non_finite_batch_norm_statistics_are_named():
    model = _cnn()
    stop = StopOnDivergence(restore_weights=False)
    stop.set_model(model)
    stop.on_train_begin()
    variance = model.get_layer("norm").moving_variance
    variance.assign(np.full(variance.shape, np.inf, np.float32))
    stop.on_epoch_end(0, {"loss": 0.5})
    assert model.stop_training
    assert "norm/moving_variance" in stop.diverged["reasons"][0]
    # Without restore_weights the model is left as it is.
    assert np.isinf(variance.numpy()).all()


@pytest.mark.parametrize("logs, reason", [
    ({"loss": float("nan")}, "the training loss is not finite"),
    ({"loss": 0.3, "skipped_steps": 3.0}, "all 3 training steps of the "
     "epoch were skipped"),
    ({"loss": 0.3, "skipped_steps": 2.0}, None),
    # Skipped steps stay out of the epoch's loss; the validation loss tells
    # whether the applied steps kept the model finite.
    ({"loss": 0.3, "skipped_steps": 1.0, "val_loss": 0.6}, None),
    ({"loss": 0.3, "skipped_steps": 1.0, "val_loss": float("nan")},
     "1 training step(s) were skipped and the validation loss is not "
     "finite"),
    ({"loss": 0.3, "skipped_steps": 0.0, "val_loss": float("nan")}, None),
])
def test_a_nan_loss_or_an_epoch_of_skipped_steps_is_divergence(logs, reason):
    model = _cnn()
    stop = _callback(model, steps=3)
    stop.on_epoch_end(0, logs)
    if reason is None:
        assert stop.diverged is None
        assert not getattr(model, "stop_training", False)
    else:
        assert model.stop_training
        assert stop.diverged["reasons"][0].startswith(reason)


@pytest.mark.parametrize("scale, diverged", [(2.0 ** 14, False),
                                              (0.5, True)])
def test_skipped_steps_of_a_falling_loss_scale_are_not_divergence(scale,
                                                                  diverged):
    # Under mixed_float16 the loss-scale optimizer skips each float16
    # overflow while it halves its scale from 2**15: a short epoch can be
    # all such steps. Below a scale of 1 the overflow is the model's.
    model = _cnn()
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam()), loss="mse")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.dynamic_scale.assign(scale)
    stop = _callback(model, steps=3)
    stop.on_epoch_end(0, {"loss": 0.3, "skipped_steps": 3.0})
    assert (stop.diverged is not None) == diverged


class _PoisonAt(keras.callbacks.Callback):
    """Sets every float weight of the classifier to NaN at the start of
    epoch `epoch`, as a step that overflowed would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            target = getattr(self.model, "deploy_model", self.model)
            for weight in target.weights:
                weight.assign(np.full(weight.shape, np.nan, weight.dtype))


def test_checkpoints_keep_the_last_finite_epoch(tmp_path):
    keras.utils.set_random_seed(0)
    model = _cnn()
    model.compile(optimizer="sgd",
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (8, 8, 8, 1)).astype(np.float32)
    labels = np.arange(8) % 2
    stop = StopOnDivergence()
    last = tmp_path / "last.weights.h5"
    best = tmp_path / "best.weights.h5"
    history = model.fit(images, labels, batch_size=4, epochs=5, verbose=0,
                        callbacks=[
                            _PoisonAt(1), stop,
                            CheckpointUnlessDiverged(
                                str(last), save_weights_only=True,
                                divergence=stop),
                            BestCheckpointFromEpoch(
                                0, str(best), monitor="loss",
                                save_best_only=True, save_weights_only=True,
                                divergence=stop)])
    assert len(history.history["loss"]) == 2
    assert stop.diverged["epoch"] == 1
    assert _h5_is_finite(last) and _h5_is_finite(best)
    # The model is back at the first epoch's weights, which the files hold.
    saved = _cnn()
    saved.load_weights(str(last))
    for restored, expected in zip(model.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(restored, expected)


def test_best_checkpoint_never_saves_a_non_finite_value(tmp_path):
    model = _cnn()
    path = tmp_path / "best.weights.h5"
    best = BestCheckpointFromEpoch(0, str(path), monitor="val_loss",
                                   save_best_only=True,
                                   save_weights_only=True)
    best.set_model(model)
    best.on_epoch_end(0, {"val_loss": float("nan")})
    assert not path.exists()
    # A NaN would have become the best and blocked every later save.
    best.on_epoch_end(1, {"val_loss": 0.7})
    assert path.exists()


# isnet train -----------------------------------------------------------------


def test_isnet_train_stops_a_diverging_run_with_a_message(tmp_path, capsys):
    data = _folders(tmp_path / "data", [0, 1] * 6, ["bar", "square"])
    run = tmp_path / "run"
    status, err = _train(capsys, data, run, "--val-split", 0.34,
                         "--learning-rate", 1e20)
    assert status == 1
    assert "isnet train: error: Training diverged at epoch 1 (loss " in err
    assert "Lower --learning-rate (it is 1e+20" in err
    assert "Traceback" not in err
    assert not (run / "model.keras").exists()
    assert not (run / "run.json").exists()
    assert not (run / "checkpoints" / "last.keras").exists()
    assert not (run / "checkpoints" / "best.weights.h5").exists()
    assert not (run / "backup").exists()
    # Stopped after the first epoch of two.
    rows = (run / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 2


def test_a_run_diverging_later_keeps_its_finite_checkpoints(tmp_path):
    data = _folders(tmp_path / "data", [0, 1] * 6, ["bar", "square"])
    run = tmp_path / "run"
    config = run_config.effective_config(None, {
        "data_dir": str(data), "out": str(run), "val_split": 0.34,
        "backbone": "smallcnn", "image_size": 8, "epochs": 3,
        "batch_size": 4, "verbose": 0, "heatmap_images": 0})
    with pytest.raises(TrainingDivergedError,
                       match=r"epoch 2 .*NaN or infinite values: "
                       r"smallcnn_classifier/") as caught:
        train.train(config, callbacks=[_PoisonAt(1)])
    assert caught.value.epoch == 2
    assert "checkpoints keep the last finite epoch" in str(caught.value)
    checkpoints = run / "checkpoints"
    assert _keras_file_is_finite(checkpoints / "last.keras")
    assert _h5_is_finite(checkpoints / "best.weights.h5")
    assert _h5_is_finite(run / "backup" / "latest.weights.h5")
    metadata = json.loads(
        (run / "backup" / "training_metadata.json").read_text())
    assert metadata["epoch"] == 1  # the first epoch, not the diverged one
    assert not (run / "model.keras").exists()
