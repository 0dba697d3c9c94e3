"""`isnet bench bias --seeds ...`: per-seed rows, their summary, and the
single-seed results the main job has always written."""

import json

import numpy as np
import pytest

from isnet_keras.bench.seeds import format_summary, summarize
from tests import support


def test_summary_gives_mean_min_and_max_per_model_in_row_order():
    rows = [{"seed": 0, "model": "b", "x": 0.2, "y": 1.0},
            {"seed": 0, "model": "a", "x": 0.5, "y": 0.0},
            {"seed": 1, "model": "b", "x": 0.6, "y": 3.0},
            {"seed": 1, "model": "a", "x": 0.7, "y": 0.0},
            {"seed": 2, "model": "b", "x": 0.4, "y": 2.0}]
    summary = summarize(rows, ["x", "y"])
    assert [entry["model"] for entry in summary] == ["b", "a"]
    b, a = summary
    assert b["seeds"] == [0, 1, 2] and a["seeds"] == [0, 1]
    assert b["x"] == pytest.approx({"mean": 0.4, "min": 0.2, "max": 0.6})
    assert b["y"] == pytest.approx({"mean": 2.0, "min": 1.0, "max": 3.0})
    assert a["x"] == pytest.approx({"mean": 0.6, "min": 0.5, "max": 0.7})
    table = format_summary(summary, ["x"])
    assert "0.400 (0.200-0.600)" in table.splitlines()[2]
    assert table.splitlines()[2].split()[:2] == ["b", "3"]


def test_two_seeds_write_rows_a_summary_and_a_figure_per_seed(tmp_path,
                                                               capsys):
    from isnet_keras.cli import main

    mnist_dir = tmp_path / "mnist"
    support.write_digits_as_mnist(mnist_dir)
    out = tmp_path / "out"
    assert main(["bench", "bias", "--fast", "--benchmark", "decoy",
                 "--models", "plain", "--seeds", "0", "1", "--mnist-dir",
                 str(mnist_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [0, 1] and results["protocol"] == "project"
    assert "models" not in results and "seed" not in results
    assert results["test_sets"] == ["biased", "clean", "randomized"]
    rows = results["rows"]
    assert [(row["seed"], row["model"]) for row in rows] == [
        (0, "plain"), (1, "plain")]
    # Different seeds: different splits, so (almost surely) other numbers.
    assert rows[0]["biased_ci95"] != rows[1]["biased_ci95"] or \
        rows[0]["clean"] != rows[1]["clean"]
    (entry,) = results["summary"]
    assert entry["model"] == "plain" and entry["seeds"] == [0, 1]
    for name in ("biased", "clean", "randomized", "background_fraction"):
        values = [row[name] for row in rows]
        assert entry[name] == pytest.approx({"mean": np.mean(values),
                                             "min": min(values),
                                             "max": max(values)})
    for seed in (0, 1):
        assert (out / f"heatmaps_seed{seed}.png").stat().st_size > 1000
    assert "Mean (min-max) over seeds 0, 1" in printed
    mean = entry["clean"]
    assert f"{mean['mean']:.3f} ({mean['min']:.3f}-{mean['max']:.3f})" \
        in printed


def test_one_seed_keeps_the_results_of_the_main_job(tmp_path):
    from isnet_keras.cli import main

    mnist_dir = tmp_path / "mnist"
    support.write_digits_as_mnist(mnist_dir)
    out = tmp_path / "out"
    assert main(["bench", "bias", "--fast", "--benchmark", "decoy",
                 "--models", "plain", "--seeds", "3", "--mnist-dir",
                 str(mnist_dir), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    # What one seed has always written (`--seed 3`), and its row.
    assert results["seed"] == 3 and results["seeds"] == [3]
    assert set(results["models"]) == {"plain"}
    (row,) = results["rows"]
    assert row["seed"] == 3 and row["model"] == "plain"
    assert row["clean"] == results["models"]["plain"]["clean"]
    assert results["summary"][0]["clean"]["mean"] == row["clean"]
    assert (out / "heatmaps.png").exists()


@pytest.mark.parametrize("flags, seed, seeds", [
    ([], 0, None), (["--seed", "4"], 4, None), (["--seeds", "4"], 4, None),
    (["--seeds", "4", "5"], 4, (4, 5))])
def test_the_command_line_passes_the_seeds_on(monkeypatch, flags, seed,
                                              seeds):
    from isnet_keras import cli
    from isnet_keras.bench import bias

    configs = []
    monkeypatch.setattr(bias, "run_bias_benchmark", configs.append)
    args = cli.build_parser().parse_args(["bench", "bias", *flags])
    assert args.func(args) == 0
    assert (configs[0].seed, configs[0].seeds) == (seed, seeds)
    assert configs[0].out == "runs/bias"


def test_seed_and_seeds_together_are_refused(tmp_path):
    from isnet_keras.cli import main

    with pytest.raises(SystemExit, match="--seed or --seeds"):
        main(["bench", "bias", "--seed", "1", "--seeds", "2", "3",
              "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="must differ"):
        main(["bench", "bias", "--seeds", "2", "2", "--out", str(tmp_path)])
    assert not (tmp_path / "results.json").exists()
