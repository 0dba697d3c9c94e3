"""The foreground band's default: C2 widened to the untrained network's
relevance at the start of the first fit (isnet_keras.foreground_bands)."""

import keras
import numpy as np
import pytest

from isnet_keras import build_isnet, foreground_bands
from isnet_keras.losses import GWRPHeatmapLoss

SIZE, CLASSES, BATCH = 16, 3, 8


def _batch_norm_cnn():
    """Batch norm after every convolution, trained from random weights."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(name="hidden")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(x))


def _data(count=32):
    rng = np.random.default_rng(1)
    images = rng.uniform(0.0, 1.0, (count, SIZE, SIZE, 1)).astype("float32")
    masks = np.zeros((count, SIZE, SIZE, 1), "float32")
    masks[:, 4:12, 4:12] = 1.0
    labels = np.arange(count) % CLASSES
    return images, {"label": labels, "mask": masks}


def _isnet(c2=0.5, **kwargs):
    """A band far below any initial relevance, so that widening shows."""
    return build_isnet(
        _batch_norm_cnn(), deep_supervision=["hidden"],
        heatmap_loss=GWRPHeatmapLoss(C1=0.05, C2=c2),
        hidden_losses=[GWRPHeatmapLoss(C1=0.05, C2=c2, channels="sum")],
        **kwargs)


def _medians(isnet, images):
    """Median foreground totals of the first two batches, measured with
    the same weights before `fit`."""
    totals = isnet.foreground_totals([images[:BATCH],
                                      images[BATCH:2 * BATCH]])
    return [float(np.median(values)) for values in totals]


def test_fit_raises_each_upper_bound_to_twice_the_initial_median_total():
    images, targets = _data()
    isnet = _isnet()
    medians = _medians(isnet, images)
    assert min(medians) > 0.5  # the test's premise: out of the band
    isnet.compile()
    isnet.fit(images, targets, batch_size=BATCH, epochs=1, verbose=0)
    assert isnet.heatmap_loss.C2 == pytest.approx(2 * medians[0], rel=1e-5)
    assert isnet.hidden_losses[0].C2 == pytest.approx(2 * medians[1],
                                                      rel=1e-5)
    assert (isnet.heatmap_loss.C1, isnet.hidden_losses[0].C1) == (0.05, 0.05)
    assert isnet.foreground_band == "fixed"


def test_a_band_above_the_initial_relevance_is_kept():
    images, targets = _data()
    isnet = _isnet(c2=1e6)
    isnet.compile()
    isnet.fit(images, targets, batch_size=BATCH, epochs=1, verbose=0)
    assert [loss.C2 for loss in [isnet.heatmap_loss, *isnet.hidden_losses]
            ] == [1e6, 1e6]


def test_a_fixed_band_is_left_as_given():
    images, targets = _data()
    isnet = _isnet(foreground_band="fixed")
    isnet.compile()
    isnet.fit(images, targets, batch_size=BATCH, epochs=1, verbose=0)
    assert [loss.C2 for loss in [isnet.heatmap_loss, *isnet.hidden_losses]
            ] == [0.5, 0.5]


def test_the_widened_band_is_saved_and_not_measured_again(tmp_path):
    images, targets = _data()
    isnet = _isnet()
    isnet.compile()
    isnet.fit(images, targets, batch_size=BATCH, epochs=1, verbose=0)
    widened = [isnet.heatmap_loss.C2, isnet.hidden_losses[0].C2]
    isnet.save(tmp_path / "isnet.keras")
    loaded = keras.models.load_model(tmp_path / "isnet.keras")
    assert loaded.foreground_band == "fixed"
    assert [loaded.heatmap_loss.C2, loaded.hidden_losses[0].C2] == widened
    # A second fit, from trained weights, keeps the band.
    isnet.fit(images, targets, batch_size=BATCH, epochs=1, verbose=0)
    assert [isnet.heatmap_loss.C2, isnet.hidden_losses[0].C2] == widened


def test_batches_read_ahead_from_an_iterator_are_still_trained_on():
    images, targets = _data()

    def batches():
        for start in range(0, len(images), BATCH):
            rows = slice(start, start + BATCH)
            yield images[rows], {"label": targets["label"][rows],
                                 "mask": targets["mask"][rows]}

    class CountSteps(keras.callbacks.Callback):
        steps = 0

        def on_train_batch_end(self, batch, logs=None):
            CountSteps.steps += 1

    isnet = _isnet()
    medians = _medians(isnet, images)
    isnet.compile()
    isnet.fit(batches(), epochs=1, steps_per_epoch=len(images) // BATCH,
              shuffle=False,
              verbose=0, callbacks=[CountSteps()])
    assert CountSteps.steps == len(images) // BATCH
    assert isnet.heatmap_loss.C2 == pytest.approx(2 * medians[0], rel=1e-5)


def test_a_dual_isnet_widens_each_of_its_two_maps_on_its_own():
    images, targets = _data()
    isnet = build_isnet(_batch_norm_cnn(), variant="dual",
                        deep_supervision=(),
                        heatmap_loss=GWRPHeatmapLoss(C1=0.05, C2=0.5))
    totals = isnet.foreground_totals([images[:BATCH],
                                      images[BATCH:2 * BATCH]])[0]
    isnet.compile()
    isnet.fit(images, targets, batch_size=BATCH, epochs=1, verbose=0)
    expected = np.maximum(0.5, 2 * np.median(totals, axis=0))
    np.testing.assert_allclose(isnet.heatmap_loss.C2, expected, rtol=1e-5)
    assert len(isnet.heatmap_loss.C2) == 2


def test_unknown_foreground_band_is_refused():
    with pytest.raises(ValueError, match="foreground_band must be one of"):
        build_isnet(_batch_norm_cnn(), foreground_band="tuned")


def test_a_non_finite_median_leaves_the_band():
    isnet = _isnet()
    band = foreground_bands._widened(
        isnet.heatmap_loss, np.array([[np.nan], [np.nan]]), 2.0)
    assert band == {"C1": 0.05, "C2": 0.5}
