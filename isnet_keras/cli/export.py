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
import sys

FORMATS = ("savedmodel", "tflite")
# Kept in step with isnet_keras.export.QUANTIZE_MODES; repeated here so that
# building the parser does not import TensorFlow.
QUANTIZE_MODES = ("none", "dynamic", "int8")


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


def run(args):
    """Runs `isnet export` with parsed arguments.

    Args:
        args: `argparse.Namespace` from the parser built by `register`.

    Returns:
        `int` exit status: 0 on success, 1 when the export fails, 2 for
        options that do not fit the chosen format.
    """
    misused = _misused_options(args)
    if misused:
        print(
            f"isnet export: error: {', '.join(misused)} cannot be used with "
            f"--format {args.format}",
            file=sys.stderr,
        )
        return 2

    import numpy as np

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
                calibration = np.load(args.calibration_data, allow_pickle=False)
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
        print(f"isnet export: error: {error}", file=sys.stderr)
        return 1
    return 0
