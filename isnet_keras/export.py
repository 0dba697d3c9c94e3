"""Deployment artifacts for the classifier: SavedModel for TF Serving, TFLite.

Only the deploy graph is ever exported. An ISNet model carries its plain
classifier as `deploy_model` (the same layer objects and weights, without the
LRP block), so what reaches a server or a phone is exactly the classifier:
same parameters, same ops, same latency.

Every exporter accepts the same three kinds of `model`:

- a `keras.Model` classifier,
- any object whose `deploy_model` attribute is a `keras.Model` (an ISNet),
- a path to a `.keras` file (loaded without compiling; if the loaded object
  has a `deploy_model`, that is what gets exported).

The classifier may end in logits or in a softmax. Exported artifacts always
return probabilities: a softmax is added only when the classifier does not
already end in one (see `classifier_outputs_probabilities`).

Example:

```python
from isnet_keras.export import export_serving, export_tflite

version_dir = export_serving(isnet_model, "saved_models/digits")
# -> "saved_models/digits/1"; TF Serving watches "saved_models/digits".
export_tflite(isnet_model, "digits.tflite", quantize="int8",
              representative_data=x_train[:200])
```
"""

import importlib
import os
import re
import shutil
import tempfile
import uuid
import warnings
import zipfile

import keras
import numpy as np
import tensorflow as tf

SERVING_SIGNATURE = "serving_default"
UINT8_SIGNATURE = "serving_uint8"
INPUT_NAME = "images"
PROBABILITIES = "probabilities"
CLASS_ID = "class_id"
QUANTIZE_MODES = ("none", "dynamic", "int8")
CLASSIFIER_OUTPUT_KINDS = ("auto", "logits", "probabilities")

# TF Serving loads every all-digit sub-directory of the model base path as a
# version; partial exports use a hidden, non-numeric name so the server never
# sees them.
_VERSION_DIR_PATTERN = re.compile(r"^[0-9]+$")
_PARTIAL_PREFIX = ".partial-"


# --------------------------------------------------------------------------
# Resolving what to export
# --------------------------------------------------------------------------


def resolve_deploy_model(model):
    """Returns the plain Keras classifier that deployment artifacts contain.

    Args:
        model: A `keras.Model` classifier, an object whose `deploy_model`
            attribute is a `keras.Model` (such as an ISNet), or a path
            (`str` or `os.PathLike`) to a `.keras` file.

    Returns:
        The `keras.Model` to deploy.

    Raises:
        TypeError: `model` is none of the accepted kinds.
        FileNotFoundError: `model` is a path that does not exist.
        ValueError: the file exists but is not a readable Keras model.

    Example:

    ```python
    classifier = resolve_deploy_model("runs/isnet.keras")
    classifier.count_params()
    ```
    """
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise FileNotFoundError(f"Model file not found: '{path}'.")
        model = load_keras_file(path)
        source = f"the model loaded from '{path}'"
    else:
        source = "the given model"

    deploy_model = getattr(model, "deploy_model", None)
    if deploy_model is not None:
        if not isinstance(deploy_model, keras.Model):
            raise TypeError(
                f"The `deploy_model` attribute of {source} must be a "
                f"keras.Model; received {type(deploy_model).__name__}."
            )
        return deploy_model
    if isinstance(model, keras.Model):
        return model
    raise TypeError(
        "Expected a keras.Model, an object with a `deploy_model` attribute "
        "or a path to a .keras file; received "
        f"{type(model).__module__}.{type(model).__qualname__}."
    )


def load_keras_file(path):
    """Loads an existing `.keras` (or legacy `.h5`) model file, uncompiled.

    Keras reports a `.keras` file that is no zip archive as "not found";
    this names the file and what is wrong with it instead.

    Args:
        path: str or `os.PathLike` of a file that exists.

    Returns:
        The loaded `keras.Model` (an ISNet file gives the `ISNet`).

    Raises:
        ValueError: `"cannot read PATH as a Keras model (reason)"`.

    Example:

    ```python
    model = load_keras_file("runs/a/model.keras")
    ```
    """
    path = os.fspath(path)
    if path.lower().endswith(".keras") and not zipfile.is_zipfile(path):
        raise ValueError(
            f"cannot read '{path}' as a Keras model (not a .keras zip "
            "archive: damaged, truncated or another kind of file).")
    _register_isnet_classes(path)
    try:
        # compile=False: deployment needs the weights and the graph only,
        # and custom training losses need not be importable where we export.
        return keras.models.load_model(path, compile=False)
    except (ValueError, TypeError, KeyError, OSError,
            zipfile.BadZipFile) as error:
        raise ValueError(
            f"cannot read '{path}' as a Keras model ({error})") from error


def _register_isnet_classes(path):
    """Imports the ISNet model module when the `.keras` file refers to it.

    Keras finds custom classes in a `.keras` file only once their module has
    registered them, and a user exporting from a file may not have imported
    it. Plain classifier files never import it.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = archive.read("config.json").decode("utf-8", "replace")
    except (zipfile.BadZipFile, KeyError, OSError):
        return  # Not a .keras archive: load_model reports what is wrong.
    if '"isnet_keras>' in config:
        importlib.import_module("isnet_keras.isnet")


def classifier_outputs_probabilities(classifier):
    """Tells whether the classifier already ends in a softmax.

    The output layer counts as a softmax when it is a `keras.layers.Softmax`
    or its `activation` is `keras.activations.softmax` (a `Dense(...,
    activation="softmax")` or a trailing `Activation("softmax")`). Nested
    models are followed to their last layer. Anything else is treated as
    logits. `log_softmax` outputs count as logits as well: the softmax that
    the exporters add turns them into the same probabilities.

    Args:
        classifier: `keras.Model`. A single-output classifier.

    Returns:
        `True` if the outputs are probabilities, `False` for logits.

    Example:

    ```python
    classifier_outputs_probabilities(keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]))
    # True
    ```
    """
    layer = classifier
    while isinstance(layer, keras.Model):
        if not layer.layers:
            return False
        # With a single output, the output layer is last in the topological
        # order of a functional or sequential model.
        layer = layer.layers[-1]
    if isinstance(layer, keras.layers.Softmax):
        return True
    return getattr(layer, "activation", None) is keras.activations.softmax


def _outputs_probabilities(classifier, classifier_output):
    if classifier_output not in CLASSIFIER_OUTPUT_KINDS:
        raise ValueError(
            f"`classifier_output` must be one of {CLASSIFIER_OUTPUT_KINDS}; "
            f"received {classifier_output!r}."
        )
    if classifier_output == "auto":
        return classifier_outputs_probabilities(classifier)
    return classifier_output == "probabilities"


def image_input_shape(classifier):
    """Returns the `(height, width, channels)` the classifier expects.

    Args:
        classifier: `keras.Model` with one image input of rank 4 (NHWC).
            Height and width may be `None` for fully convolutional models.

    Returns:
        A tuple of three ints (or `None` for unknown spatial sizes).

    Raises:
        ValueError: the input is not a single NHWC image tensor.

    Example:

    ```python
    image_input_shape(classifier)  # (8, 8, 1)
    ```
    """
    inputs = getattr(classifier, "inputs", None)
    if not inputs:
        raise ValueError(
            f"Cannot read the input shape of model '{classifier.name}': it "
            "has no symbolic inputs. Build it as a functional or Sequential "
            "model starting with keras.Input(shape=(H, W, C))."
        )
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        shapes = [tuple(t.shape) for t in inputs]
        raise ValueError(
            "Exporting needs a single image input of shape (batch, height, "
            f"width, channels); model '{classifier.name}' has inputs {shapes}."
        )
    if inputs[0].shape[-1] is None:
        raise ValueError(
            f"Model '{classifier.name}' has an unknown number of channels."
        )
    return tuple(inputs[0].shape[1:])


def _check_single_output(classifier):
    outputs = getattr(classifier, "outputs", None) or []
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        shapes = [tuple(t.shape) for t in outputs]
        raise ValueError(
            "Exporting needs a classifier with one output of shape (batch, "
            f"classes); model '{classifier.name}' has outputs {shapes}."
        )


def _check_input_range(input_range):
    try:
        low, high = (float(value) for value in input_range)
    except (TypeError, ValueError):
        raise ValueError(
            "`input_range` must be a pair of numbers (low, high); "
            f"received {input_range!r}."
        ) from None
    if not low < high:
        raise ValueError(
            f"`input_range` must satisfy low < high; received {input_range!r}."
        )
    return low, high


# --------------------------------------------------------------------------
# The serving functions (shared by SavedModel and TFLite)
# --------------------------------------------------------------------------


def _serving_functions(classifier, outputs_probabilities, input_range):
    """Builds the float and uint8 serving functions around the classifier."""
    low, high = input_range

    def probabilities_of(images):
        outputs = classifier(images, training=False)
        # Mixed-precision classifiers return float16/bfloat16; clients get
        # float32 whatever the training policy was.
        outputs = tf.cast(outputs, tf.float32)
        if outputs_probabilities:
            return outputs
        return tf.nn.softmax(outputs, axis=-1)

    def serve_float(images):
        probabilities = probabilities_of(images)
        return {
            PROBABILITIES: probabilities,
            CLASS_ID: tf.argmax(probabilities, axis=-1, output_type=tf.int64),
        }

    def serve_uint8(images):
        # Divide first so that the default range (0, 1) gives exactly
        # images / 255 (the multiply by 1 and add of 0 are exact).
        scaled = tf.cast(images, tf.float32) / 255.0 * (high - low) + low
        return serve_float(scaled)

    def serve_probabilities(images):
        return {PROBABILITIES: probabilities_of(images)}

    return serve_float, serve_uint8, serve_probabilities


def _image_spec(image_shape, dtype):
    return tf.TensorSpec((None, *image_shape), dtype, name=INPUT_NAME)


def _new_archive(classifier):
    """An ExportArchive that exposes exactly the classifier's weights.

    `keras.export.ExportArchive` is used rather than a hand-made `tf.Module`
    because it saves only the variables the endpoints read (no optimizer
    slots, no dropout seed state) and copes with Keras 3 variables on every
    TensorFlow version. The weight collections are registered explicitly so
    a reloaded artifact exposes `variables` whose sizes add up to
    `classifier.count_params()`.
    """
    archive = keras.export.ExportArchive()
    archive.add_variable_collection("variables", list(classifier.weights))
    archive.add_variable_collection(
        "trainable_variables", list(classifier.trainable_weights)
    )
    archive.add_variable_collection(
        "non_trainable_variables", list(classifier.non_trainable_weights)
    )
    return archive


# --------------------------------------------------------------------------
# SavedModel for TF Serving
# --------------------------------------------------------------------------


def export_serving(
    model,
    base_dir,
    version=None,
    input_range=(0.0, 1.0),
    classifier_output="auto",
):
    """Exports the deploy classifier as a versioned SavedModel for TF Serving.

    Writes `base_dir/<version>/` (the layout TF Serving watches). Two
    signatures are saved:

    - `serving_default`: input `images`, float32 `(None, H, W, C)` in the
      model's own input range; outputs `probabilities` float32 `(None, K)`
      and `class_id` int64 `(None,)`.
    - `serving_uint8`: input `images`, uint8 `(None, H, W, C)` with values
      0..255, mapped linearly onto `input_range` (by default `images / 255`)
      before the same computation; same outputs.

    The export is atomic: it is written into a hidden sibling directory and
    renamed into place at the end, so a failure leaves no version behind.
    An existing version directory is never modified.

    Args:
        model: `keras.Model`, object with a `deploy_model`, or path to a
            `.keras` file (see `resolve_deploy_model`).
        base_dir: `str` or path. The model base path; created if missing.
        version: Optional positive `int`. Defaults to `None`: one more than
            the highest existing version (TF Serving serves the highest
            version, so gaps are never filled), or 1 in an empty directory.
        input_range: Pair of floats `(low, high)`. The range of the model's
            float inputs, onto which `serving_uint8` maps 0..255. Defaults
            to `(0.0, 1.0)`.
        classifier_output: `"auto"`, `"logits"` or `"probabilities"`. What
            the classifier returns; `"auto"` looks for a final softmax.
            Defaults to `"auto"`.

    Returns:
        `str`, the path of the new version directory.

    Raises:
        FileExistsError: the version directory already exists.
        NotADirectoryError: `base_dir` exists and is not a directory.

    Example:

    ```python
    path = export_serving(classifier, "saved_models/digits")  # ".../1"
    serve = tf.saved_model.load(path).signatures["serving_default"]
    serve(images=tf.zeros((2, 8, 8, 1)))["class_id"]
    ```
    """
    classifier = resolve_deploy_model(model)
    image_shape = image_input_shape(classifier)
    _check_single_output(classifier)
    input_range = _check_input_range(input_range)
    outputs_probabilities = _outputs_probabilities(classifier, classifier_output)
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise ValueError(
            f"`version` must be a positive integer or None; received {version!r}."
        )

    base_dir = os.fspath(base_dir)
    if os.path.exists(base_dir) and not os.path.isdir(base_dir):
        raise NotADirectoryError(
            f"The SavedModel base directory '{base_dir}' exists and is not a "
            "directory."
        )
    os.makedirs(base_dir, exist_ok=True)
    if version is not None:
        _refuse_existing_version(os.path.join(base_dir, str(version)))

    serve_float, serve_uint8, _ = _serving_functions(
        classifier, outputs_probabilities, input_range
    )
    archive = _new_archive(classifier)
    archive.add_endpoint(
        SERVING_SIGNATURE,
        serve_float,
        input_signature=[_image_spec(image_shape, tf.float32)],
    )
    archive.add_endpoint(
        UINT8_SIGNATURE,
        serve_uint8,
        input_signature=[_image_spec(image_shape, tf.uint8)],
    )

    partial_dir = os.path.join(base_dir, _PARTIAL_PREFIX + uuid.uuid4().hex)
    # os.mkdir (unlike tempfile.mkdtemp's 0700) honours the umask, so the
    # renamed version stays readable by a server running as another user.
    os.mkdir(partial_dir)
    try:
        archive.write_out(partial_dir, verbose=False)
        return _publish_version(partial_dir, base_dir, version)
    finally:
        if os.path.exists(partial_dir):
            shutil.rmtree(partial_dir, ignore_errors=True)


def _existing_versions(base_dir):
    return sorted(
        int(name)
        for name in os.listdir(base_dir)
        if _VERSION_DIR_PATTERN.match(name)
    )


def _refuse_existing_version(version_dir):
    if os.path.lexists(version_dir):
        raise FileExistsError(
            f"SavedModel version directory '{version_dir}' already exists; "
            "existing versions are never overwritten. Pass another `version` "
            "or leave it as None to use the next free one."
        )


def _publish_version(partial_dir, base_dir, version):
    """Renames the finished export into its version directory."""
    if version is not None:
        return _rename_into_version(
            partial_dir, os.path.join(base_dir, str(version))
        )
    # With an automatic version, a concurrent exporter may take the number
    # first; then the next one is tried.
    for _ in range(100):
        next_version = max(_existing_versions(base_dir), default=0) + 1
        try:
            return _rename_into_version(
                partial_dir, os.path.join(base_dir, str(next_version))
            )
        except FileExistsError:
            continue
    raise FileExistsError(
        f"Could not claim a free version directory in '{base_dir}'."
    )


def _rename_into_version(partial_dir, version_dir):
    _refuse_existing_version(version_dir)
    try:
        # rename refuses a non-empty target and the check above refuses an
        # empty one, so nothing that exists is ever replaced.
        os.rename(partial_dir, version_dir)
    except OSError:
        _refuse_existing_version(version_dir)
        raise
    return version_dir


def latest_version_dir(base_dir):
    """Returns the highest-numbered version directory under `base_dir`.

    Args:
        base_dir: `str` or path. A TF Serving model base path.

    Returns:
        `str`, the path of the highest version (the one TF Serving serves).

    Raises:
        FileNotFoundError: there is no version directory.

    Example:

    ```python
    latest_version_dir("saved_models/digits")  # "saved_models/digits/2"
    ```
    """
    base_dir = os.fspath(base_dir)
    versions = _existing_versions(base_dir)
    if not versions:
        raise FileNotFoundError(
            f"No SavedModel version directory (1/, 2/, ...) in '{base_dir}'."
        )
    return os.path.join(base_dir, str(versions[-1]))


# --------------------------------------------------------------------------
# TFLite / LiteRT
# --------------------------------------------------------------------------


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
    classifier = resolve_deploy_model(model)
    image_shape = image_input_shape(classifier)
    _check_single_output(classifier)
    input_range = _check_input_range(input_range)
    outputs_probabilities = _outputs_probabilities(classifier, classifier_output)
    calibration_images = _calibration_images(
        quantize, representative_data, image_shape, input_range
    )

    _, _, serve_probabilities = _serving_functions(
        classifier, outputs_probabilities, input_range
    )
    archive = _new_archive(classifier)
    archive.add_endpoint(
        SERVING_SIGNATURE,
        serve_probabilities,
        input_signature=[_image_spec(image_shape, tf.float32)],
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
                yield {INPUT_NAME: image[np.newaxis]}

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
    from ai_edge_litert import schema_py_generated as schema

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


# --------------------------------------------------------------------------
# Running exported artifacts
# --------------------------------------------------------------------------


def _as_image_batch(images, image_shape, dtype=np.float32):
    batch = np.asarray(images).astype(dtype, copy=False)
    if batch.ndim == len(image_shape):
        batch = batch[np.newaxis]
    if batch.ndim != len(image_shape) + 1 or any(
        expected is not None and size != expected
        for size, expected in zip(batch.shape[1:], image_shape)
    ):
        raise ValueError(
            f"Expected images of shape (batch, {', '.join(map(str, image_shape))}); "
            f"received shape {np.shape(images)}."
        )
    return batch


class TFLiteClassifier:
    """Runs a `.tflite` file written by `export_tflite` with LiteRT.

    Args:
        path: `str` or path of the `.tflite` file.
        num_threads: Optional `int`. CPU threads for the interpreter.
            Defaults to `None` (the runtime's choice).

    Example:

    ```python
    classifier = TFLiteClassifier("digits.tflite")
    classifier.image_shape                   # (8, 8, 1)
    classifier.predict(x_test[:4]).argmax(-1)
    ```
    """

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"TFLite file not found: '{self.path}'.")
        self.num_threads = num_threads
        self._interpreter = Interpreter(
            model_path=self.path, num_threads=num_threads
        )
        signatures = self._interpreter.get_signature_list()
        if SERVING_SIGNATURE not in signatures:
            raise ValueError(
                f"'{self.path}' has no '{SERVING_SIGNATURE}' signature "
                f"(found {sorted(signatures)}); export it with export_tflite."
            )
        self._runner = self._interpreter.get_signature_runner(SERVING_SIGNATURE)
        details = self._runner.get_input_details()[INPUT_NAME]
        self.image_shape = tuple(
            None if size < 0 else int(size)
            for size in details["shape_signature"][1:]
        )

    def predict(self, images):
        """Returns class probabilities.

        Args:
            images: Array `(batch, H, W, C)` or one image `(H, W, C)`, in
                the model's input range.

        Returns:
            `np.ndarray` float32 `(batch, K)`.
        """
        batch = _as_image_batch(images, self.image_shape)
        return np.array(self._runner(**{INPUT_NAME: batch})[PROBABILITIES])


def run_tflite(path, images):
    """Returns the probabilities a `.tflite` classifier gives `images`.

    Args:
        path: `str` or path of a file written by `export_tflite`.
        images: Array `(batch, H, W, C)` in the model's input range.

    Returns:
        `np.ndarray` float32 `(batch, K)`.

    Example:

    ```python
    run_tflite("digits.tflite", x_test[:8]).argmax(-1)
    ```
    """
    return TFLiteClassifier(path).predict(images)


class SavedModelClassifier:
    """Runs a SavedModel version directory written by `export_serving`.

    Args:
        path: `str` or path of a version directory (`base_dir/<version>`).
        signature: `str`. `"serving_default"` (float input, the default) or
            `"serving_uint8"` (pixel values 0..255).

    Example:

    ```python
    classifier = SavedModelClassifier("saved_models/digits/1")
    classifier.predict(x_test[:4]).argmax(-1)
    ```
    """

    def __init__(self, path, signature=SERVING_SIGNATURE):
        self.path = os.fspath(path)
        self._loaded = tf.saved_model.load(self.path)
        if signature not in self._loaded.signatures:
            raise ValueError(
                f"SavedModel '{self.path}' has no signature '{signature}' "
                f"(found {sorted(self._loaded.signatures)})."
            )
        self._signature = self._loaded.signatures[signature]
        if PROBABILITIES not in self._signature.structured_outputs:
            raise ValueError(
                f"Signature '{signature}' of '{self.path}' has no "
                f"'{PROBABILITIES}' output; export it with export_serving."
            )
        spec = self._signature.structured_input_signature[1][INPUT_NAME]
        self.input_dtype = spec.dtype
        self.image_shape = tuple(spec.shape[1:])

    def predict(self, images):
        """Returns class probabilities.

        Args:
            images: Array `(batch, H, W, C)` or one image `(H, W, C)`.

        Returns:
            `np.ndarray` float32 `(batch, K)`.
        """
        batch = _as_image_batch(
            images, self.image_shape, self.input_dtype.as_numpy_dtype
        )
        outputs = self._signature(**{INPUT_NAME: tf.constant(batch)})
        return outputs[PROBABILITIES].numpy()


class KerasClassifier:
    """Runs a Keras classifier with the same interface as exported models.

    Args:
        model: `keras.Model`, object with a `deploy_model`, or path to a
            `.keras` file (see `resolve_deploy_model`).
        classifier_output: `"auto"`, `"logits"` or `"probabilities"`.
            Defaults to `"auto"`.

    Example:

    ```python
    KerasClassifier("runs/isnet.keras").predict(x_test[:4]).argmax(-1)
    ```
    """

    def __init__(self, model, classifier_output="auto"):
        self.model = resolve_deploy_model(model)
        self.image_shape = image_input_shape(self.model)
        self._outputs_probabilities = _outputs_probabilities(
            self.model, classifier_output
        )

    def predict(self, images):
        """Returns class probabilities.

        Args:
            images: Array `(batch, H, W, C)` or one image `(H, W, C)`.

        Returns:
            `np.ndarray` float32 `(batch, K)`.
        """
        batch = _as_image_batch(images, self.image_shape)
        outputs = tf.cast(self.model.predict_on_batch(batch), tf.float32)
        if not self._outputs_probabilities:
            outputs = tf.nn.softmax(outputs, axis=-1)
        return np.asarray(outputs)


def load_classifier(path):
    """Opens an exported or saved classifier by its path.

    Args:
        path: A SavedModel version directory, a model base directory (its
            highest version is used, as TF Serving does), a `.tflite` file
            or a `.keras` file.

    Returns:
        A `SavedModelClassifier`, `TFLiteClassifier` or `KerasClassifier`;
        each has `image_shape` and `predict(images) -> probabilities`.

    Raises:
        FileNotFoundError: nothing at `path`.
        ValueError: `path` is none of the kinds above.

    Example:

    ```python
    load_classifier("saved_models/digits").predict(x_test[:4])
    ```
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model not found: '{path}'.")
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            path = latest_version_dir(path)
        return SavedModelClassifier(path)
    extension = os.path.splitext(path)[1].lower()
    if extension == ".tflite":
        return TFLiteClassifier(path)
    if extension == ".keras":
        return KerasClassifier(path)
    raise ValueError(
        f"Cannot tell what kind of model '{path}' is: expected a SavedModel "
        "directory, a .tflite file or a .keras file."
    )
