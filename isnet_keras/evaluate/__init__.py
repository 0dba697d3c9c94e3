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
the result into figures and a short text, and `write_evaluation` writes the
report files; `isnet evaluate` is the command line around all of them.

Example:

```python
from isnet_keras.evaluate import evaluate_classifier, format_summary

result = evaluate_classifier("runs/isnet.keras", test.images, test.labels,
                             masks=test.masks)
print(format_summary(result))
```

The package is split by job:

- `scores`: computing the statistics (`evaluate_classifier`);
- `checks`: validating images, labels, masks and settings first;
- `plots`: the confusion-matrix and heatmap figures;
- `summary`: the short text summary;
- `report`: writing `evaluation.json` and the figures.
"""

from isnet_keras.evaluate.checks import (
    check_class_names,
    check_images,
    check_labels,
    check_masks,
    check_max_heatmaps,
    check_sampler_settings,
    num_classes,
)
from isnet_keras.evaluate.plots import (
    example_indices,
    plot_confusion_matrix,
    plot_heatmap_examples,
)
from isnet_keras.evaluate.report import (
    CONFUSION_FIGURE,
    HEATMAP_FIGURE,
    RESULT_FILE,
    write_evaluation,
    write_json,
)
from isnet_keras.evaluate.scores import (
    ATTENTION_EPSILON,
    ATTENTION_FIRST_LAYER_RULE,
    HEATMAP_CHUNK_SIZE,
    NORMAL_QUANTILE_95,
    PREDICTION_BATCH_SIZE,
    background_attention,
    class_probabilities,
    confusion_matrix,
    evaluate_classifier,
)
from isnet_keras.evaluate.summary import format_summary

__all__ = [
    "ATTENTION_EPSILON",
    "ATTENTION_FIRST_LAYER_RULE",
    "CONFUSION_FIGURE",
    "HEATMAP_CHUNK_SIZE",
    "HEATMAP_FIGURE",
    "NORMAL_QUANTILE_95",
    "PREDICTION_BATCH_SIZE",
    "RESULT_FILE",
    "background_attention",
    "check_class_names",
    "check_images",
    "check_labels",
    "check_masks",
    "check_max_heatmaps",
    "check_sampler_settings",
    "class_probabilities",
    "confusion_matrix",
    "evaluate_classifier",
    "example_indices",
    "format_summary",
    "num_classes",
    "plot_confusion_matrix",
    "plot_heatmap_examples",
    "write_evaluation",
    "write_json",
]
