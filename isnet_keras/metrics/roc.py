"""ROC statistics: DeLong AUC intervals and test, Hand & Till AUC, Wilson.

Formulas: docs/algorithm.md, "Evaluation statistics". The DeLong estimates
use the midrank formulation of Sun & Xu (IEEE Signal Processing Letters
21(11), 2014): every structural component comes from three rankings, so the
cost is O(N log N).
"""

import collections
import math
import numbers

import numpy as np
from scipy import stats

DeLongAUC = collections.namedtuple("DeLongAUC", ["auc", "variance", "ci"])
DeLongAUC.__doc__ = """Binary AUC with its DeLong variance.

Attributes:
    auc: float. Area under the ROC curve (Mann–Whitney estimate).
    variance: float. DeLong variance S10/m + S01/n of the AUC.
    ci: tuple `(low, high)`. AUC ± z·sqrt(variance), clipped to [0, 1].
"""

DeLongTest = collections.namedtuple(
    "DeLongTest", ["auc_a", "auc_b", "difference", "variance", "z", "p_value"]
)
DeLongTest.__doc__ = """Paired DeLong test of two AUCs on one labelled set.

Attributes:
    auc_a: float. AUC of the first scores.
    auc_b: float. AUC of the second scores.
    difference: float. auc_a − auc_b.
    variance: float. DeLong variance of the difference.
    z: float. difference / sqrt(variance).
    p_value: float. Two-sided normal p-value of `z`.
"""


def delong_auc(y_true, scores, z=1.96):
    """AUC of binary scores with DeLong's variance and a normal interval.

    Args:
        y_true: array-like of shape (N,), values in {0, 1} (or booleans);
            1 marks positives. At least two samples of each class are needed
            for the variance.
        scores: array-like of shape (N,), finite real numbers; higher means
            "more positive".
        z: float > 0. Normal quantile of the interval. Defaults to `1.96`
            (95 %).

    Returns:
        A `DeLongAUC(auc, variance, ci)` named tuple; `ci = (low, high)` is
        clipped to [0, 1].

    Example:

    >>> result = delong_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> result.auc
    0.75
    """
    labels = _validate_binary_labels(y_true)
    score_matrix = _validate_scores(labels, {"scores": scores})
    _check_positive(z, "z")
    aucs, covariance = _delong_covariance(labels, score_matrix)
    auc = float(aucs[0])
    variance = float(covariance[0, 0])
    half_width = z * math.sqrt(max(variance, 0.0))
    ci = (max(0.0, auc - half_width), min(1.0, auc + half_width))
    return DeLongAUC(auc=auc, variance=variance, ci=ci)


def delong_test(y_true, scores_a, scores_b):
    """Paired DeLong test: do two sets of scores on one set differ in AUC?

    The two AUCs are correlated because they share the samples; DeLong's
    covariance of the structural components accounts for that.

    Args:
        y_true: array-like of shape (N,), values in {0, 1}; at least two
            samples of each class.
        scores_a: array-like of shape (N,). Scores of the first model.
        scores_b: array-like of shape (N,). Scores of the second model.

    Returns:
        A `DeLongTest(auc_a, auc_b, difference, variance, z, p_value)` named
        tuple. When the variance of the difference is zero (e.g. identical
        rankings), `z` is 0 with p = 1 for equal AUCs, and ±inf with p = 0
        otherwise.

    Example:

    >>> y = [0, 0, 0, 1, 1, 1]
    >>> delong_test(y, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9],
    ...             [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]).p_value
    1.0
    """
    labels = _validate_binary_labels(y_true)
    score_matrix = _validate_scores(
        labels, {"scores_a": scores_a, "scores_b": scores_b}
    )
    aucs, covariance = _delong_covariance(labels, score_matrix)
    difference = float(aucs[0] - aucs[1])
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    # Rounding can leave a tiny positive variance when the true value is 0.
    variance_floor = 1e-15 * max(covariance[0, 0], covariance[1, 1], 1e-300)
    if variance <= variance_floor:
        variance = max(variance, 0.0)
        if abs(difference) <= 1e-15:
            z_value, p_value = 0.0, 1.0
        else:
            z_value, p_value = math.copysign(math.inf, difference), 0.0
    else:
        z_value = difference / math.sqrt(variance)
        p_value = float(2 * stats.norm.sf(abs(z_value)))
    return DeLongTest(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        difference=difference,
        variance=variance,
        z=float(z_value),
        p_value=p_value,
    )


def hand_till_auc(y_true, probabilities):
    """Multi-class AUC M of Hand & Till (Machine Learning 45, 2001).

    M = 2 / (N(N−1)) · Σ_{i<j} (A(i|j) + A(j|i)) / 2, where A(i|j) is the
    AUC of the score p_i separating samples of class i (positives) from
    samples of class j (negatives), ties counted as one half.

    Args:
        y_true: array-like of shape (n_samples,), integer labels in
            [0, N). Every class must occur.
        probabilities: array-like of shape (n_samples, N), N >= 2. Per-class
            scores, typically softmax outputs; rows need not sum to one.

    Returns:
        M as a Python float.

    Example:

    >>> hand_till_auc([0, 1, 2], [[0.8, 0.1, 0.1],
    ...                           [0.2, 0.7, 0.1],
    ...                           [0.1, 0.2, 0.7]])
    1.0
    """
    labels, scores = _validate_multiclass(y_true, probabilities)
    num_classes = scores.shape[1]
    pair_sum = 0.0
    for i in range(num_classes):
        for j in range(i + 1, num_classes):
            in_pair = (labels == i) | (labels == j)
            pair_labels = labels[in_pair]
            a_i_given_j = _mann_whitney_auc(pair_labels == i, scores[in_pair, i])
            a_j_given_i = _mann_whitney_auc(pair_labels == j, scores[in_pair, j])
            pair_sum += (a_i_given_j + a_j_given_i) / 2
    return float(2 * pair_sum / (num_classes * (num_classes - 1)))


def wilson_interval(k, n, z=1.96):
    """Wilson score interval for a binomial proportion k/n.

    With p̂ = k/n: centre = (p̂ + z²/(2n)) / (1 + z²/n) and
    half-width = z·sqrt(p̂(1−p̂)/n + z²/(4n²)) / (1 + z²/n).

    Args:
        k: int, 0 <= k <= n. Number of successes.
        n: int > 0. Number of trials.
        z: float > 0. Normal quantile. Defaults to `1.96` (95 %).

    Returns:
        A tuple `(low, high)` of floats within [0, 1], with
        `low <= k / n <= high` (so k = n gives `high == 1.0` exactly).

    Example:

    >>> low, high = wilson_interval(8, 10)
    >>> round(low, 4), round(high, 4)
    (0.4902, 0.9433)
    """
    for value, name in ((k, "k"), (n, "n")):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"`{name}` must be an integer; got {value!r}.")
    if n <= 0:
        raise ValueError(f"`n` must be > 0; got {n}.")
    if not 0 <= k <= n:
        raise ValueError(f"`k` must satisfy 0 <= k <= n = {n}; got {k}.")
    _check_positive(z, "z")
    proportion = k / n
    z_squared = z * z
    denominator = 1 + z_squared / n
    centre = (proportion + z_squared / (2 * n)) / denominator
    half_width = (
        z
        * math.sqrt(proportion * (1 - proportion) / n + z_squared / (4 * n * n))
        / denominator
    )
    # In exact arithmetic the interval contains p̂ and lies within [0, 1];
    # in floating point k = n gave an upper bound of 0.9999999999999999
    # (and k = 0 can miss 0 likewise), so the bounds are clamped to both.
    low = min(max(0.0, centre - half_width), proportion)
    high = max(min(1.0, centre + half_width), proportion)
    return low, high


def _midranks(values):
    """Ranks 1..N of a 1-D array, tied values sharing their average rank."""
    _, group_of_value, group_sizes = np.unique(
        values, return_inverse=True, return_counts=True
    )
    last_rank_of_group = np.cumsum(group_sizes)
    midrank_of_group = last_rank_of_group - (group_sizes - 1) / 2
    return midrank_of_group[group_of_value]


def _structural_components(is_positive, scores):
    """DeLong's V10 (one per positive) and V01 (one per negative).

    V10_i is the fraction of negatives scored below positive i, V01_j the
    fraction of positives scored above negative j (ties count one half).
    Both follow from the difference between a sample's midrank in the pooled
    set and its midrank within its own class.
    """
    num_positives = int(is_positive.sum())
    num_negatives = is_positive.size - num_positives
    pooled_ranks = _midranks(scores)
    positive_ranks = _midranks(scores[is_positive])
    negative_ranks = _midranks(scores[~is_positive])
    v10 = (pooled_ranks[is_positive] - positive_ranks) / num_negatives
    v01 = 1.0 - (pooled_ranks[~is_positive] - negative_ranks) / num_positives
    return v10, v01


def _mann_whitney_auc(is_positive, scores):
    v10, _ = _structural_components(is_positive, scores)
    return float(v10.mean())


def _delong_covariance(labels, score_matrix):
    """AUCs (k,) and DeLong covariance (k, k) of k score rows on one set."""
    is_positive = labels == 1
    num_positives = int(is_positive.sum())
    num_negatives = labels.size - num_positives
    components = [_structural_components(is_positive, row) for row in score_matrix]
    v10 = np.stack([c[0] for c in components])
    v01 = np.stack([c[1] for c in components])
    aucs = v10.mean(axis=1)
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return aucs, s10 / num_positives + s01 / num_negatives


def _validate_binary_labels(y_true):
    labels = np.asarray(y_true)
    if labels.ndim != 1:
        raise ValueError(f"`y_true` must be 1-D; got shape {labels.shape}.")
    if labels.dtype == bool:
        labels = labels.astype(np.int64)
    if not np.issubdtype(labels.dtype, np.number):
        raise ValueError(f"`y_true` must hold 0/1 labels; got dtype {labels.dtype}.")
    unique_labels = np.unique(labels)
    if not np.all(np.isin(unique_labels, (0, 1))):
        raise ValueError(
            f"`y_true` must be binary (0/1); got labels {unique_labels.tolist()}."
        )
    num_positives = int(np.sum(labels == 1))
    num_negatives = labels.size - num_positives
    if num_positives < 2 or num_negatives < 2:
        raise ValueError(
            "`y_true` needs both classes, at least 2 samples each, for the DeLong "
            f"variance; got {num_positives} positives and {num_negatives} negatives."
        )
    return labels.astype(np.int64)


def _validate_scores(labels, named_scores):
    rows = []
    for name, scores in named_scores.items():
        values = np.asarray(scores, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"`{name}` must be 1-D; got shape {values.shape}.")
        if values.size != labels.size:
            raise ValueError(
                f"`{name}` has {values.size} values but `y_true` has {labels.size}."
            )
        if not np.all(np.isfinite(values)):
            raise ValueError(f"`{name}` contains NaN or infinite values.")
        rows.append(values)
    return np.stack(rows)


def _validate_multiclass(y_true, probabilities):
    scores = np.asarray(probabilities, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(
            "`probabilities` must have shape (n_samples, N) with N >= 2 classes; "
            f"got shape {scores.shape}."
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("`probabilities` contains NaN or infinite values.")
    labels = np.asarray(y_true)
    if labels.ndim != 1:
        raise ValueError(f"`y_true` must be 1-D; got shape {labels.shape}.")
    if labels.size != scores.shape[0]:
        raise ValueError(
            f"`y_true` has {labels.size} labels but `probabilities` has "
            f"{scores.shape[0]} rows."
        )
    if not np.issubdtype(labels.dtype, np.number) or np.any(
        labels != np.round(labels)
    ):
        raise ValueError("`y_true` must hold integer class labels.")
    labels = labels.astype(np.int64)
    num_classes = scores.shape[1]
    if np.any((labels < 0) | (labels >= num_classes)):
        raise ValueError(
            f"`y_true` labels must lie in [0, {num_classes}) to match "
            f"`probabilities` with {num_classes} columns; got "
            f"{sorted(set(labels.tolist()))}."
        )
    missing = sorted(set(range(num_classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(
            f"Every class must occur in `y_true` for the Hand & Till AUC; "
            f"classes {missing} are missing."
        )
    return labels, scores


def _check_positive(value, name):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"`{name}` must be a finite number > 0; got {value!r}.")
