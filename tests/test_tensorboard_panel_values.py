"""The background relevance fraction that `TensorBoardHeatmaps` logs.

Each epoch the callback explains the predicted class of its fixed images
(LRP-epsilon, epsilon = 1e-2, Z^B at the first layer with its input bounds,
inference mode) and writes the mean over images of
`BRF = sum |H| (1 - M) / (sum |H| + 1e-12)` (sums over pixels and channels)
as the scalar `background_relevance_fraction`, at step = epoch. Here that
value is read back from the event file and recomputed in NumPy from
`explain()` heatmaps of the same weights.
"""

import pathlib

import keras
import numpy as np
import tensorflow as tf

from isnet_keras.callbacks import TensorBoardHeatmaps
from isnet_keras.isnet import build_isnet
from isnet_keras.lrp.explain import explain
from tests import support

_TAG = "background_relevance_fraction"


def _data(num, seed):
    """3-channel 16x16 images: a bright 5x5 square on a noisy background,
    left half for class 0, right half for class 1; the mask is the square."""
    rng = np.random.default_rng(seed)
    labels = np.arange(num) % 2
    images = rng.uniform(0, 0.4, (num, 16, 16, 3)).astype("float32")
    masks = np.zeros((num, 16, 16, 1), "float32")
    for i, label in enumerate(labels):
        row = rng.integers(1, 10)
        col = rng.integers(1, 3) + 8 * label
        images[i, row:row + 5, col:col + 5] = rng.uniform(0.7, 1.0, 3)
        masks[i, row:row + 5, col:col + 5] = 1.0
    return images, labels.astype("int32"), masks


def _brf_reference(classifier, images, masks):
    """Mean BRF of the predicted classes' heatmaps, in NumPy (float64)."""
    logits = classifier.predict(images, verbose=0)
    predicted = np.argmax(logits, axis=-1)
    heatmaps = explain(classifier, images, classes=predicted, epsilon=1e-2,
                       first_layer_rule="zb", input_bounds=(0.0, 1.0))[:, 0]
    magnitude = np.abs(heatmaps.astype(np.float64))  # (N, H, W, C)
    background = (magnitude * (1.0 - masks)).sum(axis=(1, 2, 3))
    total = magnitude.sum(axis=(1, 2, 3))
    return float(np.mean(background / (total + 1e-12)))


def _logged(log_dir):
    """`{tag: {step: value}}` of every summary under `log_dir`."""
    found = {}
    for path in sorted(pathlib.Path(log_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.HasField("tensor"):
                    data = tf.make_ndarray(value.tensor)
                else:
                    data = value.simple_value
                found.setdefault(value.tag, {})[event.step] = data
    return found


class _Reference(keras.callbacks.Callback):
    """Recomputes the BRF after the panel, on the same epoch's weights."""

    def __init__(self, images, masks):
        super().__init__()
        self.images, self.masks = images, masks
        self.values = []

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(_brf_reference(self.model.deploy_model,
                                          self.images, self.masks))


def test_panel_logs_the_mean_background_fraction_of_predicted_classes(
        tmp_path):
    keras.utils.set_random_seed(0)
    classifier = support.small_cnn(input_shape=(16, 16, 3), num_classes=2)
    isnet = build_isnet(classifier)
    isnet.compile(optimizer=keras.optimizers.Adam(1e-2))
    images, labels, masks = _data(16, seed=1)
    panel_images, _, panel_masks = _data(4, seed=2)
    log_dir = tmp_path / "heatmaps"
    reference = _Reference(panel_images, panel_masks)
    isnet.fit(images, {"label": labels, "mask": masks}, batch_size=8,
              epochs=2, verbose=0,
              callbacks=[TensorBoardHeatmaps(log_dir, panel_images,
                                             panel_masks), reference])

    logged = _logged(log_dir)
    assert sorted(logged[_TAG]) == [0, 1]  # one value per epoch, step = epoch
    assert sorted(logged["heatmaps"]) == [0, 1]
    for epoch, expected in enumerate(reference.values):
        # Not a degenerate fraction: both regions hold relevance.
        assert 0.05 < expected < 0.95
        value = logged[_TAG][epoch]
        assert np.shape(value) == ()
        np.testing.assert_allclose(float(value), expected, rtol=0, atol=1e-5)
    # Training moved the weights between the two epochs' panels.
    assert reference.values[0] != reference.values[1]


def test_panel_fraction_leaves_out_images_without_annotation(tmp_path):
    keras.utils.set_random_seed(0)
    classifier = support.small_cnn(input_shape=(16, 16, 3), num_classes=2)
    isnet = build_isnet(classifier)
    images, _, masks = _data(4, seed=2)
    partial = masks.copy()
    partial[2:] = -1.0  # the last two images have no annotation
    callback = TensorBoardHeatmaps(tmp_path / "heatmaps", images, partial)
    callback.set_model(isnet)
    _, fraction = callback.heatmap_panel()
    expected = _brf_reference(classifier, images[:2], masks[:2])
    np.testing.assert_allclose(fraction, expected, rtol=0, atol=1e-5)
    # Counted as all background, the -1 images would pull the mean up.
    assert abs(_brf_reference(classifier, images, np.where(
        partial < 0, 0.0, partial)) - expected) > 1e-3
