"""One default of the ISNet changed at a time, on bias-zoo families.

For each family, seed and change, trains `build_isnet(classifier, ...)` with
every default but the one named, on the same CNN, data, order, epochs and
batch size as `isnet bench zoo`, and tests it on the biased, clean and
confounding sets. A change is `NAME=VALUE`: a keyword of `build_isnet`
(`P=0.9`, `deep_supervision=none`) or of the default optimizer
(`learning_rate=1e-3`, `clipnorm=1.0`); `default` trains the defaults
themselves. Prints one JSON row per model, then the mean (min-max) over
seeds per family and change; writes the rows to `--out`.

    python training/zoo_ablation.py --families frame brightness \
        --seeds 0 1 2 --changes P=0.9 --out runs/ablation_P.json
"""

import argparse
import ast
import json
import pathlib
import sys
import time

OPTIMIZER_KEYS = ("learning_rate", "clipnorm")


def parse_change(text):
    """`"P=0.9"` -> `("P", 0.9)`; `"default"` -> `(None, None)`."""
    if text == "default":
        return None, None
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise ValueError(f"A change is NAME=VALUE or 'default'; got {text!r}.")
    if value in ("none", "None"):
        return name, None
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def build(classifier, change):
    """The ISNet with one change, compiled."""
    import keras

    import numpy as np

    from isnet_keras.isnet import build_isnet, default_optimizer

    name, value = parse_change(change)
    default = default_optimizer()
    optimizer = {"learning_rate": float(np.asarray(default.learning_rate)),
                 "clipnorm": default.global_clipnorm}
    kwargs = {}
    if name in OPTIMIZER_KEYS:
        optimizer[name] = value
    elif name is not None:
        kwargs[name] = value
    isnet = build_isnet(classifier, **kwargs)
    isnet.compile(optimizer=keras.optimizers.Adam(
        optimizer["learning_rate"], global_clipnorm=optimizer["clipnorm"]))
    return isnet


def run(family, seed, changes, epochs, batch_size):
    """Each change on one zoo family and seed; a list of rows."""
    import keras
    import numpy as np

    from isnet_keras.bench.zoo import ZooBenchConfig, make_zoo_classifier
    from isnet_keras.data.zoo import make_zoo_benchmark

    config = ZooBenchConfig()
    bench = make_zoo_benchmark(family, source="auto", seed=seed,
                               limit_per_class=config.limit_per_class,
                               test_per_class=config.test_per_class)
    train = bench.train
    rows = []
    for change in changes:
        keras.utils.set_random_seed(seed)
        classifier = make_zoo_classifier(
            "bench_cnn", train.images.shape[1:], int(train.labels.max()) + 1)
        isnet = build(classifier, change)
        start = time.perf_counter()
        history = isnet.fit(train.images, {"label": train.labels,
                                           "mask": train.masks},
                            epochs=epochs, batch_size=batch_size, verbose=0)
        row = {"family": family, "seed": seed, "change": change,
               "train_accuracy": [round(float(a), 4)
                                  for a in history.history["accuracy"]],
               "seconds": round(time.perf_counter() - start, 1)}
        for name, test in bench.test.items():
            predicted = classifier.predict(test.images, batch_size=256,
                                           verbose=0).argmax(-1)
            row[name] = float(np.mean(predicted == test.labels))
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def summary(rows):
    """Mean (min-max) over seeds per family and change, as text lines."""
    import numpy as np

    groups = {}
    for row in rows:
        groups.setdefault((row["family"], row["change"]), []).append(row)
    lines = []
    for (family, change), group in groups.items():
        cells = []
        for name in ("biased", "clean", "confounding"):
            values = [row[name] for row in group]
            cells.append(f"{np.mean(values):.3f} ({min(values):.3f}-"
                         f"{max(values):.3f})")
        lines.append(f"{family:<11}{change:<22}{len(group):>3} seeds  "
                     + "  ".join(cells))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=["frame"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--changes", nargs="+", default=["default"])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default="runs/zoo_ablation.json")
    args = parser.parse_args(argv)
    for change in args.changes:
        try:
            parse_change(change)
        except ValueError as error:
            parser.error(str(error))
    if pathlib.Path(args.out).exists():
        parser.error(f"{args.out} exists; choose another --out.")
    rows = [row for family in args.families for seed in args.seeds
            for row in run(family, seed, args.changes, args.epochs,
                           args.batch_size)]
    print("\nbiased / clean / confounding, mean (min-max) over seeds:")
    print("\n".join(summary(rows)))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
