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

import json
import os
import sys

FOLDER_PREFIX = "folder:"
RESULT_FILE = "evaluation.json"
CONFUSION_FIGURE = "confusion_matrix.png"
HEATMAP_FIGURE = "heatmaps.png"
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
        + ", ".join(_benchmark_data_names())
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
        help=f"replace an existing {RESULT_FILE} in --out",
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
    result_path = os.path.join(args.out, RESULT_FILE)
    # Checked first, so that nothing slow runs before a refusal.
    if os.path.exists(result_path) and not args.overwrite:
        return _fail(
            f"{result_path} already exists; pass --overwrite to replace it "
            "or choose another --out.", status=1
        )
    try:
        spec = parse_data_spec(args.data)
    except ValueError as error:
        return _fail(str(error), status=2)

    # Imported here so that `isnet --help` does not load TensorFlow.
    from isnet_keras import evaluate, export
    from isnet_keras.data import MnistNotFoundError

    try:
        classifier = export.resolve_deploy_model(args.model)
        test, class_names, data_details = load_test_set(spec, classifier, args)
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
    except MnistNotFoundError as error:
        return _fail(str(error), status=2)
    except (OSError, ValueError, TypeError) as error:
        return _fail(str(error), status=1)

    report = {"model": os.fspath(args.model), "data": data_details, **result}
    write_evaluation(args.out, report, classifier, test.images, test.labels,
                     test.masks, title=args.data)

    print(f"Model: {args.model}\nData: {args.data}")
    print(evaluate.format_summary(result))
    print(
        f"Wrote {result_path}, {os.path.join(args.out, CONFUSION_FIGURE)} "
        f"and {os.path.join(args.out, HEATMAP_FIGURE)}."
    )
    return 0


def write_evaluation(out, report, classifier, images, labels, masks, title):
    """Writes an evaluation's JSON report and its two figures into `out`.

    Args:
        out: str or Path. Created if missing.
        report: dict from `evaluate_classifier`, with any extra entries.
        classifier: the evaluated keras.Model.
        images, labels, masks: the evaluated test set.
        title: str. Title of the confusion-matrix figure.

    Returns:
        The paths of `evaluation.json`, `confusion_matrix.png` and
        `heatmaps.png`.

    Example:

    ```python
    write_evaluation("runs/a/report", result, classifier, images, labels,
                     masks, title="validation set")
    ```
    """
    import matplotlib.pyplot as plt

    from isnet_keras import evaluate

    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    paths = (os.path.join(out, RESULT_FILE),
             os.path.join(out, CONFUSION_FIGURE),
             os.path.join(out, HEATMAP_FIGURE))
    evaluate.plot_confusion_matrix(
        report["confusion_matrix"], report["class_names"], path=paths[1],
        title=title,
    )
    figure = evaluate.plot_heatmap_examples(
        classifier, images, labels, masks=masks,
        class_names=report["class_names"], path=paths[2],
    )
    plt.close(figure)
    _write_json(paths[0], report)
    return paths


def parse_data_spec(text):
    """Splits a `--data` value into its parts.

    Args:
        text: str. `"<benchmark>:<test set>"` (e.g. `"shapes:confounding"`)
            or `"folder:IMAGES_DIR,MASKS_DIR,LABELS.csv"`.

    Returns:
        `("benchmark", name, test_set)` or
        `("folder", images_dir, masks_dir, labels_csv)`.

    Raises:
        ValueError: the text is neither form; the message lists the forms.

    Example:

    >>> parse_data_spec("decoy:clean")
    ('benchmark', 'decoy', 'clean')
    >>> parse_data_spec("folder:img,msk,labels.csv")
    ('folder', 'img', 'msk', 'labels.csv')
    """
    if text.startswith(FOLDER_PREFIX):
        parts = [part.strip() for part in text[len(FOLDER_PREFIX):].split(",")]
        if len(parts) != 3 or not all(parts):
            raise ValueError(
                f"--data {text!r}: a folder dataset is "
                "folder:IMAGES_DIR,MASKS_DIR,LABELS.csv (three paths "
                "separated by commas)."
            )
        return ("folder", *parts)
    choices = _benchmark_data_names()
    if text in choices:
        name, _, test_set = text.partition(":")
        return ("benchmark", name, test_set)
    raise ValueError(
        f"--data {text!r} is not a test set; use one of {', '.join(choices)}, "
        "or folder:IMAGES_DIR,MASKS_DIR,LABELS.csv."
    )


def load_test_set(spec, classifier, args):
    """Loads the test set a parsed `--data` value names.

    Args:
        spec: tuple from `parse_data_spec`.
        classifier: keras.Model. Folder images are resized to its input
            size and converted to its channel count.
        args: parsed arguments (`data_source`, `mnist_dir`, `seed`,
            `limit_per_class`).

    Returns:
        `(ImageSet(images, masks, labels), class names or None, details)`,
        where `details` is a JSON-ready description of the data.

    Raises:
        MnistNotFoundError, FolderDatasetError, ValueError: the data cannot
            be found, read, or fitted to the classifier.
    """
    from isnet_keras.data import ImageSet

    if spec[0] == "benchmark":
        from isnet_keras.data import make_bias_benchmark

        _, name, test_set = spec
        # The benchmark's own mapping: "mnist" searches every MNIST source.
        source = "digits" if args.data_source == "digits" else "auto"
        bench = make_bias_benchmark(
            name, source=source, seed=args.seed,
            limit_per_class=args.limit_per_class, mnist_dir=args.mnist_dir,
        )
        details = {
            "kind": "bias_benchmark", "benchmark": name, "test_set": test_set,
            "source": bench.source, "seed": args.seed,
            "limit_per_class": args.limit_per_class,
        }
        return bench.test[test_set], None, details

    from isnet_keras.data import load_folder_dataset
    from isnet_keras.export import image_input_shape

    _, images_dir, masks_dir, labels_csv = spec
    height, width, channels = image_input_shape(classifier)
    if channels not in (1, 3):
        raise ValueError(
            f"Folder images can feed models with 1 or 3 channels; "
            f"'{args.model}' takes {channels}."
        )
    image_size = None if height is None or width is None else (height, width)
    data = load_folder_dataset(
        images_dir, masks_dir, labels_csv, image_size=image_size,
        channels=channels,
    )
    outputs = getattr(classifier, "outputs", None) or []
    class_names = None
    if len(outputs) == 1:
        class_names = _folder_class_names(
            data.class_names, outputs[0].shape[-1], labels_csv
        )
    # Otherwise evaluate_classifier reports the unusable output.
    details = {
        "kind": "folder", "images_dir": images_dir, "masks_dir": masks_dir,
        "labels_csv": labels_csv,
        "image_size": None if image_size is None else list(image_size),
        "channels": channels,
    }
    return ImageSet(data.images, data.masks, data.labels), class_names, details


def _folder_class_names(names, num_classes, labels_csv):
    """Class names for the classifier's K outputs from a folder's labels.

    Integer labels name classes "0".."max", which may stop short of the
    classifier's K classes when a test set lacks the last ones; the rest are
    named by their index too. Text labels must name exactly K classes, in
    the sorted order the folder loader gives them.
    """
    names = tuple(names)
    numbered = tuple(str(index) for index in range(len(names)))
    if names == numbered and len(names) <= num_classes:
        return [str(index) for index in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(
            f"{labels_csv} names {len(names)} classes ({', '.join(names)}) but "
            f"the classifier outputs {num_classes}."
        )
    return list(names)


def _benchmark_data_names():
    """Every `<benchmark>:<test set>` value, e.g. "shapes:confounding"."""
    # The data package is NumPy and Pillow only, so this stays fast.
    from isnet_keras.data.bias import BENCHMARK_NAMES, benchmark_test_sets

    return [
        f"{name}:{test_set}"
        for name in BENCHMARK_NAMES
        for test_set in benchmark_test_sets(name)
    ]


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


def _write_json(path, content):
    """Writes JSON next to `path` first, then renames it into place, so a
    failure never leaves a truncated result behind."""
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=2, allow_nan=False)
        handle.write("\n")
    os.replace(partial, path)


def _fail(message, status):
    print(f"{_COMMAND}: error: {message}", file=sys.stderr)
    return status
