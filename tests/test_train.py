"""`isnet train`: checks before training, run directory, config, logs."""

import inspect

import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

from isnet_keras import run_config
from isnet_keras.cli import main as isnet_main
from isnet_keras.data import write_folder_dataset
from isnet_keras.isnet import VARIANTS


def _dataset(folder, count=12, size=16, seed=0):
    """Two classes, the object drawn exactly inside its mask."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, size, size, 1), np.float32)
    labels = np.arange(count) % 2
    for mask, label in zip(masks, labels):
        top, left = rng.integers(2, size // 2, 2)
        mask[top:top + 5, left:left + (3 if label else 6)] = 1.0
    images = masks * rng.uniform(0.6, 1.0, masks.shape)
    write_folder_dataset(folder, images.astype(np.float32), masks, labels,
                         class_names=["bar", "square"])
    return folder


# A one-epoch run of the compact CNN on the 16x16 test images, quiet.
QUICK_RUN = ("--backbone", "smallcnn", "--image-size", 16, "--epochs", 1,
             "--batch-size", 4, "--verbose", 0, "--heatmap-images", 0)


def _train(capsys, *args):
    status = isnet_main(["train", *map(str, args)])
    return status, capsys.readouterr().err


@pytest.fixture
def data(tmp_path):
    return _dataset(tmp_path / "data")


@pytest.mark.parametrize("problem", [
    "missing mask", "mismatched size", "non-binary mask", "unknown label",
    "unreadable file"])
def test_bad_folders_fail_with_the_file_named_before_training(
        tmp_path, capsys, data, problem):
    val = _dataset(tmp_path / "val", count=4, seed=1)
    if problem == "missing mask":
        bad = data / "masks" / "image_03.png"
        bad.unlink()
        named = "image_03.png: no mask"
    elif problem == "mismatched size":
        bad = data / "masks" / "image_05.png"
        Image.new("L", (20, 16)).save(bad)
        named = "image_05.png: size 16x16"
    elif problem == "non-binary mask":
        bad = data / "masks" / "image_02.png"
        Image.fromarray(np.full((16, 16), 128, np.uint8)).save(bad)
        named = f"{bad}: non-binary mask"
    elif problem == "unknown label":
        lines = (val / "labels.csv").read_text().splitlines()
        lines[1] = lines[1].split(",")[0] + ",circle"
        (val / "labels.csv").write_text("\n".join(lines) + "\n")
        named = "unknown label 'circle'"
    else:
        bad = data / "images" / "image_07.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
        named = f"{bad}: unreadable or corrupt image"
    run = tmp_path / "run"
    status, err = _train(capsys, "--data-dir", data, "--val-dir", val,
                         "--backbone", "smallcnn", "--image-size", 16,
                         "--out", run)
    assert status == 1
    assert named in err
    assert not run.exists()  # stopped before anything was written


@pytest.mark.slow
def test_yaml_config_flags_override_saved_config_and_tensorboard_logs(
        tmp_path, capsys, data):
    run = tmp_path / "run"
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump({
        "data_dir": str(data), "val_split": 0.34, "backbone": "smallcnn",
        "image_size": 16, "epochs": 5, "batch_size": 4, "P": 0.5,
        "heatmap_images": 2, "verbose": 0, "out": str(tmp_path / "unused"),
        "flip": "horizontal"}))
    status, err = _train(capsys, "--config", config_file, "--epochs", 1,
                         "--out", run, "--variant", "dual")
    assert status == 0, err

    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["epochs"] == 1 and saved["variant"] == "dual"  # flags
    assert saved["P"] == 0.5 and saved["flip"] == "horizontal"  # file
    assert saved["out"] == str(run)
    assert saved["learning_rate"] == run_config.DEFAULTS["learning_rate"]
    assert set(saved) == set(run_config.DEFAULTS)

    tags = {}
    for folder in ("train", "validation", "heatmaps"):
        for event_file in (run / "logs" / folder).glob("events.out.*"):
            for event in tf.compat.v1.train.summary_iterator(str(event_file)):
                for value in event.summary.value:
                    tags.setdefault(folder, {})[value.tag] = value
    for term in ("loss", "classification_loss", "heatmap_loss",
                 "background_fraction"):
        assert f"epoch_{term}" in tags["train"]
        assert f"epoch_{term}" in tags["validation"]
    panel = tags["heatmaps"]["heatmaps"]
    width, height, png = tf.make_ndarray(panel.tensor)
    decoded = tf.io.decode_png(png)
    assert decoded.shape == (int(height), int(width), 4)
    assert len(np.unique(decoded.numpy().reshape(-1, 4), axis=0)) > 10
    brf = tf.make_ndarray(
        tags["heatmaps"]["background_relevance_fraction"].tensor)
    assert 0.0 <= float(brf) <= 1.0
    assert (run / "checkpoints" / "last.keras").is_file()
    assert (run / "model.keras").is_file()
    assert (run / "report" / "evaluation.json").is_file()

    # The run directory is never overwritten by accident ...
    before = (run / "model.keras").stat().st_mtime_ns
    status, err = _train(capsys, "--config", config_file, "--out", run)
    assert status == 1 and "already exists" in err and "--overwrite" in err
    assert (run / "model.keras").stat().st_mtime_ns == before
    # ... nor resumed with other data or model settings.
    status, err = _train(capsys, "--out", run, "--resume", "--variant",
                         "original")
    assert status == 2 and "variant: 'dual' in the run" in err
    # A finished run goes on from its last epoch when given more epochs.
    status, err = _train(capsys, "--out", run, "--resume", "--epochs", 2)
    assert status == 0, err
    epochs = [line.split(",")[0] for line in
              (run / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1"]


def test_bad_options_are_named_before_anything_runs(tmp_path, capsys, data):
    status, err = _train(capsys, "--data-dir", data, "--out",
                         tmp_path / "r", "--P", "1.5")
    assert status == 2 and "P must be <= 1.0" in err
    config_file = tmp_path / "bad.yaml"
    config_file.write_text("epochz: 3\n")
    status, err = _train(capsys, "--config", config_file)
    assert status == 2 and "unknown option(s) epochz" in err
    status, err = _train(capsys, "--out", tmp_path / "nothing", "--resume")
    assert status == 1 and "no run to continue" in err
    for flags, message in [
            (["--foreground-bounds", 5, 2], "with 0 < C1 < C2; received "
             "[5.0, 2.0]"),
            (["--tune-bounds", -1], "tune_bounds must be >= 0"),
            (["--foreground-bounds", 1, 9, "--tune-bounds", 2],
             "foreground_bounds and tune_bounds exclude each other"),
            (["--P-schedule", "0=0", "3=1.5"], "received 3: 1.5"),
            (["--P-schedule", "3:0.7"], "items are EPOCH=P (like 0=0 3=0.7); "
             "received '3:0.7'")]:
        status, err = _train(capsys, "--data-dir", data, "--out",
                             tmp_path / "r", *flags)
        assert status == 2 and message in err
    assert not (tmp_path / "r").exists()


def test_cli_choices_follow_the_library():
    assert run_config.VARIANTS == VARIANTS


def test_momentum_without_sgd_is_refused(tmp_path, capsys):
    status, err = _train(capsys, "--data-dir", tmp_path, "--out",
                         tmp_path / "r", "--momentum", "0.9")
    assert status == 2 and "--momentum applies to --optimizer sgd" in err
    from isnet_keras import cli
    from isnet_keras.cli import train as train_cli

    args = cli.build_parser().parse_args(
        ["train", "--data-dir", "d", "--out", "r", "--optimizer", "sgd",
         "--momentum", "0.5"])
    config = train_cli.effective_config(args)
    assert (config["optimizer"], config["momentum"]) == ("sgd", 0.5)


def test_train_defaults_are_the_library_defaults():
    from isnet_keras.isnet import build_isnet, default_optimizer

    defaults = run_config.DEFAULTS
    assert defaults["P"] == "auto" == inspect.signature(
        build_isnet).parameters["P"].default
    assert defaults["deep_supervision"] == "auto" == inspect.signature(
        build_isnet).parameters["deep_supervision"].default
    optimizer = default_optimizer()
    assert defaults["optimizer"] == type(optimizer).__name__.lower()
    assert defaults["learning_rate"] == pytest.approx(
        float(optimizer.learning_rate))
    assert defaults["clipnorm"] == optimizer.global_clipnorm


def test_overwrite_removes_only_run_files_and_only_once_the_data_is_good(
        tmp_path, capsys, data):
    from isnet_keras import train

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "model.keras", "checkpoints/last.keras",
                 "notes.txt"):
        (run / name).write_text("old")
    with pytest.raises(train.RunDirectoryError, match="already exists"):
        train.prepare_run_dir(run)
    (data / "masks" / "image_00.png").unlink()
    status, err = _train(capsys, "--data-dir", data, "--backbone",
                         "smallcnn", "--out", run, "--overwrite")
    assert status == 1 and "image_00.png: no mask" in err
    assert (run / "model.keras").read_text() == "old"  # bad data: kept

    assert train.prepare_run_dir(run, overwrite=True) is None
    train.clear_run_dir(run)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_multiworker_tf_config_comes_from_the_cluster_in_the_config():
    from isnet_keras.distribute import tf_config

    cluster = {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}
    assert tf_config(cluster, 1) == {
        "cluster": cluster, "task": {"type": "worker", "index": 1}}
    with pytest.raises(ValueError, match=r"task_index must lie in \[0, 1\]"):
        tf_config(cluster, 2)
    with pytest.raises(ValueError, match="cluster.worker"):
        tf_config({}, 0)


@pytest.mark.parametrize("flags,file_value,expected", [
    ([], None, None),
    ([], "auto", "auto"),
    ([], [], None),
    (["--no-deep-supervision"], "auto", None),
    (["--deep-supervision"], None, "auto"),
    (["--deep-supervision", "block3_relu"], "auto", ["block3_relu"]),
    ([], ["block1_relu", "block2_relu"], ["block1_relu", "block2_relu"]),
])
def test_deep_supervision_comes_from_flags_or_the_config_file(
        tmp_path, flags, file_value, expected):
    from isnet_keras import cli
    from isnet_keras.cli import train as train_cli

    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump({
        "data_dir": "d", "out": "r", "deep_supervision": file_value}))
    args = cli.build_parser().parse_args(
        ["train", "--config", str(config_file), *flags])
    assert train_cli.effective_config(args)["deep_supervision"] == expected


def test_bad_deep_supervision_values_are_named(tmp_path, capsys):
    config_file = tmp_path / "run.yaml"
    for value in ("all", [3], {"layer": "x"}):
        config_file.write_text(yaml.safe_dump({
            "data_dir": "d", "out": str(tmp_path / "r"),
            "deep_supervision": value}))
        status, err = _train(capsys, "--config", config_file)
        assert status == 2 and "deep_supervision must be 'auto'" in err


@pytest.mark.slow
def test_training_with_auto_deep_supervision_logs_and_saves_it(
        tmp_path, capsys, data):
    run = tmp_path / "run"
    status, err = _train(capsys, "--data-dir", data, *QUICK_RUN,
                         "--deep-supervision", "--out", run)
    assert status == 0, err
    assert yaml.safe_load((run / "config.yaml").read_text())[
        "deep_supervision"] == "auto"
    import keras
    isnet = keras.models.load_model(run / "model.keras")
    assert isnet.deep_supervision == ("block1_relu", "block2_relu",
                                      "block3_relu")


@pytest.mark.slow
def test_tuned_bounds_are_saved_applied_and_kept_when_resuming(
        tmp_path, capsys, data, monkeypatch):
    import json

    import keras

    from isnet_keras import callbacks

    run = tmp_path / "run"
    status, err = _train(capsys, "--data-dir", data, *QUICK_RUN,
                         "--deep-supervision", "block3_relu", "--out", run,
                         "--tune-bounds", 1)
    assert status == 0, err
    bounds = json.loads((run / "foreground_bounds.json").read_text())
    # docs/algorithm.md, "Automatic C1 and C2".
    for band in (bounds, bounds["hidden"]["block3_relu"]):
        assert band["C1"] == pytest.approx(
            max(band["mean"] / 5, band["mean"] - 3 * band["std"]))
        assert band["C2"] == pytest.approx(
            min(25 * band["C1"], band["mean"] + 3 * band["std"]))
    assert bounds["C1"] != bounds["hidden"]["block3_relu"]["C1"]
    isnet = keras.models.load_model(run / "model.keras")
    assert (isnet.heatmap_loss.C1, isnet.heatmap_loss.C2) == (
        bounds["C1"], bounds["C2"])
    assert (isnet.hidden_losses[0].C1, isnet.hidden_losses[0].C2) == (
        bounds["hidden"]["block3_relu"]["C1"],
        bounds["hidden"]["block3_relu"]["C2"])
    assert json.loads((run / "run.json").read_text())[
        "foreground_bounds"] == bounds
    # The warm-up is not part of the run's history.
    assert (run / "history.csv").read_text().count("\n") == 2

    # Resumed: the saved bands, no second warm-up ...
    def no_tuning(*args, **kwargs):
        raise AssertionError("tuned again")

    monkeypatch.setattr(callbacks.AutoTuneForegroundBounds, "__init__",
                        no_tuning)
    status, err = _train(capsys, "--out", run, "--resume", "--epochs", 2)
    assert status == 0, err
    isnet = keras.models.load_model(run / "model.keras")
    assert isnet.heatmap_loss.C1 == bounds["C1"]
    assert json.loads((run / "foreground_bounds.json").read_text()) == bounds
    # A damaged file is named, not half-read.
    (run / "foreground_bounds.json").write_text('{"C1": 2')
    status, err = _train(capsys, "--out", run, "--resume", "--epochs", 3)
    assert status == 1 and "foreground_bounds.json: unreadable foreground " \
        "bands" in err
    (run / "foreground_bounds.json").write_text(json.dumps(bounds))
    # ... and never with another band.
    status, err = _train(capsys, "--out", run, "--resume", "--epochs", 3,
                         "--tune-bounds", 2)
    assert status == 2 and "tune_bounds: 1 in the run, 2 now" in err


def test_given_foreground_bounds_set_every_heatmap_loss(
        tmp_path, capsys, data):
    import keras

    run = tmp_path / "run"
    status, err = _train(capsys, "--data-dir", data, *QUICK_RUN,
                         "--deep-supervision", "--foreground-bounds", 2, 40,
                         "--out", run)
    assert status == 0, err
    isnet = keras.models.load_model(run / "model.keras")
    assert [(loss.C1, loss.C2) for loss in
            [isnet.heatmap_loss, *isnet.hidden_losses]] == [(2.0, 40.0)] * 4
    assert not (run / "foreground_bounds.json").exists()


def test_default_bands_follow_the_initial_relevance_and_are_kept_on_resume(
        tmp_path, capsys, data, monkeypatch):
    import json

    import keras

    from isnet_keras import train

    run = tmp_path / "run"
    status, err = _train(capsys, "--data-dir", data, *QUICK_RUN,
                         "--deep-supervision", "block3_relu", "--out", run)
    assert status == 0, err
    bounds = json.loads((run / "foreground_bounds.json").read_text())
    input_median, hidden_median = (m[0] for m in bounds["medians"])
    assert bounds["C2"] == pytest.approx(max(25.0, 2 * input_median))
    assert bounds["hidden"]["block3_relu"]["C2"] == pytest.approx(
        max(25.0, 2 * hidden_median))
    isnet = keras.models.load_model(run / "model.keras")
    assert (isnet.heatmap_loss.C1, isnet.heatmap_loss.C2) == (
        1.0, bounds["C2"])

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(train, "widen_to_initial_relevance", no_measuring)
    status, err = _train(capsys, "--out", run, "--resume", "--epochs", 2)
    assert status == 0, err
    assert json.loads((run / "foreground_bounds.json").read_text()) == bounds


def test_p_and_learning_rate_schedules_apply_and_p_is_kept_for_resuming(
        tmp_path, capsys, data):
    import csv

    from isnet_keras import train

    run = tmp_path / "run"
    status, err = _train(capsys, "--data-dir", data, *QUICK_RUN,
                         "--epochs", 2, "--P-schedule", "1=0.5", "0=0",
                         "--lr-schedule", "cosine", "--learning-rate", "0.01",
                         "--out", run)
    assert status == 0, err
    with (run / "history.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["P"]) for row in rows] == [0.0, 0.5]
    # 10 training images in batches of 4: 3 steps an epoch, 6 in all; the
    # last step of each epoch runs at 0.005 (1 + cos(pi t / 6)).
    np.testing.assert_allclose(
        [float(row["learning_rate"]) for row in rows],
        [0.005 * (1 + np.cos(np.pi * t / 6)) for t in (2, 5)], rtol=1e-5)
    # At P = 0 the loss is the cross-entropy alone.
    assert float(rows[0]["loss"]) == pytest.approx(
        float(rows[0]["classification_loss"]), rel=1e-5)
    assert float(rows[1]["loss"]) != pytest.approx(
        float(rows[1]["classification_loss"]), rel=1e-3)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["P_schedule"], saved["lr_schedule"]) == (
        {0: 0.0, 1: 0.5}, "cosine")
    # The best validation loss is looked for from the final P's epoch on.
    assert train._best_val_loss(run / "history.csv", 1) == float(
        rows[1]["val_loss"])
    status, err = _train(capsys, "--out", run, "--resume", "--epochs", 3,
                         "--P-schedule", "0=0.2")
    assert status == 2 and "P_schedule: {0: 0.0, 1: 0.5} in the run" in err


def test_defaults_learn_a_small_folder_set_without_its_shortcut(tmp_path):
    # A new user's case: a few hundred images per class, a burned-in marker
    # naming the class in a corner, `isnet train` with its defaults
    # (smallcnn, Selective ISNet, P 0.95, deep supervision). Fast settings:
    # 32 px, scikit-learn's digits (offline on every machine).
    import csv
    import json

    from isnet_keras.data.example_folders import write_benchmark_folders

    write_benchmark_folders(tmp_path / "marker", "marker", source="digits",
                            classes=4, image_size=32)
    run = tmp_path / "run"
    status = isnet_main([
        "train", "--data-dir", str(tmp_path / "marker" / "train"),
        "--backbone", "smallcnn", "--image-size", "32", "--epochs", "10",
        "--batch-size", "16", "--heatmap-images", "0", "--verbose", "0",
        "--out", str(run)])
    assert status == 0
    with open(run / "history.csv", newline="") as handle:
        history = list(csv.DictReader(handle))
    train_accuracy = [float(row["accuracy"]) for row in history]
    val_accuracy = [float(row["val_accuracy"]) for row in history]
    assert train_accuracy[-1] >= 0.9, train_accuracy
    # Stable at the end: no swing of more than 10 points between epochs.
    assert max(val_accuracy[-3:]) - min(val_accuracy[-3:]) <= 0.1, \
        val_accuracy
    audit = json.loads((run / "run.json").read_text())["audit"]
    assert audit["original_accuracy"]["value"] >= 0.9
    assert audit["follows_background_rate"]["value"] <= 0.1


def test_ctrl_c_ends_with_a_message_and_the_run_resumes(tmp_path, capsys,
                                                         data):
    import keras

    from isnet_keras.cli import build_parser
    from isnet_keras.cli.train import run_command

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    run = tmp_path / "run"
    quick = [str(a) for a in QUICK_RUN]
    quick[quick.index("--epochs") + 1] = "3"
    args = build_parser().parse_args(
        ["train", "--data-dir", str(data), *quick, "--out", str(run)])
    assert run_command(args, callbacks=[CtrlC()]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" in err
    assert "Traceback" not in err
    status, err = _train(capsys, "--data-dir", data, *quick, "--out", run,
                         "--resume")
    assert status == 0, err
    assert (run / "model.keras").is_file()
