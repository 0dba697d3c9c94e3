"""A full-integer (int8) TFLite export agrees with its Keras classifier.

A small CNN is trained on a separable synthetic task (a bright 4x4 square
in the left or right half of a 16x16 image), exported with
`export_tflite(quantize="int8")` calibrated on training images, and run with
the library's LiteRT runner on fresh images of the same distribution.
"""

import keras
import numpy as np

from isnet_keras import export

# Measured (CPU, TF 2.21, 2026-12) on the 200 test images below: top-1
# agreement 100 %, largest |p_int8 - p_keras| 0.010, mean 0.0023. The int8
# softmax output has scale 1/256, so each probability is rounded by up to
# 1/512 = 0.002 at the exit alone; the rest is the int8 rounding of weights
# and activations (calibrated ranges) reaching the logits. 0.05 is five
# times the measured maximum. A calibration on the wrong scale (images x
# 0.1, clipping every activation range) gave 0.61 and 50 % agreement.
MAX_PROBABILITY_ERROR = 0.05
MEAN_PROBABILITY_ERROR = 0.01
MIN_TOP1_AGREEMENT = 0.95


def _squares(num, seed):
    """Noise in [0, 0.3] with a 4x4 square of one brightness in [0.6, 1]:
    in columns 0-6 for class 0, 8-14 for class 1."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, num)
    images = rng.uniform(0, 0.3, (num, 16, 16, 1)).astype("float32")
    for i, label in enumerate(labels):
        row = rng.integers(0, 12)
        col = rng.integers(0, 4) + 8 * label
        images[i, row:row + 4, col:col + 4] = rng.uniform(0.6, 1.0)
    return images, labels


def _trained_classifier(images, labels):
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([
        keras.Input((16, 16, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2),
    ])
    classifier.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    history = classifier.fit(images, labels, epochs=5, batch_size=32,
                             verbose=0)
    assert history.history["accuracy"][-1] >= 0.95
    return classifier


def test_int8_tflite_agrees_with_keras(tmp_path):
    train_images, train_labels = _squares(256, seed=1)
    test_images, test_labels = _squares(200, seed=2)
    classifier = _trained_classifier(train_images, train_labels)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(
        classifier.predict(test_images, verbose=0)))
    assert np.mean(expected.argmax(-1) == test_labels) >= 0.95

    path = export.export_tflite(
        classifier, tmp_path / "int8.tflite", quantize="int8",
        representative_data=train_images[:100])
    runner = export.TFLiteClassifier(path)
    assert runner.image_shape == (16, 16, 1)
    probabilities = runner.predict(test_images)
    assert probabilities.shape == (200, 2)
    assert probabilities.dtype == np.float32
    # The output is the dequantized int8 softmax: multiples of 1/256.
    steps = probabilities * 256
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=2 / 256)

    agreement = np.mean(probabilities.argmax(-1) == expected.argmax(-1))
    assert agreement >= MIN_TOP1_AGREEMENT, agreement
    error = np.abs(probabilities - expected)
    assert error.max() < MAX_PROBABILITY_ERROR, error.max()
    assert error.mean() < MEAN_PROBABILITY_ERROR, error.mean()
