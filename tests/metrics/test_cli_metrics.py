"""Tests of the `isnet metrics` sub-command through its own parser."""

import argparse
import json

import pytest

from isnet_keras.cli import metrics as metrics_command
from isnet_keras.metrics import bayesian_metrics

MATRIX = [[18, 2, 0], [3, 11, 4], [1, 0, 9]]


def run_command(argv):
    parser = argparse.ArgumentParser(prog="isnet")
    metrics_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["metrics", *argv])
    return args.func(args)


@pytest.fixture
def matrix_file(tmp_path):
    path = tmp_path / "confusion.json"
    path.write_text(json.dumps(MATRIX))
    return path


def test_json_output_equals_library_result(matrix_file, capsys):
    code = run_command(
        ["--confusion-matrix", str(matrix_file), "--prior", "0.5",
         "--samples", "3000", "--seed", "7", "--json"]
    )
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert printed == bayesian_metrics(MATRIX, prior=0.5, num_samples=3000, seed=7)


def test_table_lists_every_metric_and_class(matrix_file, capsys):
    run_command(["--confusion-matrix", str(matrix_file), "--samples", "2000"])
    table = capsys.readouterr().out
    for name in ("precision", "recall", "specificity", "f1", "accuracy",
                 "balanced_accuracy", "macro", "95% HDI", "±"):
        assert name in table
    result = bayesian_metrics(MATRIX, num_samples=2000)
    accuracy_line = next(line for line in table.splitlines() if line.startswith("accuracy"))
    assert f"{result['accuracy']['mean']:.4f}" in accuracy_line
    assert f"{result['accuracy']['hdi_high']:.4f}" in accuracy_line
    # 4 per-class metrics × (3 classes + macro) + accuracy + balanced accuracy,
    # plus header and rule.
    assert len(table.strip().splitlines()) == 4 * 4 + 2 + 2


def test_missing_file_exits_with_its_path(tmp_path):
    missing = tmp_path / "absent.json"
    with pytest.raises(SystemExit, match="not found.*absent.json"):
        run_command(["--confusion-matrix", str(missing)])


@pytest.mark.parametrize(
    "content, message",
    [
        ("[[1, 2], [3", "not valid JSON"),
        ('{"matrix": [[1, 2], [3, 4]]}', "list of lists"),
        ("[1, 2, 3]", "list of lists"),
        ("[[1, -2], [3, 4]]", "non-negative"),
        ("[[1, 2, 3], [3, 4, 5]]", "square"),
    ],
)
def test_invalid_file_content_exits_with_message(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SystemExit, match=message) as excinfo:
        run_command(["--confusion-matrix", str(path), "--samples", "100"])
    assert "bad.json" in str(excinfo.value.code)


def test_invalid_prior_exits_with_message(matrix_file):
    with pytest.raises(SystemExit, match="prior"):
        run_command(["--confusion-matrix", str(matrix_file), "--prior", "0"])


def test_confusion_matrix_option_is_required(capsys):
    with pytest.raises(SystemExit):
        run_command([])
    assert "--confusion-matrix" in capsys.readouterr().err
