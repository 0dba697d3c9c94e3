"""Results over several seeds: per-seed rows, their summary and tables.

A row is a dict with a `"seed"`, the keys it is grouped by (e.g.
`"model"`) and numeric values (e.g. one accuracy per test set).
`summarize` gives, per group, the mean, minimum and maximum of each value
over the seeds; `format_summary` prints them as `mean (min-max)`.
`isnet bench bias --seeds ...` and its RRR protocol use them.
"""

import numpy as np


def rows_from_models(seed, models):
    """`{name: report}` of one seed -> one row per model, seed first."""
    return [{"seed": seed, "model": name, **report}
            for name, report in models.items()]


def summarize(rows, values, group_by=("model",)):
    """Mean and range over seeds of `values`, per group.

    Args:
        rows: Dicts with `"seed"`, the `group_by` keys and every key of
            `values`.
        values: Names of the numeric entries to summarise.
        group_by: Keys that identify a group (default: the model).

    Returns:
        A list of dicts, one per group in the order the rows first name
        them: the `group_by` keys, `"seeds"` (the seeds of the group, in
        row order) and, per value, `{"mean", "min", "max"}`.

    Example:

    >>> summarize([{"seed": 0, "model": "a", "x": 0.5},
    ...            {"seed": 1, "model": "a", "x": 0.7}], ["x"])
    [{'model': 'a', 'seeds': [0, 1], 'x': {'mean': 0.6, 'min': 0.5, 'max': 0.7}}]
    """
    groups = {}
    for row in rows:
        key = tuple(row[name] for name in group_by)
        groups.setdefault(key, []).append(row)
    summary = []
    for key, group in groups.items():
        entry = dict(zip(group_by, key))
        entry["seeds"] = [row["seed"] for row in group]
        for name in values:
            numbers = np.asarray([row[name] for row in group], np.float64)
            entry[name] = {"mean": float(np.mean(numbers)),
                           "min": float(np.min(numbers)),
                           "max": float(np.max(numbers))}
        summary.append(entry)
    return summary


def format_summary(summary, values, group_by=("model",), width=22):
    """The summary as a printed table: `mean (min-max)` per value.

    Example:

    >>> print(format_summary([{"model": "a", "seeds": [0, 1],
    ...     "x": {"mean": 0.6, "min": 0.5, "max": 0.7}}], ["x"]))
    model             seeds                     x
    ---------------------------------------------
    a                     2   0.600 (0.500-0.700)
    """
    header = ("".join(f"{name:<18}" for name in group_by) + f"{'seeds':>5}"
              + "".join(f"{name:>{width}}" for name in values))
    lines = [header, "-" * len(header)]
    for entry in summary:
        cells = "".join(
            f"{_mean_range(entry[name]):>{width}}" for name in values)
        lines.append("".join(f"{str(entry[name]):<18}" for name in group_by)
                     + f"{len(entry['seeds']):>5}" + cells)
    return "\n".join(lines)


def _mean_range(stats):
    return f"{stats['mean']:.3f} ({stats['min']:.3f}-{stats['max']:.3f})"


def accuracy_cells(row, test_sets):
    """The printed cells of one row: `accuracy [Wilson 95% low,high]` per
    test set, each 22 characters wide.

    Example:

    >>> accuracy_cells({"clean": 0.5, "clean_ci95": [0.4, 0.6]}, ["clean"])
    '   0.500 [0.400,0.600]'
    """
    return "".join(
        f"{row[name]:>8.3f} [{row[name + '_ci95'][0]:.3f},"
        f"{row[name + '_ci95'][1]:.3f}]" for name in test_sets)

