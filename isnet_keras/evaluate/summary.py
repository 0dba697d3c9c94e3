"""The short text summary of an evaluation result.

Example:

```python
from isnet_keras.evaluate import evaluate_classifier, format_summary

print(format_summary(evaluate_classifier(classifier, images, labels)))
```
"""


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
        annotated = ""
        if attention.get("num_annotated", result["num_images"]) < \
                result["num_images"]:
            annotated = (f"; {attention['num_annotated']} of "
                         f"{result['num_images']} annotated")
        for label, key in (
            ("Background relevance fraction", "brf"),
            ("Positive foreground fraction", "pff"),
        ):
            summary = attention[key]
            lines.append(
                f"{label}: {summary['mean']:.4f} ± {summary['std']:.4f} "
                f"({attention['num_images']} images{annotated})"
            )
    return "\n".join(lines)
