"""Baselines: the RRR penalty and the masked input against independent
computations, and the plain classifier's indifference to masks."""

import keras
import numpy as np
import pytest

from isnet_keras import errors
from isnet_keras.baselines import (MaskedInputClassifier, PlainClassifier,
                                   RRRClassifier)
from tests import support
from tests.support import floatx

SHAPE = (6, 5, 1)
NUM_CLASSES = 4


def _linear_classifier(softmax=False, seed=0):
    """Flatten + Dense: its input gradient has a closed form."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(SHAPE),
        keras.layers.Flatten(),
        keras.layers.Dense(NUM_CLASSES,
                           activation="softmax" if softmax else None),
    ])


def _batch(seed=1, batch=5):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 1.0, (batch, *SHAPE))
    labels = rng.integers(0, NUM_CLASSES, batch)
    masks = (rng.uniform(size=(batch, *SHAPE)) > 0.5).astype("float64")
    return images, labels, masks


def _reference_rrr_penalty(classifier, images, masks):
    """`mean_b sum_pixels ((1 - M) * d/dx sum_n log p_n)^2` by hand.

    For logits `z = x W + b`, `sum_n log p_n = sum_n z_n - K logsumexp(z)`,
    so its gradient is `W (1 - K p)`.
    """
    kernel, bias = (np.asarray(w, "float64") for w in
                    classifier.layers[-1].get_weights())
    flat = images.reshape(len(images), -1)
    logits = flat @ kernel + bias
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    gradient = (1.0 - NUM_CLASSES * probs) @ kernel.T
    background = 1.0 - masks.reshape(len(images), -1)
    return float(np.mean(np.sum((background * gradient) ** 2, axis=-1)))


def _one_step_logs(model, images, labels, masks):
    # A zero learning rate: the logged losses are those of the given weights.
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    return model.train_on_batch(images, {"label": labels, "mask": masks},
                                return_dict=True)


@pytest.mark.parametrize("softmax", [False, True])
def test_rrr_penalty_equals_closed_form_input_gradient(softmax):
    with floatx("float64"):
        classifier = _linear_classifier(softmax=softmax)
        images, labels, masks = _batch()
        expected = _reference_rrr_penalty(classifier, images, masks)
        logs = _one_step_logs(RRRClassifier(classifier, penalty=7.0),
                              images, labels, masks)
    assert logs["input_gradient_loss"] == pytest.approx(expected, rel=1e-6)
    assert logs["loss"] == pytest.approx(
        logs["classification_loss"] + 7.0 * expected, rel=1e-6)


def test_rrr_penalty_vanishes_when_everything_is_foreground():
    with floatx("float64"):
        classifier = _linear_classifier()
        images, labels, _ = _batch()
        logs = _one_step_logs(RRRClassifier(classifier), images, labels,
                              np.ones_like(images))
    assert logs["input_gradient_loss"] == 0.0
    assert logs["loss"] == pytest.approx(logs["classification_loss"])


def test_rrr_with_zero_penalty_trains_like_the_plain_classifier():
    images, labels, masks = (a.astype("float32") if a.dtype.kind == "f"
                             else a for a in _batch(batch=16))
    weights = {}
    for name, make in (("plain", PlainClassifier),
                       ("rrr", lambda c: RRRClassifier(c, penalty=0.0))):
        classifier = _linear_classifier(seed=3)
        model = make(classifier)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.fit(images, {"label": labels, "mask": masks}, epochs=3,
                  batch_size=8, shuffle=False, verbose=0)
        weights[name] = classifier.get_weights()
    for plain, rrr in zip(weights["plain"], weights["rrr"]):
        np.testing.assert_allclose(rrr, plain, rtol=1e-5, atol=1e-6)


def test_rrr_rejects_a_negative_penalty():
    with pytest.raises(ValueError, match="penalty must be >= 0"):
        RRRClassifier(_linear_classifier(), penalty=-1.0)


def test_plain_classifier_ignores_the_masks():
    images, labels, masks = _batch()
    classifier = _linear_classifier()
    model = PlainClassifier(classifier)
    first = _one_step_logs(model, images, labels, masks)
    second = _one_step_logs(model, images, labels, 1.0 - masks)
    assert first["loss"] == pytest.approx(second["loss"])


def test_masked_input_classifier_sees_only_the_foreground():
    with floatx("float64"):
        classifier = _linear_classifier()
        images, labels, masks = _batch()
        model = MaskedInputClassifier(classifier)
        logs = _one_step_logs(model, images, labels, masks)
        logits = classifier.predict(images * masks, verbose=0)
        predicted = model.predict((images, masks), verbose=0)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    expected = -np.mean(log_probs[np.arange(len(labels)), labels])
    assert logs["classification_loss"] == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(predicted, logits, rtol=1e-10)


def test_masked_input_classifier_predict_requires_masks():
    images, _, _ = _batch()
    model = MaskedInputClassifier(_linear_classifier())
    with pytest.raises(ValueError, match=r"needs \(images, masks\)"):
        model.predict(images, verbose=0)


def test_rrr_evaluation_reports_the_penalty_of_the_validation_data():
    with floatx("float64"):
        classifier = _linear_classifier()
        images, labels, masks = _batch()
        expected = _reference_rrr_penalty(classifier, images, masks)
        model = RRRClassifier(classifier, penalty=7.0)
        model.compile(optimizer=keras.optimizers.SGD(0.0))
        logs = model.evaluate(images, {"label": labels, "mask": masks},
                              batch_size=len(images), return_dict=True,
                              verbose=0)
    assert logs["input_gradient_loss"] == pytest.approx(expected, rel=1e-6)
    assert logs["loss"] == pytest.approx(
        logs["classification_loss"] + 7.0 * expected, rel=1e-6)


def _batch_norm_classifier(seed=0):
    """A classifier whose training-mode pass updates moving statistics."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(SHAPE),
        keras.layers.Conv2D(3, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Flatten(),
        keras.layers.Dense(NUM_CLASSES),
    ])


@pytest.mark.parametrize("optimizer", [
    lambda: keras.optimizers.Adam(1e-2),
    lambda: keras.optimizers.SGD(1e-2, momentum=0.9)],
    ids=["adam", "sgd_momentum"])
@pytest.mark.parametrize("make", [
    PlainClassifier, lambda c: RRRClassifier(c, penalty=10.0)],
    ids=["plain", "rrr"])
def test_a_non_finite_step_changes_no_variable(make, optimizer):
    images, labels, masks = (a.astype("float32") if a.dtype.kind == "f"
                             else a for a in _batch(batch=8))
    model = make(_batch_norm_classifier())
    model.compile(optimizer=optimizer())
    broken = images.copy()
    broken[1, 2, 3, 0] = np.nan
    support.check_a_skipped_step_changes_nothing(
        model, images, {"label": labels, "mask": masks}, broken)


def test_evaluation_logs_no_skipped_steps():
    images, labels, masks = _batch()
    model = PlainClassifier(_linear_classifier())
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = model.evaluate(images, {"label": labels, "mask": masks},
                          return_dict=True, verbose=0)
    assert "skipped_steps" not in logs and "loss" in logs


@pytest.mark.parametrize("make", [PlainClassifier, RRRClassifier],
                         ids=["plain", "rrr"])
def test_weight_regularizers_of_the_classifier_are_in_the_loss(make):
    images, labels, masks = _batch()
    losses = []
    for l2 in (0.0, 0.25):
        keras.utils.set_random_seed(0)
        classifier = keras.Sequential([
            keras.Input(SHAPE), keras.layers.Flatten(),
            keras.layers.Dense(NUM_CLASSES, kernel_regularizer=(
                keras.regularizers.L2(l2) if l2 else None))])
        model = make(classifier)
        model.compile(optimizer=keras.optimizers.SGD(0.0))
        losses.append(_one_step_logs(model, images, labels, masks)["loss"])
    kernel = classifier.get_layer(index=-1).kernel.numpy().astype(np.float64)
    penalty = 0.25 * float(np.sum(kernel ** 2))
    assert penalty > 0.01
    assert losses[1] - losses[0] == pytest.approx(penalty, rel=1e-4)


@pytest.mark.parametrize("make", [PlainClassifier, RRRClassifier,
                                  MaskedInputClassifier],
                         ids=["plain", "rrr", "masked_input"])
def test_labels_out_of_range_get_the_library_error(make):
    images, labels, masks = _batch()
    labels = labels.copy()
    labels[2] = NUM_CLASSES
    model = make(_linear_classifier())
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    with pytest.raises(errors.InvalidDataError, match=(
            rf"^labels out of range: must lie in \[0, {NUM_CLASSES - 1}\]; "
            rf"received labels from \d to {NUM_CLASSES}")):
        model.fit(images, {"label": labels, "mask": masks}, epochs=1,
                  verbose=0)


def test_non_binary_masks_and_fractional_labels_get_the_library_error():
    images, labels, masks = _batch()
    model = RRRClassifier(_linear_classifier())
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    with pytest.raises(errors.InvalidDataError, match="^non-binary mask"):
        model.evaluate(images, {"label": labels, "mask": masks * 0.5},
                       verbose=0)
    with pytest.raises(ValueError, match="integer class indices"):
        model.fit(images, {"label": labels + 0.5, "mask": masks}, verbose=0)


def test_a_baseline_is_rebuilt_from_its_config():
    model = RRRClassifier(_linear_classifier(), penalty=3.0, pixel_scale=2.0,
                          reduction="sum", l2=0.5)
    copy = RRRClassifier.from_config(model.get_config())
    assert (copy.penalty, copy.pixel_scale, copy.reduction, copy.l2,
            copy.num_classes, copy.name) == (3.0, 2.0, "sum", 0.5,
                                             NUM_CLASSES, model.name)
    assert len(copy.classifier.layers) == len(model.classifier.layers)


def test_rrr_leaves_images_without_annotation_out_of_its_penalty():
    with floatx("float64"):
        classifier = _linear_classifier()
        images, labels, masks = _batch()
        partial = masks.copy()
        partial[[1, 3]] = -1.0  # two images without annotation
        annotated = [0, 2, 4]
        # The batch mean over all five images of the annotated ones' terms.
        expected = _reference_rrr_penalty(
            classifier, images[annotated], masks[annotated]) * 3 / 5
        logs = _one_step_logs(RRRClassifier(classifier, penalty=7.0),
                              images, labels, partial)
    assert logs["input_gradient_loss"] == pytest.approx(expected, rel=1e-6)


def test_plain_accepts_unannotated_masks_and_masked_input_refuses_them():
    images, labels, masks = _batch()
    unannotated = -np.ones_like(masks)
    logs = _one_step_logs(PlainClassifier(_linear_classifier()), images,
                          labels, unannotated)
    assert np.isfinite(logs["loss"])
    model = MaskedInputClassifier(_linear_classifier())
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    with pytest.raises(errors.InvalidDataError, match="^non-binary mask"):
        model.evaluate(images, {"label": labels, "mask": unannotated},
                       verbose=0)
    # A mask mixing -1 with 0/1 stays an error for every baseline.
    mixed = masks.copy()
    mixed[0, 0, 0] = -1.0
    plain = PlainClassifier(_linear_classifier())
    plain.compile(optimizer=keras.optimizers.SGD(0.0))
    with pytest.raises(errors.InvalidDataError, match="^non-binary mask"):
        plain.evaluate(images, {"label": labels, "mask": mixed}, verbose=0)
