"""Trains one ISNet of the shapes bias benchmark and prints its test
accuracies after every epoch (biased, unbiased, confounding), so that one
run shows how many epochs a recipe needs and whether it drifts back to the
shortcut later. At the end it audits how the model uses the shapes: how
much a shape moves the logit of its class, against how much LRP relevance
that logit's heatmap gains on the shape, on the digit and in total.

Examples:

    python training/tune_selective.py --epochs 6 --seed 2 \
        --deep-supervision relu_1 relu_2 relu_3
    python training/tune_selective.py --epochs 8 --seed 1 --deep-supervision \
        --P-schedule 0=0.9 4=0.97 --class-policy highest

(`--deep-supervision` without names trains without it; by default the
benchmark's Selective ISNet supervises all three ReLU layers.)
"""

import argparse
import dataclasses
import json

import keras
import numpy as np

from isnet_keras.bench import bias
from isnet_keras.cli.bench import parse_schedule
from isnet_keras.data.bias import SHAPE_SIZE, SHAPE_TABLE
from isnet_keras.lrp.explain import Explainer


class TestSetCurve(keras.callbacks.Callback):
    """The trained classifier's accuracy on every test set after each epoch."""

    def __init__(self, test_sets):
        super().__init__()
        self.test_sets = test_sets
        self.rows = []

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        for name, test in self.test_sets.items():
            predicted = self.model.classifier.predict(
                test.images, batch_size=256, verbose=0).argmax(-1)
            row[name] = float(np.mean(predicted == test.labels))
        row["val_background_fraction"] = float(
            (logs or {}).get("val_background_fraction", np.nan))
        self.rows.append(row)
        print("  test after epoch " + json.dumps(row), flush=True)


def shortcut_audit(classifier, bench, count=300):
    """Where a shape's effect on its class's logit shows in the heatmaps.

    Compares each confounding test image (digit `y` with the shape of class
    `(y + 1) % 10`) with the same digit without a shape (the unbiased set):
    the mean change of that class's logit, and the mean change of the sum
    of its LRP-epsilon relevance on the shape's box, on the digit's mask,
    on the rest of the background, and in all. A model that uses the shape
    through features LRP shows gains about as much relevance, on the box
    and the background around it, as its logit gains.

    Args:
        classifier: The trained classifier (logits).
        bench: The shapes benchmark it was trained on.
        count: Number of test images compared.

    Returns:
        dict of mean changes (confounding minus unbiased), keys
        `shape_class_{logit, relevance_total, relevance_on_box,
        relevance_on_digit, relevance_on_rest}_change`.
    """
    with_shape = bench.test["confounding"]
    without = bench.test["unbiased"]
    images = {"with": with_shape.images[:count],
              "without": without.images[:count]}
    labels = with_shape.labels[:count]
    shape_class = (labels + 1) % 10
    rows = np.arange(len(labels))
    box = np.zeros(images["with"].shape[:3], bool)
    origins = {spec.label: spec.origin for spec in SHAPE_TABLE}
    for i, k in enumerate(shape_class):
        row, col = origins[int(k)]
        box[i, row:row + SHAPE_SIZE, col:col + SHAPE_SIZE] = True
    digit = with_shape.masks[:count, ..., 0] > 0
    rest = ~digit & ~box
    explainer = Explainer(classifier)
    sums = {}
    for name, batch in images.items():
        logits = classifier.predict(batch, batch_size=256, verbose=0)
        maps = explainer(batch, shape_class)[:, 0, ..., 0]
        sums[name] = {
            "logit": logits[rows, shape_class],
            "relevance_total": maps.sum(axis=(1, 2)),
            "relevance_on_box": (maps * box).sum(axis=(1, 2)),
            "relevance_on_digit": (maps * digit).sum(axis=(1, 2)),
            "relevance_on_rest": (maps * rest).sum(axis=(1, 2)),
        }
    return {f"shape_class_{key}_change": float(np.mean(
        sums["with"][key] - sums["without"][key])) for key in sums["with"]}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="isnet_selective")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--P", type=float, default=None)
    parser.add_argument("--P-schedule", nargs="+", default=None,
                        metavar="EPOCH=P")
    parser.add_argument("--class-policy", default=None,
                        choices=("lowest", "highest", "label"))
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--learning-rate-decay", default=None,
                        choices=("none", "cosine"))
    parser.add_argument("--deep-supervision", nargs="*", default=None,
                        metavar="LAYER",
                        help="Hidden layers whose relevance is penalised "
                             "too (none if given without names; default: "
                             "BiasBenchConfig's).")
    parser.add_argument("--out", default=None, help="JSON file of the run.")
    return parser.parse_args()


def main():
    args = parse_args()
    changes = {"models": (args.model,), "seed": args.seed,
               "epochs": args.epochs, "verbose": 2}
    if args.P is not None:
        changes["P"] = args.P
    if args.P_schedule:
        changes["P_schedule"] = parse_schedule(args.P_schedule)
    if args.class_policy:
        changes["class_policy"] = args.class_policy
    if args.learning_rate is not None:
        changes["learning_rate"] = args.learning_rate
    if args.learning_rate_decay:
        changes["learning_rate_decay"] = (
            None if args.learning_rate_decay == "none"
            else args.learning_rate_decay)
    if args.deep_supervision is not None:
        # Given without names: none.
        changes["deep_supervision"] = tuple(args.deep_supervision)
        changes["deep_supervision_models"] = (args.model,)
    config = dataclasses.replace(bias.BiasBenchConfig(), **changes)
    print(config, flush=True)

    bench = bias._load(config)
    curve = TestSetCurve(bench.test)
    classifier, _, seconds = bias.train_model(
        args.model, bench, config, config.epochs, callbacks=[curve])
    report, _ = bias._evaluate(args.model, classifier, bench,
                               max_heatmaps=1000)
    report["seconds_per_epoch"] = seconds
    report["gap"] = report["biased"] - report["confounding"]
    report["curve"] = curve.rows
    report["audit"] = shortcut_audit(classifier, bench)
    summary = {k: report[k] for k in ("biased", "unbiased", "confounding",
                                      "gap", "background_fraction",
                                      "seconds_per_epoch", "audit")}
    print("RESULT " + json.dumps(summary), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"config": repr(config), "report": report}, f,
                      indent=2)


if __name__ == "__main__":
    main()
