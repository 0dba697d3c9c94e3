"""Deploy-time cost of ISNet: the exported model must run like the plain one.

Builds two classifiers of the same architecture, one "plain" and one taken
as the deploy model of an ISNet, exports both (SavedModel and TFLite), and
times them in the same process:

- Keras `predict_on_batch`,
- the reloaded SavedModel's `serving_default` signature,
- the TFLite file in the LiteRT interpreter,

each at batch 1 (latency, ms) and batch 64 (throughput, images/s): warm-up
calls first, then the median of many calls. The two models are measured
alternately (A, B, B, A, ...) so that load from other processes on a small
machine hits both alike, and the ISNet / plain ratio is the median of the
per-round ratios (the target is 1.00 +- 0.03: nothing is added at
deployment). The TFLite file sizes and parameter counts close the table.

By default (`--isnet-factory auto`) the ISNet is `build_isnet` applied to a
fresh classifier when `isnet_keras.isnet` can be imported, and otherwise an
independently initialised copy of the architecture (which is what an ISNet
deploy model is); the table header says which one ran. Any other builder
can be plugged in with `--isnet-factory module:function`, a function that
takes the classifier builder and returns an ISNet (or anything with a
`deploy_model`, or a Keras model).

Usage:

```
python training/bench_deploy.py
python training/bench_deploy.py --isnet-factory mypackage.bench:make_isnet
```
"""

import argparse
import gc
import importlib
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from isnet_keras import export  # noqa: E402


def build_classifier(image_shape=(32, 32, 3), classes=10):
    """The benchmarked architecture: a small CNN ending in logits.

    Args:
        image_shape: `(height, width, channels)`. Defaults to `(32, 32, 3)`.
        classes: `int`. Defaults to 10.

    Returns:
        A new, independently initialised `keras.Model`.

    Example:

    ```python
    build_classifier((28, 28, 1)).count_params()
    ```
    """
    inputs = keras.Input(image_shape)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(classes)(x)
    return keras.Model(inputs, outputs)


def copy_as_isnet(build):
    """Stand-in ISNet factory: a fresh copy of the plain architecture.

    An ISNet's deploy model is its classifier, so an independently
    initialised copy has exactly its deploy-time graph.

    Args:
        build: Callable with no arguments returning a new classifier.

    Returns:
        A `keras.Model`.

    Example:

    ```python
    copy_as_isnet(build_classifier).count_params()
    ```
    """
    return build()


def isnet_from_library():
    """Returns `(factory, description)` for the library's ISNet, if present.

    Falls back to `copy_as_isnet` (saying why) when `isnet_keras.isnet`
    cannot be imported.
    """
    try:
        from isnet_keras.isnet import build_isnet
    except ImportError as error:
        return copy_as_isnet, (
            "independent copy of the architecture (isnet_keras.isnet not "
            f"importable: {error})"
        )
    return (
        lambda build: build_isnet(build()),
        "isnet_keras.isnet.build_isnet(classifier).deploy_model",
    )


def load_factory(spec):
    """Returns `(factory, description)` for `auto`, `copy` or `module:function`."""
    if spec == "auto":
        return isnet_from_library()
    if spec == "copy":
        return copy_as_isnet, "independent copy of the architecture"
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise ValueError(
            f"--isnet-factory must look like module:function; got {spec!r}."
        )
    return getattr(importlib.import_module(module_name), function_name), spec


# --------------------------------------------------------------------------
# Runners: each returns a zero-argument callable that does one inference
# --------------------------------------------------------------------------


def keras_runner(model, images):
    return lambda: model.predict_on_batch(images)


def saved_model_runner(version_dir, images):
    signature = tf.saved_model.load(version_dir).signatures["serving_default"]
    batch = tf.constant(images)
    return lambda: signature(images=batch)["probabilities"].numpy()


def tflite_runner(path, images, num_threads):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=num_threads)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    # Resize once: the timed loop measures inference, not re-allocation.
    interpreter.resize_tensor_input(input_index, images.shape)
    interpreter.allocate_tensors()

    def run():
        interpreter.set_tensor(input_index, images)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)

    return run


def time_interleaved(runners, warmup, repeats):
    """Wall time of every call of each runner, measured in alternation.

    Args:
        runners: `dict` name -> zero-argument callable.
        warmup: `int`. Untimed calls per runner first.
        repeats: `int`. Timed calls per runner.

    Returns:
        `dict` name -> list of seconds, one per repeat; entry `i` of every
        list was measured in the same round.
    """
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    timings = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # A collection inside one timed call would favour the other.
    try:
        for repeat in range(repeats):
            # A, B then B, A: neither model always runs right after the other.
            order = names if repeat % 2 == 0 else names[::-1]
            for name in order:
                start = time.perf_counter()
                runners[name]()
                timings[name].append(time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings


def paired_ratio(numerator, denominator):
    """Median of per-round ratios: robust to load that drifts over the run."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--throughput-batch", type=int, default=64)
    parser.add_argument("--latency-repeats", type=int, default=1000)
    parser.add_argument("--throughput-repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--tflite-threads", type=int, default=1,
        help="LiteRT interpreter threads (default 1: steadier on a busy machine)",
    )
    parser.add_argument(
        "--isnet-factory", default="auto", metavar="auto|copy|MODULE:FUNCTION",
        help="how the ISNet is built from the classifier builder (default "
        "auto: the library's build_isnet when importable, else a fresh copy)",
    )
    parser.add_argument(
        "--out-dir",
        help="keep the exported models here (default: a temporary directory)",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    image_shape = (args.image_size, args.image_size, args.channels)

    def build():
        return build_classifier(image_shape, args.classes)

    make_isnet, isnet_description = load_factory(args.isnet_factory)
    models = {
        "plain": build(),
        "isnet": export.resolve_deploy_model(make_isnet(build)),
    }

    with tempfile.TemporaryDirectory() as scratch:
        out_dir = args.out_dir or scratch
        exported = {}
        for name, model in models.items():
            version_dir = export.export_serving(
                model, os.path.join(out_dir, f"{name}_savedmodel")
            )
            tflite_path = os.path.join(out_dir, f"{name}.tflite")
            export.export_tflite(model, tflite_path, overwrite=True)
            exported[name] = (version_dir, tflite_path)

        rng = np.random.default_rng(args.seed)
        batches = {
            1: rng.random((1, *image_shape), dtype=np.float32),
            args.throughput_batch: rng.random(
                (args.throughput_batch, *image_shape), dtype=np.float32
            ),
        }
        rows = []
        for runtime in ("keras", "savedmodel", "tflite"):
            for batch_size, images in batches.items():
                runners = {}
                for name, model in models.items():
                    version_dir, tflite_path = exported[name]
                    if runtime == "keras":
                        runners[name] = keras_runner(model, images)
                    elif runtime == "savedmodel":
                        runners[name] = saved_model_runner(version_dir, images)
                    else:
                        runners[name] = tflite_runner(
                            tflite_path, images, args.tflite_threads
                        )
                is_latency = batch_size == 1
                timings = time_interleaved(
                    runners,
                    args.warmup,
                    args.latency_repeats if is_latency else args.throughput_repeats,
                )
                seconds = {n: statistics.median(t) for n, t in timings.items()}
                time_ratio = paired_ratio(timings["isnet"], timings["plain"])
                if is_latency:
                    metric = "latency b=1 (ms)"
                    values = {n: 1000.0 * s for n, s in seconds.items()}
                    ratio = time_ratio
                else:
                    metric = f"throughput b={batch_size} (img/s)"
                    values = {n: batch_size / s for n, s in seconds.items()}
                    ratio = 1.0 / time_ratio
                rows.append(
                    (runtime, metric, values["plain"], values["isnet"], ratio)
                )
        sizes = {name: os.path.getsize(paths[1]) for name, paths in exported.items()}

    print_table(rows, sizes, models, image_shape, args, isnet_description)
    return 0


def print_table(rows, sizes, models, image_shape, args, isnet_description):
    print(
        f"Deploy benchmark: input {image_shape}, {args.classes} classes, "
        f"{os.cpu_count()} CPU cores visible, TFLite threads "
        f"{args.tflite_threads}; medians of {args.latency_repeats} (b=1) / "
        f"{args.throughput_repeats} (b={args.throughput_batch}) calls, "
        "interleaved."
    )
    print(f"ISNet deploy model: {isnet_description}.")
    print()
    print("| runtime | metric | plain | ISNet deploy | ISNet/plain |")
    print("|---|---|---:|---:|---:|")
    for runtime, metric, plain, isnet, ratio in rows:
        print(
            f"| {runtime} | {metric} | {plain:.3f} | {isnet:.3f} | "
            f"{ratio:.3f} |"
        )
    print(
        f"| tflite | file size (bytes) | {sizes['plain']} | {sizes['isnet']} | "
        f"{sizes['isnet'] / sizes['plain']:.3f} |"
    )
    plain_params = models["plain"].count_params()
    isnet_params = models["isnet"].count_params()
    print(
        f"| keras | parameters | {plain_params} | {isnet_params} | "
        f"{isnet_params / plain_params:.3f} |"
    )
    print()
    print(
        "Timing ratios are medians of per-round ratios (A and B timed back "
        "to back), so load that drifts during the run cancels. Target: every "
        "ratio 1.00 +- 0.03."
    )


if __name__ == "__main__":
    sys.exit(main())
