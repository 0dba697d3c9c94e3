"""Tests of the Dirichlet-posterior scores against closed-form Beta laws."""

import json

import numpy as np
import pytest
from scipy import optimize, stats

from isnet_keras.metrics import bayesian_metrics, hdi

NUM_SAMPLES = 100_000


def beta_hdi(a, b, prob=0.95):
    """Shortest interval of Beta(a, b) holding `prob`, by minimising width."""
    law = stats.beta(a, b)
    width = lambda lower_tail: law.ppf(lower_tail + prob) - law.ppf(lower_tail)
    best = optimize.minimize_scalar(
        width, bounds=(0.0, 1.0 - prob), method="bounded", options={"xatol": 1e-10}
    )
    return law.ppf(best.x), law.ppf(best.x + prob)


def assert_matches_beta(summary, a, b, num_samples=NUM_SAMPLES):
    law = stats.beta(a, b)
    # Monte-Carlo standard error of the mean is std / sqrt(S); allow 5 of them.
    assert summary["mean"] == pytest.approx(law.mean(), abs=5 * law.std() / np.sqrt(num_samples))
    assert summary["std"] == pytest.approx(law.std(), rel=0.02)
    low, high = beta_hdi(a, b)
    assert summary["hdi_low"] == pytest.approx(low, abs=max(0.004, 0.05 * law.std()))
    assert summary["hdi_high"] == pytest.approx(high, abs=max(0.004, 0.05 * law.std()))


# ---------------------------------------------------------------- hdi


def test_hdi_of_symmetric_unimodal_samples_is_central_interval():
    samples = np.random.default_rng(1).normal(size=200_000)
    low, high = hdi(samples, 0.95)
    central = stats.norm.ppf([0.025, 0.975])
    assert low == pytest.approx(central[0], abs=0.03)
    assert high == pytest.approx(central[1], abs=0.03)


def test_hdi_picks_narrowest_window_of_ceil_p_times_s_draws():
    # ceil(0.5 * 6) = 3 draws; windows [0,1,2] width 2, [1,2,2.5] width 1.5,
    # [2,2.5,2.6] width 0.6, [2.5,2.6,9] width 6.5.
    assert hdi([9.0, 2.5, 0.0, 2.0, 1.0, 2.6], 0.5) == (2.0, 2.6)


def test_hdi_of_skewed_law_is_shorter_than_equal_tailed_interval():
    samples = np.random.default_rng(2).exponential(size=100_000)
    low, high = hdi(samples, 0.9)
    # The HDI of Exp(1) with mass 0.9 is [0, -ln 0.1].
    assert low == pytest.approx(0.0, abs=1e-3)
    assert high == pytest.approx(-np.log(0.1), abs=0.03)


@pytest.mark.parametrize("prob", [0.0, 1.0, -0.2, 1.5])
def test_hdi_rejects_probability_outside_unit_interval(prob):
    with pytest.raises(ValueError, match="prob"):
        hdi([1.0, 2.0], prob)


def test_hdi_rejects_empty_samples():
    with pytest.raises(ValueError, match="empty"):
        hdi([], 0.9)


# ---------------------------------------------------------------- posterior laws


@pytest.fixture(scope="module")
def two_class_result():
    return bayesian_metrics([[30, 5], [8, 12]], prior=1.0, num_samples=NUM_SAMPLES, seed=3)


def test_two_class_recall_is_beta(two_class_result):
    # Aggregation property: (θ00, θ01) / row_0 ~ Dirichlet(α00, α01), so
    # recall_0 = θ00 / (θ00 + θ01) ~ Beta(1 + 30, 1 + 5); likewise for class 1.
    recall = two_class_result["recall"]["per_class"]
    assert_matches_beta(recall[0], 31, 6)
    assert_matches_beta(recall[1], 13, 9)


def test_two_class_precision_is_beta(two_class_result):
    # precision_0 = θ00 / (θ00 + θ10) ~ Beta(1 + 30, 1 + 8).
    precision = two_class_result["precision"]["per_class"]
    assert_matches_beta(precision[0], 31, 9)
    assert_matches_beta(precision[1], 13, 6)


def test_two_class_specificity_of_one_class_is_recall_of_the_other(two_class_result):
    # With two classes the negatives of class 0 are the samples of class 1.
    assert_matches_beta(two_class_result["specificity"]["per_class"][0], 13, 9)
    assert_matches_beta(two_class_result["specificity"]["per_class"][1], 31, 6)


def test_accuracy_and_specificity_are_beta_for_three_classes():
    counts = np.array([[20, 3, 1], [4, 15, 6], [0, 2, 9]])
    prior = 0.5
    result = bayesian_metrics(counts, prior=prior, num_samples=NUM_SAMPLES, seed=4)
    alpha = counts + prior
    # Accuracy = Σ θ_kk aggregates the diagonal cells against the others:
    # Beta(trace(C) + K·prior, (ΣC − trace(C)) + (K² − K)·prior).
    assert_matches_beta(
        result["accuracy"], np.trace(alpha), alpha.sum() - np.trace(alpha)
    )
    for k in range(3):
        others = [i for i in range(3) if i != k]
        true_negative = alpha[np.ix_(others, others)].sum()
        false_positive = alpha[others, k].sum()
        assert_matches_beta(
            result["specificity"]["per_class"][k], true_negative, false_positive
        )
        false_negative = alpha[k, others].sum()
        assert_matches_beta(
            result["recall"]["per_class"][k], alpha[k, k], false_negative
        )


def test_all_scores_match_numpy_monte_carlo_with_spec_formulas():
    counts = np.array([[12, 3, 0], [2, 7, 5], [1, 1, 9]])
    prior = 1.0
    result = bayesian_metrics(counts, prior=prior, num_samples=NUM_SAMPLES, seed=5)

    theta = np.random.default_rng(6).dirichlet((counts + prior).ravel(), size=NUM_SAMPLES)
    theta = theta.reshape(-1, 3, 3)
    diagonal = np.diagonal(theta, axis1=1, axis2=2)
    row = theta.sum(axis=2)
    col = theta.sum(axis=1)
    precision = diagonal / col
    recall = diagonal / row
    specificity = (1 - row - col + diagonal) / (1 - row)
    f1 = 2 * precision * recall / (precision + recall)
    reference = {"precision": precision, "recall": recall,
                 "specificity": specificity, "f1": f1}
    for name, values in reference.items():
        for k in range(3):
            got = result[name]["per_class"][k]
            tolerance = 6 * values[:, k].std() / np.sqrt(NUM_SAMPLES)
            assert got["mean"] == pytest.approx(values[:, k].mean(), abs=tolerance)
            assert got["std"] == pytest.approx(values[:, k].std(), rel=0.03)
        macro = values.mean(axis=1)
        assert result[name]["macro"]["mean"] == pytest.approx(
            macro.mean(), abs=6 * macro.std() / np.sqrt(NUM_SAMPLES)
        )
        assert result[name]["macro"]["std"] == pytest.approx(macro.std(), rel=0.03)
        low, high = hdi(macro, 0.95)
        assert result[name]["macro"]["hdi_low"] == pytest.approx(low, abs=0.01)
        assert result[name]["macro"]["hdi_high"] == pytest.approx(high, abs=0.01)
    assert result["balanced_accuracy"] == result["recall"]["macro"]


def test_result_layout_and_json_round_trip(two_class_result):
    assert set(two_class_result) == {
        "precision", "recall", "specificity", "f1", "accuracy", "balanced_accuracy"
    }
    for name in ("precision", "recall", "specificity", "f1"):
        assert len(two_class_result[name]["per_class"]) == 2
        assert set(two_class_result[name]["macro"]) == {"mean", "std", "hdi_low", "hdi_high"}
    assert json.loads(json.dumps(two_class_result)) == two_class_result


def test_tiny_prior_with_empty_matrix_gives_finite_scores():
    # Gamma draws with concentration 0.01 can underflow to exactly zero.
    result = bayesian_metrics([[0, 0], [0, 0]], prior=0.01, num_samples=20_000, seed=0)
    flat = json.dumps(result)
    assert "NaN" not in flat and "Infinity" not in flat


# ---------------------------------------------------------------- seeds


def test_same_seed_gives_identical_result_and_other_seed_differs():
    counts = [[10, 2, 1], [3, 8, 0], [1, 1, 6]]
    first = bayesian_metrics(counts, num_samples=5_000, seed=11)
    second = bayesian_metrics(counts, num_samples=5_000, seed=11)
    other = bayesian_metrics(counts, num_samples=5_000, seed=12)
    assert first == second
    assert first != other
    assert first["accuracy"]["mean"] == pytest.approx(other["accuracy"]["mean"], abs=0.01)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "matrix, message",
    [
        ([1, 2, 3, 4], "2-D"),
        ([[[1, 2], [3, 4]]], "2-D"),
        ([[1, 2, 3], [4, 5, 6]], "square"),
        ([[1, -2], [3, 4]], "non-negative"),
        ([[1, 2.5], [3, 4]], "integers"),
        ([[1, 2], [3]], "rectangular|2-D"),
        ([["a", "b"], ["c", "d"]], "numbers"),
        ([[5]], "at least 2 classes"),
        ([[1, np.nan], [3, 4]], "NaN"),
    ],
)
def test_invalid_confusion_matrix_is_rejected(matrix, message):
    with pytest.raises(ValueError, match=message):
        bayesian_metrics(matrix, num_samples=10)


def test_float_matrix_with_integer_values_is_accepted():
    result = bayesian_metrics(np.array([[3.0, 1.0], [0.0, 2.0]]), num_samples=100)
    assert 0 < result["accuracy"]["mean"] < 1


@pytest.mark.parametrize("prior", [0, -1.0, float("nan"), float("inf")])
def test_non_positive_prior_is_rejected(prior):
    with pytest.raises(ValueError, match="prior"):
        bayesian_metrics([[1, 0], [0, 1]], prior=prior, num_samples=10)


@pytest.mark.parametrize("hdi_prob", [0.0, 1.0, 1.2, -0.5])
def test_hdi_prob_outside_unit_interval_is_rejected(hdi_prob):
    with pytest.raises(ValueError, match="hdi_prob"):
        bayesian_metrics([[1, 0], [0, 1]], hdi_prob=hdi_prob, num_samples=10)


@pytest.mark.parametrize(
    "keyword, value", [("num_samples", 1), ("num_samples", 10.5), ("seed", 2**40)]
)
def test_bad_sample_count_or_seed_is_rejected(keyword, value):
    with pytest.raises(ValueError, match=keyword):
        bayesian_metrics([[1, 0], [0, 1]], **{keyword: value})
