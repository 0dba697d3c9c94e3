"""Figures of an evaluation: the confusion matrix and LRP heatmap examples.

Example:

```python
from isnet_keras.evaluate import plot_confusion_matrix, plot_heatmap_examples

plot_confusion_matrix(result["confusion_matrix"], result["class_names"],
                      path="confusion_matrix.png")
plot_heatmap_examples(classifier, images, labels, masks, path="heatmaps.png")
```
"""

import numbers

import numpy as np
from matplotlib.figure import Figure

from isnet_keras.evaluate import checks
from isnet_keras.evaluate.scores import (
    ATTENTION_EPSILON,
    ATTENTION_FIRST_LAYER_RULE,
    class_probabilities,
)
from isnet_keras.export.classifier import resolve_deploy_model
from isnet_keras.lrp.explain import Explainer
from isnet_keras.viz import plot_heatmaps


def plot_confusion_matrix(matrix, class_names=None, path=None, title=None):
    """Draws a confusion matrix with its counts written in the cells.

    Cells are shaded by their share of the true class's row, so classes of
    different sizes read alike; the numbers are the raw counts.

    Args:
        matrix: array-like (K, K) of counts, rows = true class, columns =
            predicted class.
        class_names: sequence of K strings, or None for "0".."K-1".
            Defaults to None.
        path: str or path-like, or None. Where to save a PNG (120 dpi).
            Defaults to None (not saved).
        title: str or None. Figure title. Defaults to None.

    Returns:
        The `matplotlib.figure.Figure`. It is not registered with pyplot,
        so it needs no closing.

    Example:

    >>> figure = plot_confusion_matrix([[5, 1], [0, 4]], ["cat", "dog"],
    ...                                path="confusion_matrix.png")
    ... # doctest: +SKIP
    """
    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(
            f"`matrix` must be square (K, K); received shape {counts.shape}."
        )
    num_classes = counts.shape[0]
    class_names = checks.check_class_names(class_names, num_classes)
    row_totals = counts.sum(axis=1, keepdims=True)
    row_shares = counts / np.maximum(row_totals, 1)

    side = max(3.0, 0.45 * num_classes + 1.8)
    figure = Figure(figsize=(side + 0.8, side))
    axes = figure.add_subplot()
    image = axes.imshow(row_shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04,
                    label="share of true class")
    font_size = 9 if num_classes <= 10 else 6
    for row in range(num_classes):
        for column in range(num_classes):
            # Dark cells get white text so the count stays legible.
            colour = "white" if row_shares[row, column] > 0.5 else "black"
            axes.text(column, row, f"{counts[row, column]:g}", ha="center",
                      va="center", color=colour, fontsize=font_size)
    axes.set_xticks(range(num_classes), labels=class_names, fontsize=8,
                    rotation=45 if num_classes > 6 else 0)
    axes.set_yticks(range(num_classes), labels=class_names, fontsize=8)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if title:
        axes.set_title(title, fontsize=9)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


def plot_heatmap_examples(
    model,
    images,
    labels,
    masks=None,
    class_names=None,
    path=None,
    count=10,
    input_bounds=(0.0, 1.0),
):
    """Shows a few test images above the LRP heatmaps of their predictions.

    One image per true class is taken first (the first of each class, in
    class order), then further images in order, up to `count`. Heatmaps are
    those of the background-attention score: LRP-ε + Z^B of the predicted
    class's logit. Drawn with `isnet_keras.viz.plot_heatmaps`.

    Args:
        model: keras.Model, object with `deploy_model`, or `.keras` path.
        images: array (N, H, W, C) in the model's input range.
        labels: int array (N,) of true classes.
        masks: array (N, H, W, 1) or (N, H, W), or None. Outlined on the
            images when given. Defaults to None.
        class_names: sequence of K strings, or None for "0".."K-1".
        path: str or path-like, or None. Where to save the PNG.
        count: int >= 1. Number of images shown. Defaults to 10 (one per
            class of a digit benchmark).
        input_bounds: pair `(low, high)` for the Z^B rule. Defaults to
            `(0.0, 1.0)`.

    Returns:
        The `matplotlib.figure.Figure` (made with pyplot: close it with
        `matplotlib.pyplot.close(figure)` when done).

    Example:

    >>> figure = plot_heatmap_examples(classifier, images, labels, masks,
    ...                                path="heatmaps.png")
    ... # doctest: +SKIP
    """
    classifier = resolve_deploy_model(model)
    labels = np.asarray(labels)
    picks = example_indices(labels, count)
    shown = np.asarray(images)[picks].astype(np.float32)
    explainer = Explainer(
        classifier,
        epsilon=ATTENTION_EPSILON,
        first_layer_rule=ATTENTION_FIRST_LAYER_RULE,
        input_bounds=input_bounds,
    )
    heatmaps = explainer(shown, "predicted")[:, 0]
    predicted = class_probabilities(classifier, shown).argmax(axis=1)
    names = checks.check_class_names(class_names,
                                     checks.num_classes(classifier))
    titles = [
        f"true {names[labels[index]]}\npred {names[guess]}"
        for index, guess in zip(picks, predicted)
    ]
    shown_masks = None
    if masks is not None:
        # An unannotated image's mask (-1 everywhere) outlines nothing.
        shown_masks = np.maximum(np.asarray(masks)[picks], 0)
        if shown_masks.ndim == 3:
            shown_masks = shown_masks[..., None]
    return plot_heatmaps(
        shown,
        heatmaps,
        row_titles=["LRP, predicted"],
        column_titles=titles,
        masks=shown_masks,
        path=path,
    )


def example_indices(labels, count):
    """The first image of each class, then the next images, up to `count`.

    Args:
        labels: int array (N,) of classes.
        count: int >= 1. Number of indices wanted.

    Returns:
        int64 array of at most `count` distinct indices into `labels`.

    Raises:
        ValueError: `count` is not an integer >= 1.

    Example:

    >>> example_indices(np.array([1, 1, 0, 0]), 3)
    array([2, 0, 1])
    """
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise ValueError(f"`count` must be an integer >= 1; received {count!r}.")
    firsts = [int(np.flatnonzero(labels == k)[0]) for k in np.unique(labels)]
    picks = firsts[:count]
    chosen = set(picks)
    for index in range(len(labels)):
        if len(picks) >= count:
            break
        if index not in chosen:
            picks.append(index)
    return np.array(picks, dtype=np.int64)
