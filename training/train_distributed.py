"""Launch one worker of a multi-machine ISNet training run from a config.

Run the same command on every machine, each with its own `--task-index`
(or `task_index` in its config). The config (YAML) names the cluster:

    cluster:
      worker: ["10.0.0.1:12345", "10.0.0.2:12345"]
    task_index: 0
    variant: selective
    epochs: 2
    steps_per_epoch: 20
    batch_size: 32        # global batch, split over the workers
    image_size: 16
    seed: 0

    python training/train_distributed.py --config training/configs/two_workers.yaml \
        --task-index 0 --out runs/distributed

Each worker builds the ISNet under `tf.distribute.MultiWorkerMirroredStrategy`
and trains on the planted-cue task; worker `i` writes `worker_<i>.json` with
its loss history and a checksum of the final weights (identical on every
worker when the run is synchronised).
"""

import argparse
import json
import os
import pathlib

import yaml

from isnet_keras.distribute import tf_config


def load_config(path, overrides):
    config = yaml.safe_load(pathlib.Path(path).read_text()) or {}
    config.update({k: v for k, v in overrides.items() if v is not None})
    try:
        tf_config(config.get("cluster"), config.get("task_index"))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--task-index", type=int)
    parser.add_argument("--out", default="runs/distributed")
    args = parser.parse_args(argv)
    config = load_config(args.config, {"task_index": args.task_index})
    index = int(config["task_index"])
    os.environ["TF_CONFIG"] = json.dumps(tf_config(config["cluster"], index))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras
    import numpy as np
    import tensorflow as tf

    from isnet_keras.data.synthetic import planted_cue_task
    from isnet_keras.isnet import build_isnet

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    keras.utils.set_random_seed(int(config.get("seed", 0)))
    size = int(config.get("image_size", 16))
    batch = int(config.get("batch_size", 32))
    steps = int(config.get("steps_per_epoch", 10))
    images, labels, masks = planted_cue_task(batch * steps, size=size,
                                             seed=int(config.get("seed", 0)))
    dataset = tf.data.Dataset.from_tensor_slices(
        (images, {"label": labels, "mask": masks})).batch(batch).repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    dataset = dataset.with_options(options)
    with strategy.scope():
        classifier = keras.Sequential([
            keras.Input((size, size, 1)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
        isnet = build_isnet(classifier, variant=config.get("variant",
                                                           "selective"))
        isnet.compile(optimizer=keras.optimizers.SGD(
            1e-2, momentum=0.9, global_clipnorm=1.0))
    history = isnet.fit(dataset, epochs=int(config.get("epochs", 1)),
                        steps_per_epoch=steps, verbose=2)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checksum = float(sum(np.abs(w).sum() for w in classifier.get_weights()))
    (out / f"worker_{index}.json").write_text(json.dumps({
        "loss": history.history["loss"], "weights_checksum": checksum,
        "replicas": strategy.num_replicas_in_sync}))


if __name__ == "__main__":
    main()
