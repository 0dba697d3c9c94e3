"""Callbacks for ISNet training, by job:

* `schedule`: the heatmap weight P per epoch (`HeatmapWeightSchedule`) and
  the `EPOCH=P` syntax of `--P-schedule`.
* `foreground`: the foreground bands C1, C2 of the heatmap losses, set or
  chosen from warm-up heatmaps.
* `batch_norm`: batch-norm statistics recomputed after each epoch.
* `divergence`: a stop when training diverges, and checkpoints that skip a
  diverged epoch or the epochs before P is final.
* `tensorboard`: TensorBoard panels of heatmaps.
* `learning_rate`: a cosine learning-rate decay over the run.
"""

from isnet_keras.callbacks.batch_norm import (
    PreciseBatchNorm, recompute_batch_norm_statistics)
from isnet_keras.callbacks.divergence import (
    BackupUnlessDiverged, BestCheckpointFromEpoch, CheckpointUnlessDiverged,
    StopOnDivergence, non_finite_variables)
from isnet_keras.callbacks.foreground import (AutoTuneForegroundBounds,
                                              apply_foreground_bounds)
from isnet_keras.callbacks.learning_rate import CosineLearningRate
from isnet_keras.callbacks.schedule import (HeatmapWeightSchedule,
                                            parse_heatmap_weight_schedule)
from isnet_keras.callbacks.tensorboard import TensorBoardHeatmaps

__all__ = [
    "AutoTuneForegroundBounds", "BackupUnlessDiverged",
    "BestCheckpointFromEpoch", "CheckpointUnlessDiverged",
    "CosineLearningRate",
    "HeatmapWeightSchedule", "PreciseBatchNorm", "StopOnDivergence",
    "TensorBoardHeatmaps", "apply_foreground_bounds", "non_finite_variables",
    "parse_heatmap_weight_schedule", "recompute_batch_norm_statistics",
]
