"""How fast the Original and Stochastic ISNets leave their slow start on the
bias zoo, against the plain classifier.

For each family and seed, trains the plain classifier for `--epochs` epochs
and each variant (`build_isnet(classifier, variant=...)`, every other
setting at its default) for twice as many, on the same CNN, data and order
as `isnet bench zoo`. Prints, per model, the validation accuracy after each
epoch, the first epoch at which it reaches the plain classifier's final
biased test accuracy (minus one point), and the biased / clean /
confounding test accuracies at the end; writes them to `--out` as JSON.

    python training/zoo_variants.py [--families shapes frame] [--seeds 0]
        [--variants stochastic original] [--epochs 12] [--out FILE]
"""

import argparse
import json
import os
import sys
import time


def _fit(model, bench, epochs, batch_size):
    history = model.fit(
        bench.train.images,
        {"label": bench.train.labels, "mask": bench.train.masks},
        validation_data=(bench.val.images, {"label": bench.val.labels,
                                            "mask": bench.val.masks}),
        epochs=epochs, batch_size=batch_size, verbose=0)
    return [round(float(a), 4) for a in history.history["val_accuracy"]]


def _test(classifier, bench):
    import numpy as np

    return {name: float(np.mean(classifier.predict(
        test.images, batch_size=256, verbose=0).argmax(-1) == test.labels))
        for name, test in bench.test.items()}


def run(family, seed, variants, epochs, batch_size, limit_per_class):
    """Plain and each variant on one zoo family and seed; a list of rows."""
    import keras

    from isnet_keras.baselines import PlainClassifier
    from isnet_keras.bench.bias import bench_classifier
    from isnet_keras.data.zoo import make_zoo_benchmark
    from isnet_keras.isnet import build_isnet, default_optimizer

    bench = make_zoo_benchmark(family, source="auto", seed=seed,
                               limit_per_class=limit_per_class)
    shape = bench.train.images.shape[1:]
    classes = int(bench.train.labels.max()) + 1
    rows = []
    for name in ("plain", *variants):
        keras.utils.set_random_seed(seed)
        classifier = bench_classifier(shape, classes)
        if name == "plain":
            model = PlainClassifier(classifier)
            model.compile(optimizer=default_optimizer())
        else:
            model = build_isnet(classifier, variant=name, seed=seed)
            model.compile()
        start = time.perf_counter()
        curve = _fit(model, bench, epochs if name == "plain" else 2 * epochs,
                     batch_size)
        rows.append({"family": family, "seed": seed, "model": name,
                     "val_accuracy": curve, **_test(classifier, bench),
                     "seconds": round(time.perf_counter() - start, 1)})
        target = rows[0]["biased"] - 0.01
        reached = next((i + 1 for i, a in enumerate(curve) if a >= target),
                       None)
        rows[-1]["epoch_reaching_plain"] = reached
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=["shapes", "frame"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--variants", nargs="+",
                        default=["stochastic", "original"])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit-per-class", type=int, default=200)
    parser.add_argument("--out", default="runs/zoo_variants.json")
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        parser.error(f"{args.out} exists; choose another --out.")
    rows = [row for family in args.families for seed in args.seeds
            for row in run(family, seed, args.variants, args.epochs,
                           args.batch_size, args.limit_per_class)]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
