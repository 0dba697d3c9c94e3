"""Trains one ISNet of the shapes bias benchmark and prints its test
accuracies after every epoch (biased, unbiased, confounding), so that one
run shows how many epochs a recipe needs and whether it drifts back to the
shortcut later.

Example:

    python training/tune_selective.py --epochs 8 --seed 1 \
        --P-schedule 0:0.9,4:0.97 --class-policy highest
"""

import argparse
import dataclasses
import json

import keras
import numpy as np

from isnet_keras.bench import bias
from isnet_keras.cli.bench import parse_schedule


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


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="isnet_selective")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--P", type=float, default=None)
    parser.add_argument("--P-schedule", default=None, metavar="EPOCH:P,...")
    parser.add_argument("--class-policy", default=None,
                        choices=("lowest", "highest", "label"))
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--learning-rate-decay", default=None,
                        choices=("none", "cosine"))
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
    summary = {k: report[k] for k in ("biased", "unbiased", "confounding",
                                      "gap", "background_fraction",
                                      "seconds_per_epoch")}
    print("RESULT " + json.dumps(summary), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"config": repr(config), "report": report}, f,
                      indent=2)


if __name__ == "__main__":
    main()
