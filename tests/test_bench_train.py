"""`training/bench_train.py` runs and prints one row per trainer."""

import math
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_bench_train_prints_each_trainer_with_its_ratio_to_plain():
    done = subprocess.run(
        [sys.executable, "training/bench_train.py", "--models", "cnn",
         "--classes", "3", "--variants", "selective", "original",
         "--size", "16", "--batch", "4", "--steps", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {}
    for line in done.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] == "cnn":
            rows[fields[2]] = [float(f) for f in fields[3:]]
    assert set(rows) == {"plain", "selective", "original"}
    step_ms, ratio, peak_mib = rows["plain"][:3]
    assert ratio == 1.0 and step_ms > 0 and peak_mib > 100
    for name in ("selective", "original"):
        step_ms, ratio, peak_mib = rows[name][:3]
        assert abs(ratio - step_ms / rows["plain"][0]) < 0.01 + 0.01 * ratio
        assert peak_mib > 100


def test_repeats_print_the_median_ratio_inside_its_range():
    done = subprocess.run(
        [sys.executable, "training/bench_train.py", "--models", "cnn",
         "--classes", "2", "--variants", "selective", "--size", "16",
         "--batch", "4", "--steps", "2", "--repeats", "2", "--no-memory"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(2 process(es), medians)" in done.stdout
    rows = {line.split()[2]: line.split()[3:] for line in
            done.stdout.splitlines() if line.startswith("cnn")}
    assert set(rows) == {"plain", "selective"}
    for name, (step_ms, ratio, warmup, spread) in rows.items():
        low, high = (float(v) for v in spread.split("-"))
        assert low <= float(ratio) <= high and float(step_ms) > 0
    assert rows["plain"][1:] == ["1.00", rows["plain"][2], "1.00-1.00"]


@pytest.mark.parametrize("variant", ["selective", "default"])
def test_profile_train_splits_the_step_into_pieces_op_types_and_layers(
        variant):
    done = subprocess.run(
        [sys.executable, "training/profile_train.py", "--model", "cnn",
         "--variant", variant, "--classes", "2", "--size", "16",
         "--batch", "4", "--repeats", "1", "--ops", "--layers"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    # "  forward   11.5 ms   0.70 x plain step": the time and its ratio.
    # Only the structure is checked: on a shared machine the pieces' times
    # need not come out in the order of their work.
    pieces = {fields[0]: (float(fields[1]), fields[2], float(fields[3]))
              for fields in (line.split() for line in lines
                             if line.strip().endswith("x plain step"))}
    assert set(pieces) == {"forward", "plain_step", "lrp_forward",
                           "lrp_and_loss", "isnet_step"}
    for name, (milliseconds, unit, ratio) in pieces.items():
        assert unit == "ms", name
        assert math.isfinite(milliseconds) and milliseconds > 0, name
        assert math.isfinite(ratio) and ratio > 0, name
    assert pieces["plain_step"][2] == 1.0
    ops_start = next(i for i, line in enumerate(lines)
                     if line.startswith("op types in the ISNet step"))
    layers_start = next(i for i, line in enumerate(lines)
                        if line.startswith("layers of the ISNet step"))
    op_rows = [line.split() for line in lines[ops_start + 1:layers_start]]
    assert op_rows and all(row[2] == "ms" and float(row[1]) >= 0
                           for row in op_rows)
    assert any("Conv2D" in row[0] for row in op_rows)
    layers = [line.split() for line in lines[layers_start + 1:]]
    # Mirrors run forward and differentiated; their transposed
    # convolutions count as convolutions.
    assert any(row[0].startswith("lrp_") and row[1:3] == ["gradient", "conv"]
               for row in layers)
    assert any(row[0].startswith("lrp_") and row[1:3] == ["forward", "other"]
               for row in layers)
    shares = [float(row[-2]) for row in layers]  # "... 12.3 ms 4.5 %"
    assert all(share >= 0 for share in shares) and sum(shares) <= 100.5
