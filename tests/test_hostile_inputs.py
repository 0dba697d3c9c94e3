"""Hostile inputs: each is refused with a message naming the problem and
the argument or file, before any training time is spent."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras import run_config, train
from isnet_keras.backbones import small_cnn
from isnet_keras.cli import main as isnet_main
from isnet_keras.data import FolderDatasetError
from isnet_keras.isnet import build_isnet
from isnet_keras.lrp.explain import explain
from tests import support

_folders = support.tiny_folder_set
# A one-epoch run of the compact CNN on 8x8 images, quiet.
_train = support.quick_isnet_train


def _cnn(outputs=2):
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="conv"),
        keras.layers.Flatten(), keras.layers.Dense(outputs, name="logits")])


# build_isnet ---------------------------------------------------------------


def test_build_isnet_refuses_a_backbone_name():
    with pytest.raises(TypeError, match=r"needs a Keras classifier model .*"
                       r"received str 'resnet50'.*backbones\.build_classifier"):
        build_isnet("resnet50")


def test_build_isnet_refuses_a_classifier_of_vectors():
    mlp = keras.Sequential([keras.Input((10,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"image inputs of shape \(H, W, C\)"
                       r".*inputs of shape \(10,\)"):
        build_isnet(mlp)


def test_build_isnet_refuses_a_single_output_unit():
    with pytest.raises(ValueError, match=r"at least 2 classes.*outputs 1"):
        build_isnet(_cnn(outputs=1), deep_supervision=())


# Labels --------------------------------------------------------------------


@pytest.fixture(scope="module")
def isnet_and_data():
    keras.utils.set_random_seed(0)
    isnet = build_isnet(_cnn(), deep_supervision=())
    isnet.compile()
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 1, (4, 8, 8, 1)).astype(np.float32)
    masks = np.zeros((4, 8, 8, 1), np.float32)
    masks[:, 2:6, 2:6] = 1.0
    return isnet, images, masks


def test_fractional_labels_are_refused_before_fit_or_evaluate_runs(
        isnet_and_data):
    isnet, images, masks = isnet_and_data
    before = [w.copy() for w in isnet.get_weights()]
    labels = np.array([0.0, 1.7, 1.0, 0.0])
    message = r"labels must be integer class indices.*\[1\.7\]"
    with pytest.raises(ValueError, match=message):
        isnet.fit(images, (labels, masks), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=message):
        isnet.fit(images, {"label": labels, "mask": masks}, epochs=1,
                  verbose=0)
    with pytest.raises(ValueError, match=message):
        isnet.fit(images, (labels.round(), masks), epochs=1, verbose=0,
                  validation_data=(images, (labels, masks)))
    with pytest.raises(ValueError, match=message):
        isnet.evaluate(images, (labels, masks), verbose=0)
    with pytest.raises(ValueError, match=r"such as \[nan\]"):
        isnet.evaluate(images, (np.array([0, np.nan, 1, 0]), masks),
                       verbose=0)
    assert all(np.array_equal(a, b)
               for a, b in zip(before, isnet.get_weights()))


def test_fractional_labels_in_a_dataset_stop_the_step(isnet_and_data):
    isnet, images, masks = isnet_and_data
    labels = np.array([0.0, 1.0, 1.5, 0.0], np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(
        (images, (labels, masks))).batch(4)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"integer class indices(.|\n)*1\.5"):
        isnet.evaluate(dataset, verbose=0)
    # Whole-valued floats are class indices.
    whole = tf.data.Dataset.from_tensor_slices(
        (images, (np.floor(labels), masks))).batch(4)
    assert np.isfinite(isnet.evaluate(whole, verbose=0, return_dict=True)[
        "loss"])


# Folder sets for `isnet train` ---------------------------------------------


def test_all_empty_training_masks_are_refused_before_training(
        tmp_path, capsys):
    data = _folders(tmp_path / "data", [0, 1] * 6, ["bar", "square"],
                    empty=range(12))
    status, err = _train(capsys, data, tmp_path / "run", "--val-split", 0.34)
    assert status == 1
    assert f"{data / 'masks'}: all 8 training masks are empty" in err
    assert "heatmap loss would be 0" in err
    assert not (tmp_path / "run").exists()


def test_some_empty_training_masks_are_counted_and_named(tmp_path):
    data = _folders(tmp_path / "data", [0, 1] * 6, ["bar", "square"],
                    empty=(0, 3, 5))
    config = run_config.effective_config(None, {
        "data_dir": str(data), "out": str(tmp_path / "run"),
        "val_split": 0.34})
    with pytest.warns(UserWarning) as caught:
        scanned = train.scan_data(config)
    messages = [str(w.message) for w in caught]
    empty_in_training = [
        i for i in (0, 3, 5) if i in set(scanned["train_indices"])]
    assert len(messages) == 1
    assert messages[0].startswith(
        f"{len(empty_in_training)} of 8 training masks in {data / 'masks'} "
        "are empty")
    for i in empty_in_training:
        assert f"image_{i:02d}.png" in messages[0]


def test_a_single_class_is_refused_at_scan_time(tmp_path, capsys):
    data = _folders(tmp_path / "data", [0] * 8, ["cat"])
    status, err = _train(capsys, data, tmp_path / "run")
    assert status == 1
    assert (f"{data / 'labels.csv'}: the images hold 1 class ('cat'); a "
            "classifier needs images of at least 2 classes") in err
    assert not (tmp_path / "run").exists()


def test_a_class_of_one_image_is_refused_when_splitting(tmp_path, capsys):
    data = _folders(tmp_path / "data", [0] * 11 + [1], ["cat", "dog"])
    status, err = _train(capsys, data, tmp_path / "run", "--val-split", 0.5)
    assert status == 1
    assert (f"{data / 'labels.csv'}: class 'dog' has 1 image; splitting "
            "off the validation set needs at least 2 per class") in err
    assert not (tmp_path / "run").exists()


def test_a_validation_set_of_one_image_is_refused(tmp_path, capsys):
    data = _folders(tmp_path / "data", [0, 1] * 4, ["cat", "dog"])
    val = _folders(tmp_path / "val", [1], ["cat", "dog"])
    status, err = _train(capsys, data, tmp_path / "run", "--val-dir", val)
    assert status == 1
    assert f"--val-dir {val} holds 1 image(s)" in err
    assert not (tmp_path / "run").exists()


def test_integer_labels_skipping_a_class_are_refused(tmp_path):
    # Labels 1 and 2 make classes "0", "1" and "2": class 0 has no image.
    data = _folders(tmp_path / "data", [1, 2] * 10, None)
    config = run_config.effective_config(None, {
        "data_dir": str(data), "out": str(tmp_path / "run")})
    with pytest.raises(FolderDatasetError, match="class '0' has no image"):
        train.scan_data(config)


def test_labels_differing_only_in_case_are_refused(tmp_path, capsys):
    data = _folders(tmp_path / "data", [0, 1, 2, 2] * 3,
                    ["Cat", "cat", "dog"])
    status, err = _train(capsys, data, tmp_path / "run")
    assert status == 1
    assert ("labels 'Cat' (image_00.png), 'cat' (image_01.png) differ only "
            "in letter case") in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("size", [1, 2, 3])
def test_small_cnn_names_an_image_size_below_4(size):
    with pytest.raises(ValueError, match=rf"smallcnn needs images of at "
                       rf"least 4x4 pixels; received image size {size}\."):
        small_cnn(2, size)


def test_isnet_train_names_an_image_size_too_small_for_smallcnn(
        tmp_path, capsys):
    data = _folders(tmp_path / "data", [0, 1] * 6, ["bar", "square"])
    status, err = _train(capsys, data, tmp_path / "run", "--image-size", 2)
    assert status == 1
    assert "smallcnn needs images of at least 4x4 pixels; received image " \
        "size 2" in err
    assert not (tmp_path / "run").exists()


# Model files ---------------------------------------------------------------


@pytest.fixture
def junk_model(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(np.random.default_rng(2).bytes(2048))
    return path


@pytest.mark.parametrize("command", ["evaluate", "audit", "predict"])
def test_a_model_file_of_random_bytes_is_named_unreadable(
        tmp_path, capsys, junk_model, command):
    data = _folders(tmp_path / "data", [0, 1] * 2, ["bar", "square"])
    if command == "predict":
        extra = ["--images", str(data / "images" / "image_0.png")]
    else:
        extra = ["--data", f"folder:{data / 'images'},{data / 'masks'},"
                 f"{data / 'labels.csv'}", "--out", str(tmp_path / "out")]
    status = isnet_main([command, "--model", str(junk_model), *extra])
    err = capsys.readouterr().err
    assert status == 1
    assert f"cannot read '{junk_model}' as a Keras model (not a .keras zip " \
        "archive" in err
    assert "not found" not in err.lower()


def test_isnet_train_names_an_unreadable_classifier_file(
        tmp_path, capsys, junk_model):
    data = _folders(tmp_path / "data", [0, 1] * 6, ["bar", "square"])
    status, err = _train(capsys, data, tmp_path / "run", "--backbone",
                         junk_model)
    assert status == 1
    assert f"cannot read '{junk_model}' as a Keras model" in err


# Explanations --------------------------------------------------------------


def test_explain_names_an_empty_batch():
    with pytest.raises(ValueError, match=r"empty batch \(shape "
                       r"\(0, 8, 8, 1\)\)"):
        explain(_cnn(), np.zeros((0, 8, 8, 1), np.float32))
