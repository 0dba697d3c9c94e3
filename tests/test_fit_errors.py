"""Data the compiled step refuses: `ISNet.fit` raises an error that starts
with the library's message, not with TensorFlow's "Graph execution error"."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras import errors
from isnet_keras.isnet import build_isnet

LABELS_OUT_OF_RANGE = ("labels out of range: must lie in [0, 1]; received "
                       "labels from 0 to 2")
NON_BINARY_MASK = "non-binary mask: mask values must be exactly 0 or 1"
OUTSIDE_BOUNDS = ("The first layer's Z^B rule needs inputs within "
                  "input_bounds (lower <= x <= upper).")
NAN_IMAGES = "(nan: the inputs hold NaN): nan, nan"


def _isnet(run_eagerly=False):
    classifier = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="conv"),
        keras.layers.Flatten(), keras.layers.Dense(2, name="logits")])
    isnet = build_isnet(classifier, deep_supervision=())
    isnet.compile(run_eagerly=run_eagerly)
    return isnet


def _data():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (4, 8, 8, 1)).astype(np.float32)
    masks = np.zeros((4, 8, 8, 1), np.float32)
    masks[:, 2:6, 2:6] = 1.0
    return images, np.array([0, 1, 1, 0]), masks


def _broken(case):
    """`(images, labels, masks)` that fail one check, and how the error's
    message starts (and, for NaN, what it holds)."""
    images, labels, masks = _data()
    if case == "labels":
        return (images, np.array([0, 1, 2, 0]), masks), LABELS_OUT_OF_RANGE
    if case == "masks":
        return (images, labels, masks * 0.5), NON_BINARY_MASK
    if case == "x255":
        return (images * 255, labels, masks), OUTSIDE_BOUNDS
    images[1, 3, 3, 0] = np.nan
    return (images, labels, masks), OUTSIDE_BOUNDS


def _check(error, start):
    """The library's message leads; TensorFlow's error is the cause."""
    text = str(error)
    assert text.startswith(start), text[:300]
    assert "Graph execution error" not in text
    assert isinstance(error, errors.InvalidDataError)
    assert isinstance(error, ValueError)
    # Still the error these checks raised before.
    assert isinstance(error, tf.errors.InvalidArgumentError)
    assert isinstance(error.__cause__, tf.errors.InvalidArgumentError)
    assert not isinstance(error.__cause__, errors.InvalidDataError)


@pytest.mark.parametrize("case", ["labels", "masks", "x255", "nan"])
def test_fit_leads_with_the_library_message(case):
    (images, labels, masks), start = _broken(case)
    with pytest.raises(errors.InvalidDataError) as caught:
        _isnet().fit(images, {"label": labels, "mask": masks}, epochs=1,
                     verbose=0)
    _check(caught.value, start)
    first_line = str(caught.value).splitlines()[0]
    if case == "nan":
        assert first_line.endswith(NAN_IMAGES)
    if case == "x255":
        # Smallest x - lower, largest x - upper: 255 x [0, 1] - 1.
        smallest, largest = map(float, first_line.rsplit(": ", 1)[1]
                                .split(", "))
        assert smallest >= 0 and 200 < largest < 254


def _generator(images, labels, masks):
    while True:
        yield images, {"label": labels, "mask": masks}


class _Batches(keras.utils.PyDataset):
    def __init__(self, images, labels, masks):
        super().__init__()
        self.batch = images, {"label": labels, "mask": masks}

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return self.batch


@pytest.mark.parametrize("kind", ["dataset", "generator", "pydataset"])
def test_fit_leads_with_the_library_message_for_every_input_kind(kind):
    (images, labels, masks), start = _broken("masks")
    if kind == "dataset":
        data = tf.data.Dataset.from_tensor_slices(
            (images, {"label": labels, "mask": masks})).batch(2)
        kwargs = {}
    elif kind == "generator":
        data, kwargs = _generator(images, labels, masks), {
            "steps_per_epoch": 1}
    else:
        data, kwargs = _Batches(images, labels, masks), {}
    with pytest.raises(errors.InvalidDataError) as caught:
        _isnet().fit(data, epochs=1, verbose=0, **kwargs)
    _check(caught.value, start)


def test_bad_validation_data_leads_with_the_library_message():
    images, labels, masks = _data()
    (_, bad_labels, _), start = _broken("labels")
    with pytest.raises(errors.InvalidDataError) as caught:
        _isnet().fit(images, {"label": labels, "mask": masks}, epochs=1,
                     verbose=0, validation_data=(
                         images, {"label": bad_labels, "mask": masks}))
    _check(caught.value, start)


def test_evaluate_and_eager_steps_lead_with_the_library_message():
    (images, labels, masks), start = _broken("labels")
    targets = {"label": labels, "mask": masks}
    with pytest.raises(errors.InvalidDataError) as caught:
        _isnet().evaluate(images, targets, verbose=0)
    _check(caught.value, start)
    # run_eagerly=True: TensorFlow words the failed assertion differently.
    (images, labels, masks), start = _broken("x255")
    with pytest.raises(errors.InvalidDataError) as caught:
        _isnet(run_eagerly=True).fit(
            images, {"label": labels, "mask": masks}, epochs=1, verbose=0)
    _check(caught.value, start)


def test_other_tensorflow_errors_are_left_as_they_are():
    images, labels, masks = _data()

    def own_check(image, targets):
        tf.debugging.Assert(False, ["a check of the pipeline of the user"])
        return image, targets

    data = tf.data.Dataset.from_tensor_slices(
        (images, {"label": labels, "mask": masks})).map(own_check).batch(2)
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        _isnet().fit(data, epochs=1, verbose=0)
    assert not isinstance(caught.value, errors.InvalidDataError)
    assert "a check of the pipeline of the user" in str(caught.value)
