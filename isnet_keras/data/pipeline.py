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

from isnet_keras.data.masks import resize_mask

# Formats `tf.io.decode_image` reads; other files go through Pillow.
TF_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def _pillow_decode(path):
    """Pillow fallback (e.g. TIFF): uint8 `(H, W, C)` in L, LA, RGB or RGBA."""
    from PIL import Image

    with Image.open(path.decode()) as image:
        if image.mode not in ("L", "LA", "RGB", "RGBA"):
            image = image.convert("RGB")
        array = np.asarray(image, dtype=np.uint8)
    return array if array.ndim == 3 else array[..., None]


def _decode_file(path, pillow):
    """One image file -> uint8 `(H, W, C)`, C as stored."""
    if pillow:
        image = tf.numpy_function(_pillow_decode, [path], tf.uint8)
        image.set_shape((None, None, None))
        return image
    image = tf.io.decode_image(tf.io.read_file(path), channels=0,
                               expand_animations=False, dtype=tf.uint8)
    return image


def to_channels(image, channels):
    """Grey, grey+alpha, RGB or RGBA `(H, W, C)` -> `channels` (1 or 3).

    Alpha is dropped; grey becomes RGB by repetition and RGB grey by the
    ITU-R 601 luma weights (as Pillow's "L" conversion).

    Args:
        image: `(H, W, C)` tensor, C in 1..4.
        channels: 1 or 3.

    Returns:
        `(H, W, channels)` tensor of the same dtype.

    Example:

    >>> to_channels(tf.zeros((4, 4, 1)), 3).shape
    TensorShape([4, 4, 3])
    """
    stored = tf.shape(image)[-1]
    colour = tf.cond(stored >= 3, lambda: image[..., :3],
                     lambda: tf.repeat(image[..., :1], 3, axis=-1))
    if channels == 3:
        return colour
    if channels == 1:
        dtype = colour.dtype
        grey = tf.image.rgb_to_grayscale(tf.cast(colour, tf.float32))
        return tf.cast(tf.round(grey), dtype) if dtype.is_integer else grey
    raise ValueError(f"channels must be 1 or 3; received {channels}.")


def decode_pair(image_path, mask_path, image_size, channels, pillow=False):
    """Reads one image and its mask at the model's size.

    Images become float32 in [0, 1] with `channels` channels, resized
    bilinearly (antialiased); masks become float32 0/1 `(h, w, 1)`,
    resized by the any-foreground rule of `isnet_keras.data.resize_mask`
    (SPEC §7.3), so a thin object never vanishes when shrunk.

    Args:
        image_path, mask_path: string tensors.
        image_size: `(height, width)`.
        channels: 1 or 3.
        pillow: bool. Decode with Pillow instead of `tf.io.decode_image`.

    Returns:
        `(image, mask)` float32 tensors.
    """
    height, width = image_size
    image = to_channels(_decode_file(image_path, pillow), channels)
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = tf.image.resize(image, (height, width), antialias=True)
    image = tf.clip_by_value(image, 0.0, 1.0)
    image.set_shape((height, width, channels))
    mask = _decode_file(mask_path, pillow)[..., :1]
    mask = tf.cast(mask > 0, tf.float32)
    # The reference rule is NumPy (data.masks); it runs once per file, as
    # decoded pairs are cached.
    mask = tf.numpy_function(
        lambda m: resize_mask(m, (height, width)).astype(np.float32), [mask],
        tf.float32)
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
        `(B, h, w, 1)`.

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
    mask_paths = [os.fspath(index.mask_paths[i]) for i in indices]
    pillow = not all(
        path.lower().endswith(TF_IMAGE_EXTENSIONS)
        for path in image_paths + mask_paths)
    labels = index.labels[indices].astype(np.int32)
    dataset = tf.data.Dataset.from_tensor_slices(
        (image_paths, mask_paths, labels))
    dataset = dataset.map(
        lambda image, mask, label: (
            *decode_pair(image, mask, image_size, channels, pillow), label),
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
                *augmentation(images, masks, training=True), labels),
            num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(
        lambda images, masks, labels: (images, {"label": labels,
                                                "mask": masks}))
    return dataset.prefetch(tf.data.AUTOTUNE)


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
