"""Deterministic stratified splits (train/validation/test by default)."""

import numpy as np


def stratified_split(labels, fractions=(0.7, 0.1, 0.2), seed=0):
    """Splits sample indices into disjoint, stratified, seeded parts.

    Each class is shuffled with a NumPy generator seeded by `seed`, then cut
    at the rounded cumulative fractions, so class c (n_c samples) gives part
    s round(F_s n_c) - round(F_{s-1} n_c) samples, F_s being the cumulative
    fraction: within one item of fractions[s] * n_c. The parts are disjoint
    and together cover every index exactly once. The same labels and seed
    always give the same parts.

    Args:
        labels: 1-D array-like of class labels (any hashable numeric or str).
        fractions: sequence of positive floats summing to 1. One index array
            is returned per fraction. Defaults to `(0.7, 0.1, 0.2)`.
        seed: int. Seed of the shuffles. Defaults to 0.

    Returns:
        A tuple of sorted int64 index arrays, one per fraction.

    Example:

    >>> train, val, test = stratified_split([0] * 10 + [1] * 10)
    >>> len(train), len(val), len(test)
    (14, 2, 4)
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D; received shape {labels.shape}")
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 1 or len(fractions) == 0 or (fractions <= 0).any():
        raise ValueError(
            f"fractions must be a non-empty sequence of positive numbers; "
            f"received {fractions.tolist()}"
        )
    if not np.isclose(fractions.sum(), 1.0, rtol=0, atol=1e-9):
        raise ValueError(
            f"fractions must sum to 1; received {fractions.tolist()} "
            f"(sum {fractions.sum():g})"
        )
    cumulative = np.cumsum(fractions)
    cumulative[-1] = 1.0  # So the last part always ends at n_c exactly.

    rng = np.random.default_rng(seed)
    parts = [[] for _ in fractions]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        # Round half up (floor(x + 0.5)) rather than to even: the same
        # fraction always rounds the same way, whatever the class size.
        cuts = np.floor(cumulative * len(members) + 0.5).astype(np.int64)
        start = 0
        for part, stop in zip(parts, cuts):
            part.append(members[start:stop])
            start = stop
    return tuple(
        np.sort(np.concatenate(part)).astype(np.int64) for part in parts
    )
