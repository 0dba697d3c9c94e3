"""`training/zoo_ablation.py`: one default changed at a time."""

import pathlib
import sys

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))

import zoo_ablation  # noqa: E402

from isnet_keras.bench.bias import bench_classifier  # noqa: E402
from isnet_keras.isnet import DEFAULT_CLIPNORM, DEFAULT_P  # noqa: E402


def test_a_change_is_parsed_into_a_name_and_a_python_value():
    assert zoo_ablation.parse_change("P=0.9") == ("P", 0.9)
    assert zoo_ablation.parse_change("deep_supervision=none") == (
        "deep_supervision", None)
    assert zoo_ablation.parse_change("variant=stochastic") == (
        "variant", "stochastic")
    assert zoo_ablation.parse_change("default") == (None, None)
    with pytest.raises(ValueError, match="NAME=VALUE"):
        zoo_ablation.parse_change("P0.9")


@pytest.mark.parametrize("change, P, rate, clip", [
    ("default", DEFAULT_P, 3e-3, DEFAULT_CLIPNORM),
    ("P=0.9", 0.9, 3e-3, DEFAULT_CLIPNORM),
    ("learning_rate=1e-3", DEFAULT_P, 1e-3, DEFAULT_CLIPNORM),
    ("clipnorm=1.0", DEFAULT_P, 3e-3, 1.0),
])
def test_only_the_named_setting_differs_from_the_defaults(change, P, rate,
                                                          clip):
    isnet = zoo_ablation.build(bench_classifier((16, 16, 1), 3), change)
    assert isnet.P == pytest.approx(P)
    assert float(isnet.optimizer.learning_rate) == pytest.approx(rate)
    assert isnet.optimizer.global_clipnorm == pytest.approx(clip)
    assert isinstance(isnet.optimizer, keras.optimizers.Adam)


def test_the_command_refuses_an_existing_output(tmp_path):
    out = tmp_path / "rows.json"
    out.write_text("[]")
    with pytest.raises(SystemExit):
        zoo_ablation.main(["--out", str(out)])
    assert out.read_text() == "[]"
