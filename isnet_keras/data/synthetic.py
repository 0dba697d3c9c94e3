"""A tiny synthetic task with a planted background cue, for tests, smoke
runs and distributed-training checks (no download, fully deterministic)."""

import numpy as np


def planted_cue_task(num, size=16, seed=0, swap=False):
    """Two classes told apart by a centred bar (vertical or horizontal); a
    bright corner patch also tells the class (left corner = class 0, right
    corner = class 1), or the other class's corner when `swap` is True.

    Args:
        num: Number of images.
        size: Image side (>= 12).
        seed: Seed of the labels and noise.
        swap: Whether the cue points to the wrong class.

    Returns:
        `(images, labels, masks)`: float32 `(num, size, size, 1)` in [0, 1],
        int labels, float32 binary masks of the central square.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, num)
    images = rng.uniform(0, 0.1, (num, size, size, 1)).astype("float32")
    masks = np.zeros((num, size, size, 1), "float32")
    low, high = size // 4, size - size // 4
    masks[:, low:high, low:high] = 1
    centre = size // 2
    for i, label in enumerate(labels):
        if label == 0:
            images[i, centre - 3:centre + 3, centre - 1:centre + 1] += 0.5
        else:
            images[i, centre - 1:centre + 1, centre - 3:centre + 3] += 0.5
        cue = 1 - label if swap else label
        columns = slice(0, 3) if cue == 0 else slice(size - 3, size)
        images[i, 0:3, columns] = 1.0
    return images, labels, masks
