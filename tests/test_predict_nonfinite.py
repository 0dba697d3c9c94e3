"""`isnet predict` refuses non-finite inputs, inputs far outside the
model's range, and non-finite outputs, naming the file or model."""

import json

import keras
import numpy as np
import pytest

from isnet_keras.cli import main as isnet_main


def _classifier():
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(),
        keras.layers.Dense(2, name="logits")])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "classifier.keras"
    _classifier().save(path)
    return str(path)


def _images(count=3):
    return np.random.default_rng(0).uniform(
        0, 1, (count, 8, 8, 1)).astype(np.float32)


def _predict(capsys, model, *args):
    status = isnet_main(["predict", "--model", model, "--json", *args])
    return status, capsys.readouterr()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_pixels_are_refused_naming_the_file(
        model_file, tmp_path, capsys, bad):
    images = _images()
    images[1, 4, 4, 0] = bad
    path = tmp_path / "batch.npy"
    np.save(path, images)
    status, captured = _predict(capsys, model_file, "--images", str(path))
    assert status == 1
    assert captured.out == ""
    assert (f"Array file '{path}' holds NaN or infinite values in 1 of 3 "
            f"image(s) ({path}[1])") in captured.err


def test_values_far_outside_the_input_range_are_refused(
        model_file, tmp_path, capsys):
    path = tmp_path / "huge.npy"
    np.save(path, _images() * 1e6)
    status, captured = _predict(capsys, model_file, "--images", str(path))
    assert status == 1
    assert f"Array file '{path}' holds values from" in captured.err
    assert "far outside the model's input range [0, 1]" in captured.err
    assert "--input-range" in captured.err


def test_values_near_or_inside_the_declared_range_are_accepted(
        model_file, tmp_path, capsys):
    near = tmp_path / "near.npy"
    np.save(near, _images() * 1.2 - 0.1)  # -0.1 .. 1.1: augmentation-like
    status, captured = _predict(capsys, model_file, "--images", str(near))
    assert status == 0, captured.err
    assert len(json.loads(captured.out)["predictions"]) == 3

    # Float pixels 0..255 fit a model declared to take 0..255.
    scaled = tmp_path / "scaled.npy"
    np.save(scaled, _images() * 255.0)
    status, captured = _predict(capsys, model_file, "--images", str(scaled),
                                "--input-range", "0", "255")
    assert status == 0, captured.err


def test_a_model_with_non_finite_outputs_is_refused(tmp_path, capsys):
    classifier = _classifier()
    kernel = classifier.get_layer("logits").kernel
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    model = str(tmp_path / "diverged.keras")
    classifier.save(model)
    path = tmp_path / "batch.npy"
    np.save(path, _images())
    status, captured = _predict(capsys, model, "--images", str(path))
    assert status == 1
    assert captured.out == ""
    assert ("The model's outputs are not finite (NaN or infinity) for 3 of "
            "3 image(s)") in captured.err
    assert f"the weights of '{model}' may have diverged" in captured.err
