"""The `--data` argument of `isnet evaluate` and `isnet audit`, and the
steps both take before their own work: refuse an existing result, parse
`--data`, load the saved classifier and the test set.

Errors become a `CommandFailure` with the exit status the commands share:
1 when the output exists or the model or data cannot be read or do not fit
each other, 2 when `--data` is malformed or MNIST is not found.
"""

import contextlib
import os

FOLDER_PREFIX = "folder:"


class CommandFailure(Exception):
    """A command stops with `message` and exit status `status`."""

    def __init__(self, message, status):
        super().__init__(message)
        self.message = message
        self.status = status


@contextlib.contextmanager
def reading_errors():
    """Turns the errors of reading a model or data into `CommandFailure`s.

    Example:

    >>> with reading_errors():  # doctest: +SKIP
    ...     classifier = export.resolve_deploy_model(path)
    """
    from isnet_keras.data import MnistNotFoundError

    try:
        yield
    except MnistNotFoundError as error:
        raise CommandFailure(str(error), status=2) from error
    except (OSError, ValueError, TypeError) as error:
        raise CommandFailure(str(error), status=1) from error


def open_model_and_test_set(args, result_path, loader_args=None):
    """The steps before an evaluation or an audit.

    Checks that `result_path` does not exist unless `args.overwrite`, before
    anything slow runs; then parses `args.data` and loads `args.model`'s
    deployable classifier and the test set.

    Args:
        args: parsed arguments with `data`, `model` and `overwrite`.
        result_path: str. The result file the command would write.
        loader_args: arguments `load_test_set` reads (`data_source`,
            `mnist_dir`, `seed`, `limit_per_class`, `model`); defaults to
            `args`.

    Returns:
        `(classifier, test set, class names or None, data details)`.

    Raises:
        CommandFailure: with the message and exit status to report.
    """
    if os.path.exists(result_path) and not args.overwrite:
        raise CommandFailure(
            f"{result_path} already exists; pass --overwrite to replace it "
            "or choose another --out.", status=1
        )
    try:
        spec = parse_data_spec(args.data)
    except ValueError as error:
        raise CommandFailure(str(error), status=2) from error

    # Imported here so that `isnet --help` does not load TensorFlow.
    from isnet_keras import export

    with reading_errors():
        classifier = export.resolve_deploy_model(args.model)
        test, class_names, details = load_test_set(
            spec, classifier, args if loader_args is None else loader_args
        )
    return classifier, test, class_names, details


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
    choices = benchmark_data_names()
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
    from isnet_keras.export import check_image_file_channels, image_input_shape

    _, images_dir, masks_dir, labels_csv = spec
    height, width, channels = image_input_shape(
        classifier, purpose="A folder test set")
    check_image_file_channels(channels, f"'{args.model}'")
    image_size = None if height is None or width is None else (height, width)
    data = load_folder_dataset(
        images_dir, masks_dir, labels_csv, image_size=image_size,
        channels=channels,
    )
    outputs = getattr(classifier, "outputs", None) or []
    class_names = None
    if len(outputs) == 1:
        class_names = folder_class_names(
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


def folder_class_names(names, num_classes, labels_csv):
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


def benchmark_data_names():
    """Every `<benchmark>:<test set>` value, e.g. "shapes:confounding"."""
    # The data package is NumPy and Pillow only, so this stays fast.
    from isnet_keras.data.bias import BENCHMARK_NAMES, benchmark_test_sets

    return [
        f"{name}:{test_set}"
        for name in BENCHMARK_NAMES
        for test_set in benchmark_test_sets(name)
    ]
