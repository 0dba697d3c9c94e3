"""`isnet export`: write a deployment artifact from a saved `.keras` model.

An ISNet file is exported as its deploy classifier (no LRP block).

Examples:

```
isnet export --model runs/isnet.keras --format savedmodel --out saved_models/digits
isnet export --model runs/isnet.keras --format tflite --out digits.tflite \\
    --quantize int8 --calibration-data calibration.npy
```
"""

import argparse
import re
import sys

FORMATS = ("savedmodel", "tflite")
# Kept in step with isnet_keras.export.QUANTIZE_MODES; repeated here so that
# building the parser does not import TensorFlow.
QUANTIZE_MODES = ("none", "dynamic", "int8")

# The library's messages name the Python arguments of `export_tflite` and
# `export_serving`; a command-line user knows the flags that set them.
# Each entry has a case in tests/test_export_cli_messages.py, so a library
# message reworded past its pattern fails a test instead of leaking through.
_FLAG_WORDING = (
    (re.compile(r"\boverwrite=True\b"), "--overwrite"),
    (re.compile(r"`representative_data`"), "--calibration-data"),
    (re.compile(r"\bquantize=(['\"])(\w+)\1"), r"--quantize \2"),
    (re.compile(r"`input_range`"), "--input-range"),
    (re.compile(r"another `version` or leave it as None"),
     "another --version or leave --version out"),
)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, got {text!r}"
        )
    return value


def register(subparsers):
    """Adds the `export` sub-command to an argparse sub-parser group.

    Args:
        subparsers: The object returned by `ArgumentParser.add_subparsers`.

    Returns:
        The new `argparse.ArgumentParser`.

    Example:

    ```python
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", "--model", "m.keras",
                              "--format", "tflite", "--out", "m.tflite"])
    args.func(args)
    ```
    """
    parser = subparsers.add_parser(
        "export",
        help="export a trained model for TF Serving or LiteRT",
        description="Export the deploy classifier of a .keras model as a "
        "versioned SavedModel (TF Serving layout OUT/<version>/) or as a "
        "TFLite file with builtin ops only. Existing versions and files are "
        "never overwritten unless --overwrite is given (TFLite only).",
    )
    parser.add_argument(
        "--model", required=True, help="path of the .keras file to export"
    )
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument(
        "--out",
        required=True,
        help="savedmodel: the model base directory (versions go inside); "
        "tflite: the .tflite file to write",
    )
    parser.add_argument(
        "--version",
        type=_positive_int,
        help="savedmodel only: version number (default: highest existing + 1)",
    )
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        help="tflite only: weight/activation quantization (default: none)",
    )
    parser.add_argument(
        "--calibration-data",
        metavar="FILE.npy",
        help="tflite int8 only: images (N, H, W, C) to calibrate with, "
        "float in the input range or uint8 0..255",
    )
    parser.add_argument(
        "--input-range",
        nargs=2,
        type=float,
        default=(0.0, 1.0),
        metavar=("LOW", "HIGH"),
        help="the model's float input range, onto which uint8 inputs are "
        "mapped (default: 0 1)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="tflite only: replace an existing file",
    )
    parser.set_defaults(func=run)
    return parser


def _misused_options(args):
    if args.format == "savedmodel":
        given = {
            "--quantize": args.quantize is not None,
            "--calibration-data": args.calibration_data is not None,
            "--overwrite": args.overwrite,
        }
    else:
        given = {"--version": args.version is not None}
    return [option for option, present in given.items() if present]


def _calibration_problem(args):
    """Why --quantize and --calibration-data do not fit together, or None.

    Checked before anything is loaded (the library would only find out
    after loading the model, and in terms of its Python arguments).

    Args:
        args: `argparse.Namespace` of a `--format tflite` export.

    Returns:
        `str` message, or None when the two options agree.
    """
    quantize = args.quantize or "none"
    if quantize == "int8" and args.calibration_data is None:
        return ("--quantize int8 needs --calibration-data FILE.npy: a few "
                "hundred training images (N, H, W, C) to calibrate "
                "activation ranges")
    if quantize != "int8" and args.calibration_data is not None:
        return ("--calibration-data is used only with --quantize int8; "
                f"received it with --quantize {quantize}")
    return None


def _in_flag_terms(message):
    """Rewrites a library error message in terms of the command's flags.

    Args:
        message: `str`, e.g. "TFLite file 'm.tflite' already exists; pass
            overwrite=True to replace it."

    Returns:
        `str`, e.g. "... pass --overwrite to replace it."

    Example:

    >>> _in_flag_terms("quantize='int8' needs `representative_data`")
    '--quantize int8 needs --calibration-data'
    """
    for pattern, replacement in _FLAG_WORDING:
        message = pattern.sub(replacement, message)
    return message


def _load_calibration(path):
    """The `--calibration-data` array, with errors that name the flag.

    Args:
        path: `str`, the `.npy` file.

    Returns:
        `numpy.ndarray`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a numeric `.npy` array.
    """
    import numpy as np

    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"--calibration-data file not found: '{path}'.") from None
    except (OSError, ValueError, EOFError) as error:
        # NumPy's wording for these names its `allow_pickle` argument.
        what = str(error)
        if "pickle" in what.lower():
            what = ("it holds pickled Python objects: an object array, or "
                    "not a NumPy file at all")
        raise ValueError(
            f"cannot read --calibration-data '{path}' as a numeric .npy "
            f"array ({what}); save the images with numpy.save."
        ) from None
    if not isinstance(data, np.ndarray):
        data.close()
        raise ValueError(
            f"--calibration-data '{path}' is an .npz archive; pass a .npy "
            "file holding one array of images (N, H, W, C).")
    return data


def run(args):
    """Runs `isnet export` with parsed arguments.

    Args:
        args: `argparse.Namespace` from the parser built by `register`.

    Returns:
        `int` exit status: 0 on success, 1 when the export fails, 2 for
        options that do not fit the chosen format or each other.
    """
    misused = _misused_options(args)
    if misused:
        print(
            f"isnet export: error: {', '.join(misused)} cannot be used with "
            f"--format {args.format}",
            file=sys.stderr,
        )
        return 2
    problem = _calibration_problem(args) if args.format == "tflite" else None
    if problem:
        print(f"isnet export: error: {problem}", file=sys.stderr)
        return 2

    from isnet_keras import export

    try:
        if args.format == "savedmodel":
            written = export.export_serving(
                args.model,
                args.out,
                version=args.version,
                input_range=tuple(args.input_range),
            )
            print(f"SavedModel written to {written}")
        else:
            calibration = None
            if args.calibration_data is not None:
                calibration = _load_calibration(args.calibration_data)
            written = export.export_tflite(
                args.model,
                args.out,
                quantize=args.quantize or "none",
                representative_data=calibration,
                input_range=tuple(args.input_range),
                overwrite=args.overwrite,
            )
            print(f"TFLite model written to {written}")
    except (OSError, ValueError, TypeError) as error:
        print(f"isnet export: error: {_in_flag_terms(str(error))}",
              file=sys.stderr)
        return 1
    return 0
