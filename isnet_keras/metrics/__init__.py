"""Evaluation statistics: Bayesian intervals, ROC/AUC, background attention.

* `bayesian_metrics`, `hdi`: posterior summaries of confusion-matrix scores.
* `delong_auc`, `delong_test`, `hand_till_auc`, `wilson_interval`: ROC and
  proportion intervals.
* `background_relevance_fraction`, `positive_foreground_fraction`,
  `summarize_fraction` and the Keras metrics `BackgroundRelevanceFraction`,
  `PositiveForegroundFraction`: where the LRP relevance lies.
"""

from isnet_keras.metrics.attention import (
    BackgroundRelevanceFraction,
    PositiveForegroundFraction,
    background_relevance_fraction,
    positive_foreground_fraction,
    summarize_fraction,
)
from isnet_keras.metrics.bayesian import bayesian_metrics, hdi
from isnet_keras.metrics.roc import (
    DeLongAUC,
    DeLongTest,
    delong_auc,
    delong_test,
    hand_till_auc,
    wilson_interval,
)

__all__ = [
    "BackgroundRelevanceFraction",
    "DeLongAUC",
    "DeLongTest",
    "PositiveForegroundFraction",
    "background_relevance_fraction",
    "bayesian_metrics",
    "delong_auc",
    "delong_test",
    "hand_till_auc",
    "hdi",
    "positive_foreground_fraction",
    "summarize_fraction",
    "wilson_interval",
]
