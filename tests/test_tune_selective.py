"""`training/tune_selective.py`: the shortcut audit adds up."""

import dataclasses
import pathlib
import sys

import keras
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))

import tune_selective  # noqa: E402

from isnet_keras.bench import bias  # noqa: E402


@pytest.fixture(scope="module")
def bench():
    config = dataclasses.replace(bias.BiasBenchConfig(), data="digits",
                                 fast=True)
    return bias._load(config)


def test_audit_of_a_linear_classifier_splits_its_logit_change(bench):
    # A bias-free linear classifier conserves relevance up to the
    # stabiliser (|sum R - logit| <= epsilon = 0.01 per image): the logit
    # change a shape causes equals the relevance change, which is box +
    # digit + rest.
    rng = np.random.default_rng(0)
    classifier = keras.Sequential([
        keras.Input(bench.train.images.shape[1:]), keras.layers.Flatten(),
        keras.layers.Dense(10, use_bias=False)])
    classifier.layers[-1].kernel.assign(
        rng.normal(size=classifier.layers[-1].kernel.shape))
    audit = tune_selective.shortcut_audit(classifier, bench, count=40)
    logit = audit["shape_class_logit_change"]
    assert abs(logit) > 0.5
    total = audit["shape_class_relevance_total_change"]
    assert abs(total - logit) <= 2 * 0.01
    parts = sum(audit[f"shape_class_relevance_on_{part}_change"]
                for part in ("box", "digit", "rest"))
    np.testing.assert_allclose(parts, total, rtol=1e-4)
