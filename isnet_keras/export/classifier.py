"""Resolving and inspecting the classifier that deployment and scoring use.

This module is the one place that decides what a model argument means (a
`keras.Model`, an ISNet's `deploy_model`, or a `.keras` file), which image
shape the classifier takes, how many classes it outputs, and whether its
outputs are probabilities (a final softmax) or logits. Exporters, runners,
evaluation, training and the baselines all ask it.

Example:

```python
from isnet_keras.export import classifier

model = classifier.resolve_deploy_model("runs/isnet.keras")
classifier.image_input_shape(model, purpose="Evaluation")  # (8, 8, 1)
classifier.classifier_outputs_probabilities(model)         # False: logits
```
"""

import importlib
import os
import zipfile

import keras

CLASSIFIER_OUTPUT_KINDS = ("auto", "logits", "probabilities")


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
        # The class-token layers of `hub.vit_classifier` (that module loads
        # without keras-hub).
        importlib.import_module("isnet_keras.hub")


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


def outputs_probabilities(classifier, classifier_output="auto"):
    """Tells whether to read the classifier's outputs as probabilities.

    Args:
        classifier: `keras.Model`. A single-output classifier.
        classifier_output: `"auto"`, `"logits"` or `"probabilities"`. What
            the classifier returns; `"auto"` asks
            `classifier_outputs_probabilities`. Defaults to `"auto"`.

    Returns:
        `True` for probabilities, `False` for logits (a softmax is needed).

    Raises:
        ValueError: `classifier_output` is none of the accepted kinds.

    Example:

    ```python
    outputs_probabilities(classifier, "logits")  # False
    ```
    """
    if classifier_output not in CLASSIFIER_OUTPUT_KINDS:
        raise ValueError(
            f"`classifier_output` must be one of {CLASSIFIER_OUTPUT_KINDS}; "
            f"received {classifier_output!r}."
        )
    if classifier_output == "auto":
        return classifier_outputs_probabilities(classifier)
    return classifier_output == "probabilities"


def image_input_shape(classifier, purpose="Exporting"):
    """Returns the `(height, width, channels)` the classifier expects.

    Args:
        classifier: `keras.Model` with one image input of rank 4 (NHWC).
            Height and width may be `None` for fully convolutional models.
        purpose: `str`. What the caller does, as the subject of the error
            message ("Exporting needs a single image input ...").
            Defaults to `"Exporting"`.

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
            f"{purpose} needs a single image input of shape (batch, height, "
            f"width, channels); model '{classifier.name}' has inputs {shapes}."
        )
    if inputs[0].shape[-1] is None:
        raise ValueError(
            f"Model '{classifier.name}' has an unknown number of channels."
        )
    return tuple(inputs[0].shape[1:])


def output_classes(classifier, purpose="Exporting"):
    """Returns the number of classes of a single-output classifier.

    Args:
        classifier: `keras.Model` with one output of shape
            `(batch, classes)`.
        purpose: `str`. What the caller does, as the subject of the error
            message. Defaults to `"Exporting"`.

    Returns:
        The number of classes, an `int` (or `None` when unknown).

    Raises:
        ValueError: the model has not exactly one output of rank 2.

    Example:

    ```python
    output_classes(classifier)  # 10
    ```
    """
    outputs = getattr(classifier, "outputs", None) or []
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        shapes = [tuple(t.shape) for t in outputs]
        raise ValueError(
            f"{purpose} needs a classifier with one output of shape (batch, "
            f"classes); model '{classifier.name}' has outputs {shapes}."
        )
    num_classes = outputs[0].shape[-1]
    return None if num_classes is None else int(num_classes)


def check_image_file_channels(channels, model_name):
    """Refuses a channel count that image files cannot feed.

    Image files are read as grayscale (1 channel) or RGB (3 channels), for
    training, folder test sets and `isnet predict` alike.

    Args:
        channels: `int`, the channels of the classifier's input.
        model_name: `str` naming the model in the message.

    Raises:
        ValueError: `channels` is neither 1 nor 3.

    Example:

    ```python
    check_image_file_channels(3, "'cats.keras'")  # passes
    ```
    """
    if channels not in (1, 3):
        raise ValueError(
            "Image files can feed models with 1 (grey) or 3 (RGB) channels; "
            f"{model_name} takes {channels}."
        )
