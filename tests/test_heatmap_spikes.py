"""`ISNet(skip_heatmap_spikes=...)`: training steps whose heatmap loss jumps
far above the recent median are skipped and counted."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.isnet import SPIKE_WINDOW, ISNet, build_isnet
from tests import support


def _isnet(**kwargs):
    keras.utils.set_random_seed(0)
    isnet = build_isnet(support.small_cnn(batch_norm=False, dropout=0.0),
                        deep_supervision=(), **kwargs)
    isnet.compile(optimizer="sgd")
    return isnet


def _batch():
    rng = np.random.default_rng(0)
    masks = np.zeros((8, 16, 16, 1), "float32")
    masks[:, 4:12, 3:13] = 1
    return (rng.uniform(0, 1, (8, 16, 16, 1)).astype("float32"),
            {"label": rng.integers(0, 10, 8), "mask": masks})


def _window(isnet, value, seen):
    """Sets the recent heatmap losses to `value`, `seen` steps so far."""
    window, count = isnet._spike_window
    window.assign(tf.fill([SPIKE_WINDOW], value))
    count.assign(seen)


def _weights(isnet):
    return [w.numpy().copy() for w in isnet.classifier.trainable_weights]


def test_a_heatmap_loss_far_above_the_recent_median_is_skipped():
    isnet = _isnet(skip_heatmap_spikes=5.0)
    images, targets = _batch()
    isnet.train_on_batch(images, targets)
    _window(isnet, 1e-12, SPIKE_WINDOW)
    before = _weights(isnet)
    logs = isnet.train_on_batch(images, targets, return_dict=True)
    assert logs["skipped_steps"] == 1
    for old, new in zip(before, _weights(isnet)):
        np.testing.assert_array_equal(new, old)
    # The skipped step's loss entered the window all the same.
    window, seen = isnet._spike_window
    assert int(seen.numpy()) == SPIKE_WINDOW + 1
    assert window.numpy().max() > 1e-6

    _window(isnet, 1e6, SPIKE_WINDOW)
    isnet.reset_metrics()
    logs = isnet.train_on_batch(images, targets, return_dict=True)
    assert logs["skipped_steps"] == 0
    assert any(not np.array_equal(new, old)
               for old, new in zip(before, _weights(isnet)))


def test_no_step_is_skipped_before_the_window_is_full():
    isnet = _isnet(skip_heatmap_spikes=5.0)
    images, targets = _batch()
    isnet.train_on_batch(images, targets)
    _window(isnet, 1e-12, SPIKE_WINDOW - 1)
    isnet.reset_metrics()
    logs = isnet.train_on_batch(images, targets, return_dict=True)
    assert logs["skipped_steps"] == 0


def test_spike_skipping_is_off_by_default_checked_and_kept_in_the_config():
    assert _isnet().skip_heatmap_spikes is None
    for factor in (1.0, 0.5):
        with pytest.raises(ValueError, match="skip_heatmap_spikes"):
            _isnet(skip_heatmap_spikes=factor)
    isnet = _isnet(skip_heatmap_spikes=10)
    config = isnet.get_config()
    assert config["skip_heatmap_spikes"] == 10.0
    assert ISNet.from_config(config).skip_heatmap_spikes == 10.0
    # Training state, not weights: a saved model has the same weights.
    assert len(isnet.weights) == len(_isnet().weights)
