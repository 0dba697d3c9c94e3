"""Evaluation of a trained classifier on one labelled test set.

The statistics are those of docs/algorithm.md, "Evaluation statistics".

`evaluate_classifier` gathers, in one JSON-serialisable dict:

* accuracy with its Wilson 95 % interval, and per-class precision, recall
  and specificity with theirs;
* the confusion matrix (rows = true class, columns = predicted class) and
  its Dirichlet-posterior summaries from `bayesian_metrics`;
* the AUC: DeLong AUC with its interval on the positive-class
  probability for two classes, Hand & Till's M for more;
* with masks, the background attention: per-image BRF and PFF of the
  LRP-ε + Z^B heatmap of the predicted class's logit, in inference mode,
  summarised by `summarize_fraction`.

`plot_confusion_matrix`, `plot_heatmap_examples` and `format_summary` turn
the result into figures and a short text; `isnet evaluate` is the command
line around all of them.

Example:

```python
from isnet_keras.evaluate import evaluate_classifier, format_summary

result = evaluate_classifier("runs/isnet.keras", test.images, test.labels,
                             masks=test.masks)
print(format_summary(result))
```
"""

import math
import numbers

import numpy as np

# z of the two-sided 95 % normal intervals (Wilson, DeLong).
NORMAL_QUANTILE_95 = 1.96
# Images per forward pass of the classifier.
PREDICTION_BATCH_SIZE = 256
# Images whose heatmaps are computed and reduced to BRF/PFF at a time, so
# that memory stays bounded whatever the size of the test set.
HEATMAP_CHUNK_SIZE = 256
# LRP settings of the background-attention heatmaps (docs/algorithm.md,
# "Evaluation statistics").
ATTENTION_EPSILON = 1e-2
ATTENTION_FIRST_LAYER_RULE = "zb"


def evaluate_classifier(
    model,
    images,
    labels,
    masks=None,
    prior=1.0,
    num_samples=100_000,
    seed=0,
    class_names=None,
    max_heatmaps=None,
    input_bounds=(0.0, 1.0),
):
    """Scores a classifier on a labelled test set.

    Probabilities are the softmax of the classifier's outputs, computed in
    float64, unless the classifier already ends in a softmax (see
    `isnet_keras.export.classifier_outputs_probabilities`); predictions are
    their argmax. Every input is validated before the model runs.

    Args:
        model: keras.Model, object with a `deploy_model` attribute (an
            ISNet) or path to a `.keras` file holding either. The plain
            classifier (logits or softmax output) is what gets evaluated.
        images: array (N, H, W, C) in the model's input range; H, W and C
            must match the model's input. N >= 1.
        labels: array-like of N integers in [0, K), K = the number of
            classifier outputs.
        masks: array (N, H, W, 1) or (N, H, W) of 0/1 foreground masks, or
            None to skip the background attention. Defaults to None.
        prior: float > 0. Dirichlet concentration added to every cell of
            the confusion matrix (1 = flat, 0.5 = Jeffreys). Defaults to
            `1.0`.
        num_samples: int >= 2. Posterior draws of `bayesian_metrics`.
            Defaults to `100_000`.
        seed: int. Seed of the posterior sampler and of the image subset
            chosen by `max_heatmaps`. Defaults to `0`.
        class_names: sequence of K strings, or None for "0".."K-1".
            Defaults to None.
        max_heatmaps: int >= 2 or None. With masks, the background attention
            uses at most this many images, a seeded random subset (LRP costs
            about one backward pass per image). None uses every image.
            Defaults to None.
        input_bounds: pair `(low, high)`: the input range used by the
            first layer's Z^B rule. Defaults to `(0.0, 1.0)`.

    Returns:
        A dict that `json.dumps` accepts:

        * `"num_images"`, `"num_classes"`, `"class_names"`;
        * `"accuracy"`: `{"value", "correct", "total", "wilson_ci95"}`;
        * `"per_class"`: one dict per class with `"name"`, `"support"`
          (true count), `"predicted"` (predicted count) and `"precision"`,
          `"recall"`, `"specificity"`, each `{"value", "wilson_ci95"}` or
          None when its denominator is 0;
        * `"confusion_matrix"`: K lists of K ints, rows = true class;
        * `"bayesian"`: the `bayesian_metrics` dict plus `"prior"` and
          `"num_samples"`;
        * `"auc"`: `{"method": "delong", "value", "variance", "ci95",
          "positive_class"}` (K = 2) or `{"method": "hand_till", "value"}`;
          when the labels make it undefined (a class absent, or fewer than
          two samples of a class for DeLong), `"value"` is None and
          `"unavailable"` says why;
        * `"background_attention"`: None without masks, else
          `{"heatmap", "num_images", "brf", "pff"}`, where `"brf"` and
          `"pff"` are `summarize_fraction` dicts (mean, std, 95 % t interval
          of the mean, n).

    Raises:
        ValueError: images, labels, masks, class names or `max_heatmaps`
            do not fit (the message names the shapes or values), or
            `prior` / `num_samples` are invalid.
        TypeError, FileNotFoundError: `model` cannot be resolved (see
            `isnet_keras.export.resolve_deploy_model`).

    Example:

    >>> result = evaluate_classifier(classifier, images, labels,
    ...                              masks=masks, num_samples=10_000)
    ... # doctest: +SKIP
    >>> result["accuracy"]["value"], result["background_attention"]["brf"]
    ... # doctest: +SKIP
    (0.97, {'mean': 0.18, 'std': 0.07, 'ci_low': 0.17, 'ci_high': 0.19, ...})
    """
    # Imported here: TensorFlow is slow to import and the CLI module that
    # imports this one must start fast.
    from isnet_keras import export
    from isnet_keras.metrics import bayesian_metrics

    classifier = export.resolve_deploy_model(model)
    images = _check_images(images, export.image_input_shape(classifier))
    num_classes = _num_classes(classifier)
    labels = _check_labels(labels, len(images), num_classes)
    class_names = _check_class_names(class_names, num_classes)
    if masks is not None:
        masks = _check_masks(masks, images.shape)
        num_heatmaps = _check_max_heatmaps(max_heatmaps, len(images))
    # Fail on bad statistics settings before the (slow) forward pass.
    _check_sampler_settings(prior, num_samples, seed)

    probabilities = class_probabilities(classifier, images)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, num_classes)

    bayesian = bayesian_metrics(
        matrix, prior=prior, num_samples=num_samples, seed=seed
    )
    bayesian.update(prior=float(prior), num_samples=int(num_samples))
    result = {
        "num_images": int(len(images)),
        "num_classes": int(num_classes),
        "class_names": list(class_names),
        "accuracy": _accuracy(matrix),
        "per_class": _per_class_counts(matrix, class_names),
        "confusion_matrix": matrix.tolist(),
        "bayesian": bayesian,
        "auc": _auc(labels, probabilities),
        "background_attention": None,
    }
    if masks is not None:
        subset = _attention_subset(len(images), num_heatmaps, seed)
        result["background_attention"] = background_attention(
            classifier, images[subset], masks[subset], input_bounds=input_bounds
        )
    return result


def class_probabilities(classifier, images, batch_size=PREDICTION_BATCH_SIZE):
    """Class probabilities of a classifier as float64 (N, K).

    A softmax is applied, in float64 so that confident predictions keep
    distinct scores for the AUC, unless the classifier already ends in one.

    Args:
        classifier: keras.Model ending in logits or in a softmax.
        images: array (N, H, W, C) in the model's input range.
        batch_size: int. Images per forward pass. Defaults to 256.

    Returns:
        float64 array (N, K); rows sum to 1.

    Example:

    >>> class_probabilities(classifier, images).sum(axis=1)  # doctest: +SKIP
    array([1., 1., ...])
    """
    from scipy.special import softmax

    from isnet_keras.export import classifier_outputs_probabilities

    outputs = classifier.predict(images, batch_size=batch_size, verbose=0)
    outputs = np.asarray(outputs, dtype=np.float64)
    if classifier_outputs_probabilities(classifier):
        return outputs
    return softmax(outputs, axis=1)


def confusion_matrix(labels, predicted, num_classes):
    """Counts (true class, predicted class) pairs.

    Args:
        labels: int array (N,), values in [0, num_classes).
        predicted: int array (N,), values in [0, num_classes).
        num_classes: int K.

    Returns:
        int64 array (K, K); entry [i, j] counts images of class i predicted
        as class j.

    Example:

    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2)
    array([[1, 0],
           [1, 1]])
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predicted)), 1)
    return matrix


def background_attention(classifier, images, masks, input_bounds=(0.0, 1.0)):
    """Per-image BRF and PFF of LRP heatmaps, summarised.

    The heatmap explains the logit of each image's predicted class with
    LRP-ε (ε = 0.01) and the Z^B rule at the first layer, in inference
    mode, whatever variant the model was trained with. Heatmaps are made
    and reduced a chunk at a time, so memory does not grow with N.

    Args:
        classifier: keras.Model (logits or softmax output).
        images: array (N, H, W, C) in the model's input range, N >= 2.
        masks: array (N, H, W, 1) or (N, H, W), 0/1, 1 = foreground.
        input_bounds: pair `(low, high)` for the Z^B rule. Defaults to
            `(0.0, 1.0)`.

    Returns:
        `{"heatmap": str, "num_images": N, "brf": summary, "pff": summary}`
        with `summarize_fraction` summaries.

    Example:

    >>> background_attention(classifier, images, masks)["brf"]["mean"]
    ... # doctest: +SKIP
    0.21
    """
    from isnet_keras.lrp.explain import Explainer
    from isnet_keras.metrics import (
        background_relevance_fraction,
        positive_foreground_fraction,
        summarize_fraction,
    )

    explainer = Explainer(
        classifier,
        epsilon=ATTENTION_EPSILON,
        first_layer_rule=ATTENTION_FIRST_LAYER_RULE,
        input_bounds=input_bounds,
    )
    brf_chunks, pff_chunks = [], []
    for start in range(0, len(images), HEATMAP_CHUNK_SIZE):
        chunk = slice(start, start + HEATMAP_CHUNK_SIZE)
        heatmaps = explainer(images[chunk], "predicted")[:, 0]
        brf_chunks.append(
            np.asarray(background_relevance_fraction(heatmaps, masks[chunk]))
        )
        pff_chunks.append(
            np.asarray(positive_foreground_fraction(heatmaps, masks[chunk]))
        )
    return {
        "heatmap": "LRP-epsilon (epsilon=0.01), Z^B first layer, "
        "predicted class logit, inference mode",
        "num_images": int(len(images)),
        "brf": summarize_fraction(np.concatenate(brf_chunks)),
        "pff": summarize_fraction(np.concatenate(pff_chunks)),
    }


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
    from matplotlib.figure import Figure

    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(
            f"`matrix` must be square (K, K); received shape {counts.shape}."
        )
    num_classes = counts.shape[0]
    class_names = _check_class_names(class_names, num_classes)
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
    from isnet_keras.export import resolve_deploy_model
    from isnet_keras.lrp.explain import Explainer
    from isnet_keras.viz import plot_heatmaps

    classifier = resolve_deploy_model(model)
    labels = np.asarray(labels)
    picks = _example_indices(labels, count)
    shown = np.asarray(images)[picks].astype(np.float32)
    explainer = Explainer(
        classifier,
        epsilon=ATTENTION_EPSILON,
        first_layer_rule=ATTENTION_FIRST_LAYER_RULE,
        input_bounds=input_bounds,
    )
    heatmaps = explainer(shown, "predicted")[:, 0]
    predicted = class_probabilities(classifier, shown).argmax(axis=1)
    names = _check_class_names(class_names, _num_classes(classifier))
    titles = [
        f"true {names[labels[index]]}\npred {names[guess]}"
        for index, guess in zip(picks, predicted)
    ]
    shown_masks = None
    if masks is not None:
        shown_masks = np.asarray(masks)[picks]
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


def format_summary(result):
    """A few readable lines from an `evaluate_classifier` result.

    Args:
        result: dict returned by `evaluate_classifier`.

    Returns:
        str, one fact per line.

    Example:

    >>> print(format_summary(result))  # doctest: +SKIP
    Images: 400, classes: 10
    Accuracy: 0.9650 (95% Wilson [0.9424, 0.9790]; 386/400)
    ...
    """
    accuracy = result["accuracy"]
    low, high = accuracy["wilson_ci95"]
    lines = [
        f"Images: {result['num_images']}, classes: {result['num_classes']}",
        f"Accuracy: {accuracy['value']:.4f} (95% Wilson [{low:.4f}, "
        f"{high:.4f}]; {accuracy['correct']}/{accuracy['total']})",
    ]
    bayesian = result["bayesian"]
    for label, summary in (
        ("Balanced accuracy", bayesian["balanced_accuracy"]),
        ("Macro F1", bayesian["f1"]["macro"]),
    ):
        lines.append(
            f"{label}: {summary['mean']:.4f} ± {summary['std']:.4f} "
            f"(95% HDI [{summary['hdi_low']:.4f}, {summary['hdi_high']:.4f}])"
        )
    auc = result["auc"]
    method = "DeLong" if auc["method"] == "delong" else "Hand & Till"
    if auc["value"] is None:
        lines.append(f"AUC ({method}): unavailable, {auc['unavailable']}")
    elif auc["method"] == "delong":
        low, high = auc["ci95"]
        lines.append(
            f"AUC ({method}): {auc['value']:.4f} (95% CI [{low:.4f}, {high:.4f}])"
        )
    else:
        lines.append(f"AUC ({method}): {auc['value']:.4f}")
    attention = result["background_attention"]
    if attention is not None:
        for label, key in (
            ("Background relevance fraction", "brf"),
            ("Positive foreground fraction", "pff"),
        ):
            summary = attention[key]
            lines.append(
                f"{label}: {summary['mean']:.4f} ± {summary['std']:.4f} "
                f"({attention['num_images']} images)"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------


def _wilson(successes, trials):
    """`{"value", "wilson_ci95"}` of successes/trials, None if no trials."""
    from isnet_keras.metrics import wilson_interval

    if trials == 0:
        return None
    low, high = wilson_interval(int(successes), int(trials), z=NORMAL_QUANTILE_95)
    return {"value": successes / trials, "wilson_ci95": [low, high]}


def _accuracy(matrix):
    correct = int(np.trace(matrix))
    total = int(matrix.sum())
    summary = _wilson(correct, total)
    return {
        "value": summary["value"],
        "correct": correct,
        "total": total,
        "wilson_ci95": summary["wilson_ci95"],
    }


def _per_class_counts(matrix, class_names):
    """Per-class precision, recall and specificity with Wilson intervals.

    The trials are those of the Wilson intervals in docs/algorithm.md
    ("Evaluation statistics"): predicted positives (precision),
    actual positives (recall), actual negatives (specificity).
    """
    total = int(matrix.sum())
    rows = []
    for k, name in enumerate(class_names):
        true_positives = int(matrix[k, k])
        actual = int(matrix[k].sum())
        predicted = int(matrix[:, k].sum())
        negatives = total - actual
        true_negatives = negatives - (predicted - true_positives)
        rows.append({
            "name": name,
            "support": actual,
            "predicted": predicted,
            "precision": _wilson(true_positives, predicted),
            "recall": _wilson(true_positives, actual),
            "specificity": _wilson(true_negatives, negatives),
        })
    return rows


def _auc(labels, probabilities):
    from isnet_keras.metrics import delong_auc, hand_till_auc

    num_classes = probabilities.shape[1]
    counts = np.bincount(labels, minlength=num_classes)
    if num_classes == 2:
        result = {"method": "delong", "value": None, "variance": None,
                  "ci95": None, "positive_class": 1}
        if counts.min() < 2:
            result["unavailable"] = (
                "DeLong needs at least 2 samples of each class; got "
                f"{int(counts[0])} of class 0 and {int(counts[1])} of class 1"
            )
            return result
        delong = delong_auc(labels, probabilities[:, 1], z=NORMAL_QUANTILE_95)
        result.update(value=delong.auc, variance=delong.variance,
                      ci95=list(delong.ci))
        return result
    missing = np.flatnonzero(counts == 0).tolist()
    if missing:
        return {
            "method": "hand_till",
            "value": None,
            "unavailable": f"classes {missing} do not occur in the labels",
        }
    return {"method": "hand_till", "value": hand_till_auc(labels, probabilities)}


def _attention_subset(num_images, num_heatmaps, seed):
    """Sorted indices of the images whose heatmaps are scored."""
    if num_heatmaps >= num_images:
        return np.arange(num_images)
    # A random subset rather than the first images: test sets may be
    # ordered by class or by source.
    # The modulo maps negative int32 seeds onto the non-negative ones NumPy
    # accepts, one to one.
    rng = np.random.default_rng(seed % 2**32)
    return np.sort(rng.choice(num_images, size=num_heatmaps, replace=False))


def _example_indices(labels, count):
    """The first image of each class, then the next images, up to `count`."""
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


# --------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------


def _num_classes(classifier):
    outputs = getattr(classifier, "outputs", None) or []
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        shapes = [tuple(output.shape) for output in outputs]
        raise ValueError(
            "The classifier must have one output of shape (batch, classes); "
            f"model '{classifier.name}' has outputs {shapes}."
        )
    num_classes = outputs[0].shape[-1]
    if num_classes is None or num_classes < 2:
        raise ValueError(
            f"The classifier must output at least 2 classes; model "
            f"'{classifier.name}' outputs {num_classes}."
        )
    return int(num_classes)


def _check_images(images, image_shape):
    array = np.asarray(images)
    expected = "(N, " + ", ".join(
        "?" if size is None else str(size) for size in image_shape
    ) + ")"
    fits = array.ndim == 4 and all(
        want is None or got == want for got, want in zip(array.shape[1:], image_shape)
    )
    if not fits:
        raise ValueError(
            f"`images` have shape {array.shape}, but the model takes images "
            f"of shape {expected}."
        )
    if len(array) == 0:
        raise ValueError("`images` is empty; evaluation needs at least one image.")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"`images` must be numeric; received dtype {array.dtype}.")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError("`images` contains NaN or infinite values.")
    return array


def _check_labels(labels, num_images, num_classes):
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(
            f"`labels` must be 1-D (N,); received shape {array.shape}."
        )
    if len(array) != num_images:
        raise ValueError(
            f"`labels` has {len(array)} entries but `images` has {num_images}."
        )
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"`labels` must hold integer class indices; received dtype "
            f"{array.dtype}."
        )
    if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
        raise ValueError("`labels` must hold integer class indices.")
    array = array.astype(np.int64)
    out_of_range = (array < 0) | (array >= num_classes)
    if np.any(out_of_range):
        raise ValueError(
            f"`labels` must lie in [0, {num_classes}) for a classifier with "
            f"{num_classes} outputs; found "
            f"{sorted(set(array[out_of_range].tolist()))[:5]}."
        )
    return array


def _check_class_names(class_names, num_classes):
    if class_names is None:
        return [str(index) for index in range(num_classes)]
    if isinstance(class_names, str):
        raise ValueError(
            "`class_names` must be a sequence of strings, not one string."
        )
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"`class_names` has {len(names)} entries but there are "
            f"{num_classes} classes."
        )
    return names


def _check_masks(masks, image_shape):
    """Returns float32 (N, H, W, 1) masks or raises naming both shapes."""
    array = np.asarray(masks)
    expected = tuple(image_shape[:3])
    if array.ndim == 4 and array.shape[-1] == 1:
        spatial = array.shape[:3]
    elif array.ndim == 3:
        spatial = array.shape
    else:
        spatial = None
    if spatial != expected:
        raise ValueError(
            f"`masks` have shape {array.shape}, but `images` have shape "
            f"{tuple(image_shape)}: masks must be {expected + (1,)} or "
            f"{expected}."
        )
    if array.dtype != bool:
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"`masks` must be numeric; received dtype {array.dtype}.")
        not_binary = (array != 0) & (array != 1)
        if np.any(not_binary):
            raise ValueError(
                "`masks` must be binary (0 = background, 1 = foreground); "
                f"found values such as {np.unique(array[not_binary])[:3].tolist()}."
            )
    return array.reshape(expected + (1,)).astype(np.float32)


def _check_max_heatmaps(max_heatmaps, num_images):
    """The number of images to explain; the t interval needs two."""
    if max_heatmaps is None:
        count = num_images
    elif (
        isinstance(max_heatmaps, bool)
        or not isinstance(max_heatmaps, numbers.Integral)
        or max_heatmaps < 2
    ):
        raise ValueError(
            f"`max_heatmaps` must be None or an integer >= 2; received "
            f"{max_heatmaps!r}."
        )
    else:
        count = min(int(max_heatmaps), num_images)
    if count < 2:
        raise ValueError(
            "The background attention needs at least 2 images with masks; "
            f"received {num_images}."
        )
    return count


def _check_sampler_settings(prior, num_samples, seed):
    if (
        isinstance(prior, bool)
        or not isinstance(prior, numbers.Real)
        or not math.isfinite(prior)
        or prior <= 0
    ):
        raise ValueError(f"`prior` must be a finite number > 0; received {prior!r}.")
    if (
        isinstance(num_samples, bool)
        or not isinstance(num_samples, numbers.Integral)
        or num_samples < 2
    ):
        raise ValueError(
            f"`num_samples` must be an integer >= 2; received {num_samples!r}."
        )
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not -(2**31) <= seed < 2**31
    ):
        raise ValueError(
            f"`seed` must be an integer in the int32 range; received {seed!r}."
        )
