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
