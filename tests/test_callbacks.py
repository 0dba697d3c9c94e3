"""Callbacks: precise batch-norm statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.callbacks import (PreciseBatchNorm,
                                   recompute_batch_norm_statistics)
from isnet_keras.isnet import build_isnet


def _batches(seed=0, count=3, size=8):
    rng = np.random.default_rng(seed)
    # Each batch with its own offset, so the batch means differ.
    return [rng.normal(float(i), 1.0 + i, (size, 4, 4, 2)).astype("float32")
            for i in range(count)]


def _bn_model():
    inputs = keras.Input((4, 4, 2))
    normed = keras.layers.BatchNormalization(name="bn")(inputs)
    return keras.Model(inputs, normed)


def test_moving_statistics_become_the_mean_of_the_batch_moments():
    model = _bn_model()
    batches = _batches()
    used = recompute_batch_norm_statistics(model, batches)
    layer = model.get_layer("bn")
    means = [b.reshape(-1, 2).mean(axis=0) for b in batches]
    variances = [b.reshape(-1, 2).var(axis=0) for b in batches]
    assert used == 3
    np.testing.assert_allclose(layer.moving_mean.numpy(),
                               np.mean(means, axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(),
                               np.mean(variances, axis=0), rtol=1e-4)
    assert layer.momentum == 0.99


def test_max_batches_limits_the_batches_used():
    model = _bn_model()
    batches = _batches()
    assert recompute_batch_norm_statistics(model, batches, max_batches=1) == 1
    np.testing.assert_allclose(model.get_layer("bn").moving_mean.numpy(),
                               batches[0].reshape(-1, 2).mean(axis=0),
                               rtol=1e-5)


def test_frozen_batch_norm_keeps_its_statistics():
    model = _bn_model()
    layer = model.get_layer("bn")
    layer.trainable = False
    assert recompute_batch_norm_statistics(model, _batches()) == 0
    np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(2))
    np.testing.assert_array_equal(layer.moving_variance.numpy(), np.ones(2))


def test_pairs_of_images_and_targets_are_accepted():
    model = _bn_model()
    batches = _batches()
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.concatenate(batches), np.zeros(24))).batch(8)
    recompute_batch_norm_statistics(model, dataset)
    means = [b.reshape(-1, 2).mean(axis=0) for b in batches]
    np.testing.assert_allclose(model.get_layer("bn").moving_mean.numpy(),
                               np.mean(means, axis=0), rtol=1e-5)


def test_precise_batch_norm_rejects_zero_batches():
    with pytest.raises(ValueError, match="max_batches"):
        PreciseBatchNorm([], max_batches=0)


def test_isnet_fit_ends_with_the_recomputed_statistics():
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.ReLU(),
        keras.layers.Flatten(),
        keras.layers.Dense(2),
    ])
    isnet = build_isnet(classifier, deep_supervision=())
    isnet.compile()
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (32, 8, 8, 1)).astype("float32")
    labels = rng.integers(0, 2, 32)
    masks = np.zeros((32, 8, 8), "float32")
    masks[:, 2:6, 2:6] = 1
    data = tf.data.Dataset.from_tensor_slices(
        (images, {"label": labels, "mask": masks})).batch(16)
    isnet.fit(data, validation_data=data, epochs=2, verbose=0,
              callbacks=[PreciseBatchNorm(data)])
    fitted_mean = classifier.get_layer("bn").moving_mean.numpy().copy()
    # The same recomputation from the final weights gives the same values;
    # the moving averages of fit alone (momentum 0.99, 4 steps) are near 0.
    recompute_batch_norm_statistics(classifier, data)
    np.testing.assert_allclose(fitted_mean,
                               classifier.get_layer("bn").moving_mean.numpy(),
                               rtol=1e-5, atol=1e-7)
    assert np.abs(fitted_mean).max() > 0.05


def test_p_schedule_items_are_epoch_equals_p():
    from isnet_keras.callbacks import parse_heatmap_weight_schedule

    expected = {0: 0.0, 3: 0.7}
    assert parse_heatmap_weight_schedule(["0=0", "3=0.7"]) == expected
    assert parse_heatmap_weight_schedule("0=0 3=0.7") == expected
    for bad in ("3:0.7", "3", "x=0.5", "1=high"):
        with pytest.raises(ValueError, match=(
                rf"items are EPOCH=P \(like 0=0 3=0.7\); received "
                rf"'{bad}'")):
            parse_heatmap_weight_schedule(["0=0", bad])


def test_isnet_bench_takes_the_schedule_syntax_of_isnet_train():
    from isnet_keras.cli.bench import parse_schedule

    assert parse_schedule(None) is None
    assert parse_schedule(["0=0.3", "4=0.8"]) == {0: 0.3, 4: 0.8}
    assert parse_schedule("0=0.9 4=0.97") == {0: 0.9, 4: 0.97}
    # One syntax across the command line: no other separator.
    with pytest.raises(SystemExit, match="received '0:0.3,4:0.8'"):
        parse_schedule(["0:0.3,4:0.8"])
    with pytest.raises(SystemExit, match="received 'x=1'"):
        parse_schedule(["0=0", "x=1"])


class _RecordRates(keras.callbacks.Callback):
    """The learning rate each batch runs with (after the schedule set it)."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate)))


def _cosine_fit(epochs, initial_epoch=0, model=None):
    from isnet_keras.callbacks import CosineLearningRate

    if model is None:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer=keras.optimizers.Adam(1.0), loss="mse")
    record = _RecordRates()
    x = np.zeros((12, 3), "float32")
    model.fit(x, np.zeros((12, 2), "float32"), batch_size=4, epochs=epochs,
              initial_epoch=initial_epoch, verbose=0,
              callbacks=[CosineLearningRate(0.1), record])
    return model, record.rates


def test_cosine_learning_rate_falls_from_the_base_rate_to_zero_per_step():
    _, rates = _cosine_fit(epochs=2)
    # 2 epochs x 3 steps: step t of 6 runs at 0.1 (1 + cos(pi t / 6)) / 2.
    expected = [0.05 * (1 + np.cos(np.pi * t / 6)) for t in range(6)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
    assert rates[0] == pytest.approx(0.1) and rates[-1] < 0.01


def test_cosine_learning_rate_continues_its_curve_on_resume():
    model, _ = _cosine_fit(epochs=1)
    _, rates = _cosine_fit(epochs=2, initial_epoch=1, model=model)
    expected = [0.05 * (1 + np.cos(np.pi * t / 6)) for t in (3, 4, 5)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)


def test_cosine_learning_rate_needs_a_positive_rate_and_known_steps():
    from isnet_keras.callbacks import CosineLearningRate

    with pytest.raises(ValueError, match="base_rate"):
        CosineLearningRate(0.0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    endless = tf.data.Dataset.from_tensors(
        (tf.zeros((1, 3)), tf.zeros((1, 2)))).repeat()
    with pytest.raises(ValueError, match="steps per epoch"):
        model.fit(endless.take(2).repeat(1).filter(lambda x, y: True),
                  epochs=1, verbose=0, callbacks=[CosineLearningRate(0.1)])
