"""Training-step cost of each ISNet variant relative to the plain classifier.

For each model (a small CNN, ResNet50, DenseNet121 from keras.applications
with random weights) at 64x64, batch 16, and each number of classes K, every
trainer (plain, then the ISNet variants) runs in its own process: it builds
the model, traces and warms up `train_on_batch`, then times `--steps` steps.
The script prints the median step time, its ratio to the plain classifier's
(same model, same K, same machine, same run) and the peak resident memory of
that process.

    python training/bench_train.py [--models cnn ResNet50 DenseNet121]
        [--classes 2 10] [--steps 10] [--variants selective stochastic
        original dual]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("selective", "stochastic", "original", "dual")


def _classifier(name, size, num_classes):
    import keras

    if name == "cnn":
        return keras.Sequential([
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(128, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(num_classes)])
    backbone = getattr(keras.applications, name)(
        include_top=False, weights=None, input_shape=(size, size, 3),
        pooling="avg")
    return keras.Sequential([keras.Input((size, size, 3)), backbone,
                             keras.layers.Dense(num_classes)])


def measure(model_name, trainer, num_classes, size, batch, steps):
    """Runs in a child process; returns the median step and peak RSS."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from isnet_keras.baselines import PlainClassifier
    from isnet_keras.isnet import build_isnet

    keras.utils.set_random_seed(0)
    classifier = _classifier(model_name, size, num_classes)
    if trainer == "plain":
        model = PlainClassifier(classifier)
    else:
        model = build_isnet(classifier, variant=trainer, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9,
                                                 global_clipnorm=1.0))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (batch, size, size, 3)).astype("float32")
    labels = rng.integers(0, num_classes, batch)
    masks = np.zeros((batch, size, size, 1), "float32")
    masks[:, size // 4:-size // 4, size // 4:-size // 4] = 1
    targets = {"label": labels, "mask": masks}
    start = time.perf_counter()
    for _ in range(2):
        model.train_on_batch(images, targets)
    warmup = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(images, targets)
        times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"step": statistics.median(times), "peak_mib": peak_mib,
            "warmup": warmup}


def _child(args):
    result = measure(args.child_model, args.child_trainer, args.child_classes,
                     args.size, args.batch, args.steps)
    print("RESULT " + json.dumps(result))


def _run_child(model_name, trainer, num_classes, args):
    command = [sys.executable, __file__, "--child-model", model_name,
               "--child-trainer", trainer, "--child-classes",
               str(num_classes), "--size", str(args.size), "--batch",
               str(args.batch), "--steps", str(args.steps)]
    done = subprocess.run(command, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{model_name}/{trainer}/K={num_classes} failed:\n"
                       f"{done.stderr[-2000:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+",
                        default=["cnn", "ResNet50", "DenseNet121"])
    parser.add_argument("--classes", nargs="+", type=int, default=[2, 10])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--child-model", help=argparse.SUPPRESS)
    parser.add_argument("--child-trainer", help=argparse.SUPPRESS)
    parser.add_argument("--child-classes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_model:
        return _child(args)
    print(f"Training-step time / plain step time, {args.size}x{args.size}, "
          f"batch {args.batch}, median of {args.steps} traced steps, "
          f"{os.cpu_count()} CPU cores; one process per row.")
    print(f"{'model':<13}{'K':>3} {'trainer':<11}{'step ms':>9}{'x plain':>9}"
          f"{'peak MiB':>10}{'trace s':>9}")
    for model_name in args.models:
        for num_classes in args.classes:
            plain = None
            for trainer in ["plain", *args.variants]:
                result = _run_child(model_name, trainer, num_classes, args)
                plain = plain or result["step"]
                print(f"{model_name:<13}{num_classes:>3} {trainer:<11}"
                      f"{result['step'] * 1e3:>9.1f}"
                      f"{result['step'] / plain:>9.2f}"
                      f"{result['peak_mib']:>10.0f}{result['warmup']:>9.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
