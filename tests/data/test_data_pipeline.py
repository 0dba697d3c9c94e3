"""tf.data pipeline over folder datasets: decoding, channels, mask resize,
and the same pixels as `isnet evaluate` and `isnet predict` read."""

import argparse

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from isnet_keras.cli import predict
from isnet_keras.cli.test_data import load_test_set
from isnet_keras.data import resize_mask, scan_folder_dataset
from isnet_keras.data.pipeline import dataset_arrays, folder_dataset


def _write(folder, images, masks, labels, extension=".png"):
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rows = ["filename,label"]
    for number, (image, mask, label) in enumerate(zip(images, masks, labels)):
        name = f"im{number}{extension}"
        Image.fromarray(image).save(folder / "images" / name)
        Image.fromarray(mask * 255).save(folder / "masks" / f"im{number}.png")
        rows.append(f"{name},{label}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return scan_folder_dataset(folder / "images", folder / "masks",
                               folder / "labels.csv")


def test_rgb_and_grey_files_become_the_channels_the_model_needs(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
    masks = rng.integers(0, 2, (3, 12, 12), dtype=np.uint8)
    index = _write(tmp_path / "rgb", rgb, masks, ["a", "b", "a"])
    grey, _, _ = dataset_arrays(folder_dataset(index, [0, 1, 2], 12, 1, 2))
    expected = np.stack([np.asarray(Image.fromarray(i).convert("L"))
                         for i in rgb]) / 255.0
    np.testing.assert_allclose(grey[..., 0], expected, atol=1.0 / 255)
    colour, labels, _ = dataset_arrays(folder_dataset(index, [0, 1, 2], 12,
                                                      3, 2))
    np.testing.assert_allclose(colour, rgb / 255.0, atol=1e-6)
    np.testing.assert_array_equal(labels, [0, 1, 0])

    grey_files = rng.integers(0, 256, (2, 12, 12), dtype=np.uint8)
    index = _write(tmp_path / "grey", grey_files, masks[:2], [0, 1])
    images, _, _ = dataset_arrays(folder_dataset(index, [0, 1], 12, 3, 2))
    np.testing.assert_allclose(images, np.repeat(grey_files[..., None], 3,
                                                 axis=-1) / 255.0, atol=1e-6)


def test_masks_are_resized_by_the_any_foreground_rule(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 30, 20), dtype=np.uint8)
    masks = np.zeros((2, 30, 20), np.uint8)
    masks[0, 7, 3] = 1           # a single pixel must survive shrinking
    masks[1, 10:25, 5:9] = 1
    index = _write(tmp_path / "d", images, masks, [0, 1], extension=".tif")
    resized, _, out_masks = dataset_arrays(
        folder_dataset(index, [0, 1], (8, 8), 1, 2))
    assert resized.shape == (2, 8, 8, 1)
    expected = resize_mask(masks[..., None].astype(np.float32), (8, 8))
    np.testing.assert_array_equal(out_masks, expected)
    assert out_masks[0].sum() >= 1  # a bin edge may share the pixel


def test_training_pipeline_reshuffles_and_keeps_pairs_together(tmp_path):
    images = np.stack([np.full((8, 8), 10 * k, np.uint8) for k in range(6)])
    masks = np.zeros((6, 8, 8), np.uint8)
    for k in range(6):
        masks[k, k, :] = 1           # row k marks image k
    index = _write(tmp_path / "d", images, masks, range(6))
    dataset = folder_dataset(index, np.arange(6), 8, 1, 3, shuffle=True)
    orders = []
    for _ in range(3):
        got, labels, got_masks = dataset_arrays(dataset)
        for image, label, mask in zip(got, labels, got_masks):
            assert round(float(image[0, 0, 0]) * 255) == 10 * label
            assert mask[label, :, 0].all() and mask.sum() == 8
        orders.append(tuple(labels))
    assert sorted(orders[0]) == list(range(6)) and len(set(orders)) > 1


def _save_png(path, array):
    """A PNG of the array's bit depth: uint8 or uint16, grey `(H, W)` or
    RGB `(H, W, 3)` (Pillow writes no 16-bit colour PNG; TensorFlow does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 2:
        Image.fromarray(array).save(path)
    else:
        path.write_bytes(tf.io.encode_png(tf.constant(array)).numpy())
    # IHDR's bit-depth byte: the file holds the depth meant.
    assert path.read_bytes()[24] == array.dtype.itemsize * 8


def _readers(root, size, channels):
    """The pixels of every file of `root` as training, `isnet evaluate` and
    `isnet predict` read them, `(N, h, w, channels)` each."""
    index = scan_folder_dataset(root / "images", root / "masks",
                                root / "labels.csv")
    training, _, _ = dataset_arrays(folder_dataset(
        index, np.arange(len(index.labels)), size, channels, 4))
    classifier = keras.Sequential([
        keras.Input((*size, channels)), keras.layers.Flatten(),
        keras.layers.Dense(2)])
    spec = ("folder", str(root / "images"), str(root / "masks"),
            str(root / "labels.csv"))
    evaluation, _, _ = load_test_set(spec, classifier,
                                     argparse.Namespace(model="model"))
    prediction = predict.load_inputs(
        [str(path) for path in index.image_paths], (*size, channels))
    return (training, evaluation.images,
            np.stack([image for _, image in prediction]))


def _folder(root, images, masks):
    """A folder dataset of the given arrays, saved at their bit depths."""
    rows = ["filename,label"]
    for number, (image, mask) in enumerate(zip(images, masks)):
        _save_png(root / "images" / f"im{number}.png", image)
        _save_png(root / "masks" / f"im{number}.png", mask)
        rows.append(f"im{number}.png,{number % 2}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("stored, channels, size", [
    (1, 1, (10, 12)), (1, 3, (10, 12)), (3, 3, (10, 12)), (3, 1, (10, 12)),
    (1, 1, (7, 8)), (3, 3, (13, 16))],
    ids=["grey", "grey_to_rgb", "rgb", "rgb_to_grey", "grey_shrunk",
         "rgb_enlarged"])
def test_8_and_16_bit_files_read_alike_in_training_evaluation_and_prediction(
        tmp_path, stored, channels, size):
    rng = np.random.default_rng(3)
    shape = (2, 10, 12) if stored == 1 else (2, 10, 12, 3)
    if stored == 1:
        # Full 16-bit values; their 8-bit file is the nearest 8-bit value.
        deep = rng.integers(0, 65536, shape, dtype=np.uint16)
        shallow = np.round(deep / 257.0).astype(np.uint8)
    else:
        # Pillow reads 8 bits of 16-bit colour files: the 8-bit values
        # repeated in both bytes lose nothing there.
        shallow = rng.integers(0, 256, shape, dtype=np.uint8)
        deep = shallow.astype(np.uint16) * 257
    masks = (rng.uniform(size=(2, 10, 12)) > 0.5).astype(np.uint8)
    _folder(tmp_path / "8bit", shallow, masks)
    _folder(tmp_path / "16bit", deep, masks)
    eight = _readers(tmp_path / "8bit", size, channels)
    sixteen = _readers(tmp_path / "16bit", size, channels)
    # One reader: all three agree, on either file.
    for readings in (eight, sixteen):
        assert readings[0].shape == (2, *size, channels)
        for other in readings[1:]:
            np.testing.assert_allclose(other, readings[0], atol=1e-6)
    np.testing.assert_allclose(sixteen[0], eight[0], atol=1.0 / 255)
    if stored == 1 and size == (10, 12):
        # Scaled by the bit depth: 16-bit values / 65535.
        expected = deep[..., None] / 65535.0
        np.testing.assert_allclose(
            sixteen[0], np.repeat(expected, channels, axis=-1), atol=1e-6)


@pytest.mark.parametrize("foreground", [1, 65535])
def test_16_bit_masks_give_their_foreground_in_training(tmp_path,
                                                        foreground):
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (3, 8, 8), dtype=np.uint8)
    masks = np.zeros((3, 8, 8), np.uint8)
    masks[0, 2:5, 1:6] = 1
    masks[1, 7, 0] = 1
    masks[2, :, 3] = 1
    _folder(tmp_path, images, masks.astype(np.uint16) * foreground)
    index = scan_folder_dataset(tmp_path / "images", tmp_path / "masks",
                                tmp_path / "labels.csv")
    _, _, got = dataset_arrays(folder_dataset(index, [0, 1, 2], 8, 1, 3))
    np.testing.assert_array_equal(got[..., 0], masks)
