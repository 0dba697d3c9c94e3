"""Heatmap figures (matplotlib, diverging colormap centred at zero)."""

import numpy as np


def _as_image(array):
    array = np.asarray(array, dtype=np.float32)
    if array.shape[-1] == 1:
        return array[..., 0], "gray"
    low, high = array.min(), array.max()
    return (array - low) / max(high - low, 1e-12), None


def heatmap_panel(heatmap):
    """Sums a heatmap over channels: `(H, W, C) -> (H, W)`."""
    return np.asarray(heatmap, dtype=np.float32).sum(axis=-1)


def plot_heatmaps(images, heatmaps, row_titles=None, column_titles=None,
                  path=None, cmap="RdBu_r", masks=None):
    """Plots images above their heatmaps, one column per image.

    Each heatmap is summed over channels and drawn with a diverging
    colormap whose centre (white) is zero, symmetric per heatmap, so red is
    positive and blue negative relevance.

    Args:
        images: `(B, H, W, C)` array.
        heatmaps: `(B, H, W, C)`, or `(R, B, H, W, C)` for several rows of
            heatmaps (e.g. one row per model or per class).
        row_titles: Optional titles of the heatmap rows.
        column_titles: Optional titles of the columns.
        path: If given, the figure is saved there (PNG, 120 dpi).
        cmap: A diverging matplotlib colormap.
        masks: Optional `(B, H, W, 1)` foreground masks, outlined on the
            images.

    Returns:
        The `matplotlib.figure.Figure`.

    Example:

    >>> figure = plot_heatmaps(images[:4], explain(model, images[:4])[:, 0],
    ...                        path="heatmaps.png")
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim == 4:
        heatmaps = heatmaps[None]
    if heatmaps.ndim != 5 or heatmaps.shape[1] != len(images):
        raise ValueError(
            f"heatmaps must be (B, H, W, C) or (R, B, H, W, C) with B = "
            f"{len(images)} images; received shape {heatmaps.shape}."
        )
    num_rows, num_columns = heatmaps.shape[0] + 1, len(images)
    figure, axes = plt.subplots(
        num_rows, num_columns, squeeze=False,
        figsize=(1.6 * num_columns + 0.8, 1.6 * num_rows),
    )
    for column in range(num_columns):
        picture, gray = _as_image(images[column])
        axes[0, column].imshow(picture, cmap=gray)
        if masks is not None:
            axes[0, column].contour(np.asarray(masks[column])[..., 0],
                                    levels=[0.5], colors="lime",
                                    linewidths=0.6)
        if column_titles is not None:
            axes[0, column].set_title(str(column_titles[column]), fontsize=8)
        for row in range(1, num_rows):
            panel = heatmap_panel(heatmaps[row - 1, column])
            limit = max(float(np.abs(panel).max()), 1e-12)
            axes[row, column].imshow(panel, cmap=cmap, vmin=-limit,
                                     vmax=limit)
    for row in range(num_rows):
        for column in range(num_columns):
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
        if row_titles is not None and row > 0:
            axes[row, 0].set_ylabel(str(row_titles[row - 1]), fontsize=8)
    axes[0, 0].set_ylabel("image", fontsize=8)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure
