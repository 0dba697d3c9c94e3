"""Bayesian intervals for confusion-matrix scores.

Formulas: docs/algorithm.md, "Evaluation statistics".

The K×K cell probabilities θ of a confusion matrix C (rows = true class,
columns = predicted class) get the conjugate posterior Dirichlet(prior + C).
Every score is a function of θ, so drawing θ from the posterior and computing
the score per draw gives its posterior distribution directly, without MCMC.
"""

import math
import numbers

import numpy as np

# Upper bound on the floats held by one chunk of posterior draws, so that the
# Dirichlet sampler and the per-class bookkeeping stay small for large K.
_MAX_FLOATS_PER_CHUNK = 2_000_000

PER_CLASS_METRICS = ("precision", "recall", "specificity", "f1")


def hdi(samples, prob=0.95):
    """Shortest interval holding a fraction `prob` of the samples.

    The samples are sorted, m = ceil(prob * S) of them must lie inside the
    interval, and the narrowest window [s_(i), s_(i+m-1)] is returned. For a
    unimodal distribution this estimates the highest-density interval.

    Args:
        samples: array-like of real numbers. Draws from a one-dimensional
            distribution; any shape, flattened.
        prob: float in (0, 1). Fraction of draws the interval must hold.
            Defaults to `0.95`.

    Returns:
        A tuple `(low, high)` of Python floats.

    Example:

    >>> hdi([0.0, 1.0, 1.1, 1.2, 5.0], prob=0.6)
    (1.0, 1.2)
    """
    _check_probability(prob, "prob")
    sorted_samples = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    if sorted_samples.size == 0:
        raise ValueError("`samples` is empty; the HDI needs at least one draw.")
    if not np.all(np.isfinite(sorted_samples)):
        raise ValueError("`samples` contains NaN or infinite values.")
    num_draws = sorted_samples.size
    # The small tolerance keeps e.g. 0.95 * 100_000 (not exactly 95000.0 in
    # floating point) from rounding up to one draw too many.
    window = min(num_draws, max(1, math.ceil(prob * num_draws - 1e-9)))
    widths = sorted_samples[window - 1 :] - sorted_samples[: num_draws - window + 1]
    start = int(np.argmin(widths))
    return float(sorted_samples[start]), float(sorted_samples[start + window - 1])


def bayesian_metrics(
    confusion_matrix, prior=1.0, num_samples=100_000, hdi_prob=0.95, seed=0
):
    """Posterior summaries of precision, recall, specificity, F1 and accuracy.

    The cell probabilities θ (K×K, summing to one) get the posterior
    Dirichlet(prior + C). For every posterior draw, with row_k = Σ_j θ_kj and
    col_k = Σ_i θ_ik:

    * precision_k = θ_kk / col_k, recall_k = θ_kk / row_k,
    * specificity_k = (1 − row_k − col_k + θ_kk) / (1 − row_k),
    * F1_k = 2 precision_k recall_k / (precision_k + recall_k),
    * accuracy = Σ_k θ_kk, macro scores = means over k,
    * balanced accuracy = macro recall.

    Each score is summarised by its posterior mean, standard deviation and
    highest-density interval (see `hdi`). Draws come from
    `tfp.distributions.Dirichlet` with a stateless seed, so equal arguments
    give identical results.

    Args:
        confusion_matrix: array-like of non-negative integers, shape (K, K),
            K >= 2. Rows are true classes, columns predicted classes.
        prior: float > 0. Dirichlet concentration added to every cell:
            1 is the flat prior, 0.5 the Jeffreys prior. Defaults to `1.0`.
        num_samples: int >= 2. Number of posterior draws. Defaults to
            `100_000`.
        hdi_prob: float in (0, 1). Mass of the reported intervals.
            Defaults to `0.95`.
        seed: int in the int32 range. Seed of the stateless sampler.
            Defaults to `0`.

    Returns:
        A JSON-serialisable dict. Keys `"precision"`, `"recall"`,
        `"specificity"` and `"f1"` map to `{"per_class": [summary] * K,
        "macro": summary}`; keys `"accuracy"` and `"balanced_accuracy"` map to
        a summary. A summary is `{"mean", "std", "hdi_low", "hdi_high"}` of
        Python floats.

    Example:

    >>> result = bayesian_metrics([[40, 10], [5, 45]], num_samples=10_000)
    >>> round(result["accuracy"]["mean"], 2)  # (85 + 2) / (100 + 4)
    0.84
    """
    counts = _validate_confusion_matrix(confusion_matrix)
    _validate_prior(prior)
    _validate_num_samples(num_samples)
    _check_probability(hdi_prob, "hdi_prob")
    _validate_seed(seed)

    draws = _sample_scores(counts + float(prior), int(num_samples), int(seed))

    def summarize(values):
        return _summarize(values, hdi_prob)

    result = {}
    for name in PER_CLASS_METRICS:
        per_class = draws[name]
        result[name] = {
            "per_class": [summarize(per_class[:, k]) for k in range(counts.shape[0])],
            "macro": summarize(per_class.mean(axis=1)),
        }
    result["accuracy"] = summarize(draws["accuracy"])
    result["balanced_accuracy"] = dict(result["recall"]["macro"])
    return result


def _sample_scores(concentration, num_samples, seed):
    """Draws θ ~ Dirichlet(concentration) in chunks and scores every draw.

    Returns a dict of float64 arrays: shape (S, K) for the per-class scores,
    (S,) for `"accuracy"`.
    """
    # Imported here: TensorFlow is slow to import and only needed for sampling.
    import tensorflow as tf
    import tensorflow_probability as tfp

    num_classes = concentration.shape[0]
    num_cells = num_classes * num_classes
    # A draw is K² floats; the sampler keeps a few arrays of that size alive.
    chunk_size = max(1, min(num_samples, _MAX_FLOATS_PER_CHUNK // num_cells))
    num_chunks = -(-num_samples // chunk_size)

    dirichlet = tfp.distributions.Dirichlet(
        concentration=tf.constant(concentration.ravel(), dtype=tf.float64)
    )
    chunk_seeds = tfp.random.split_seed(
        tf.constant([0, seed], dtype=tf.int32), n=num_chunks
    )
    masks = _cell_masks(num_classes)

    scores = {name: np.empty((num_samples, num_classes)) for name in PER_CLASS_METRICS}
    scores["accuracy"] = np.empty(num_samples)
    for chunk in range(num_chunks):
        start = chunk * chunk_size
        stop = min(num_samples, start + chunk_size)
        theta = dirichlet.sample(stop - start, seed=chunk_seeds[chunk]).numpy()
        theta = theta.reshape(-1, num_classes, num_classes)
        for name, values in _scores_per_draw(theta, masks).items():
            scores[name][start:stop] = values
    return scores


def _cell_masks(num_classes):
    """0/1 masks selecting, for each class k, its FP, FN and TN cells.

    Shapes are (K, K, K): index [k, i, j] is cell (true i, predicted j).
    """
    true_is_k = np.eye(num_classes, dtype=bool)[:, :, None]  # [k, i, .] = (i == k)
    predicted_is_k = np.eye(num_classes, dtype=bool)[:, None, :]  # [k, ., j] = (j == k)
    return {
        "false_positive": (~true_is_k & predicted_is_k).astype(np.float64),
        "false_negative": (true_is_k & ~predicted_is_k).astype(np.float64),
        "true_negative": (~true_is_k & ~predicted_is_k).astype(np.float64),
    }


def _scores_per_draw(theta, masks):
    """Per-class scores and accuracy for draws `theta` of shape (S, K, K).

    The formulas of `bayesian_metrics` are evaluated in an equivalent form
    built only from sums of cells (no differences such as 1 − row_k), which
    stays accurate when some cells are tiny:
    precision = TP/(TP+FP), recall = TP/(TP+FN),
    specificity = TN/(TN+FP), F1 = 2TP/(2TP+FP+FN).
    """
    # Dirichlet draws are positive almost surely; an exact zero is an
    # underflow (possible with very small priors) and would make a ratio 0/0.
    theta = np.maximum(theta, np.finfo(np.float64).tiny)
    true_positive = np.diagonal(theta, axis1=1, axis2=2)
    false_positive = np.einsum("sij,kij->sk", theta, masks["false_positive"])
    false_negative = np.einsum("sij,kij->sk", theta, masks["false_negative"])
    true_negative = np.einsum("sij,kij->sk", theta, masks["true_negative"])
    return {
        "precision": true_positive / (true_positive + false_positive),
        "recall": true_positive / (true_positive + false_negative),
        "specificity": true_negative / (true_negative + false_positive),
        "f1": 2 * true_positive / (2 * true_positive + false_positive + false_negative),
        "accuracy": true_positive.sum(axis=1),
    }


def _summarize(values, hdi_prob):
    low, high = hdi(values, hdi_prob)
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)),
        "hdi_low": low,
        "hdi_high": high,
    }


def _validate_confusion_matrix(confusion_matrix):
    try:
        counts = np.asarray(confusion_matrix)
    except ValueError as error:  # ragged nested lists
        raise ValueError(
            f"`confusion_matrix` must be a rectangular 2-D array; got a ragged "
            f"nested sequence ({error})."
        ) from None
    if counts.dtype == object or not (
        np.issubdtype(counts.dtype, np.number) or counts.dtype == bool
    ):
        raise ValueError(
            f"`confusion_matrix` must hold numbers; got dtype {counts.dtype}."
        )
    if counts.ndim != 2:
        raise ValueError(
            f"`confusion_matrix` must be 2-D (K, K); got shape {counts.shape}."
        )
    if counts.shape[0] != counts.shape[1]:
        raise ValueError(
            f"`confusion_matrix` must be square (K, K); got shape {counts.shape}."
        )
    if counts.shape[0] < 2:
        raise ValueError(
            f"`confusion_matrix` needs at least 2 classes; got shape {counts.shape}."
        )
    counts = counts.astype(np.float64)
    if not np.all(np.isfinite(counts)):
        raise ValueError("`confusion_matrix` contains NaN or infinite values.")
    if np.any(counts < 0):
        raise ValueError(
            f"`confusion_matrix` counts must be non-negative; got minimum "
            f"{counts.min():g}."
        )
    if np.any(counts != np.round(counts)):
        raise ValueError(
            "`confusion_matrix` counts must be integers; got non-integer values "
            f"such as {counts[counts != np.round(counts)][0]:g}."
        )
    return counts


def _validate_prior(prior):
    if (
        isinstance(prior, bool)
        or not isinstance(prior, numbers.Real)
        or not math.isfinite(prior)
        or prior <= 0
    ):
        raise ValueError(f"`prior` must be a finite number > 0; got {prior!r}.")


def _validate_num_samples(num_samples):
    if (
        isinstance(num_samples, bool)
        or not isinstance(num_samples, numbers.Integral)
        or num_samples < 2
    ):
        raise ValueError(f"`num_samples` must be an integer >= 2; got {num_samples!r}.")


def _validate_seed(seed):
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not -(2**31) <= seed < 2**31
    ):
        raise ValueError(f"`seed` must be an integer in the int32 range; got {seed!r}.")


def _check_probability(value, name):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0 < value < 1
    ):
        raise ValueError(f"`{name}` must be a number in (0, 1); got {value!r}.")
