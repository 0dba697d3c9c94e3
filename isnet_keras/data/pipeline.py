"""`tf.data` input pipelines over a validated folder dataset.

Files are listed and checked once by `scan_folder_dataset` (so a bad file
stops the program before training), then read lazily: parallel decoding,
resizing, an in-memory (or on-disk) cache of the decoded pairs, shuffling,
batching, joint augmentation and prefetching.

Not re-exported by `isnet_keras.data`, which stays NumPy and Pillow only.
"""

import os

import numpy as np
import tensorflow as tf

from isnet_keras.data.boxes import box_mask
from isnet_keras.data.image_files import read_image, read_mask, resize_image
from isnet_keras.data.masks import resize_mask

# The mask value of an image without annotation.
UNANNOTATED = -1.0


def _boxes_text(boxes):
    """An `(n, 4)` box array as text for the pipeline ("" for None)."""
    if boxes is None:
        return ""
    return ";".join(",".join(str(int(value)) for value in box)
                    for box in np.asarray(boxes).tolist())


def _read_pair(image_path, mask_path, image_size, channels, boxes=b""):
    """NumPy side of `decode_pair`: the shared reader, then the resizes."""
    stored = read_image(image_path.decode(), channels)
    image = resize_image(stored, image_size)
    boxes = boxes.decode()
    if boxes:
        rows = [[int(value) for value in box.split(",")]
                for box in boxes.split(";")]
        mask = box_mask(rows, stored.shape[:2])
    elif mask_path:
        mask = read_mask(mask_path.decode())
    else:
        return image, np.full((*image_size, 1), UNANNOTATED, np.float32)
    mask = mask.astype(np.float32)[..., None]
    return image, resize_mask(mask, image_size).astype(np.float32)


def decode_pair(image_path, mask_path, image_size, channels, boxes=None):
    """Reads one image and its mask at the model's size.

    Both files go through `isnet_keras.data.image_files`, the reader of
    `isnet evaluate` and `isnet predict` too: images become float32 in
    [0, 1] (scaled by their bit depth) with `channels` channels, resized by
    `resize_image` (bilinear, antialiased); masks become float32 0/1
    `(h, w, 1)` ({0, 1}, {0, 255} and 16-bit {0, 65535} files alike),
    resized by the any-foreground rule of `isnet_keras.data.resize_mask`
    (docs/algorithm.md, "Masks and numerical safety"), so a thin object
    never vanishes when shrunk. An empty `mask_path` (and no boxes) gives
    the mask of an unannotated image, -1 everywhere.

    Args:
        image_path, mask_path: string tensors.
        image_size: `(height, width)`.
        channels: 1 or 3.
        boxes: string tensor or None: the image's boxes
            `"x0,y0,x1,y1;..."` in its stored pixels, painted as the mask
            instead of reading `mask_path`.

    Returns:
        `(image, mask)` float32 tensors.
    """
    height, width = image_size
    # The reader is NumPy and Pillow; `folder_dataset` caches its pairs,
    # so by default each file is read once.
    if boxes is None:
        boxes = tf.constant("")
    image, mask = tf.numpy_function(
        lambda image, mask, boxes: _read_pair(image, mask, (height, width),
                                              channels, boxes),
        [image_path, mask_path, boxes], (tf.float32, tf.float32))
    image.set_shape((height, width, channels))
    mask.set_shape((height, width, 1))
    return image, mask


def folder_dataset(index, indices, image_size, channels, batch_size,
                   augmentation=None, shuffle=False, seed=0, cache=True):
    """A batched `tf.data.Dataset` of `(images, {"label", "mask"})`.

    Args:
        index: A `FolderIndex` from `scan_folder_dataset`.
        indices: int array, the items of `index` to use (e.g. a split).
        image_size: int or `(height, width)`: the model's input size.
        channels: 1 or 3: the model's input channels.
        batch_size: int >= 1.
        augmentation: A `JointAugmentation`, or None. Applied per batch
            after the cache, so each epoch draws new transformations.
        shuffle: bool. Reshuffle every epoch.
        seed: int. Shuffle seed.
        cache: True (memory), False, or a file path prefix for an on-disk
            cache of the decoded, resized pairs.

    Returns:
        A `tf.data.Dataset` yielding images float32 `(B, h, w, channels)`
        in [0, 1], and a dict with labels int32 `(B,)` and masks float32
        `(B, h, w, 1)` (-1 everywhere for an image without annotation).

    Example:

    >>> index = scan_folder_dataset("d/images", "d/masks", "d/labels.csv")
    ... # doctest: +SKIP
    >>> train = folder_dataset(index, np.arange(100), 64, 3, 16,
    ...                        shuffle=True)  # doctest: +SKIP
    """
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        raise ValueError("The dataset split is empty.")
    image_paths = [os.fspath(index.image_paths[i]) for i in indices]
    # No mask file: boxes (`index.mask_boxes`) or no annotation.
    mask_paths = [os.fspath(index.mask_paths[i] or "") for i in indices]
    all_boxes = getattr(index, "mask_boxes", None) or (None,) * len(
        index.image_paths)
    boxes = [_boxes_text(all_boxes[i]) for i in indices]
    labels = index.labels[indices].astype(np.int32)
    dataset = tf.data.Dataset.from_tensor_slices(
        (image_paths, mask_paths, boxes, labels))
    dataset = dataset.map(
        lambda image, mask, box, label: (
            *decode_pair(image, mask, image_size, channels, box), label),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        dataset = dataset.cache("" if cache is True else os.fspath(cache))
    if shuffle:
        dataset = dataset.shuffle(len(indices), seed=seed,
                                  reshuffle_each_iteration=True)
    dataset = dataset.batch(int(batch_size))
    if augmentation is not None and not augmentation.is_identity:
        dataset = dataset.map(
            lambda images, masks, labels: (
                *_augment(augmentation, images, masks), labels),
            num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(
        lambda images, masks, labels: (images, {"label": labels,
                                                "mask": masks}))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _augment(augmentation, images, masks):
    """`augmentation` of a batch; unannotated images (-1 masks) keep their
    -1 masks, which the re-binarised geometric changes would lose."""
    flat = tf.reshape(masks, (tf.shape(masks)[0], -1))
    unannotated = tf.reduce_all(tf.equal(flat, UNANNOTATED), axis=1)
    images, changed = augmentation(images, masks, training=True)
    return images, tf.where(unannotated[:, None, None, None],
                            tf.fill(tf.shape(changed), UNANNOTATED), changed)


def dataset_arrays(dataset):
    """Concatenates a `folder_dataset` into NumPy arrays.

    Args:
        dataset: yields `(images, {"label", "mask"})` batches.

    Returns:
        `(images, labels, masks)` NumPy arrays.
    """
    images, labels, masks = [], [], []
    for batch_images, targets in dataset:
        images.append(batch_images.numpy())
        labels.append(targets["label"].numpy())
        masks.append(targets["mask"].numpy())
    return (np.concatenate(images), np.concatenate(labels),
            np.concatenate(masks))
