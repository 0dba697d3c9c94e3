"""The main job, `isnet bench bias`, end to end in its --fast mode."""

import json
import pathlib
import subprocess
import sys

from isnet_keras.bench.bias import MODEL_NAMES
from tests import support

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _isnet(*args, cwd):
    return subprocess.run([sys.executable, "-m", "isnet_keras.cli", *args],
                          capture_output=True, text=True, cwd=cwd,
                          timeout=900)


def test_fast_run_writes_results_for_every_model_and_a_figure(tmp_path):
    # MNIST IDX files as ../shared/data/mnist holds them, written from
    # scikit-learn's digits: the same run on every machine.
    mnist_dir = tmp_path / "mnist"
    support.write_digits_as_mnist(mnist_dir)
    out = tmp_path / "out"
    done = _isnet("bench", "bias", "--fast", "--mnist-dir", str(mnist_dir),
                  "--out", str(out), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["data"].startswith("idx")
    assert results["test_sets"] == ["biased", "unbiased", "confounding"]
    assert set(results["models"]) == set(MODEL_NAMES)
    for name, report in results["models"].items():
        for test_set in results["test_sets"]:
            low, high = report[f"{test_set}_ci95"]
            assert 0 <= low <= report[test_set] <= high <= 1, name
        assert 0 <= report["background_fraction"] <= 1
    assert (out / "heatmaps.png").stat().st_size > 10_000
    for name in MODEL_NAMES:
        assert name in done.stdout  # the printed table


def test_missing_mnist_names_the_options_that_fix_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = _isnet("bench", "bias", "--fast", "--mnist-dir", str(empty),
                  "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2
    assert "--data digits" in done.stderr and "--mnist-dir" in done.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_without_mnist_the_main_job_falls_back_to_digits_and_says_so(
        tmp_path, monkeypatch, capsys):
    from isnet_keras.cli import main

    # As on a machine without ../shared and without a keras.datasets cache.
    support.without_mnist_on_this_machine(monkeypatch, tmp_path)
    assert main(["bench", "bias", "--fast", "--models", "plain",
                 "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "No MNIST data found" in err and "--data digits" in err
    assert "ISNET_KERAS_NO_SHARED_DATA=1 is set" in err
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["data"].startswith("digits")
