"""tf.data pipeline over folder datasets: decoding, channels, mask resize."""

import numpy as np
from PIL import Image

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
