"""`isnet predict`: classify image files with an exported or saved model.

The model is a SavedModel version directory (or its base directory, whose
highest version is used), a `.tflite` file or a `.keras` file. Images are
PNG/JPEG (or other) files of 8 or 16 bits, read as training reads them
(`isnet_keras.data.image_files`): converted to grayscale or RGB to match the
model's channels and resized to its input size. Or `.npy` arrays.

Examples:

```
isnet predict --model saved_models/digits/1 --images a.png b.jpg
isnet predict --model digits.tflite --images batch.npy --json
```
"""

import json
import os
import sys

# Predictions are computed this many images at a time.
_BATCH_SIZE = 64
# Float arrays may leave the input range by this many times its width on
# either side before they are refused: augmentation and rounding leave
# values a little outside, while data of another scale (0..255 floats for
# a [0, 1] model) lies far outside and gives meaningless predictions.
_RANGE_SLACK = 1.0
# Images named in a message; the rest are counted.
_LISTED = 5


def register(subparsers):
    """Adds the `predict` sub-command to an argparse sub-parser group.

    Args:
        subparsers: The object returned by `ArgumentParser.add_subparsers`.

    Returns:
        The new `argparse.ArgumentParser`.

    Example:

    ```python
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["predict", "--model", "m.tflite",
                              "--images", "a.png"])
    args.func(args)
    ```
    """
    parser = subparsers.add_parser(
        "predict",
        help="classify images with an exported model",
        description="Print one line per image: file, class id and its "
        "probability (tab separated), or JSON with --json.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="SavedModel directory, .tflite file or .keras file",
    )
    parser.add_argument(
        "--images",
        required=True,
        nargs="+",
        metavar="FILE",
        help="PNG/JPEG files, or .npy arrays of shape (N, H, W, C), "
        "(H, W, C), or without C for one channel; uint8 arrays are scaled "
        "like image files, float arrays are used as they are",
    )
    parser.add_argument(
        "--input-range",
        nargs=2,
        type=float,
        default=(0.0, 1.0),
        metavar=("LOW", "HIGH"),
        help="the model's input range, onto which black..white pixels are "
        "mapped (0..255 in 8-bit files and uint8 arrays, 0..65535 in 16-bit "
        "files); float arrays must lie about within it (default: 0 1)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print machine-readable JSON"
    )
    parser.set_defaults(func=run)
    return parser


def _to_range(pixels, input_range):
    """Pixels in [0, 1] -> float32 in `input_range`."""
    import numpy as np

    low, high = input_range
    return (np.asarray(pixels, np.float32) * (high - low) + low).astype(
        np.float32)


def _read_image_file(path, image_shape, input_range):
    # The reader of training and `isnet evaluate`: a file gives the model
    # the pixels it was trained on (16-bit files included).
    from isnet_keras.data.image_files import (ImageReadError, read_image,
                                              resize_image)
    from isnet_keras.export import check_image_file_channels

    height, width, channels = image_shape
    try:
        check_image_file_channels(channels, "this model")
    except ValueError as error:
        raise ValueError(
            f"{error} Pass a .npy array instead of '{path}'.") from None
    try:
        pixels = read_image(path, channels)
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file not found: '{path}'.") from None
    except ImageReadError as error:
        raise ValueError(
            f"Cannot read image file '{path}': {error}"
        ) from None
    if height is not None and width is not None:
        pixels = resize_image(pixels, (height, width))
    return _to_range(pixels, input_range)


def _as_image_batch(array, image_shape):
    """Views an array as (N, H, W, C), or returns None if it does not fit."""
    def fits(shape):
        return len(shape) == 3 and all(
            expected is None or size == expected
            for size, expected in zip(shape, image_shape)
        )

    if array.ndim == 4 and fits(array.shape[1:]):
        return array
    if array.ndim == 3 and fits(array.shape):
        return array[None]
    if image_shape[-1] == 1:
        # Single-channel data may come without its channel axis.
        if array.ndim == 3 and fits(array.shape[1:] + (1,)):
            return array[..., None]
        if array.ndim == 2 and fits(array.shape + (1,)):
            return array[None, ..., None]
    return None


def _read_array_file(path, image_shape, input_range):
    import numpy as np

    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"Array file not found: '{path}'.") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read array file '{path}': {error}") from None
    batch = _as_image_batch(array, tuple(image_shape))
    if batch is None:
        raise ValueError(
            f"Array file '{path}' has shape {array.shape}; the model expects "
            f"images of shape {tuple(image_shape)} (optionally batched, and "
            "for one channel optionally without the channel axis)."
        )
    array = batch
    if array.dtype == np.uint8:
        return _to_range(array.astype(np.float32) / 255.0, input_range)
    if array.dtype.kind in "biuf":
        # Before the cast, so that a float64 value too large for float32
        # is reported as out of range rather than as an infinity.
        _check_array_values(path, array, input_range)
    return array.astype(np.float32)


def _listed(names):
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def _check_array_values(path, array, input_range):
    """Refuses non-finite values and values far outside `input_range`.

    Args:
        path: The array file (named in the messages).
        array: Numeric `(N, H, W, C)`, as the model will receive it.
        input_range: `(low, high)`, the model's input range.

    Raises:
        ValueError: naming the file and the images (rows) concerned.
    """
    import numpy as np

    finite = np.isfinite(array).reshape(len(array), -1).all(axis=1)
    if not finite.all():
        rows = [f"{path}[{i}]" for i in np.flatnonzero(~finite)]
        raise ValueError(
            f"Array file '{path}' holds NaN or infinite values in "
            f"{len(rows)} of {len(array)} image(s) ({_listed(rows)}); the "
            "model needs finite pixel values."
        )
    if array.size == 0:
        return
    low, high = input_range
    slack = _RANGE_SLACK * (high - low)
    smallest, largest = float(array.min()), float(array.max())
    if smallest < low - slack or largest > high + slack:
        raise ValueError(
            f"Array file '{path}' holds values from {smallest:g} to "
            f"{largest:g}, far outside the model's input range "
            f"[{low:g}, {high:g}]: scale the array to that range, save it as "
            "uint8 (0..255), or pass --input-range LOW HIGH if the model "
            "takes another range."
        )


def load_inputs(paths, image_shape, input_range=(0.0, 1.0)):
    """Reads image and `.npy` files into named model inputs.

    Args:
        paths: Iterable of file paths (PNG/JPEG or `.npy`).
        image_shape: `(height, width, channels)` of the model; height and
            width may be `None` (images are then kept at their size).
        input_range: `(low, high)` onto which black..white map (pixel
            values 0..255 of 8-bit files and uint8 arrays, 0..65535 of
            16-bit files). Defaults to `(0.0, 1.0)`.

    Returns:
        `list` of `(name, image)` pairs, `image` float32 `(H, W, C)`; the
        rows of an array file are named `file[i]`.

    Raises:
        FileNotFoundError, ValueError: a file is missing or unreadable, or
            a float array holds NaN or infinite values or values far
            outside `input_range` (by more than its width); the message
            names the file.

    Example:

    ```python
    load_inputs(["seven.png"], (8, 8, 1))[0][1].shape  # (8, 8, 1)
    ```
    """
    named_images = []
    for path in paths:
        if path.lower().endswith(".npy"):
            array = _read_array_file(path, image_shape, input_range)
            named_images.extend(
                (f"{path}[{index}]", image) for index, image in enumerate(array)
            )
        else:
            named_images.append(
                (path, _read_image_file(path, image_shape, input_range))
            )
    return named_images


def _predict_all(classifier, named_images):
    """Probabilities of every image, batching images of the same size."""
    import numpy as np

    probabilities = [None] * len(named_images)
    by_shape = {}
    for index, (_, image) in enumerate(named_images):
        by_shape.setdefault(image.shape, []).append(index)
    for indices in by_shape.values():
        for start in range(0, len(indices), _BATCH_SIZE):
            chunk = indices[start : start + _BATCH_SIZE]
            batch = np.stack([named_images[i][1] for i in chunk])
            for i, row in zip(chunk, classifier.predict(batch)):
                probabilities[i] = row
    return probabilities


def _check_outputs(model_path, named_images, probabilities):
    """Refuses non-finite model outputs (a diverged model gives NaN).

    Raises:
        ValueError: naming the model and the images concerned.
    """
    import numpy as np

    bad = [name for (name, _), row in zip(named_images, probabilities)
           if not np.all(np.isfinite(row))]
    if bad:
        raise ValueError(
            f"The model's outputs are not finite (NaN or infinity) for "
            f"{len(bad)} of {len(named_images)} image(s) ({_listed(bad)}): "
            f"the weights of '{model_path}' may have diverged; retrain it "
            "(e.g. with a lower --learning-rate)."
        )


def run(args):
    """Runs `isnet predict` with parsed arguments.

    Args:
        args: `argparse.Namespace` from the parser built by `register`.

    Returns:
        `int` exit status: 0 on success, 1 when the model or an image cannot
        be read, an array holds non-finite values or values far outside
        `--input-range`, or the model's outputs are not finite.
    """
    from isnet_keras import export

    try:
        classifier = export.load_classifier(args.model)
        named_images = load_inputs(
            args.images, classifier.image_shape, tuple(args.input_range)
        )
        probabilities = _predict_all(classifier, named_images)
        _check_outputs(args.model, named_images, probabilities)
    except (OSError, ValueError, TypeError) as error:
        print(f"isnet predict: error: {error}", file=sys.stderr)
        return 1

    predictions = []
    for (name, _), row in zip(named_images, probabilities):
        class_id = int(row.argmax())
        predictions.append(
            {
                "file": name,
                "class_id": class_id,
                "probability": float(row[class_id]),
                "probabilities": [float(p) for p in row],
            }
        )
    if args.json:
        print(
            json.dumps(
                {"model": os.fspath(args.model), "predictions": predictions}
            )
        )
    else:
        for prediction in predictions:
            print(
                f"{prediction['file']}\t{prediction['class_id']}\t"
                f"{prediction['probability']:.6f}"
            )
    return 0
