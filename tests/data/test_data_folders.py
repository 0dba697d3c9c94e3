"""Folder datasets: a good round trip and every bad input named by file."""

import numpy as np
import pytest
from PIL import Image

from isnet_keras.data import (
    FolderDatasetError,
    load_folder_dataset,
    scan_folder_dataset,
)


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path)


def make_folder(tmp_path, rows=None, size=(6, 8)):
    """Three RGB images with 0/255, 0/1 and bilevel masks, and a labels CSV."""
    rng = np.random.default_rng(0)
    images_dir, masks_dir = tmp_path / "images", tmp_path / "masks"
    height, width = size
    pixels = {}
    for index, name in enumerate(("cat_1.png", "dog_1.png", "sub/cat_2.png")):
        pixels[name] = rng.integers(
            0, 256, size=(height, width, 3), dtype=np.uint8
        )
        save(images_dir / name, pixels[name])
        mask = np.zeros((height, width), np.uint8)
        mask[1 : 3 + index, 2:5] = 1
        pixels[name + ":mask"] = mask
    save(masks_dir / "cat_1.png", pixels["cat_1.png:mask"] * 255)
    save(masks_dir / "dog_1.png", pixels["dog_1.png:mask"])
    # A bilevel (mode "1") PNG.
    bilevel = pixels["sub/cat_2.png:mask"].astype(bool)
    save(masks_dir / "sub" / "cat_2.png", bilevel)
    csv_path = tmp_path / "labels.csv"
    rows = rows if rows is not None else [
        "filename,label", "cat_1.png,cat", "dog_1.png,dog", "sub/cat_2.png,cat",
    ]
    csv_path.write_text("\n".join(rows) + "\n")
    return images_dir, masks_dir, csv_path, pixels


def test_good_folder_round_trip(tmp_path):
    images_dir, masks_dir, csv_path, pixels = make_folder(tmp_path)
    grey = load_folder_dataset(images_dir, masks_dir, csv_path)
    assert grey.class_names == ("cat", "dog")
    assert grey.labels.tolist() == [0, 1, 0]
    assert grey.images.shape == (3, 6, 8, 1) and grey.images.dtype == np.float32
    names = [path.name for path in grey.files]
    assert names == ["cat_1.png", "dog_1.png", "cat_2.png"]
    dog_grey = Image.fromarray(pixels["dog_1.png"]).convert("L")
    expected_grey = np.asarray(dog_grey) / 255.0
    np.testing.assert_allclose(grey.images[1, ..., 0], expected_grey, atol=1e-7)
    for index, name in enumerate(("cat_1.png", "dog_1.png", "sub/cat_2.png")):
        np.testing.assert_array_equal(
            grey.masks[index, ..., 0], pixels[name + ":mask"]
        )
    colour = load_folder_dataset(images_dir, masks_dir, csv_path, channels=3)
    np.testing.assert_allclose(
        colour.images[2], pixels["sub/cat_2.png"] / 255.0, atol=1e-7
    )


def test_scan_returns_the_validated_file_list(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(tmp_path)
    index = scan_folder_dataset(
        images_dir, masks_dir, csv_path, class_names=["dog", "cat"]
    )
    assert index.class_names == ("dog", "cat")
    assert index.labels.tolist() == [1, 0, 1]
    assert index.image_paths[2] == images_dir / "sub" / "cat_2.png"
    assert index.mask_paths[0] == masks_dir / "cat_1.png"
    assert index.image_sizes == ((6, 8),) * 3


def test_integer_labels_and_a_mask_with_another_extension(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(
        tmp_path,
        rows=[
            "Filename,Label,notes",
            "cat_1.png,2,x",
            "dog_1.png,0,",
            "sub/cat_2.png,2,y",
        ],
    )
    image = Image.open(images_dir / "dog_1.png").convert("RGB")
    (images_dir / "dog_1.png").unlink()
    image.save(images_dir / "dog_1.jpg", quality=95)
    csv_path.write_text(csv_path.read_text().replace("dog_1.png", "dog_1.jpg"))
    data = load_folder_dataset(images_dir, masks_dir, csv_path)
    assert data.class_names == ("0", "1", "2")
    assert data.labels.tolist() == [2, 0, 2]


def test_resizing_keeps_masks_binary(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(tmp_path)
    save(images_dir / "dog_1.png", np.zeros((9, 5, 3), np.uint8))
    save(masks_dir / "dog_1.png", np.eye(9, 5, dtype=np.uint8))
    with pytest.raises(
        FolderDatasetError, match=r"dog_1\.png: size 9x5.*pass image_size"
    ):
        load_folder_dataset(images_dir, masks_dir, csv_path)
    data = load_folder_dataset(
        images_dir, masks_dir, csv_path, image_size=(12, 10)
    )
    assert data.images.shape == (3, 12, 10, 1)
    assert set(np.unique(data.masks)) == {0.0, 1.0}


def test_missing_mask(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(tmp_path)
    (masks_dir / "dog_1.png").unlink()
    with pytest.raises(FolderDatasetError, match=r"dog_1\.png: no mask in"):
        load_folder_dataset(images_dir, masks_dir, csv_path)


def test_image_and_mask_sizes_differ(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(tmp_path)
    save(masks_dir / "cat_1.png", np.zeros((6, 7), np.uint8))
    with pytest.raises(
        FolderDatasetError, match=r"cat_1\.png: size 8x6 .* is 7x6"
    ):
        scan_folder_dataset(images_dir, masks_dir, csv_path)


@pytest.mark.parametrize("values", [(0, 128), (0, 1, 255), (0, 2)])
def test_non_binary_mask(tmp_path, values):
    images_dir, masks_dir, csv_path, _ = make_folder(tmp_path)
    mask = np.zeros((6, 8), np.uint8)
    mask[0, : len(values)] = values
    save(masks_dir / "sub" / "cat_2.png", mask)
    with pytest.raises(
        FolderDatasetError, match=r"cat_2\.png: non-binary mask"
    ):
        load_folder_dataset(images_dir, masks_dir, csv_path)


def test_coloured_mask(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(tmp_path)
    mask = np.zeros((6, 8, 3), np.uint8)
    mask[0, 0] = (255, 0, 0)
    save(masks_dir / "cat_1.png", mask)
    with pytest.raises(
        FolderDatasetError, match=r"cat_1\.png: mask has colours"
    ):
        load_folder_dataset(images_dir, masks_dir, csv_path)


def test_corrupt_and_truncated_images(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(tmp_path)
    (images_dir / "cat_1.png").write_bytes(b"this is not an image")
    whole = (images_dir / "dog_1.png").read_bytes()
    (images_dir / "dog_1.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FolderDatasetError) as caught:
        load_folder_dataset(images_dir, masks_dir, csv_path)
    message = str(caught.value)
    assert "2 problem(s)" in message
    assert "cat_1.png: unreadable or corrupt image" in message
    assert "dog_1.png: unreadable or corrupt image" in message


def test_corrupt_mask_file(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(tmp_path)
    (masks_dir / "dog_1.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(
        FolderDatasetError, match=r"masks/dog_1\.png: unreadable"
    ):
        scan_folder_dataset(images_dir, masks_dir, csv_path)


def test_csv_row_names_a_missing_image(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(
        tmp_path, rows=["filename,label", "cat_1.png,cat", "ghost.png,dog"]
    )
    with pytest.raises(
        FolderDatasetError, match=r"ghost\.png: listed in .* but not found"
    ):
        load_folder_dataset(images_dir, masks_dir, csv_path)


def test_empty_label(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(
        tmp_path, rows=["filename,label", "cat_1.png,cat", "dog_1.png,  "]
    )
    with pytest.raises(FolderDatasetError, match=r"dog_1\.png: empty label"):
        load_folder_dataset(images_dir, masks_dir, csv_path)


def test_unknown_label(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(
        tmp_path, rows=["filename,label", "cat_1.png,cat", "dog_1.png,dgo"]
    )
    with pytest.raises(
        FolderDatasetError, match=r"dog_1\.png: unknown label 'dgo'"
    ):
        load_folder_dataset(
            images_dir, masks_dir, csv_path, class_names=("cat", "dog")
        )


def test_labels_mixing_integers_and_names(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(
        tmp_path, rows=["filename,label", "cat_1.png,cat", "dog_1.png,1"]
    )
    with pytest.raises(
        FolderDatasetError, match=r"mix integers and class names \(dog_1\.png"
    ):
        load_folder_dataset(images_dir, masks_dir, csv_path)


def test_duplicate_rows(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(
        tmp_path,
        rows=[
            "filename,label",
            "cat_1.png,cat",
            "dog_1.png,dog",
            "cat_1.png,cat",
        ],
    )
    with pytest.raises(
        FolderDatasetError, match=r"cat_1\.png: listed twice .*lines 2 and 4"
    ):
        load_folder_dataset(images_dir, masks_dir, csv_path)


def test_header_is_required(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(
        tmp_path, rows=["cat_1.png,cat", "dog_1.png,dog"]
    )
    with pytest.raises(
        FolderDatasetError, match=r"labels\.csv: the first row must be a header"
    ):
        load_folder_dataset(images_dir, masks_dir, csv_path)


def test_header_only_csv(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(
        tmp_path, rows=["filename,label"]
    )
    with pytest.raises(FolderDatasetError, match=r"labels\.csv: no data rows"):
        load_folder_dataset(images_dir, masks_dir, csv_path)


def test_missing_folder_and_bad_channels(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(tmp_path)
    with pytest.raises(
        FolderDatasetError, match="masks_typo: masks folder not found"
    ):
        load_folder_dataset(images_dir, tmp_path / "masks_typo", csv_path)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        load_folder_dataset(images_dir, masks_dir, csv_path, channels=2)


@pytest.mark.parametrize("foreground", [1, 255, 65535])
def test_16_bit_masks_are_binary_like_8_bit_ones(tmp_path, foreground):
    images_dir, masks_dir, csv_path, pixels = make_folder(tmp_path)
    expected = pixels["dog_1.png:mask"]
    save(masks_dir / "dog_1.png", expected.astype(np.uint16) * foreground)
    assert Image.open(masks_dir / "dog_1.png").mode == "I;16"
    data = load_folder_dataset(images_dir, masks_dir, csv_path)
    np.testing.assert_array_equal(data.masks[1, ..., 0], expected)


def test_16_bit_non_binary_mask_names_the_16_bit_values(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(tmp_path)
    mask = np.zeros((6, 8), np.uint16)
    mask[0, :2] = (1, 65535)
    save(masks_dir / "cat_1.png", mask)
    with pytest.raises(
        FolderDatasetError,
        match=r"cat_1\.png: non-binary mask, values must be \{0, 1\}, "
        r"\{0, 255\} or \{0, 65535\}; found 0, 1, 65535",
    ):
        scan_folder_dataset(images_dir, masks_dir, csv_path)


def test_16_bit_grey_images_are_scaled_by_their_depth(tmp_path):
    images_dir, masks_dir, csv_path, _ = make_folder(tmp_path)
    deep = np.random.default_rng(5).integers(0, 65536, (6, 8),
                                             dtype=np.uint16)
    save(images_dir / "dog_1.png", deep)
    data = load_folder_dataset(images_dir, masks_dir, csv_path)
    np.testing.assert_allclose(data.images[1, ..., 0], deep / 65535.0,
                               atol=1e-6)
