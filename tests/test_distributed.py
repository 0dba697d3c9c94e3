"""ISNet training under tf.distribute strategies (CPU processes)."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import numpy as np
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]

_MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from isnet_keras.data.synthetic import planted_cue_task
    from isnet_keras.isnet import build_isnet

    images, labels, masks = planted_cue_task(64, seed=1)

    def run(strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            classifier = keras.Sequential([
                keras.Input((16, 16, 1)),
                keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                keras.layers.MaxPooling2D(2),
                keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
            # Input heatmaps only: deep supervision combines the layers'
            # batch-mean losses by a ranked (non-linear) pooling, which,
            # like batch norm's statistics, each replica computes on its
            # own share of the batch.
            isnet = build_isnet(classifier, deep_supervision=())
            isnet.compile(optimizer=keras.optimizers.SGD(1e-2, momentum=0.9))
        losses = []
        for epoch in range(3):
            history = isnet.fit(images, {"label": labels, "mask": masks},
                                batch_size=16, epochs=1, shuffle=False,
                                verbose=0)
            losses.append(history.history["loss"][0])
        return losses, strategy.num_replicas_in_sync

    single = run(tf.distribute.get_strategy())
    mirrored = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    print(json.dumps({"single": single, "mirrored": mirrored}))
""")


def _environment():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run_script(script):
    """Runs `script` in a fresh Python (logical devices must be set before
    TensorFlow starts) and returns the JSON of its last output line."""
    result = subprocess.run([sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=300,
                            env=_environment(), cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mirrored_strategy_on_two_devices_matches_one_device():
    values = _run_script(_MIRRORED_SCRIPT)
    (single, one), (mirrored, two) = values["single"], values["mirrored"]
    assert (one, two) == (1, 2)
    assert all(np.isfinite(mirrored))
    np.testing.assert_allclose(mirrored, single, rtol=1e-4)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_multi_worker_strategy_trains_in_two_processes(tmp_path):
    config = yaml.safe_load((ROOT / "training/configs/two_workers.yaml")
                            .read_text())
    config["cluster"]["worker"] = [f"127.0.0.1:{_free_port()}"
                                   for _ in range(2)]
    config.update(epochs=1, steps_per_epoch=3)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    workers = [subprocess.Popen(
        [sys.executable, "training/train_distributed.py", "--config",
         str(path), "--task-index", str(index), "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_environment(), cwd=ROOT) for index in range(2)]
    try:
        outputs = [worker.communicate(timeout=300) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    reports = [json.loads((tmp_path / f"worker_{i}.json").read_text())
               for i in range(2)]
    assert all(r["replicas"] == 2 for r in reports)
    assert all(np.isfinite(r["loss"]).all() for r in reports)
    assert reports[0]["weights_checksum"] == reports[1]["weights_checksum"]


_PRECISE_BN_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from isnet_keras.callbacks import (PreciseBatchNorm,
                                       recompute_batch_norm_statistics)
    from isnet_keras.isnet import build_isnet

    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        classifier = keras.Sequential([
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(),
            keras.layers.Flatten(), keras.layers.Dense(2)])
        isnet = build_isnet(classifier, deep_supervision=())
        isnet.compile()
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (32, 8, 8, 1)).astype("float32")
    masks = np.zeros((32, 8, 8), "float32")
    masks[:, 2:6, 2:6] = 1
    data = tf.data.Dataset.from_tensor_slices(
        (images, {"label": rng.integers(0, 2, 32), "mask": masks})).batch(16)
    isnet.fit(data, validation_data=data, epochs=2, verbose=0,
              callbacks=[PreciseBatchNorm(data)])
    layer = classifier.get_layer("bn")
    fitted = [layer.moving_mean.numpy().tolist(),
              layer.moving_variance.numpy().tolist()]
    recompute_batch_norm_statistics(classifier, data)
    again = [layer.moving_mean.numpy().tolist(),
             layer.moving_variance.numpy().tolist()]
    print(json.dumps({"fitted": fitted, "again": again,
                      "replicas": strategy.num_replicas_in_sync}))
""")


def test_precise_batch_norm_under_the_mirrored_strategy():
    # The callback runs the classifier outside the replicas (cross-replica
    # context); the mirrored moving statistics must take the recomputed
    # values, the same as a recomputation from the final weights.
    values = _run_script(_PRECISE_BN_SCRIPT)
    assert values["replicas"] == 2
    np.testing.assert_allclose(values["fitted"], values["again"], rtol=1e-5,
                               atol=1e-7)
    # Recomputed, not the initial zeros and ones or a few momentum steps.
    assert np.abs(values["fitted"][0]).max() > 0.05


# `isnet train` end to end under its --strategy and --precision options, on
# a tiny folder set: 16 8x8 images, 12 for training (3 steps of a global
# batch of 4), 4 for validation.
_CLI_RUN = ("--backbone", "smallcnn", "--image-size", "8", "--epochs", "1",
            "--batch-size", "4", "--val-split", "0.25", "--verbose", "0",
            "--heatmap-images", "0", "--no-deep-supervision")


def _tiny_folder_set(folder):
    from isnet_keras.data import write_folder_dataset

    rng = np.random.default_rng(0)
    masks = np.zeros((16, 8, 8), np.float32)
    labels = np.arange(16) % 2
    for mask, label in zip(masks, labels):
        top, left = rng.integers(1, 4, 2)
        mask[top:top + 3, left:left + (2 if label else 4)] = 1.0
    images = masks * rng.uniform(0.6, 1.0, masks.shape)
    write_folder_dataset(folder, images.astype(np.float32), masks, labels,
                         class_names=["bar", "square"])
    return folder


def _history(run):
    import csv

    with (run / "history.csv").open(newline="") as handle:
        return [{key: float(row[key]) for key in ("loss", "val_loss")}
                for row in csv.DictReader(handle)]


_CLI_MIRRORED_SCRIPT = textwrap.dedent("""
    import json, os
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from isnet_keras.cli import main

    print(json.dumps({"status": main(%r)}))
""")


def test_isnet_train_mirrored_mixed_bfloat16_on_two_cpus(tmp_path):
    from isnet_keras.export import load_keras_file

    data = _tiny_folder_set(tmp_path / "data")
    run = tmp_path / "run"
    argv = ["train", "--data-dir", str(data), "--out", str(run), *_CLI_RUN,
            "--strategy", "mirrored", "--precision", "mixed_bfloat16"]
    assert _run_script(_CLI_MIRRORED_SCRIPT % (argv,)) == {"status": 0}

    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["strategy"], saved["precision"]) == (
        "mirrored", "mixed_bfloat16")
    # MirroredStrategy() took both logical CPUs: 2 replicas of 2 images.
    assert json.loads((run / "run.json").read_text())["replicas"] == 2
    assert np.isfinite(_history(run)[0]["loss"])

    classifier = load_keras_file(run / "model.keras").deploy_model
    policies = {layer.dtype_policy.name for layer in classifier.layers}
    assert policies == {"mixed_bfloat16"}
    images = np.random.default_rng(1).uniform(
        0, 1, (4, *classifier.input_shape[1:])).astype("float32")
    logits = classifier.predict(images, verbose=0)
    assert logits.shape == (4, 2)
    assert np.isfinite(np.asarray(logits, np.float32)).all()


# Options of the two-worker comparison. SGD: its steps are linear in the
# gradient, so summation-order rounding stays at that level (Adam's first
# steps are about lr * sign(g) and could flip on a near-zero component).
# No gradient clipping: Keras clips each replica's share of the gradient
# before the replicas' shares are summed, not the whole batch's gradient
# (with the default clipnorm 1.0 the two-worker weights differ by ~1e-2).
_EXACT = {"optimizer": "sgd", "learning_rate": 0.05, "clipnorm": None}


def test_isnet_train_on_two_workers_matches_one_worker(tmp_path):
    # Each worker gets half of every global batch of the one-worker run (the
    # same seeded split and shuffle, each batch split among the replicas),
    # so the weights agree up to float32 summation order.
    from isnet_keras.cli import main as isnet_main
    from isnet_keras.export import load_keras_file

    data = _tiny_folder_set(tmp_path / "data")
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
    workers = []
    for index in range(2):
        config = tmp_path / f"worker_{index}.yaml"
        config.write_text(yaml.safe_dump({
            "cluster": cluster, "task_index": index, **_EXACT}))
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "isnet_keras.cli", "train", "--data-dir",
             str(data), "--out", str(tmp_path / f"run_{index}"), *_CLI_RUN,
             "--strategy", "multiworker", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=_environment(), cwd=ROOT))
    try:
        # The one-worker run, here, while the workers train.
        single = tmp_path / "single"
        (tmp_path / "single.yaml").write_text(yaml.safe_dump(_EXACT))
        assert isnet_main(["train", "--data-dir", str(data), "--out",
                           str(single), *_CLI_RUN, "--config",
                           str(tmp_path / "single.yaml")]) == 0
        outputs = [worker.communicate(timeout=300) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]

    chief = tmp_path / "run_0"
    saved = yaml.safe_load((chief / "config.yaml").read_text())
    assert (saved["strategy"], saved["task_index"]) == ("multiworker", 0)
    assert json.loads((chief / "run.json").read_text())["replicas"] == 2
    assert json.loads((single / "run.json").read_text())["replicas"] == 1
    assert (chief / "report" / "evaluation.json").is_file()
    # The other worker keeps only what resuming it needs (the foreground
    # bands measured at the start among them).
    assert sorted(p.name for p in (tmp_path / "run_1").iterdir()) == [
        "backup", "config.yaml", "foreground_bounds.json"]

    two = load_keras_file(chief / "model.keras").deploy_model.get_weights()
    one = load_keras_file(single / "model.keras").deploy_model.get_weights()
    assert len(two) == len(one)
    # Trained: the biases start at 0 and moved by 0.01 to 0.4.
    assert np.abs(one[1]).max() > 0.01
    # Measured: at most 1.2e-7 apart.
    for a, b in zip(two, one):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The chief logs the losses of the global batches.
    for a, b in zip(_history(chief), _history(single), strict=True):
        np.testing.assert_allclose([a["loss"], a["val_loss"]],
                                   [b["loss"], b["val_loss"]], rtol=1e-5)
