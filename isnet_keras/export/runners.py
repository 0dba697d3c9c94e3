"""Inference runners: one `predict(images) -> probabilities` interface for
SavedModel directories, TFLite files and Keras classifiers.

`load_classifier` opens any of them by path; `run_tflite` is the one-call
form for a `.tflite` file. Every runner returns float32 probabilities of
shape `(batch, K)` and has an `image_shape`.

Example:

```python
from isnet_keras.export import load_classifier

load_classifier("saved_models/digits").predict(x_test[:4]).argmax(-1)
```
"""

import os

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from isnet_keras.export import classifier as classifier_lib
from isnet_keras.export.saved_model import latest_version_dir
from isnet_keras.export.signatures import (
    INPUT_NAME,
    PROBABILITIES,
    SERVING_SIGNATURE,
)


def _as_image_batch(images, image_shape, dtype=np.float32):
    """Images as a `(batch, *image_shape)` array of `dtype`; a single
    image gets a batch axis."""
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
        self.model = classifier_lib.resolve_deploy_model(model)
        self.image_shape = classifier_lib.image_input_shape(
            self.model, purpose="Prediction")
        self._outputs_probabilities = classifier_lib.outputs_probabilities(
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
