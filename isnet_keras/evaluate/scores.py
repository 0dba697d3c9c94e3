"""Computing the evaluation statistics of a classifier on a test set.

The statistics are those of docs/algorithm.md, "Evaluation statistics":
accuracy and per-class rates with Wilson intervals, the confusion matrix
and its Dirichlet-posterior summaries, the AUC (DeLong or Hand & Till),
and with masks the background attention (BRF and PFF of LRP heatmaps).
`evaluate_classifier` gathers them in one JSON-serialisable dict.

Example:

```python
from isnet_keras.evaluate import evaluate_classifier

result = evaluate_classifier(classifier, images, labels, masks=masks)
result["accuracy"]["value"]
```
"""

import numpy as np
from scipy.special import softmax

from isnet_keras.evaluate import checks
from isnet_keras.export import classifier as classifier_lib
from isnet_keras.lrp.explain import Explainer
from isnet_keras.metrics import (
    background_relevance_fraction,
    bayesian_metrics,
    delong_auc,
    hand_till_auc,
    positive_foreground_fraction,
    summarize_fraction,
    wilson_interval,
)

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
    `isnet_keras.export.classifier.outputs_probabilities`); predictions are
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
            None to skip the background attention. A mask of -1 everywhere
            marks an image without annotation: the background attention
            uses annotated images only (and is None when fewer than 2 of
            a partly annotated set are). Defaults to None.
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
          `{"heatmap", "num_images", "num_annotated", "brf", "pff"}`
          (`"num_images"` scored of the `"num_annotated"` images with an
          annotation), where `"brf"` and
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
    classifier = classifier_lib.resolve_deploy_model(model)
    images = checks.check_images(images, classifier_lib.image_input_shape(
        classifier, purpose=checks.PURPOSE))
    num_classes = checks.num_classes(classifier)
    labels = checks.check_labels(labels, len(images), num_classes)
    class_names = checks.check_class_names(class_names, num_classes)
    if masks is not None:
        masks = checks.check_masks(masks, images.shape)
        # Only images with an annotation (not -1 masks) are scored.
        annotated = np.flatnonzero(masks.reshape(len(masks), -1).max(
            axis=1, initial=-1.0) >= 0)
        num_heatmaps = 0
        if len(annotated) >= 2 or len(annotated) == len(masks):
            num_heatmaps = checks.check_max_heatmaps(max_heatmaps,
                                                     len(annotated))
        elif max_heatmaps is not None:
            checks.check_max_heatmaps(max_heatmaps, 2)
    # Fail on bad statistics settings before the (slow) forward pass.
    checks.check_sampler_settings(prior, num_samples, seed)

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
    if masks is not None and num_heatmaps:
        subset = annotated[_attention_subset(len(annotated), num_heatmaps,
                                             seed)]
        result["background_attention"] = background_attention(
            classifier, images[subset], masks[subset], input_bounds=input_bounds
        )
        result["background_attention"]["num_annotated"] = int(len(annotated))
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
    outputs = classifier.predict(images, batch_size=batch_size, verbose=0)
    outputs = np.asarray(outputs, dtype=np.float64)
    if classifier_lib.outputs_probabilities(classifier):
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


def _wilson(successes, trials):
    """`{"value", "wilson_ci95"}` of successes/trials, None if no trials."""
    if trials == 0:
        return None
    low, high = wilson_interval(int(successes), int(trials), z=NORMAL_QUANTILE_95)
    return {"value": successes / trials, "wilson_ci95": [low, high]}


def _accuracy(matrix):
    """Accuracy of a confusion matrix with its Wilson interval and counts."""
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
    """DeLong AUC (two classes) or Hand & Till's M, or why it is undefined."""
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
