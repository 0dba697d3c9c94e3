"""`isnet export` errors name its flags, the Python API its arguments.

Every case fails before any conversion, so no TFLite converter runs.
"""

import pickle

import keras
import numpy as np
import pytest

from isnet_keras import cli, export
from isnet_keras.cli import export as export_command

# Python spellings that a command-line user cannot type.
PYTHON_NAMES = ("overwrite=True", "representative_data", "quantize=",
                "input_range", "`version`", "as None", "allow_pickle")


def classifier():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(3)])


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    classifier().save(path)
    return str(path)


@pytest.fixture
def isnet_export(keras_file, capsys, monkeypatch):
    """Runs `isnet export --model FILE ARGS`; returns (status, stderr)."""
    # main() sets a TensorFlow default in os.environ; keep it to this test.
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)

    def run(*args):
        capsys.readouterr()
        status = cli.main(["export", "--model", keras_file, *map(str, args)])
        return status, capsys.readouterr().err

    return run


def assert_flag_terms(message, *flags):
    assert message.startswith("isnet export: error: "), message
    for flag in flags:
        assert flag in message, message
    for name in PYTHON_NAMES:
        assert name not in message, message


def test_existing_tflite_file_names_overwrite_flag(isnet_export, tmp_path):
    out = tmp_path / "model.tflite"
    out.write_bytes(b"precious")
    status, message = isnet_export("--format", "tflite", "--out", out)
    assert status == 1
    assert_flag_terms(message, "already exists", "pass --overwrite")
    assert out.read_bytes() == b"precious"


def test_int8_without_calibration_data_names_the_flag(isnet_export, tmp_path):
    out = tmp_path / "int8.tflite"
    status, message = isnet_export("--format", "tflite", "--out", out,
                                   "--quantize", "int8")
    assert status == 2
    assert_flag_terms(message, "--quantize int8 needs --calibration-data")
    assert not out.exists()


@pytest.mark.parametrize("quantize", [None, "none", "dynamic"])
def test_calibration_data_without_int8_names_the_flags(isnet_export, tmp_path,
                                                       quantize):
    calibration = tmp_path / "calibration.npy"
    np.save(calibration, np.zeros((4, 8, 8, 1), np.float32))
    args = ["--format", "tflite", "--out", tmp_path / "m.tflite",
            "--calibration-data", calibration]
    if quantize:
        args += ["--quantize", quantize]
    status, message = isnet_export(*args)
    assert status == 2
    assert_flag_terms(message, "--calibration-data is used only with "
                      f"--quantize int8; received it with --quantize "
                      f"{quantize or 'none'}")


@pytest.mark.parametrize("data, expected", [
    (np.zeros((4, 16, 16, 1), np.float32), "shape (N, 8, 8, 1)"),
    (np.full((4, 8, 8, 1), 255.0, np.float32), "values span"),
])
def test_unfit_calibration_data_names_the_flag(isnet_export, tmp_path, data,
                                               expected):
    calibration = tmp_path / "calibration.npy"
    np.save(calibration, data)
    status, message = isnet_export(
        "--format", "tflite", "--out", tmp_path / "m.tflite",
        "--quantize", "int8", "--calibration-data", calibration)
    assert status == 1
    assert_flag_terms(message, "--calibration-data", expected)


def test_unreadable_calibration_files_name_the_flag(isnet_export, tmp_path):
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}, None], dtype=object),
            allow_pickle=True)
    pickled = tmp_path / "pickled.npy"
    pickled.write_bytes(pickle.dumps([1, 2, 3]))
    archive = tmp_path / "archive.npz"
    np.savez(archive, images=np.zeros((4, 8, 8, 1), np.float32))
    for path, expected in [(objects, "pickled Python objects"),
                           (pickled, "pickled Python objects"),
                           (archive, ".npz archive"),
                           (tmp_path / "missing.npy", "not found")]:
        status, message = isnet_export(
            "--format", "tflite", "--out", tmp_path / "m.tflite",
            "--quantize", "int8", "--calibration-data", path)
        assert status == 1
        assert_flag_terms(message, "--calibration-data", path.name, expected)


@pytest.mark.parametrize("fmt, out", [("tflite", "m.tflite"),
                                      ("savedmodel", "served")])
def test_empty_input_range_names_the_flag(isnet_export, tmp_path, fmt, out):
    status, message = isnet_export("--format", fmt, "--out", tmp_path / out,
                                   "--input-range", 1, 0)
    assert status == 1
    assert_flag_terms(message, "--input-range must satisfy low < high")


def test_existing_savedmodel_version_names_the_flag(isnet_export, tmp_path):
    (tmp_path / "served" / "3").mkdir(parents=True)
    status, message = isnet_export("--format", "savedmodel", "--out",
                                   tmp_path / "served", "--version", 3)
    assert status == 1
    assert_flag_terms(message, "already exists", "another --version or "
                      "leave --version out")


def test_python_api_keeps_naming_its_arguments(tmp_path):
    """The library's own messages, and their command-line rewording."""
    model = classifier()
    out = tmp_path / "model.tflite"
    out.write_bytes(b"precious")
    cases = [
        (dict(path=out), FileExistsError, "overwrite=True", "--overwrite"),
        (dict(path=tmp_path / "a.tflite", quantize="int8"), ValueError,
         "quantize='int8' needs `representative_data`",
         "--quantize int8 needs --calibration-data"),
        (dict(path=tmp_path / "a.tflite",
              representative_data=np.zeros((2, 8, 8, 1))), ValueError,
         "`representative_data` is used only with quantize='int8'; "
         "received it with quantize='none'",
         "--calibration-data is used only with --quantize int8; "
         "received it with --quantize none"),
        (dict(path=tmp_path / "a.tflite", input_range=(1.0, 0.0)),
         ValueError, "`input_range` must satisfy", "--input-range must"),
    ]
    for kwargs, error_class, python_words, flag_words in cases:
        with pytest.raises(error_class) as caught:
            export.export_tflite(model, **kwargs)
        assert python_words in str(caught.value)
        reworded = export_command._in_flag_terms(str(caught.value))
        assert flag_words in reworded
        assert not any(name in reworded for name in PYTHON_NAMES), reworded
    (tmp_path / "served" / "1").mkdir(parents=True)
    with pytest.raises(FileExistsError,
                       match="Pass another `version` or leave it as None"):
        export.export_serving(model, tmp_path / "served", version=1)
