"""Bounding boxes as masks: the CSV, the pixel convention, the margin, the
errors, and `isnet train --boxes`."""

import json

import numpy as np
import pytest

from isnet_keras.data import FolderDatasetError, scan_folder_dataset
from isnet_keras.data.boxes import (BoxFileError, box_mask, expand_boxes,
                                    read_boxes_csv)
from isnet_keras.data.folders import load_folder_dataset
from isnet_keras.data.pipeline import dataset_arrays, folder_dataset
from tests import support


def _csv(path, *rows, header="filename,x0,y0,x1,y1,label"):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_a_box_covers_x0_to_x1_exclusive_and_y_downwards():
    mask = box_mask([(1, 0, 3, 2)], (3, 5))
    np.testing.assert_array_equal(mask, [[0, 1, 1, 0, 0],
                                         [0, 1, 1, 0, 0],
                                         [0, 0, 0, 0, 0]])
    # Several boxes: their union; the whole image is (0, 0, W, H).
    union = box_mask([(0, 0, 1, 1), (3, 2, 5, 3)], (3, 5))
    np.testing.assert_array_equal(union, [[1, 0, 0, 0, 0],
                                          [0, 0, 0, 0, 0],
                                          [0, 0, 0, 1, 1]])
    assert box_mask([(0, 0, 5, 3)], (3, 5)).all()
    assert box_mask([], (3, 5)).sum() == 0


def test_the_margin_widens_every_side_and_is_clipped():
    np.testing.assert_array_equal(
        box_mask([(2, 2, 3, 3)], (5, 5), margin=1)[1:4, 1:4], np.ones((3, 3)))
    assert box_mask([(2, 2, 3, 3)], (5, 5), margin=1).sum() == 9
    assert expand_boxes([(0, 1, 2, 4)], (4, 6), margin=2).tolist() == [
        [0, 0, 4, 4]]
    with pytest.raises(ValueError, match="margin"):
        box_mask([(0, 0, 1, 1)], (2, 2), margin=-1)


def test_boxes_outside_the_image_or_reversed_are_refused():
    with pytest.raises(BoxFileError, match=r"a\.png: box x 2\.\.6, y 0\.\.1 "
                       r"lies outside the 5x3 \(width x height\) image"):
        box_mask([(2, 0, 6, 1)], (3, 5), name="a.png")
    with pytest.raises(BoxFileError, match="needs x1 > x0"):
        box_mask([(3, 0, 3, 1)], (3, 5))


def test_the_csv_is_read_per_image_with_line_numbers(tmp_path):
    path = _csv(tmp_path / "boxes.csv", "a.png,1,2,3,4,cat",
                "b.png,0,0,2.0,2", "a.png,0,0,1,1,cat")
    boxes = read_boxes_csv(path)
    assert sorted(boxes) == ["a.png", "b.png"]
    assert [(box.x0, box.y1, box.label, box.line) for box in boxes["a.png"]
            ] == [(1, 4, "cat", 2), (0, 1, "cat", 4)]
    assert boxes["b.png"][0].x1 == 2 and boxes["b.png"][0].label is None


@pytest.mark.parametrize("row, message", [
    ("a.png,1,2,3", "line 2: 4 value(s), expected at least 5"),
    ("a.png,1,two,3,4", "line 2: y0 is 'two', not a whole number"),
    ("a.png,1.5,2,3,4", "line 2: x0 is '1.5', not a whole number"),
    ("a.png,-1,2,3,4", "line 2: x0 is -1; coordinates start at 0"),
    ("a.png,3,2,3,4", "line 2: x1=3 must be greater than x0=3"),
    ("a.png,0,4,3,2", "line 2: y1=2 must be greater than y0=4"),
    (",0,0,3,2", "line 2: empty filename"),
])
def test_malformed_rows_name_the_file_and_line(tmp_path, row, message):
    path = _csv(tmp_path / "boxes.csv", row)
    with pytest.raises(BoxFileError) as caught:
        read_boxes_csv(path)
    assert f"{path}, {message}" in str(caught.value)


def test_a_header_without_the_box_columns_is_refused(tmp_path):
    path = _csv(tmp_path / "boxes.csv", "a.png,1,2,3,4",
                header="filename,left,top,right,bottom")
    with pytest.raises(BoxFileError, match="line 1: the header must name"):
        read_boxes_csv(path)


def _folder_with_boxes(tmp_path, rows):
    data = support.tiny_folder_set(tmp_path / "data", [0, 1] * 3,
                                   ["bar", "square"])
    return data, _csv(tmp_path / "boxes.csv", *rows)


def test_boxes_replace_the_mask_files_of_a_folder(tmp_path):
    rows = ["image_0.png,1,2,4,3", "image_0.png,6,6,8,8", "image_1.png,0,0,8,8",
            "image_2.png,2,2,6,6", "image_3.png,2,2,6,6",
            "image_4.png,2,2,6,6", "image_5.png,2,2,6,6"]
    data, boxes = _folder_with_boxes(tmp_path, rows)
    index = scan_folder_dataset(data / "images", None, data / "labels.csv",
                                boxes=boxes, box_margin=1)
    assert index.annotated.all()
    assert index.mask_boxes[0].tolist() == [[0, 1, 5, 4], [5, 5, 8, 8]]
    loaded = load_folder_dataset(data / "images", None, data / "labels.csv",
                                 boxes=boxes, box_margin=1)
    expected = np.zeros((8, 8))
    expected[1:4, 0:5] = 1
    expected[5:8, 5:8] = 1
    np.testing.assert_array_equal(loaded.masks[0, ..., 0], expected)
    _, _, masks = dataset_arrays(folder_dataset(index, np.arange(6), 4, 1, 6))
    # The any-foreground rule halves the 8x8 mask.
    np.testing.assert_array_equal(masks[0, ..., 0], [[1, 1, 1, 0],
                                                     [1, 1, 1, 0],
                                                     [0, 0, 1, 1],
                                                     [0, 0, 1, 1]])


def test_images_without_a_box_need_partial_masks(tmp_path):
    data, boxes = _folder_with_boxes(
        tmp_path, ["image_0.png,1,1,4,4", "image_3.png,0,0,9,8"])
    with pytest.raises(FolderDatasetError) as caught:
        scan_folder_dataset(data / "images", None, data / "labels.csv",
                            boxes=boxes)
    text = str(caught.value)
    assert f"image_1.png: no box in {boxes}" in text
    assert ("lies outside the 8x8 (width x height) image; x1 may be at most "
            "8") in text
    _csv(boxes, "image_0.png,1,1,4,4", "image_3.png,0,0,8,8")
    index = scan_folder_dataset(data / "images", None, data / "labels.csv",
                                boxes=boxes, partial_masks=True)
    assert index.annotated.tolist() == [True, False, False, True, False,
                                        False]
    _, _, masks = dataset_arrays(folder_dataset(index, np.arange(6), 8, 1, 6))
    assert (masks[1] == -1).all() and masks[3].all()


def test_isnet_train_with_boxes(tmp_path, capsys):
    data, boxes = _folder_with_boxes(
        tmp_path, [f"image_{i}.png,2,2,6,6" for i in range(4)])
    for mask in (data / "masks").iterdir():
        mask.unlink()
    run = tmp_path / "run"
    status, err = support.quick_isnet_train(
        capsys, data, run, "--boxes", boxes, "--box-margin", 1,
        "--val-split", 0.34, "--partial-masks", "--no-deep-supervision")
    assert status == 0, err
    summary = json.loads((run / "run.json").read_text())
    assert summary["num_train"] == 4
    assert 2 <= summary["num_train_annotated"] <= 4
