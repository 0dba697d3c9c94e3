"""TFLite (LiteRT) conversion of the deploy classifier, and op listing.

`export_tflite` converts the classifier (float, dynamic-range or full int8)
with builtin TFLite ops only, checks the op list of the result and writes
the file without ever clobbering one that appeared meanwhile. `tflite_ops`
lists the ops of a flatbuffer by reading its schema.

Example:

```python
from isnet_keras.export import export_tflite, tflite_ops

export_tflite(isnet_model, "digits.tflite", quantize="int8",
              representative_data=x_train[:200])
set(tflite_ops("digits.tflite"))
```
"""

import os
import re
import tempfile
import warnings

import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema

from isnet_keras.export import classifier as classifier_lib
from isnet_keras.export import signatures

QUANTIZE_MODES = ("none", "dynamic", "int8")


def export_tflite(
    model,
    path,
    quantize="none",
    representative_data=None,
    input_range=(0.0, 1.0),
    overwrite=False,
    classifier_output="auto",
):
    """Converts the deploy classifier to a TFLite (LiteRT) flatbuffer.

    The file has one signature, `serving_default`, with input `images`
    float32 `(batch, H, W, C)` (batch resizable, 1 by default) in the model's
    input range, and output `probabilities` float32 `(batch, K)`. Only
    builtin TFLite ops are allowed (no Flex / select TensorFlow ops, so the
    plain LiteRT runtime runs it); the op list is checked after conversion.

    Quantization:

    - `"none"`: float32 weights and activations.
    - `"dynamic"`: int8 weights, float activations (dynamic-range).
    - `"int8"`: full integer: int8 weights and activations, calibrated on
      `representative_data`. Input and output stay float32 (a QUANTIZE op
      at the entrance, a DEQUANTIZE at the exit) so callers feed the same
      arrays as for the float model; every op in between must have an int8
      kernel or conversion fails.

    Args:
        model: `keras.Model`, object with a `deploy_model`, or path to a
            `.keras` file (see `resolve_deploy_model`).
        path: `str` or path of the `.tflite` file to write.
        quantize: `"none"`, `"dynamic"` or `"int8"`. Defaults to `"none"`.
        representative_data: Array of images `(N, H, W, C)`, required for
            `"int8"` and refused otherwise. Float data must lie in
            `input_range` (data in 0..255 given to a [0, 1] model would
            calibrate wrong scales silently); uint8 data is mapped from
            0..255 onto `input_range`. A few hundred images suffice.
        input_range: Pair of floats `(low, high)`, the model's input range.
            Defaults to `(0.0, 1.0)`.
        overwrite: `bool`. Replace an existing file. Defaults to `False`.
        classifier_output: `"auto"`, `"logits"` or `"probabilities"`, as in
            `export_serving`. Defaults to `"auto"`.

    Returns:
        `str`, the path written.

    Raises:
        FileExistsError: `path` exists and `overwrite` is False.
        ValueError: bad arguments, or the model needs ops outside the
            TFLite builtins.

    Example:

    ```python
    export_tflite(classifier, "digits_int8.tflite", quantize="int8",
                  representative_data=x_train[:300])
    TFLiteClassifier("digits_int8.tflite").predict(x_test[:4])
    ```
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"`quantize` must be one of {QUANTIZE_MODES}; received {quantize!r}."
        )
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"TFLite output path '{path}' is a directory.")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(
            f"TFLite file '{path}' already exists; pass overwrite=True to "
            "replace it."
        )
    classifier = classifier_lib.resolve_deploy_model(model)
    image_shape = classifier_lib.image_input_shape(classifier)
    classifier_lib.output_classes(classifier)
    input_range = signatures.check_input_range(input_range)
    outputs_probabilities = classifier_lib.outputs_probabilities(
        classifier, classifier_output)
    calibration_images = _calibration_images(
        quantize, representative_data, image_shape, input_range
    )

    _, _, serve_probabilities = signatures.serving_functions(
        classifier, outputs_probabilities, input_range
    )
    archive = signatures.new_archive(classifier)
    archive.add_endpoint(
        signatures.SERVING_SIGNATURE,
        serve_probabilities,
        input_signature=[signatures.image_spec(image_shape, tf.float32)],
    )
    with tempfile.TemporaryDirectory() as saved_model_dir:
        # TFLiteConverter.from_keras_model does not accept Keras 3 models;
        # converting a SavedModel of the same serving function does.
        archive.write_out(saved_model_dir, verbose=False)
        flatbuffer = _convert(saved_model_dir, quantize, calibration_images)

    unsupported = _non_builtin_ops(_ops_of_flatbuffer(flatbuffer))
    if unsupported:
        raise ValueError(
            "TFLite conversion produced ops outside the builtin set: "
            f"{sorted(set(unsupported))}. Only builtin ops are exported."
        )
    _write_new_file(path, flatbuffer, overwrite)
    return path


def _calibration_images(quantize, representative_data, image_shape, input_range):
    """The float32 int8-calibration images in the input range, or None."""
    if quantize != "int8":
        if representative_data is not None:
            raise ValueError(
                "`representative_data` is used only with quantize='int8'; "
                f"received it with quantize={quantize!r}."
            )
        return None
    if representative_data is None:
        raise ValueError(
            "quantize='int8' needs `representative_data`: a few hundred "
            "training images (N, H, W, C) to calibrate activation ranges."
        )
    data = np.asarray(representative_data)
    if data.ndim != 4 or len(data) == 0 or any(
        expected is not None and size != expected
        for size, expected in zip(data.shape[1:], image_shape)
    ):
        raise ValueError(
            "`representative_data` must be a non-empty array of images of "
            f"shape (N, {', '.join(str(s) for s in image_shape)}); received "
            f"shape {data.shape}."
        )
    low, high = input_range
    if data.dtype == np.uint8:
        return data.astype(np.float32) / 255.0 * (high - low) + low
    data = data.astype(np.float32)
    slack = 1e-3 * (high - low)
    if data.min() < low - slack or data.max() > high + slack:
        raise ValueError(
            f"`representative_data` values span [{data.min()}, {data.max()}] "
            f"but the model's input range is {input_range}; scale the data "
            "like the training inputs (or pass uint8 images)."
        )
    return data


def _convert(saved_model_dir, quantize, calibration_images):
    """Converts a SavedModel to a flatbuffer with builtin TFLite ops only."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "int8":
        # TFLITE_BUILTINS_INT8 alone makes the converter fail instead of
        # silently leaving an op in float.
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]

        def representative_dataset():
            for image in calibration_images:
                yield {signatures.INPUT_NAME: image[np.newaxis]}

        converter.representative_dataset = representative_dataset
    with warnings.catch_warnings():
        # The converter's own calibrator still builds a tf.lite.Interpreter;
        # its deprecation notice is not actionable for our callers.
        warnings.filterwarnings(
            "ignore", message=r".*tf\.lite\.Interpreter is deprecated"
        )
        try:
            return converter.convert()
        except Exception as error:  # The converter raises its own class.
            raise ValueError(
                "The classifier cannot be converted with builtin TFLite ops "
                f"only: {_short_converter_message(error)}"
            ) from error


def _short_converter_message(error):
    """Keeps the distinct error lines of the converter's very long message."""
    lines = []
    for line in str(error).splitlines():
        line = line.strip()
        if "error:" in line and line not in lines:
            lines.append(line)
    text = " | ".join(lines[:3]) if lines else str(error)
    return text[:1500]


def _write_new_file(path, content, overwrite):
    """Writes `content` to `path` atomically; replaces a file only with
    `overwrite`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, partial_path = tempfile.mkstemp(
        prefix=".partial-", suffix=".tflite", dir=directory
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        if overwrite:
            os.replace(partial_path, path)
            return
        try:
            # link() fails if `path` appeared meanwhile: no check-then-write
            # race can clobber a file that someone else just wrote.
            os.link(partial_path, path)
        except FileExistsError:
            raise FileExistsError(
                f"TFLite file '{path}' already exists; pass overwrite=True "
                "to replace it."
            ) from None
        except OSError:
            # Filesystems without hard links.
            if os.path.lexists(path):
                raise FileExistsError(
                    f"TFLite file '{path}' already exists."
                ) from None
            os.rename(partial_path, path)
    finally:
        if os.path.lexists(partial_path):
            os.unlink(partial_path)
    # mkstemp creates 0600 files; give the published file the usual mode.
    os.chmod(path, 0o644)


def _ops_of_flatbuffer(flatbuffer):
    """Op names of every subgraph, read from the flatbuffer's schema."""
    # Reading the schema (not the interpreter) works even for files the
    # runtime cannot load, e.g. ones with Flex ops, and sees all subgraphs.
    builtin_names = {
        code: name
        for name, code in vars(schema.BuiltinOperator).items()
        if not name.startswith("_")
    }
    tflite_model = schema.Model.GetRootAs(flatbuffer, 0)
    names = []
    for subgraph_index in range(tflite_model.SubgraphsLength()):
        subgraph = tflite_model.Subgraphs(subgraph_index)
        for op_index in range(subgraph.OperatorsLength()):
            operator = subgraph.Operators(op_index)
            code = tflite_model.OperatorCodes(operator.OpcodeIndex())
            # Codes above 127 live in `BuiltinCode`; older files keep small
            # codes in `DeprecatedBuiltinCode` only.
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin == schema.BuiltinOperator.CUSTOM:
                names.append(code.CustomCode().decode("utf-8"))
            else:
                names.append(builtin_names.get(builtin, f"BUILTIN_{builtin}"))
    return names


def _non_builtin_ops(op_names):
    """The names among `op_names` that are Flex or custom ops."""
    # Builtin names are upper case (CONV_2D); Flex and custom ops are not
    # (FlexMatrixInverse, or any custom code).
    return [name for name in op_names if not re.fullmatch(r"[A-Z0-9_]+", name)]


def tflite_ops(path):
    """Lists the op names of a TFLite file, one entry per op instance.

    Args:
        path: `str` or path of a `.tflite` file.

    Returns:
        `list` of `str`: builtin op names such as `"CONV_2D"`, and for
        custom ops their custom code (Flex ops appear as `"Flex<TFOp>"`).

    Example:

    ```python
    set(tflite_ops("digits.tflite"))
    # {'CONV_2D', 'MAX_POOL_2D', 'RESHAPE', 'FULLY_CONNECTED', 'SOFTMAX', ...}
    ```
    """
    with open(os.fspath(path), "rb") as stream:
        return _ops_of_flatbuffer(stream.read())
