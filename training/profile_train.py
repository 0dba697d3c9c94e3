"""Where the time of one ISNet training step goes.

Builds the benchmark model of `bench_train.py` (64x64, batch 16) and times,
interleaved in one process, traced functions that each add one piece of the
training step: the classifier's forward pass; a plain classifier step
(forward, cross-entropy, gradients); the train graph's forward pass (logits
and heatmaps: the LRP block); plus the heatmap loss; plus the gradients of
the total loss (the ISNet step without the optimizer update). Each median is
printed with its ratio to the plain step. With `--ops` it then runs the full
step under the TensorFlow profiler and lists the op types that take the
most time; with `--layers`, the time of each layer of the train graph (the
classifier's layers and their LRP mirrors), forward and gradient apart.

    python training/profile_train.py [--model cnn] [--variant original]
        [--classes 10] [--repeats 7] [--ops] [--layers]

`--variant default` profiles the recipe `build_isnet(classifier)` gives
(Selective with LRP deep supervision); a variant name, that variant on its
input heatmap alone, as in `bench_train.py`.
"""

import argparse
import collections
import glob
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import VARIANTS  # noqa: E402

PIECES = ("forward", "plain_step", "lrp_forward", "lrp_and_loss",
          "isnet_step")


def _pieces(model_name, variant, num_classes, size, batch):
    """Traced functions, one per piece, in the order of `PIECES`."""
    import keras
    import numpy as np
    import tensorflow as tf

    from bench_train import _classifier

    from isnet_keras.isnet import build_isnet

    keras.utils.set_random_seed(0)
    classifier = _classifier(model_name, size, num_classes)
    if variant == "default":
        isnet = build_isnet(classifier, seed=0)
    else:
        # A variant on its input heatmap alone, as in bench_train.py.
        isnet = build_isnet(classifier, variant=variant, seed=0,
                            deep_supervision=())
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 1, (batch, size, size, 3)),
                         "float32")
    labels = tf.constant(rng.integers(0, num_classes, batch))
    masks = np.zeros((batch, size, size, 1), "float32")
    masks[:, size // 4:-size // 4, size // 4:-size // 4] = 1
    masks = tf.constant(masks)
    variables = classifier.trainable_variables

    def forward():
        return classifier(images, training=True)

    def plain_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(
                    labels, classifier(images, training=True),
                    from_logits=True))
        return tape.gradient(loss, variables)

    def lrp_forward():
        return isnet.train_graph_outputs(images, labels,
                                         training=True)["heatmaps"]

    def lrp_and_loss():
        return isnet._loss_terms(images, labels, masks, training=True).total

    def isnet_step():
        with tf.GradientTape() as tape:
            loss = isnet._loss_terms(images, labels, masks,
                                     training=True).total
        return tape.gradient(loss, variables)

    functions = (forward, plain_step, lrp_forward, lrp_and_loss, isnet_step)
    return {name: tf.function(f) for name, f in zip(PIECES, functions)}


def _run(function):
    import tensorflow as tf

    result = function()
    # Fetching every output waits for the whole computation.
    tf.nest.map_structure(lambda t: None if t is None else t.numpy(), result)


def time_pieces(functions, repeats):
    """Median seconds per piece, the pieces interleaved."""
    for function in functions.values():
        _run(function)
        _run(function)
    times = collections.defaultdict(list)
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            _run(function)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def op_event_times(function, steps=3):
    """Milliseconds per step of each op, by op name, from a TensorFlow
    profiler trace.

    Durations are summed over the threads that ran each op, so their sum can
    exceed the wall time of a step.

    Returns:
        A `collections.Counter` keyed by `"op_name:OpType"`.
    """
    import tensorflow as tf
    # The profiler writes an XSpace protobuf; TensorFlow ships its schema
    # (TensorBoard's profile plugin, which reads it, is not a dependency).
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            _run(function)
        tf.profiler.experimental.stop()
        (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"),
                            recursive=True)
        space = xplane_pb2.XSpace()
        with open(path, "rb") as file:
            space.ParseFromString(file.read())
    totals = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # TensorFlow op events are named "op_name:OpType"; "Process"
                # events span the executor's work on other ops.
                if ":" not in name or name.startswith(("$", "Eager",
                                                       "KernelAndDevice")) \
                        or name.endswith(":Process"):
                    continue
                totals[name] += event.duration_ps / 1e9 / steps
    return totals


def by_op_type(events):
    """Op times summed by op type."""
    totals = collections.Counter()
    for name, milliseconds in events.items():
        totals[name.rsplit(":", 1)[1]] += milliseconds
    return totals


def by_layer(events):
    """Op times summed by train-graph layer (a mirror or a classifier
    layer), forward and gradient apart, convolutions apart from the rest.

    Keys are `(layer, "forward" | "gradient", "conv" | "other")`; ops
    outside the train graph (the heatmap loss, gradient sums) count as the
    layer `"(outside)"`.
    """
    totals = collections.Counter()
    for name, milliseconds in events.items():
        op_name, op_type = name.rsplit(":", 1)
        parts = op_name.split("/")
        graph = [i for i, part in enumerate(parts)
                 if part.startswith("isnet_train_graph")]
        layer = parts[graph[0] + 1] if graph and graph[0] + 1 < len(parts) \
            else "(outside)"
        direction = "gradient" if op_name.startswith("gradient_tape") \
            else "forward"
        kind = "conv" if "Conv" in op_type else "other"
        totals[layer, direction, kind] += milliseconds
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--variant", default="original",
                        choices=VARIANTS,
                        help="an ISNet variant on its input heatmap alone, "
                        "or 'default' (what build_isnet(classifier) gives)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--ops", action="store_true",
                        help="also list op types by time (TF profiler)")
    parser.add_argument("--layers", action="store_true",
                        help="also list the time of each train-graph layer "
                        "(TF profiler)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    functions = _pieces(args.model, args.variant, args.classes, args.size,
                        args.batch)
    medians = time_pieces(functions, args.repeats)
    plain = medians["plain_step"]
    print(f"{args.model}, {args.variant}, K={args.classes}, "
          f"{args.size}x{args.size}, batch {args.batch}, median of "
          f"{args.repeats} interleaved runs")
    for name in PIECES:
        print(f"  {name:<14}{medians[name] * 1e3:9.1f} ms"
              f"{medians[name] / plain:7.2f} x plain step")
    if not (args.ops or args.layers):
        return
    events = op_event_times(functions["isnet_step"])
    total = sum(events.values())
    if args.ops:
        print(f"op types in the ISNet step (thread time, {total:.0f} ms "
              "per step in all):")
        for name, milliseconds in by_op_type(events).most_common(20):
            print(f"  {name:<28}{milliseconds:9.1f} ms"
                  f"{100 * milliseconds / total:6.1f} %")
    if args.layers:
        print(f"layers of the ISNet step (thread time, {total:.0f} ms per "
              "step in all; conv = convolution ops):")
        rows = by_layer(events).most_common(30)
        width = max(len(layer) for (layer, _, _), _ in rows) + 2
        for (layer, direction, kind), milliseconds in rows:
            print(f"  {layer:<{width}}{direction:<9}{kind:<6}"
                  f"{milliseconds:8.1f} ms{100 * milliseconds / total:6.1f} %")


if __name__ == "__main__":
    main()
