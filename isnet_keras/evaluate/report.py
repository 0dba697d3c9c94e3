"""Writing an evaluation's report files: `evaluation.json` and its figures.

`write_evaluation` is what `isnet evaluate` and the validation report of
`isnet train` write; `write_json` is the atomic JSON writer every report
of the package uses (evaluation, audit, run records).

Example:

```python
from isnet_keras.evaluate import evaluate_classifier, write_evaluation

result = evaluate_classifier(classifier, images, labels, masks=masks)
write_evaluation("runs/a/report", result, classifier, images, labels,
                 masks, title="validation set")
```
"""

import json
import os
import pathlib

import matplotlib.pyplot as plt

from isnet_keras.evaluate.plots import (
    plot_confusion_matrix,
    plot_heatmap_examples,
)

RESULT_FILE = "evaluation.json"
CONFUSION_FIGURE = "confusion_matrix.png"
HEATMAP_FIGURE = "heatmaps.png"


def write_json(path, content):
    """Writes `content` as indented JSON, atomically.

    The text goes to `path` + ".partial" first and is then renamed into
    place: a stop while writing leaves the previous file (or none), never a
    truncated one.

    Args:
        path: str or path-like of the file to write.
        content: JSON-serialisable object without NaN or infinity.

    Raises:
        ValueError: `content` holds NaN or infinite floats.
        TypeError: `content` is not JSON-serialisable.

    Example:

    ```python
    write_json("runs/a/run.json", {"class_names": ["cat", "dog"]})
    ```
    """
    path = pathlib.Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(content, indent=2, allow_nan=False) + "\n",
                       encoding="utf-8")
    os.replace(partial, path)


def write_evaluation(out, report, classifier, images, labels, masks, title):
    """Writes an evaluation's JSON report and its two figures into `out`.

    Args:
        out: str or Path. Created if missing.
        report: dict from `evaluate_classifier`, with any extra entries.
        classifier: the evaluated keras.Model.
        images: the evaluated images (N, H, W, C).
        labels: their true classes (N,).
        masks: their masks, or None.
        title: str. Title of the confusion-matrix figure.

    Returns:
        The paths of `evaluation.json`, `confusion_matrix.png` and
        `heatmaps.png`.

    Example:

    ```python
    write_evaluation("runs/a/report", result, classifier, images, labels,
                     masks, title="validation set")
    ```
    """
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    paths = (os.path.join(out, RESULT_FILE),
             os.path.join(out, CONFUSION_FIGURE),
             os.path.join(out, HEATMAP_FIGURE))
    plot_confusion_matrix(
        report["confusion_matrix"], report["class_names"], path=paths[1],
        title=title,
    )
    figure = plot_heatmap_examples(
        classifier, images, labels, masks=masks,
        class_names=report["class_names"], path=paths[2],
    )
    plt.close(figure)
    write_json(paths[0], report)
    return paths
