"""`isnet metrics`: Bayesian summaries of a confusion matrix.

Example:

    isnet metrics --confusion-matrix cm.json --prior 0.5 --json

where `cm.json` holds the matrix as a list of lists, rows = true class,
columns = predicted class.
"""

import json
import sys


def register(subparsers):
    """Adds the `metrics` sub-command to an argparse sub-parser group.

    Args:
        subparsers: the object returned by
            `argparse.ArgumentParser.add_subparsers()`.

    Returns:
        The new sub-command parser.
    """
    parser = subparsers.add_parser(
        "metrics",
        help="posterior precision, recall, specificity, F1 and accuracy "
        "of a confusion matrix",
        description="Summarise a confusion matrix with a Dirichlet posterior "
        "over its cells: mean, standard deviation and highest-density "
        "interval of every score.",
    )
    parser.add_argument(
        "--confusion-matrix",
        required=True,
        metavar="FILE.json",
        help="JSON file with the matrix as a list of lists "
        "(rows = true class, columns = predicted class)",
    )
    parser.add_argument(
        "--prior",
        type=float,
        default=1.0,
        help="Dirichlet concentration added to every cell "
        "(1 = flat, 0.5 = Jeffreys; default: %(default)s)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=100_000,
        help="number of posterior draws (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="sampler seed (default: %(default)s)"
    )
    parser.add_argument(
        "--hdi-prob",
        type=float,
        default=0.95,
        help="mass of the highest-density intervals (default: %(default)s)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the result dictionary as JSON instead of a table",
    )
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Runs `isnet metrics` with parsed arguments; prints to stdout.

    Exits with a message (SystemExit) when the file is missing or does not
    hold a valid confusion matrix.
    """
    matrix = _load_matrix(args.confusion_matrix)
    # Imported here so that `isnet --help` does not load TensorFlow.
    from isnet_keras.metrics.bayesian import bayesian_metrics

    try:
        result = bayesian_metrics(
            matrix,
            prior=args.prior,
            num_samples=args.samples,
            hdi_prob=args.hdi_prob,
            seed=args.seed,
        )
    except ValueError as error:
        sys.exit(f"isnet metrics: error: {args.confusion_matrix}: {error}")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result, args.hdi_prob))
    return 0


def format_table(result, hdi_prob=0.95):
    """Renders a `bayesian_metrics` result as an aligned text table.

    Args:
        result: dict returned by `bayesian_metrics`.
        hdi_prob: float. Interval mass, used only for the column header.

    Returns:
        The table as one string, one row per (metric, class) pair.
    """
    rows = []
    for name in ("precision", "recall", "specificity", "f1"):
        for index, summary in enumerate(result[name]["per_class"]):
            rows.append((name, str(index), summary))
        rows.append((name, "macro", result[name]["macro"]))
    rows.append(("accuracy", "all", result["accuracy"]))
    rows.append(("balanced_accuracy", "all", result["balanced_accuracy"]))

    header = ("metric", "class", "mean ± std", f"{hdi_prob * 100:g}% HDI")
    cells = [
        (
            name,
            label,
            f"{summary['mean']:.4f} ± {summary['std']:.4f}",
            f"[{summary['hdi_low']:.4f}, {summary['hdi_high']:.4f}]",
        )
        for name, label, summary in rows
    ]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(4)]
    lines = ["  ".join(text.ljust(width) for text, width in zip(header, widths))]
    lines.append("  ".join("-" * width for width in widths))
    for row in cells:
        lines.append("  ".join(text.ljust(width) for text, width in zip(row, widths)))
    return "\n".join(line.rstrip() for line in lines)


def _load_matrix(path):
    """Reads a list-of-lists matrix from a JSON file, exiting on problems."""
    try:
        with open(path, encoding="utf-8") as handle:
            matrix = json.load(handle)
    except FileNotFoundError:
        sys.exit(f"isnet metrics: error: confusion-matrix file not found: {path}")
    except (OSError, UnicodeDecodeError) as error:
        sys.exit(f"isnet metrics: error: cannot read {path}: {error}")
    except json.JSONDecodeError as error:
        sys.exit(f"isnet metrics: error: {path} is not valid JSON: {error}")
    is_list_of_lists = isinstance(matrix, list) and all(
        isinstance(row, list) for row in matrix
    )
    if not is_list_of_lists or not matrix:
        sys.exit(
            f"isnet metrics: error: {path} must hold the confusion matrix as a "
            "non-empty list of lists (rows = true class)."
        )
    return matrix
