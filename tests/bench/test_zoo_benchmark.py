"""`isnet bench zoo`: every (family, seed, model) row, the default recipe,
and the refusal to overwrite a previous run."""

import json

import keras
import numpy as np
import pytest

from isnet_keras import run_config
from isnet_keras.bench import zoo
from isnet_keras.cli import main


def test_fast_run_writes_a_row_per_family_seed_and_model(tmp_path, capsys):
    out = tmp_path / "zoo"
    assert main(["bench", "zoo", "--fast", "--families", "marker",
                 "--seeds", "0", "1", "--data", "digits",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert [(r["family"], r["seed"], r["model"]) for r in rows] == [
        ("marker", seed, model) for seed in (0, 1)
        for model in zoo.ZOO_MODELS]
    for row in rows:
        for test_set in ("biased", "clean", "confounding"):
            low, high = row[f"{test_set}_ci95"]
            assert 0 <= low <= row[test_set] <= high <= 1
        assert 0 <= row["background_fraction"] <= 1
    assert results["wall_seconds"] > 0
    # The recipe is what build_isnet and ISNet.compile() use by default.
    recipe = results["recipe"]
    assert recipe["variant"] == "selective"
    assert recipe["deep_supervision"] == "auto"
    assert recipe["optimizer"]["class"] == "Adam"
    assert recipe["lr_schedule"] == run_config.DEFAULTS["lr_schedule"]
    # Summary: mean and range over the two seeds of each family and model.
    entry = results["summary"][0]
    group = [r["clean"] for r in rows
             if (r["family"], r["model"]) == (entry["family"],
                                              entry["model"])]
    assert entry["seeds"] == 2
    assert entry["clean"]["mean"] == pytest.approx(np.mean(group))
    assert entry["clean"]["min"] == min(group)
    assert [(t["family"], t["seed"]) for t in results["targets"]] == [
        ("marker", 0), ("marker", 1)]
    assert "| marker | isnet |" in (out / "summary.md").read_text()
    printed = capsys.readouterr().out
    assert "plain_unbiased" in printed and "Mean (min-max)" in printed

    # A second run into the same folder refuses, and keeps the first.
    before = (out / "results.json").read_text()
    assert main(["bench", "zoo", "--fast", "--families", "marker",
                 "--data", "digits", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert (out / "results.json").read_text() == before


def test_unknown_family_is_named(tmp_path, capsys):
    assert main(["bench", "zoo", "--fast", "--families", "stripes",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "stripes" in err and "watermark" in err


def test_plain_unbiased_trains_on_the_images_without_the_cue(monkeypatch):
    from isnet_keras.data.zoo import make_zoo_benchmark

    bench = make_zoo_benchmark("marker", source="digits", limit_per_class=5)
    seen = {}

    class Recorder:
        def __init__(self, classifier):
            self.classifier = classifier

        def compile(self, **kwargs):
            pass

        def fit(self, images, targets, **kwargs):
            seen["images"] = images
            raise StopIteration

    monkeypatch.setattr(zoo, "_make_model", lambda name, c: Recorder(c))
    config = zoo.ZooBenchConfig(fast=True)
    for name, expected in (("plain_unbiased", bench.train_clean),
                           ("plain", bench.train)):
        with pytest.raises(StopIteration):
            zoo.train_and_test(name, bench, 0, config)
        np.testing.assert_array_equal(seen["images"], expected.images)
    assert not np.array_equal(bench.train.images, bench.train_clean.images)


def _row(family, seed, model, biased, clean, confounding):
    return {"family": family, "seed": seed, "model": model,
            "biased": biased, "clean": clean, "confounding": confounding,
            "background_fraction": 0.1}


def test_targets_compare_the_isnet_with_itself_and_the_reference():
    rows = [_row("frame", 0, "plain_unbiased", 0.8, 0.96, 0.9),
            _row("frame", 0, "isnet", 0.95, 0.94, 0.93),
            _row("noise", 0, "plain_unbiased", 0.9, 0.97, 0.9),
            _row("noise", 0, "isnet", 0.99, 0.9, 0.90)]
    frame, noise = zoo.target_gaps(rows)
    assert frame["biased_minus_confounding"] == pytest.approx(0.02)
    assert frame["reference_minus_confounding"] == pytest.approx(0.03)
    assert frame["met"] and not noise["met"]
    table = zoo.markdown_table(zoo.summarize(rows))
    assert "| frame | isnet | 0.950 (0.950–0.950) |" in table
    assert len(table.splitlines()) == 2 + 4


def test_vit_classifier_reaches_every_model(monkeypatch):
    from isnet_keras.data.zoo import make_zoo_benchmark

    bench = make_zoo_benchmark("frame", source="digits", limit_per_class=5)
    seen = []

    class Recorder:
        optimizer = keras.optimizers.Adam(1e-3)

        def __init__(self, classifier):
            seen.append(classifier)

        def compile(self, **kwargs):
            pass

        def fit(self, images, targets, **kwargs):
            raise StopIteration

    monkeypatch.setattr(zoo, "_make_model", lambda name, c: Recorder(c))
    config = zoo.ZooBenchConfig(fast=True, classifier="vit_small")
    for name in zoo.ZOO_MODELS:
        with pytest.raises(StopIteration):
            zoo.train_and_test(name, bench, 0, config)
    for classifier in seen:
        assert any(isinstance(layer, keras.layers.MultiHeadAttention)
                   for layer in classifier.layers)
        assert classifier.input_shape[1:] == bench.train.images.shape[1:]
    assert len(seen) == len(zoo.ZOO_MODELS)


def test_unknown_classifier_is_named(tmp_path):
    with pytest.raises(ValueError, match="resnet.*bench_cnn, vit_small"):
        zoo.run_zoo_benchmark(zoo.ZooBenchConfig(
            fast=True, classifier="resnet", out=str(tmp_path)))


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_the_learning_rate_schedule_reaches_every_model(monkeypatch,
                                                        schedule):
    from isnet_keras.callbacks import CosineLearningRate
    from isnet_keras.data.zoo import make_zoo_benchmark

    bench = make_zoo_benchmark("frame", source="digits", limit_per_class=5)
    given = []

    class Recorder:
        def __init__(self, name):
            self.optimizer = keras.optimizers.Adam(2e-3)

        def fit(self, images, targets, **kwargs):
            given.append(kwargs["callbacks"])
            raise StopIteration

    monkeypatch.setattr(zoo, "_make_model", lambda name, c: Recorder(name))
    config = zoo.ZooBenchConfig(fast=True, lr_schedule=schedule)
    for name in zoo.ZOO_MODELS:
        with pytest.raises(StopIteration):
            zoo.train_and_test(name, bench, 0, config)
    for callbacks in given:
        if schedule == "constant":
            assert callbacks == []
        else:
            (callback,) = callbacks
            assert isinstance(callback, CosineLearningRate)
            assert callback.base_rate == pytest.approx(2e-3)
    assert len(given) == len(zoo.ZOO_MODELS)


def test_unknown_lr_schedule_is_named(tmp_path):
    with pytest.raises(ValueError, match="linear.*constant, cosine"):
        zoo.run_zoo_benchmark(zoo.ZooBenchConfig(
            fast=True, lr_schedule="linear", out=str(tmp_path)))


def test_default_recipe_lists_build_isnet_defaults_and_the_optimizer():
    import inspect

    from isnet_keras.isnet import build_isnet

    recipe = zoo.default_recipe()
    parameters = inspect.signature(build_isnet).parameters
    assert recipe["P"] == parameters["P"].default == "auto"
    assert recipe["patch_masks"] == "auto"
    assert "kwargs" not in recipe and "classifier" not in recipe
    assert recipe["optimizer"]["class"] == "Adam"
    assert recipe["optimizer"]["learning_rate"] == pytest.approx(3e-3)
