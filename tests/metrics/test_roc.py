"""Tests of DeLong, Hand & Till and Wilson against plain re-computations."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from isnet_keras.metrics import (
    delong_auc,
    delong_test,
    hand_till_auc,
    wilson_interval,
)
from isnet_keras.metrics.roc import _midranks


def synthetic_binary(num_positives=60, num_negatives=80, shift=1.0, seed=0, decimals=1):
    """Normal scores, positives shifted up; rounding creates ties."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(num_positives, int), np.zeros(num_negatives, int)]
    scores = rng.normal(size=labels.size) + shift * labels
    return labels, np.round(scores, decimals)


def plain_delong(labels, score_rows):
    """DeLong et al. (1988) with the O(m·n) kernel ψ, written as directly as possible."""
    positives = [[s for s, y in zip(row, labels) if y == 1] for row in score_rows]
    negatives = [[s for s, y in zip(row, labels) if y == 0] for row in score_rows]
    m, n = len(positives[0]), len(negatives[0])

    def psi(x, y):
        return 1.0 if x > y else 0.5 if x == y else 0.0

    v10 = np.array([[np.mean([psi(x, y) for y in neg]) for x in pos]
                    for pos, neg in zip(positives, negatives)])
    v01 = np.array([[np.mean([psi(x, y) for x in pos]) for y in neg]
                    for pos, neg in zip(positives, negatives)])
    aucs = v10.mean(axis=1)
    s10 = np.array([[np.sum((v10[r] - aucs[r]) * (v10[t] - aucs[t])) / (m - 1)
                     for t in range(len(score_rows))] for r in range(len(score_rows))])
    s01 = np.array([[np.sum((v01[r] - aucs[r]) * (v01[t] - aucs[t])) / (n - 1)
                     for t in range(len(score_rows))] for r in range(len(score_rows))])
    return aucs, s10 / m + s01 / n


# ---------------------------------------------------------------- midranks


def test_midranks_equal_average_ranks():
    values = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0, 7.0])
    np.testing.assert_allclose(_midranks(values), stats.rankdata(values, method="average"))


# ---------------------------------------------------------------- DeLong AUC


def test_delong_auc_equals_mann_whitney_and_sklearn_with_ties():
    labels, scores = synthetic_binary()
    result = delong_auc(labels, scores)
    u_statistic = stats.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    assert result.auc == pytest.approx(u_statistic / (60 * 80), abs=1e-12)
    assert result.auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_delong_variance_equals_plain_quadratic_implementation():
    labels, scores = synthetic_binary(num_positives=25, num_negatives=30, seed=1)
    _, covariance = plain_delong(labels, [scores])
    assert delong_auc(labels, scores).variance == pytest.approx(covariance[0, 0], rel=1e-10)


def test_delong_variance_agrees_with_stratified_bootstrap():
    labels, scores = synthetic_binary(num_positives=120, num_negatives=150, seed=2, decimals=3)
    variance = delong_auc(labels, scores).variance
    positives, negatives = scores[labels == 1], scores[labels == 0]
    rng = np.random.default_rng(3)
    boot_labels = np.r_[np.ones(positives.size), np.zeros(negatives.size)]
    boot_aucs = [
        roc_auc_score(boot_labels, np.r_[rng.choice(positives, positives.size),
                                         rng.choice(negatives, negatives.size)])
        for _ in range(1000)
    ]
    assert variance == pytest.approx(np.var(boot_aucs, ddof=1), rel=0.2)


def test_delong_interval_is_normal_and_clipped():
    labels, scores = synthetic_binary(seed=4)
    result = delong_auc(labels, scores)
    half = 1.96 * math.sqrt(result.variance)
    assert result.ci == pytest.approx((result.auc - half, result.auc + half))

    # Nearly separable: AUC close to 1 with a positive variance, so the upper
    # bound must be clipped.
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.65, 0.6, 0.7, 0.8, 0.9])
    result = delong_auc(labels, scores)
    assert result.auc == pytest.approx(15 / 16)
    assert result.auc + 1.96 * math.sqrt(result.variance) > 1
    assert result.ci[1] == 1.0
    assert result.ci[0] == pytest.approx(result.auc - 1.96 * math.sqrt(result.variance))


def test_perfect_separation_has_zero_variance():
    result = delong_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert result == (1.0, 0.0, (1.0, 1.0))


# ---------------------------------------------------------------- paired test


def test_delong_test_matches_plain_implementation():
    labels, scores_a = synthetic_binary(num_positives=30, num_negatives=35, shift=1.2, seed=5)
    rng = np.random.default_rng(6)
    scores_b = np.round(scores_a + rng.normal(scale=0.8, size=scores_a.size), 1)
    aucs, covariance = plain_delong(labels, [scores_a, scores_b])
    expected_variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    expected_z = (aucs[0] - aucs[1]) / math.sqrt(expected_variance)

    result = delong_test(labels, scores_a, scores_b)
    assert result.auc_a == pytest.approx(aucs[0])
    assert result.auc_b == pytest.approx(aucs[1])
    assert result.variance == pytest.approx(expected_variance, rel=1e-10)
    assert result.z == pytest.approx(expected_z, rel=1e-10)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(expected_z)), rel=1e-10)


def test_delong_test_separates_good_from_random_scores():
    labels, good = synthetic_binary(num_positives=100, num_negatives=100, shift=2.0, seed=7)
    random_scores = np.random.default_rng(8).normal(size=labels.size)
    result = delong_test(labels, good, random_scores)
    assert result.z > 0
    assert result.p_value < 1e-6


def test_delong_test_of_identical_scores_is_not_significant():
    labels, scores = synthetic_binary(seed=9)
    result = delong_test(labels, scores, scores)
    assert result.difference == 0.0
    assert (result.z, result.p_value) == (0.0, 1.0)


# ---------------------------------------------------------------- Hand & Till


def brute_force_hand_till(labels, probabilities):
    num_classes = probabilities.shape[1]
    total = 0.0
    for i, j in itertools.combinations(range(num_classes), 2):
        pair = (labels == i) | (labels == j)
        a_i_given_j = roc_auc_score(labels[pair] == i, probabilities[pair, i])
        a_j_given_i = roc_auc_score(labels[pair] == j, probabilities[pair, j])
        total += (a_i_given_j + a_j_given_i) / 2
    return 2 * total / (num_classes * (num_classes - 1))


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_hand_till_equals_brute_force(num_classes):
    rng = np.random.default_rng(num_classes)
    labels = rng.integers(0, num_classes, size=200)
    labels[:num_classes] = np.arange(num_classes)
    logits = rng.normal(size=(200, num_classes)) + 1.5 * np.eye(num_classes)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probabilities = np.round(probabilities, 2)  # ties
    assert hand_till_auc(labels, probabilities) == pytest.approx(
        brute_force_hand_till(labels, probabilities), abs=1e-12
    )


def test_hand_till_of_three_classes_agrees_with_sklearn_ovo_macro():
    rng = np.random.default_rng(10)
    labels = rng.integers(0, 3, size=150)
    logits = rng.normal(size=(150, 3)) + np.eye(3)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert hand_till_auc(labels, probabilities) == pytest.approx(
        roc_auc_score(labels, probabilities, multi_class="ovo", average="macro")
    )


# ---------------------------------------------------------------- Wilson


@pytest.mark.parametrize(
    "k, n, expected",
    [
        # Values worked by hand to four decimals (z = 1.96, z² = 3.8416).
        # p̂ = 0.8: centre 0.99208/1.38416 = 0.7167,
        # half-width 1.96·sqrt(0.016 + 0.009604)/1.38416 = 0.2266.
        (8, 10, (0.4902, 0.9433)),
        # p̂ = 0: centre = half-width = 0.19208/1.38416 = 0.13877.
        (0, 10, (0.0, 0.2775)),
        # p̂ = 1: the mirror image of k = 0.
        (10, 10, (0.7225, 1.0)),
        # p̂ = 0.5, n = 100: centre 0.5,
        # half-width 1.96·sqrt(0.0025 + 0.00009604)/1.038416 = 0.0962.
        (50, 100, (0.4038, 0.5962)),
    ],
)
def test_wilson_interval_matches_hand_computed_values(k, n, expected):
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(expected[0], abs=5e-5)
    assert high == pytest.approx(expected[1], abs=5e-5)


def test_wilson_interval_uses_z():
    narrow = wilson_interval(30, 100, z=1.0)
    wide = wilson_interval(30, 100, z=2.576)
    assert wide[0] < narrow[0] < 0.3 < narrow[1] < wide[1]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "labels, scores, message",
    [
        ([0, 1, 2, 1], [0.1, 0.2, 0.3, 0.4], "binary"),
        ([0, 0, 1], [0.1, 0.2, 0.3], "both classes"),
        ([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], "both classes"),
        ([0, 0, 1, 1], [0.1, 0.2, 0.3], "has 3 values"),
        ([[0, 0, 1, 1]], [0.1, 0.2, 0.3, 0.4], "1-D"),
        ([0, 0, 1, 1], [0.1, np.nan, 0.3, 0.4], "NaN"),
    ],
)
def test_delong_auc_rejects_bad_inputs(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        delong_auc(labels, scores)


def test_delong_test_rejects_length_mismatch_of_second_scores():
    with pytest.raises(ValueError, match="scores_b"):
        delong_test([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2])


@pytest.mark.parametrize(
    "labels, probabilities, message",
    [
        ([0, 1, 2], np.ones((3, 1)), "N >= 2"),
        ([0, 1, 2], np.ones(3), "shape"),
        ([0, 1], np.ones((3, 2)), "2 labels"),
        ([0, 1, 3], np.ones((3, 3)), r"\[0, 3\)"),
        ([0, 1, 1], np.ones((3, 3)), r"classes \[2\] are missing"),
        ([0, 1, 1.5], np.ones((3, 3)), "integer"),
    ],
)
def test_hand_till_rejects_bad_inputs(labels, probabilities, message):
    with pytest.raises(ValueError, match=message):
        hand_till_auc(labels, probabilities)


@pytest.mark.parametrize(
    "k, n, message",
    [(3, 0, "n"), (5, 4, "k"), (-1, 4, "k"), (1.5, 4, "integer"), (1, 4, "z")],
)
def test_wilson_interval_rejects_bad_inputs(k, n, message):
    z = -1.0 if message == "z" else 1.96
    with pytest.raises(ValueError, match=message):
        wilson_interval(k, n, z=z)


@pytest.mark.parametrize("n", [1, 2, 6, 7, 10, 37, 100, 150, 1000, 12345])
def test_wilson_interval_contains_its_estimate_at_the_extremes(n):
    # k = n once gave an upper bound of 0.9999999999999999 < 1 = p̂.
    assert wilson_interval(n, n)[1] == 1.0
    assert wilson_interval(0, n)[0] == 0.0


def test_wilson_interval_contains_its_estimate_everywhere():
    for n in range(1, 120):
        for k in range(n + 1):
            low, high = wilson_interval(k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0, (k, n, low, high)
