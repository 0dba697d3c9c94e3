"""Reporting a shortcut audit: the text table, `audit.json` and the
example figure `audit.png` (the audit itself: `isnet_keras.shortcut_audit`).

Example:

```python
import isnet_keras as isn

result = isn.audit(model, images, labels, masks)
print(format_audit(result))
isn.write_audit(result, "runs/a/report")
```
"""

import os

from matplotlib.figure import Figure

from isnet_keras.evaluate.report import write_json
from isnet_keras.shortcut_audit import DEFAULT_EXAMPLES
from isnet_keras.viz import _as_image

AUDIT_FILE = "audit.json"
AUDIT_FIGURE = "audit.png"


def format_audit(result):
    """A short table of an audit and its verdict, for the command line.

    Args:
        result: `AuditResult`.

    Returns:
        str.

    Example:

    >>> print(format_audit(result))  # doctest: +SKIP
    images                   value  95% Wilson
    original accuracy       0.9967  [0.9814, 0.9994]
    ...
    """
    rows = (
        ("original accuracy", result.original_accuracy),
        ("swapped accuracy", result.swapped_accuracy),
        ("neutral accuracy", result.neutral_accuracy),
        ("follows background", result.follows_background_rate),
    )
    lines = [f"{'':<22}{'value':>8}  95% Wilson"]
    for name, share in rows:
        low, high = share.wilson_ci95
        lines.append(f"{name:<22}{share.value:>8.4f}  [{low:.4f}, {high:.4f}]")
    excluded = (result.excluded_empty_foreground
                + result.excluded_no_background + result.excluded_unannotated)
    unannotated = (f", {result.excluded_unannotated} without annotation"
                   if result.excluded_unannotated else "")
    lines.append(
        f"Images: {result.num_images} audited, {excluded} left out "
        f"({result.excluded_empty_foreground} empty masks, "
        f"{result.excluded_no_background} without background{unannotated}); "
        f"classes: {result.num_classes}; background-blind donor rate: "
        f"{result.background_blind_follow_rate:.4f}"
    )
    lines.append(f"Verdict: {result.verdict}")
    return "\n".join(lines)


def write_audit(result, out_dir, figure_images=DEFAULT_EXAMPLES,
                overwrite=False):
    """Writes `audit.json` and the example figure `audit.png` into a folder.

    Args:
        result: `AuditResult` from `audit`.
        out_dir: str or path-like. Created if missing.
        figure_images: int >= 0. Examples drawn in `audit.png` (at most
            those kept in `result.examples`); 0 writes no figure. Defaults
            to 6.
        overwrite: bool. Replace an existing `audit.json`. Defaults to False.

    Returns:
        `(json_path, figure_path)`; `figure_path` is None when no figure was
        written (no examples, or `figure_images=0`).

    Raises:
        FileExistsError: `out_dir/audit.json` exists and `overwrite` is
            False; nothing is written then.

    Example:

    ```python
    write_audit(audit(model, images, labels, masks), "runs/audit")
    ```
    """
    out_dir = os.fspath(out_dir)
    json_path = os.path.join(out_dir, AUDIT_FILE)
    if os.path.exists(json_path) and not overwrite:
        raise FileExistsError(
            f"{json_path} already exists; pass overwrite=True (--overwrite) "
            "to replace it or choose another folder."
        )
    os.makedirs(out_dir, exist_ok=True)
    figure_path = None
    if result.examples is not None and figure_images > 0:
        figure_path = os.path.join(out_dir, AUDIT_FIGURE)
        plot_audit_examples(result.examples, count=figure_images,
                            path=figure_path)
    write_json(json_path, result.to_dict())
    return json_path, figure_path


def plot_audit_examples(examples, count=DEFAULT_EXAMPLES, path=None):
    """Draws original, swapped and neutral images with their predictions.

    One column per example; rows are the original image, the swapped one
    (titled with the donor's class) and the neutral one; the mask is
    outlined in green.

    Args:
        examples: `AuditExamples`.
        count: int >= 1. Columns drawn (at most the examples held).
            Defaults to 6.
        path: str or path-like, or None. Where to save a PNG (120 dpi).

    Returns:
        The `matplotlib.figure.Figure` (not registered with pyplot; no
        closing needed).

    Example:

    ```python
    plot_audit_examples(result.examples, path="audit.png")
    ```
    """
    names = examples.class_names
    columns = min(int(count), len(examples.labels))
    rows = (
        ("original", examples.original, examples.predicted_original,
         lambda i: f"true {names[examples.labels[i]]}"),
        ("swapped", examples.swapped, examples.predicted_swapped,
         lambda i: f"donor {names[examples.donor_labels[i]]}"),
        ("neutral", examples.neutral, examples.predicted_neutral,
         lambda i: f"true {names[examples.labels[i]]}"),
    )
    figure = Figure(figsize=(1.7 * columns + 0.8, 1.9 * len(rows)))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for row, (name, images, predicted, describe) in enumerate(rows):
        for column in range(columns):
            picture, cmap = _as_image(images[column])
            axis = axes[row, column]
            axis.imshow(picture, cmap=cmap)
            axis.contour(examples.masks[column, ..., 0], levels=[0.5],
                         colors="lime", linewidths=0.6)
            axis.set_title(f"{describe(column)}\npred "
                           f"{names[predicted[column]]}", fontsize=8)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row, 0].set_ylabel(name, fontsize=9)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure
