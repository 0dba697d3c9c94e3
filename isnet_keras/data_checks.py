"""Checks of training data, and the errors they raise.

The checks inside a compiled training step (`check_labels`, `check_masks`,
`losses.prepare_masks`, `lrp.rules.check_within_bounds`) are
`tf.debugging.Assert`s, which TensorFlow reports as an
`InvalidArgumentError` that starts "Graph execution error".
`library_data_errors_first` re-raises them as an `InvalidDataError` whose
message starts with the check's own; `check_integer_labels` refuses
in-memory float labels before Keras builds its dataset.
"""

import ast
import contextlib
import re

import numpy as np
import tensorflow as tf

from isnet_keras import errors

NON_INTEGER_LABELS = ("labels must be integer class indices; received "
                      "non-integer values such as")
NON_BINARY_MASK = "non-binary mask: mask values must be exactly 0 or 1"
# A mask filled with this value marks an image without annotation: it trains
# on cross-entropy only (docs/data.md, "Partial masks and boxes").
UNANNOTATED = -1
PARTIAL_NON_BINARY_MASK = (
    f"{NON_BINARY_MASK} (or {UNANNOTATED} everywhere for an image without "
    "annotation)")
MIXED_UNANNOTATED_MASK = (
    f"non-binary mask: a mask mixes {UNANNOTATED} (no annotation) with other "
    f"values; an unannotated image's mask must be {UNANNOTATED} everywhere, "
    "an annotated one exactly 0 or 1")

# The data checks that run inside the compiled steps, by the start of their
# message, with how the values the assertion prints read after it.
_STEP_CHECKS = (
    ("labels out of range", "{message}; received labels from {0} to {1}"),
    (NON_INTEGER_LABELS, "{message} {0}"),
    ("non-binary mask", "{message}"),
    ("The first layer's Z^B rule needs inputs within input_bounds",
     "{message} {0}, {1}"),
)

_ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")
_EAGER_SUMMARY = re.compile(
    r"Summarized data: (b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\")")


class InvalidDataError(tf.errors.InvalidArgumentError,
                       errors.InvalidDataError):
    """The `isnet_keras.errors.InvalidDataError` that `fit` and `evaluate`
    of the ISNet and the baselines raise: still the
    `tf.errors.InvalidArgumentError` that these checks raised before, with
    the library's message first."""


def check_integer_labels(targets):
    """Refuses in-memory labels that are not whole numbers.

    Checked before Keras builds its dataset, so the error names the problem
    instead of coming from inside the traced step (which checks again, for
    datasets).

    Args:
        targets: The `y` given to `fit`/`evaluate`: `{"label", "mask"}`,
            `(labels, masks)`, or anything else (not checked here).

    Raises:
        ValueError: float labels with a fractional part (or NaN).
    """
    if isinstance(targets, dict):
        labels = targets.get("label")
    elif isinstance(targets, (tuple, list)) and len(targets) == 2:
        labels = targets[0]
    else:
        return
    if not (isinstance(labels, (np.ndarray, list, tuple)) or (
            isinstance(labels, tf.Tensor) and tf.executing_eagerly())):
        return
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.floating):
        return
    # NaN differs from its floor too.
    fractional = labels[labels != np.floor(labels)]
    if fractional.size:
        raise ValueError(
            f"{NON_INTEGER_LABELS} {fractional[:3].tolist()}; a cast to int "
            "would truncate them to other classes.")


def check_labels(labels, num_classes):
    """Labels as int32 `(B,)`, asserted (when the step runs) to be whole
    numbers in `[0, num_classes)`.

    Args:
        labels: Integer or float class indices.
        num_classes: int, or None to leave the range unchecked.

    Returns:
        The int32 labels, flattened.
    """
    labels = tf.reshape(labels, (-1,))
    checks = []
    if labels.dtype.is_floating:
        # The cast to int32 would truncate 1.7 to class 1 silently.
        fractional = tf.not_equal(labels, tf.floor(labels))
        first = tf.argmax(tf.cast(fractional, tf.int32))
        checks.append(tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(fractional)),
            [NON_INTEGER_LABELS, tf.gather(labels, first)]))
    with tf.control_dependencies(checks):
        labels = tf.cast(labels, tf.int32)
    if num_classes is None:
        return labels
    in_range = tf.reduce_all((labels >= 0) & (labels < num_classes))
    with tf.control_dependencies([tf.debugging.Assert(in_range, [
            f"labels out of range: must lie in [0, {num_classes - 1}]",
            tf.reduce_min(labels), tf.reduce_max(labels)])]):
        return tf.identity(labels)


def mask_batch(masks):
    """Masks as a `(B, H, W, 1)` tensor (a channel axis added to
    `(B, H, W)`), checked for that shape when traced.

    Args:
        masks: `(B, H, W)` or `(B, H, W, 1)`.

    Returns:
        The `(B, H, W, 1)` tensor, in its own dtype.

    Raises:
        ValueError: another shape.
    """
    masks = tf.convert_to_tensor(masks)
    if masks.shape.rank == 3:
        masks = masks[..., None]
    if masks.shape.rank != 4 or masks.shape[-1] != 1:
        raise ValueError(
            "Masks must have shape (B, H, W) or (B, H, W, 1); received "
            f"shape {masks.shape}.")
    return masks


def check_masks(masks):
    """Masks asserted (when the step runs) to hold only 0 and 1, with the
    shape the heatmap losses take.

    Args:
        masks: `(B, H, W)` or `(B, H, W, 1)`.

    Returns:
        The masks, `(B, H, W, 1)`, in their own dtype.

    Raises:
        ValueError: another shape (at trace time).
    """
    masks = mask_batch(masks)
    values = tf.cast(masks, "float32")
    binary = tf.reduce_all((values == 0) | (values == 1))
    with tf.control_dependencies([tf.debugging.Assert(
            binary, [NON_BINARY_MASK])]):
        return tf.identity(masks)


def partial_mask_checks(masks):
    """Assertions that each `(H, W, 1)` mask of `(B, H, W, 1)` `masks` is
    0/1, or `UNANNOTATED` everywhere (an image without annotation).

    Args:
        masks: float `(B, H, W, 1)` tensor.

    Returns:
        A list of `tf.debugging.Assert` ops for `tf.control_dependencies`.
    """
    values = tf.cast(masks, "float32")
    unannotated_value = values == UNANNOTATED
    known = tf.reduce_all((values == 0) | (values == 1) | unannotated_value)
    some = tf.reduce_any(unannotated_value, axis=(1, 2, 3))
    every = tf.reduce_all(unannotated_value, axis=(1, 2, 3))
    # The mixed-mask message only when every value is -1, 0 or 1, so that
    # exactly one of the two assertions fails.
    mixed = tf.logical_and(known, tf.reduce_any(some & ~every))
    return [tf.debugging.Assert(known, [PARTIAL_NON_BINARY_MASK]),
            tf.debugging.Assert(tf.logical_not(mixed),
                                [MIXED_UNANNOTATED_MASK])]


def annotated_images(masks):
    """Per image, whether its mask is an annotation (not `UNANNOTATED`).

    Args:
        masks: `(B, H, W, 1)` tensor, checked by `partial_mask_checks`.

    Returns:
        bool `(B,)` tensor.
    """
    values = tf.cast(masks, "float32")
    return tf.logical_not(tf.reduce_all(
        tf.equal(tf.reshape(values, (tf.shape(values)[0], -1)),
                 UNANNOTATED), axis=1))


def check_partial_masks(masks, name="masks"):
    """NumPy check of masks that may mark unannotated images.

    Each mask (the first axis indexes images) must hold only 0 and 1 (or
    booleans), or `UNANNOTATED` in every pixel.

    Args:
        masks: array `(N, H, W)` or `(N, H, W, 1)`.
        name: what to call the array in the message.

    Returns:
        bool `(N,)` array: which images are annotated.

    Raises:
        ValueError: a value other than 0, 1 and -1, or a mask that mixes
            -1 with other values (the message gives its index).

    Example:

    >>> check_partial_masks(np.stack([np.ones((2, 2)), -np.ones((2, 2))]))
    array([ True, False])
    """
    array = np.asarray(masks)
    if array.dtype == bool:
        return np.ones(len(array), dtype=bool)
    flat = array.reshape(len(array), -1)
    unannotated = flat == UNANNOTATED
    known = np.isin(flat, (0, 1)) | unannotated
    if not known.all():
        values = np.unique(flat[~known])[:3].tolist()
        raise ValueError(
            f"{PARTIAL_NON_BINARY_MASK}; {name} hold values such as "
            f"{values}.")
    every = unannotated.all(axis=1) if flat.shape[1] else np.zeros(
        len(flat), dtype=bool)
    mixed = np.flatnonzero(unannotated.any(axis=1) & ~every)
    if mixed.size:
        raise ValueError(f"{MIXED_UNANNOTATED_MASK}; {name} at index "
                         f"{int(mixed[0])} does.")
    return ~every


def _bracketed(text):
    """The contents of the `[...]` groups that start `text` (nested brackets
    kept), up to the first character outside them that is not a space."""
    groups, depth, begin = [], 0, 0
    for index, char in enumerate(text):
        if char == "[":
            if depth == 0:
                begin = index + 1
            depth += 1
        elif char == "]" and depth:
            depth -= 1
            if depth == 0:
                groups.append(text[begin:index])
        elif depth == 0 and char != " ":
            break
    return groups


def _failed_assertion(text):
    """`(message, values)` of a failed `tf.debugging.Assert`, read from the
    text of the error it raised, or None.

    A compiled step reports `assertion failed: [message] [value] ...`; an
    eager one `Summarized data: b'message'` with one value a line.
    """
    text = _ANSI_CODES.sub("", text)
    marker = "assertion failed: "
    start = text.find(marker)
    if start >= 0:
        groups = _bracketed(text[start + len(marker):])
        if groups:
            message = groups[0].replace("\\'", "'").replace('\\"', '"')
            return message, [value.strip() for value in groups[1:]]
    match = _EAGER_SUMMARY.search(text)
    if match:
        message = ast.literal_eval(match.group(1)).decode("utf-8", "replace")
        values = []
        for line in text[match.end():].split("\n")[1:]:
            if not line.strip():
                break
            values.append(line.strip())
        return message, values
    return None


def library_data_error(error):
    """The `InvalidDataError` for a TensorFlow error that one of the
    library's step checks raised.

    Args:
        error: A `tf.errors.InvalidArgumentError`.

    Returns:
        An `InvalidDataError` whose message starts with the check's own, or
        None for any other error.
    """
    if isinstance(error, errors.InvalidDataError):
        return None
    failed = _failed_assertion(getattr(error, "message", str(error)))
    if failed is None:
        return None
    message, values = failed
    for start, template in _STEP_CHECKS:
        if message.startswith(start):
            try:
                text = template.format(*values, message=message)
            except IndexError:
                text = " ".join([message, *values])
            return InvalidDataError(error.node_def, None, text)
    return None


@contextlib.contextmanager
def library_data_errors_first(model):
    """Re-raises a failed step check of the library (a TensorFlow
    `InvalidArgumentError` whose text starts "Graph execution error") as an
    `InvalidDataError` that starts with the library's message, chained to
    the original.

    Only the outermost call on `model` translates: `fit` runs `evaluate`
    for the validation data, and Keras' `fit` drops the cause of what
    passes through it. The depth is kept on the model, not in the module.

    Args:
        model: The model whose `fit` or `evaluate` runs inside.

    Yields:
        None.
    """
    depth = getattr(model, "_data_error_depth", 0)
    object.__setattr__(model, "_data_error_depth", depth + 1)
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        translated = None if depth else library_data_error(error)
        if translated is None:
            raise
        raise translated from error
    finally:
        object.__setattr__(model, "_data_error_depth", depth)
