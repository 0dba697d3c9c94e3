"""`isnet evaluate`: accuracy, Bayesian intervals, AUC and background
attention of a saved classifier on one test set.

The model is a `.keras` file holding an ISNet or a plain classifier (logits
or softmax output). The test set is either a bias-benchmark test split,
rebuilt exactly as `isnet bench bias` builds it (same seed, same split), or a
folder dataset resized to the model's input size and channels.

Examples:

```
isnet evaluate --model runs/isnet.keras --data shapes:confounding
isnet evaluate --model runs/isnet.keras --data decoy:clean --data-source digits
isnet evaluate --model cats.keras --data folder:test/images,test/masks,test/labels.csv
```

Writes `evaluation.json`, `confusion_matrix.png` and `heatmaps.png` into
`--out` and prints a short summary.
"""

import os
import sys

from isnet_keras.cli.test_data import (
    CommandFailure,
    benchmark_data_names,
    open_model_and_test_set,
    reading_errors,
)

# Same cap as the benchmark's own evaluation: LRP costs about one backward
# pass per image, and with 1000 images the 95 % interval of the mean BRF is
# already a few thousandths wide on each side.
DEFAULT_MAX_HEATMAPS = 1000

_COMMAND = "isnet evaluate"


def register(subparsers):
    """Adds the `evaluate` sub-command to an argparse sub-parser group.

    Args:
        subparsers: the object returned by
            `argparse.ArgumentParser.add_subparsers()`.

    Returns:
        The new sub-command parser.

    Example:

    ```python
    parser = argparse.ArgumentParser(prog="isnet")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", "--model", "m.keras",
                              "--data", "shapes:unbiased"])
    args.func(args)
    ```
    """
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved classifier on a test set",
        description="Accuracy (Wilson interval), confusion matrix with "
        "Bayesian intervals, AUC (DeLong or Hand & Till) and background "
        "attention (BRF/PFF of LRP heatmaps) of a .keras classifier or "
        "ISNet on one test set.",
    )
    parser.add_argument(
        "--model", required=True, metavar="PATH.keras",
        help=".keras file holding an ISNet or a plain classifier",
    )
    parser.add_argument(
        "--data", required=True, metavar="DATA",
        help="a bias-benchmark test set, one of "
        + ", ".join(benchmark_data_names())
        + "; or folder:IMAGES_DIR,MASKS_DIR,LABELS.csv",
    )
    parser.add_argument(
        "--data-source", choices=("mnist", "digits"), default="mnist",
        help="digits of a bias benchmark: MNIST (--mnist-dir, else "
        "../shared/data/mnist, else the keras.datasets cache) or "
        "scikit-learn's digits (offline); as `isnet bench bias --data` "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--mnist-dir", default=None, metavar="DIR",
        help="folder with MNIST IDX files (.gz or raw)",
    )
    parser.add_argument(
        "--seed", type=int, default=0,
        help="benchmark split seed (as `isnet bench bias --seed`), also the "
        "seed of the posterior sampler (default: %(default)s)",
    )
    parser.add_argument(
        "--limit-per-class", type=int, default=None, metavar="N",
        help="keep N digits per class before splitting, as the benchmark "
        "does with --fast (N = 30); default: all",
    )
    parser.add_argument(
        "--out", default="runs/evaluate", metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        # isnet_keras.evaluate.RESULT_FILE, written out so that building
        # the parser does not import TensorFlow.
        help="replace an existing evaluation.json in --out",
    )
    parser.add_argument(
        "--prior", type=float, default=1.0,
        help="Dirichlet concentration per confusion-matrix cell "
        "(1 = flat, 0.5 = Jeffreys; default: %(default)s)",
    )
    parser.add_argument(
        "--samples", type=int, default=100_000,
        help="number of posterior draws (default: %(default)s)",
    )
    parser.add_argument(
        "--max-heatmaps", type=_max_heatmaps, default=DEFAULT_MAX_HEATMAPS,
        metavar="N",
        help="images (a seeded random subset) whose LRP heatmaps give the "
        "background attention, or 'all' (default: %(default)s)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Runs `isnet evaluate` with parsed arguments.

    Args:
        args: `argparse.Namespace` from the parser built by `register`.

    Returns:
        int exit status: 0 on success, 1 when the output exists, the model
        or data cannot be read or do not fit each other, 2 when the data
        specification is malformed or MNIST is not found.
    """
    # Imported here so that `isnet --help` does not load TensorFlow.
    from isnet_keras import evaluate

    result_path = os.path.join(args.out, evaluate.RESULT_FILE)
    try:
        classifier, test, class_names, data_details = (
            open_model_and_test_set(args, result_path))
        with reading_errors():
            result = evaluate.evaluate_classifier(
                classifier,
                test.images,
                test.labels,
                masks=test.masks,
                prior=args.prior,
                num_samples=args.samples,
                seed=args.seed,
                class_names=class_names,
                max_heatmaps=args.max_heatmaps,
            )
    except CommandFailure as failure:
        return _fail(failure.message, failure.status)

    report = {"model": os.fspath(args.model), "data": data_details, **result}
    evaluate.write_evaluation(args.out, report, classifier, test.images,
                              test.labels, test.masks, title=args.data)

    print(f"Model: {args.model}\nData: {args.data}")
    print(evaluate.format_summary(result))
    print(
        f"Wrote {result_path}, "
        f"{os.path.join(args.out, evaluate.CONFUSION_FIGURE)} "
        f"and {os.path.join(args.out, evaluate.HEATMAP_FIGURE)}."
    )
    return 0


def _max_heatmaps(text):
    """argparse type of --max-heatmaps: an integer >= 2, or 'all' (None)."""
    import argparse

    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 2 or 'all'; received {text!r}"
        ) from None
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 2 or 'all'; received {value}"
        )
    return value


def _fail(message, status):
    print(f"{_COMMAND}: error: {message}", file=sys.stderr)
    return status
