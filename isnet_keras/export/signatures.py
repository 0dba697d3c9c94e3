"""The serving functions that every exported artifact wraps.

SavedModel (`saved_model.py`) and TFLite (`litert.py`) artifacts expose the
same computation: the classifier's outputs as float32 probabilities (a
softmax added only for logits), and for SavedModel the predicted class and
a uint8 entry point. This module builds those functions, their input specs
and the `keras.export.ExportArchive` holding exactly the classifier's
weights; it also names the signature, input and output keys.

Example:

```python
serve_float, serve_uint8, serve_probabilities = serving_functions(
    classifier, outputs_probabilities=False, input_range=(0.0, 1.0))
```
"""

import keras
import tensorflow as tf

SERVING_SIGNATURE = "serving_default"
UINT8_SIGNATURE = "serving_uint8"
INPUT_NAME = "images"
PROBABILITIES = "probabilities"
CLASS_ID = "class_id"


def check_input_range(input_range):
    """Returns `input_range` as a pair of floats `(low, high)`, low < high.

    Args:
        input_range: Pair of numbers, the model's input range.

    Returns:
        `(low, high)` as floats.

    Raises:
        ValueError: not a pair of numbers, or `low >= high`.

    Example:

    ```python
    check_input_range([0, 255])  # (0.0, 255.0)
    ```
    """
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


def serving_functions(classifier, outputs_probabilities, input_range):
    """Builds the float and uint8 serving functions around the classifier.

    Args:
        classifier: `keras.Model`, the deploy classifier.
        outputs_probabilities: `bool`. The classifier already ends in a
            softmax (see `classifier.outputs_probabilities`).
        input_range: `(low, high)` onto which uint8 inputs are mapped.

    Returns:
        `(serve_float, serve_uint8, serve_probabilities)`: the first two
        return `{"probabilities", "class_id"}`, the last
        `{"probabilities"}` only.

    Example:

    ```python
    serve_float, _, _ = serving_functions(classifier, False, (0.0, 1.0))
    serve_float(tf.zeros((1, 8, 8, 1)))["class_id"]
    ```
    """
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


def image_spec(image_shape, dtype):
    """The `tf.TensorSpec` of a batch of images named `INPUT_NAME`.

    Args:
        image_shape: `(height, width, channels)`.
        dtype: `tf.DType` of the input.

    Returns:
        A `tf.TensorSpec` of shape `(None, height, width, channels)`.

    Example:

    ```python
    image_spec((8, 8, 1), tf.uint8)
    ```
    """
    return tf.TensorSpec((None, *image_shape), dtype, name=INPUT_NAME)


def new_archive(classifier):
    """An ExportArchive that exposes exactly the classifier's weights.

    `keras.export.ExportArchive` is used rather than a hand-made `tf.Module`
    because it saves only the variables the endpoints read (no optimizer
    slots, no dropout seed state) and copes with Keras 3 variables on every
    TensorFlow version. The weight collections are registered explicitly so
    a reloaded artifact exposes `variables` whose sizes add up to
    `classifier.count_params()`.

    Args:
        classifier: `keras.Model`, the deploy classifier.

    Returns:
        A `keras.export.ExportArchive` without endpoints.

    Example:

    ```python
    archive = new_archive(classifier)
    archive.add_endpoint("serving_default", serve_probabilities,
                         input_signature=[image_spec((8, 8, 1), tf.float32)])
    ```
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
