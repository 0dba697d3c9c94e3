"""`isnet audit`: does a saved classifier change its answer with the
background?

Every image of a folder dataset (or a bias-benchmark test set) is predicted
as it is, on the background of an image of another class, and on a flat
background; `isnet_keras.audit()` gives the rates and the verdict
(`uses_background`, `ignores_background` or `inconclusive`).

Examples:

```
isnet audit --model runs/first/model.keras \\
    --data folder:test/images,test/masks,test/labels.csv --out runs/audit
isnet audit --model plain.keras --data shapes:biased --seed 1
```

Writes `audit.json` and `audit.png` into `--out` and prints a short table
and the verdict.
"""

import argparse
import os
import sys

from isnet_keras.cli.test_data import (
    CommandFailure,
    open_model_and_test_set,
    reading_errors,
)

_COMMAND = "isnet audit"


def register(subparsers):
    """Adds the `audit` sub-command to an argparse sub-parser group.

    Args:
        subparsers: the object returned by
            `argparse.ArgumentParser.add_subparsers()`.

    Returns:
        The new sub-command parser.

    Example:

    ```python
    parser = argparse.ArgumentParser(prog="isnet")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["audit", "--model", "m.keras", "--data",
                              "folder:img,msk,labels.csv"])
    args.func(args)
    ```
    """
    parser = subparsers.add_parser(
        "audit",
        help="audit a saved classifier for background shortcuts",
        description="Predicts every image as it is, with its object pasted "
        "on the background of an image of another class, and on a flat "
        "background; reports the accuracies, the share of swapped images "
        "predicted as the background's class (95%% Wilson intervals) and a "
        "verdict: uses_background, ignores_background or inconclusive.",
    )
    parser.add_argument(
        "--model", required=True, metavar="PATH.keras",
        help=".keras file holding an ISNet or a plain classifier",
    )
    parser.add_argument(
        "--data", required=True, metavar="DATA",
        help="folder:IMAGES_DIR,MASKS_DIR,LABELS.csv (masks: 1 = object), "
        "or a bias-benchmark test set such as shapes:biased",
    )
    parser.add_argument(
        "--out", default="runs/audit", metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing audit.json in --out",
    )
    parser.add_argument(
        "--seed", type=int, default=0,
        help="seed of the background donors (and of a benchmark's split) "
        "(default: %(default)s)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Runs `isnet audit` with parsed arguments.

    Args:
        args: `argparse.Namespace` from the parser built by `register`.

    Returns:
        int exit status: 0 on success, 1 when the output exists or the
        model or data cannot be read or audited, 2 when the data
        specification is malformed or MNIST is not found.
    """
    from isnet_keras.audit_report import AUDIT_FILE

    try:
        classifier, test, class_names, _ = open_model_and_test_set(
            args, os.path.join(args.out, AUDIT_FILE),
            loader_args=_benchmark_defaults(args))
        # Imported here so that `isnet --help` does not load TensorFlow.
        from isnet_keras.audit_report import format_audit, write_audit
        from isnet_keras.shortcut_audit import audit

        with reading_errors():
            result = audit(classifier, test.images, test.labels, test.masks,
                           seed=args.seed, class_names=class_names)
    except CommandFailure as failure:
        return _fail(failure.message, failure.status)

    json_path, figure_path = write_audit(
        result, args.out, overwrite=args.overwrite
    )
    print(f"Model: {args.model}\nData: {args.data}")
    print(format_audit(result))
    written = json_path if figure_path is None else f"{json_path} and {figure_path}"
    print(f"Wrote {written}.")
    return 0


def _benchmark_defaults(args):
    """The arguments `load_test_set` reads, with a benchmark's defaults for
    those `isnet audit` does not offer (MNIST found as `isnet evaluate`
    finds it, every digit kept)."""
    return argparse.Namespace(
        model=args.model, seed=args.seed, data_source="mnist",
        mnist_dir=None, limit_per_class=None,
    )


def _fail(message, status):
    print(f"{_COMMAND}: error: {message}", file=sys.stderr)
    return status
