"""`bench.baseline_tuning`: RRR's lambda from its paper's rule, measured on
the validation split only."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.bench import baseline_tuning
from isnet_keras.bench.bias import BiasBenchConfig
from isnet_keras.data.bias import BiasBenchmark, ImageSet

SIZE, CLASSES = 12, 3


def _split(count, seed):
    """A class-coded 4x4 blob in the centre (the mask) and a class-coded
    corner square in the background (the shortcut)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.int32) % CLASSES
    images = rng.uniform(0, 0.1, (count, SIZE, SIZE, 1)).astype("float32")
    masks = np.zeros_like(images)
    masks[:, 4:8, 4:8] = 1
    for i, label in enumerate(labels):
        images[i, 4:8, 4:8, 0] += 0.3 * (label + 1)
        images[i, :2, 2 * label:2 * label + 2, 0] = 1.0
    return ImageSet(images, masks, labels)


class _Untouchable:
    """A split or test-set dict that fails the test when anything reads
    it."""

    def __init__(self, what):
        object.__setattr__(self, "what", what)

    def __getattr__(self, name):
        raise AssertionError(f"the tuning read the {self.what} ({name})")

    def __getitem__(self, key):
        raise AssertionError(f"the tuning read the {self.what}")

    def __iter__(self):
        raise AssertionError(f"the tuning read the {self.what}")

    def __len__(self):
        raise AssertionError(f"the tuning read the {self.what}")


def _shortcut_trainer(trained):
    """Stands in for `bias.train_model` without training: a linear model
    that reads only the background corner squares, its logits shrinking as
    lambda grows (as RRR's do), like a model RRR trained with lambda."""

    def train_model(name, bench, config, epochs):
        assert name == "rrr"
        lam = config.rrr_penalty
        trained.append(lam)
        kernel = np.zeros((SIZE, SIZE, CLASSES), "float32")
        for k in range(CLASSES):
            kernel[:2, 2 * k:2 * k + 2, k] = 1.0
        scale = 3.0 / (1.0 + lam) ** 0.75
        classifier = keras.Sequential([keras.Input((SIZE, SIZE, 1)),
                                       keras.layers.Flatten(),
                                       keras.layers.Dense(CLASSES)])
        classifier.layers[-1].set_weights(
            [scale * kernel.reshape(-1, CLASSES),
             np.zeros(CLASSES, "float32")])
        return classifier, None, 0.0

    return train_model


def _terms_by_hand(classifier, split):
    """Mean CE and mean `sum ((1 - M) * d/dx sum_k log p_k)^2` per image."""
    images = tf.constant(split.images)
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = classifier(images, training=False)
        summed = tf.reduce_sum(tf.nn.log_softmax(logits))
    gradient = tape.gradient(summed, images).numpy()
    penalty = np.sum(((1 - split.masks) * gradient) ** 2, axis=(1, 2, 3))
    cross_entropy = tf.keras.losses.sparse_categorical_crossentropy(
        split.labels, logits, from_logits=True).numpy()
    return float(np.mean(cross_entropy)), float(np.mean(penalty))


def test_the_balanced_lambda_weighs_the_penalty_like_the_validation_ce():
    val = _split(24, seed=2)
    # Only the validation split can be read: the training split and the
    # test sets fail the test when touched (the stand-in trainer needs
    # neither).
    bench = BiasBenchmark(name="shapes", source="synthetic",
                          train=_Untouchable("training split"), val=val,
                          test=_Untouchable("test sets"), split_indices={})
    trained = []
    record, model = baseline_tuning.tune_rrr(
        bench, BiasBenchConfig(verbose=0), epochs=1,  # from lambda = 1000
        train_model=_shortcut_trainer(trained))

    # From lambda = 1000 (weighted penalty 2.5 decades below the CE) one
    # decade down balances the terms.
    balanced = next(trial for trial in record["trials"]
                    if trial["lambda"] == record["balanced_lambda"])
    weighted = balanced["lambda"] * balanced["penalty"]
    assert abs(math.log10(weighted / balanced["cross_entropy"])) <= 1.0
    assert record["balanced_lambda"] == 100.0
    assert abs(balanced["balance_decades"]) <= 0.5
    # The grid around it: lambda / 10 (one more training), lambda, 10
    # lambda; the lowest validation CE + 100 * penalty wins.
    assert sorted(trained) == [10.0, 100.0, 1000.0]
    objectives = {t["lambda"]: t["cross_entropy"] + 100.0 * t["penalty"]
                  for t in record["trials"]}
    assert record["lambda"] == min(objectives, key=objectives.get)
    assert record["split"] == "val" and record["validation_images"] == 24

    # The recorded terms are the selected model's on the validation
    # images, recomputed here by hand.
    ce, penalty = _terms_by_hand(model.classifier, val)
    assert record["selected"]["cross_entropy"] == pytest.approx(ce,
                                                                rel=1e-4)
    assert record["selected"]["penalty"] == pytest.approx(penalty,
                                                          rel=1e-3)
    json.dumps(record)  # results.json takes it as it is


def test_the_rule_is_the_power_of_ten_closest_to_the_ratio():
    assert baseline_tuning.balancing_lambda(2.0, 0.004) == 1000.0
    assert baseline_tuning.balancing_lambda(2.3, 3.4e-5) == 1e5
    assert baseline_tuning.balancing_lambda(1.0, 1.0) == 1.0
    with pytest.raises(ValueError, match="positive"):
        baseline_tuning.balancing_lambda(2.0, 0.0)


def test_masked_input_sees_the_image_times_its_mask():
    from isnet_keras.baselines import MaskedInputClassifier
    from isnet_keras.bench.bias import bench_classifier

    split = _split(12, seed=3)
    classifier = bench_classifier((SIZE, SIZE, 1), CLASSES)
    masked = MaskedInputClassifier(classifier)
    masked.compile(run_eagerly=True)
    logs = masked.evaluate(split.images, {"label": split.labels,
                                          "mask": split.masks},
                           verbose=0, return_dict=True)
    logits = classifier(split.images * split.masks, training=False)
    expected = tf.keras.losses.sparse_categorical_crossentropy(
        split.labels, logits, from_logits=True).numpy().mean()
    assert logs["classification_loss"] == pytest.approx(expected, rel=1e-5)
    record = baseline_tuning.masked_input_record()
    assert record["tuned"] is False and "image * mask" in record["inputs"]


@pytest.mark.parametrize("flags, tuned", [([], False),
                                          (["--tune-baselines"], True)])
def test_the_command_line_passes_the_tuning_on(monkeypatch, flags, tuned):
    from isnet_keras import cli
    from isnet_keras.bench import bias

    configs = []
    monkeypatch.setattr(bias, "run_bias_benchmark", configs.append)
    args = cli.build_parser().parse_args(["bench", "bias", *flags])
    assert args.func(args) == 0
    assert configs[0].tune_baselines is tuned
    assert configs[0].rrr_penalty == 1.0  # the default run's lambda
