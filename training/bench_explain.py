"""Speed of explain() against one input-gradient computation.

For each model, times a traced `explain(..., classes="predicted")` (one
forward pass plus the LRP block) and a traced input gradient of the
predicted logit (`tf.GradientTape`, one forward and one backward pass) on
the same batch, alternating the two, after warm-up, and prints the medians
and their ratio. One backward pass is the natural floor, so the ratio is
expected near 1; the target is <= 1.5.

It also times repeated `explain(model, images)` calls against a reused
`Explainer` on the same batch: `explain()` keeps its Explainer on the model,
so the ratio in the last column ("cached") is expected near 1; rebuilding
the LRP graph on every call would make it many times that.

    python training/bench_explain.py [--models DenseNet121 ResNet50]
        [--size 64] [--batch 16] [--repeats 15]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from isnet_keras.lrp.explain import Explainer, explain  # noqa: E402


def classifier(name, size, num_classes=10):
    backbone = getattr(keras.applications, name)(
        include_top=False, weights=None, input_shape=(size, size, 3),
        pooling="avg")
    return keras.Sequential([keras.Input((size, size, 3)), backbone,
                             keras.layers.Dense(num_classes)])


def gradient_function(model):
    @tf.function
    def input_gradient(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            logits = model(images, training=False)
            top = tf.reduce_max(logits, axis=-1)
        return tape.gradient(top, images) * images

    return input_gradient


def median_seconds(functions, images, repeats):
    times = [[] for _ in functions]
    for _ in range(repeats):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            np.asarray(function(images))
            times[index].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+",
                        default=["DenseNet121", "ResNet50"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    images = tf.constant(np.random.default_rng(0).uniform(
        0, 1, (args.batch, args.size, args.size, 3)).astype("float32"))
    print(f"explain(classes='predicted') vs input gradient, "
          f"{args.size}x{args.size}, batch {args.batch}, "
          f"median of {args.repeats}, {os.cpu_count()} CPU cores")
    print(f"{'model':<14}{'gradient ms':>12}{'explain ms':>12}{'ratio':>8}"
          f"{'explain() ms':>14}{'cached':>8}")
    for name in args.models:
        model = classifier(name, args.size)
        explainer = Explainer(model)
        functions = [
            gradient_function(model),
            explainer.function(None),
            explainer,  # NumPy in and out, as explain() does
            lambda batch, model=model: explain(model, batch),
        ]
        for function in functions:  # trace and warm up
            for _ in range(2):
                np.asarray(function(images))
        gradient, lrp, reused, repeated = median_seconds(
            functions, images, args.repeats)
        print(f"{name:<14}{gradient * 1e3:>12.1f}{lrp * 1e3:>12.1f}"
              f"{lrp / gradient:>8.2f}{repeated * 1e3:>14.1f}"
              f"{repeated / reused:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
