"""A TensorBoard panel of LRP heatmaps of fixed validation images."""

import os

import keras
import numpy as np
import tensorflow as tf

from isnet_keras.lrp.explain import Explainer
from isnet_keras.metrics.attention import background_relevance_fraction
from isnet_keras.viz import plot_heatmaps


class TensorBoardHeatmaps(keras.callbacks.Callback):
    """A TensorBoard panel of LRP heatmaps of fixed validation images,
    written every epoch.

    The panel (tag `heatmaps`) shows the images with their mask outlines
    above the LRP-epsilon heatmaps of the predicted class (red positive,
    blue negative); `background_relevance_fraction` logs their mean BRF.
    Use it beside `keras.callbacks.TensorBoard`, which logs the loss terms.
    Only the chief worker writes.

    Args:
        log_dir: str. Folder of the event files.
        images: `(N, H, W, C)` fixed validation images in the model's
            input range.
        masks: `(N, H, W, 1)` masks of those images, or None.
        input_bounds: Z^B bounds of the heatmaps. Defaults to `(0, 1)`.

    Example:

    >>> isnet.fit(train, validation_data=val, callbacks=[
    ...     keras.callbacks.TensorBoard("runs/a/logs"),
    ...     TensorBoardHeatmaps("runs/a/logs/heatmaps", val_images[:4],
    ...                         val_masks[:4])])  # doctest: +SKIP
    """

    def __init__(self, log_dir, images, masks=None, input_bounds=(0.0, 1.0)):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.images = np.asarray(images, np.float32)
        self.masks = None if masks is None else np.asarray(masks, np.float32)
        self.input_bounds = input_bounds
        self._writer = None
        self._explainer = None

    def _should_write(self):
        strategy = self.model.distribute_strategy
        return getattr(strategy.extended, "should_checkpoint", True)

    def heatmap_panel(self):
        """Returns `(RGBA panel as a (H, W, 4) uint8 array, mean BRF)`."""
        # matplotlib is loaded on the first panel only, as `viz` does.
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        classifier = getattr(self.model, "deploy_model", self.model)
        if self._explainer is None:
            # Tied to the classifier's layers: built once, sees new weights.
            self._explainer = Explainer(classifier,
                                        input_bounds=self.input_bounds)
        heatmaps = self._explainer(self.images, "predicted")[:, 0]
        brf = None
        if self.masks is not None:
            # Images without annotation (masks of -1) have no background.
            masks = np.asarray(self.masks)
            annotated = ~np.all(masks.reshape(len(masks), -1) == -1, axis=1)
            if annotated.any():
                brf = float(np.mean(np.asarray(background_relevance_fraction(
                    np.asarray(heatmaps)[annotated], masks[annotated]))))
        figure = plot_heatmaps(self.images, heatmaps, masks=self.masks,
                               row_titles=["LRP"])
        figure.canvas.draw()
        panel = np.asarray(figure.canvas.buffer_rgba()).copy()
        plt.close(figure)
        return panel, brf

    def on_epoch_end(self, epoch, logs=None):
        if not self._should_write():
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        panel, brf = self.heatmap_panel()
        with self._writer.as_default(step=epoch):
            tf.summary.image("heatmaps", panel[None])
            if brf is not None:
                tf.summary.scalar("background_relevance_fraction", brf)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
