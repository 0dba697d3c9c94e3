"""Training-step cost of each ISNet variant relative to the plain classifier.

For each model (a small CNN, the bias benchmarks' CNN, ResNet50 and
DenseNet121 from keras.applications with random weights, or `vit_small`,
the small vision transformer of `isnet_keras.backbones`) at 64x64, batch 16, and each number of classes K, one
process builds every trainer (the plain classifier, then the ISNet variants,
each on its own copy of the classifier with the same initial weights; each
variant alone, then "default", the recipe `build_isnet(classifier)` gives),
traces and warms up their `train_on_batch`, then times `--steps` rounds in
which each trainer runs one step in turn. Interleaving makes the ratios
robust to other jobs on the machine: a slow spell hits every trainer alike.
The script prints each trainer's median step time and its ratio to the plain
classifier's. On a shared or throttled machine the ratio itself moves
between processes (element-wise work and convolutions slow down unequally):
`--repeats N` runs N timing processes and prints the median over them of
each trainer's step time and ratio, and the ratios' range. Peak memory is
measured separately, one short process per trainer (the peak of a process
is that of its largest trainer), unless `--no-memory`. TensorFlow's oneDNN kernels follow `TF_ENABLE_ONEDNN_OPTS`
(the `isnet` command sets it to 1 unless it is set).

    python training/bench_train.py [--models cnn bench ResNet50 DenseNet121
        vit_small]
        [--classes 2 10] [--steps 10] [--repeats 1] [--variants selective
        stochastic original dual] [--no-memory]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# Each variant alone (input heatmap only), then "default": what
# `build_isnet(classifier)` gives (Selective with deep supervision "auto").
VARIANTS = ("selective", "stochastic", "original", "dual", "default")


def _classifier(name, size, num_classes):
    import keras

    if name == "bench":  # the bias benchmarks' CNN (isnet bench bias/zoo)
        from isnet_keras.bench.bias import bench_classifier

        return bench_classifier((size, size, 3), num_classes)
    if name == "vit_small":  # a small ViT, isnet_keras.backbones.vit_small
        from isnet_keras.backbones import vit_small

        return vit_small(num_classes, size)
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


def _trainer(model_name, trainer, num_classes, size):
    import keras

    from isnet_keras.baselines import PlainClassifier
    from isnet_keras.isnet import build_isnet

    keras.utils.set_random_seed(0)
    classifier = _classifier(model_name, size, num_classes)
    if trainer == "plain":
        model = PlainClassifier(classifier)
    elif trainer == "default":
        model = build_isnet(classifier, seed=0)
    else:
        model = build_isnet(classifier, variant=trainer, seed=0,
                            deep_supervision=())
    model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9,
                                                 global_clipnorm=1.0))
    return model


def _batch(num_classes, size, batch):
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (batch, size, size, 3)).astype("float32")
    labels = rng.integers(0, num_classes, batch)
    masks = np.zeros((batch, size, size, 1), "float32")
    masks[:, size // 4:-size // 4, size // 4:-size // 4] = 1
    return images, {"label": labels, "mask": masks}


def _warm_up(model, images, targets):
    start = time.perf_counter()
    for _ in range(2):
        model.train_on_batch(images, targets)
    return time.perf_counter() - start


def time_steps(model_name, trainers, num_classes, size, batch, steps):
    """Median step time of each trainer, timed round-robin in one process."""
    images, targets = _batch(num_classes, size, batch)
    models = {name: _trainer(model_name, name, num_classes, size)
              for name in trainers}
    warmup = {name: _warm_up(model, images, targets)
              for name, model in models.items()}
    times = {name: [] for name in trainers}
    for _ in range(steps):
        for name, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(images, targets)
            times[name].append(time.perf_counter() - start)
    return {name: {"step": statistics.median(times[name]),
                   "warmup": warmup[name]} for name in trainers}


def peak_memory(model_name, trainer, num_classes, size, batch):
    """Peak resident memory (MiB) of a process that trains `trainer`."""
    images, targets = _batch(num_classes, size, batch)
    _warm_up(_trainer(model_name, trainer, num_classes, size), images,
             targets)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.child_mode == "time":
        result = time_steps(args.child_model, args.child_trainers,
                            args.child_classes, args.size, args.batch,
                            args.steps)
    else:
        (trainer,) = args.child_trainers
        result = peak_memory(args.child_model, trainer, args.child_classes,
                             args.size, args.batch)
    print("RESULT " + json.dumps(result))


def _run_child(mode, model_name, trainers, num_classes, args):
    command = [sys.executable, __file__, "--child-mode", mode,
               "--child-model", model_name, "--child-trainers", *trainers,
               "--child-classes", str(num_classes), "--size", str(args.size),
               "--batch", str(args.batch), "--steps", str(args.steps)]
    done = subprocess.run(command, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{model_name}/{trainers}/K={num_classes} failed:\n"
                       f"{done.stderr[-2000:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+",
                        default=["cnn", "bench", "ResNet50", "DenseNet121"])
    parser.add_argument("--classes", nargs="+", type=int, default=[2, 10])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1,
                        help="Timing processes per model and K (medians "
                        "and the ratio's range are printed).")
    parser.add_argument("--no-memory", action="store_true",
                        help="Skip the per-trainer peak-memory processes.")
    parser.add_argument("--child-mode", help=argparse.SUPPRESS)
    parser.add_argument("--child-model", help=argparse.SUPPRESS)
    parser.add_argument("--child-trainers", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--child-classes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_mode:
        return _child(args)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    print(f"Training-step time / plain step time, {args.size}x{args.size}, "
          f"batch {args.batch}, median of {args.steps} traced steps "
          f"interleaved in one process ({args.repeats} process(es), "
          f"medians), {os.cpu_count()} CPU cores, TF_ENABLE_ONEDNN_OPTS="
          f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset)')}; peak "
          "memory of one process per trainer.")
    spread = "  x plain range" if args.repeats > 1 else ""
    print(f"{'model':<13}{'K':>3} {'trainer':<11}{'step ms':>9}{'x plain':>9}"
          f"{'peak MiB':>10}{'trace s':>9}{spread}", flush=True)
    trainers = ["plain", *args.variants]
    for model_name in args.models:
        for num_classes in args.classes:
            runs = [_run_child("time", model_name, trainers, num_classes,
                               args) for _ in range(args.repeats)]
            for trainer in trainers:
                peak = ""
                if not args.no_memory:
                    peak = _run_child("memory", model_name, [trainer],
                                      num_classes, args)
                    peak = f"{peak:.0f}"
                ratios = [run[trainer]["step"] / run["plain"]["step"]
                          for run in runs]
                step = statistics.median(run[trainer]["step"]
                                         for run in runs)
                warmup = statistics.median(run[trainer]["warmup"]
                                           for run in runs)
                extra = (f"  {min(ratios):.2f}-{max(ratios):.2f}"
                         if args.repeats > 1 else "")
                print(f"{model_name:<13}{num_classes:>3} {trainer:<11}"
                      f"{step * 1e3:>9.1f}{statistics.median(ratios):>9.2f}"
                      f"{peak:>10}{warmup:>9.1f}{extra}", flush=True)


if __name__ == "__main__":
    main()
