"""The shortcut audit: counterfactual predictions, verdict rule, files, CLI."""

import json

import keras
import numpy as np
import pytest

import isnet_keras
from isnet_keras.audit_report import (
    AUDIT_FIGURE,
    AUDIT_FILE,
    format_audit,
    write_audit,
)
from isnet_keras.shortcut_audit import (
    AuditResult,
    Proportion,
    audit,
    decide_verdict,
)
from isnet_keras.cli import main as isnet_main

SIZE = 8
# Pixels of the hand-made set: the object covers rows/columns 2-5; the
# background cue sits in the top-left corner.
FOREGROUND_PIXEL = (4, 4)
BACKGROUND_PIXEL = (0, 0)


def cue_set(num_images=80, seed=0):
    """Two classes, each told apart both by one object pixel and by one
    background pixel (1.0 for class 1, 0.0 for class 0), on a textured
    background darker than 0.3."""
    rng = np.random.default_rng(seed)
    labels = np.arange(num_images) % 2
    images = rng.uniform(0.0, 0.3, (num_images, SIZE, SIZE, 1))
    masks = np.zeros((num_images, SIZE, SIZE, 1), np.float32)
    masks[:, 2:6, 2:6] = 1
    for row, column in (FOREGROUND_PIXEL, BACKGROUND_PIXEL):
        images[:, row, column, 0] = labels
    return images.astype(np.float32), labels, masks


def pixel_reader(pixel):
    """A fixed-weight classifier that reads one pixel: class 1 when it is
    above 0.5, class 0 below."""
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(2),
    ])
    kernel = np.zeros((SIZE * SIZE, 2), np.float32)
    kernel[pixel[0] * SIZE + pixel[1]] = [-1.0, 1.0]
    model.layers[-1].set_weights([kernel, np.array([0.5, -0.5], np.float32)])
    return model


def test_a_model_reading_a_background_pixel_uses_the_background():
    images, labels, masks = cue_set()
    result = audit(pixel_reader(BACKGROUND_PIXEL), images, labels, masks)
    assert result.original_accuracy.value == 1.0
    assert result.swapped_accuracy.value == 0.0
    assert result.follows_background_rate.value == 1.0
    assert result.verdict == "uses_background"


def test_a_model_reading_the_foreground_ignores_the_background():
    images, labels, masks = cue_set()
    result = audit(pixel_reader(FOREGROUND_PIXEL), images, labels, masks)
    assert result.original_accuracy.value == 1.0
    assert result.swapped_accuracy.value == 1.0
    assert result.neutral_accuracy.value == 1.0
    assert result.follows_background_rate.value == 0.0
    assert result.verdict == "ignores_background"


def test_too_few_images_are_inconclusive():
    # Nothing follows the background, but 10 images cannot bound the rate
    # below 0.15 (Wilson upper bound 0.28).
    images, labels, masks = cue_set(num_images=10)
    result = audit(pixel_reader(FOREGROUND_PIXEL), images, labels, masks)
    assert result.follows_background_rate.value == 0.0
    assert result.verdict == "inconclusive"


def test_softmax_models_and_isnets_are_accepted():
    images, labels, masks = cue_set()
    reader = pixel_reader(BACKGROUND_PIXEL)
    softmax = keras.Sequential([reader, keras.layers.Softmax()])
    assert audit(softmax, images, labels, masks).verdict == "uses_background"

    class Wrapper:  # stands for an ISNet: the classifier is deploy_model
        deploy_model = pixel_reader(FOREGROUND_PIXEL)

    assert audit(Wrapper(), images, labels, masks).verdict == (
        "ignores_background")


def test_result_dict_has_the_documented_keys_and_intervals():
    images, labels, masks = cue_set()
    result = audit(pixel_reader(BACKGROUND_PIXEL), images, labels, masks,
                   seed=3)
    report = result.to_dict()
    assert {"original_accuracy", "swapped_accuracy", "neutral_accuracy",
            "follows_background_rate", "num_images", "verdict"} <= set(report)
    for key in ("original_accuracy", "swapped_accuracy", "neutral_accuracy",
                "follows_background_rate"):
        assert set(report[key]) == {"value", "wilson_ci95"}
        low, high = report[key]["wilson_ci95"]
        assert 0.0 <= low <= report[key]["value"] <= high <= 1.0
    # All-correct predictions: the interval reaches 1 exactly.
    assert report["original_accuracy"]["wilson_ci95"][1] == 1.0
    assert report["num_images"] == 80
    assert report["chance_rate"] == 0.5
    assert report["seed"] == 3
    assert "uses_background if" in report["verdict_rule"]
    json.dumps(report, allow_nan=False)
    assert isinstance(result, AuditResult)


def test_the_package_exports_the_audit_function():
    import isnet_keras.shortcut_audit  # noqa: F401

    images, labels, masks = cue_set()
    reader = pixel_reader(BACKGROUND_PIXEL)
    assert isnet_keras.audit(reader, images, labels, masks).verdict == (
        "uses_background")
    assert isnet_keras.write_audit is write_audit


def test_empty_masks_are_left_out_and_counted():
    images, labels, masks = cue_set()
    masks[:3] = 0  # no object
    masks[3] = 1   # no background
    result = audit(pixel_reader(FOREGROUND_PIXEL), images, labels, masks)
    assert result.num_images == 76
    assert result.excluded_empty_foreground == 3
    assert result.excluded_no_background == 1


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, y, m: (x, y, m[:, :-1]), "masks"),
        (lambda x, y, m: (x, y, m * 0.5), "binary"),
        (lambda x, y, m: (x, y + 1, m), r"\[0, 2\)"),
        (lambda x, y, m: (x, y * 0, m), "at least 2 classes"),
        (lambda x, y, m: (np.where(m > 0, np.nan, x), y, m), "NaN"),
        (lambda x, y, m: (x, y, m * 0), "no foreground"),
        (lambda x, y, m: (x, y[:-1], m), "entries"),
    ],
)
def test_bad_inputs_are_named(change, message):
    images, labels, masks = cue_set(num_images=8)
    with pytest.raises(ValueError, match=message):
        audit(pixel_reader(FOREGROUND_PIXEL), *change(images, labels, masks))


@pytest.mark.parametrize(
    "original, swapped, follows, classes, verdict",
    [
        # Follows the donor: a shortcut.
        ((300, 300), (3, 300), (297, 300), 10, "uses_background"),
        # Few follow, but another background costs 30 points.
        ((270, 300), (180, 300), (20, 300), 10, "uses_background"),
        # Keeps its answers on any background.
        ((285, 300), (282, 300), (4, 300), 10, "ignores_background"),
        # Does not follow the donor but loses 15 points: partial use.
        ((227, 300), (182, 300), (12, 300), 10, "inconclusive"),
        # Two classes: every error of a background-blind model lands on
        # the donor's class, so a 30 % error rate is no evidence.
        ((210, 300), (215, 300), (85, 300), 2, "ignores_background"),
        # At chance on the original images: keeping answers shows nothing.
        ((32, 300), (30, 300), (27, 300), 10, "inconclusive"),
    ],
)
def test_verdict_rule(original, swapped, follows, classes, verdict):
    got, rule = decide_verdict(Proportion(*original), Proportion(*swapped),
                               Proportion(*follows), classes)
    assert got == verdict
    assert f"K = {classes}" in rule


def test_write_audit_writes_json_and_figure_and_refuses_to_overwrite(tmp_path):
    images, labels, masks = cue_set()
    result = audit(pixel_reader(BACKGROUND_PIXEL), images, labels, masks,
                   class_names=["dark", "bright"])
    json_path, figure_path = write_audit(result, tmp_path / "audit")
    assert json.loads(open(json_path).read()) == result.to_dict()
    assert figure_path.endswith(AUDIT_FIGURE)
    with open(figure_path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError, match="overwrite"):
        write_audit(result, tmp_path / "audit")
    write_audit(result, tmp_path / "audit", overwrite=True, figure_images=0)
    text = format_audit(result)
    assert "follows background" in text and "uses_background" in text


def test_cli_audits_a_folder_dataset_and_refuses_a_second_run(tmp_path,
                                                             capsys):
    from isnet_keras.data.example_folders import write_benchmark_folders
    from isnet_keras.export import image_input_shape

    counts = write_benchmark_folders(tmp_path / "data", benchmark="decoy",
                                     source="digits", limit_per_class=6)
    classifier = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    assert image_input_shape(classifier) == (28, 28, 1)
    model_path = tmp_path / "model.keras"
    classifier.save(model_path)
    test = tmp_path / "data" / "test_biased"
    argv = ["audit", "--model", str(model_path), "--data",
            f"folder:{test / 'images'},{test / 'masks'},{test / 'labels.csv'}",
            "--out", str(tmp_path / "out"), "--seed", "1"]

    assert isnet_main(argv) == 0
    printed = capsys.readouterr().out
    assert "Verdict:" in printed and "swapped accuracy" in printed
    report = json.loads((tmp_path / "out" / AUDIT_FILE).read_text())
    assert {"original_accuracy", "swapped_accuracy", "neutral_accuracy",
            "follows_background_rate", "num_images", "verdict"} <= set(report)
    assert report["num_images"] + report["excluded_empty_foreground"] == (
        counts["test_biased"])
    assert report["seed"] == 1
    assert (tmp_path / "out" / AUDIT_FIGURE).is_file()

    assert isnet_main(argv) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert isnet_main(argv + ["--overwrite"]) == 0


@pytest.mark.slow
def test_audit_tells_a_shortcut_model_from_an_isnet_on_shapes():
    # Shapes: a class-specific white shape sits in the background of every
    # biased image. A plain CNN learns the shape; the default ISNet (LRP
    # deep supervision) learns the digit. Batches of 32 give it enough
    # steps to drop the shortcut.
    from isnet_keras.baselines import PlainClassifier
    from isnet_keras.bench.bias import bench_classifier
    from isnet_keras.data import make_bias_benchmark
    from isnet_keras.isnet import build_isnet

    # scikit-learn's digits: the same offline data on every machine.
    bench = make_bias_benchmark("shapes", source="digits",
                                limit_per_class=150, seed=0)
    # Held-out biased images: the validation split and the biased test set.
    images, labels, masks = (
        np.concatenate([getattr(bench.val, name),
                        getattr(bench.test["biased"], name)])
        for name in ("images", "labels", "masks"))
    train_targets = {"label": bench.train.labels, "mask": bench.train.masks}

    keras.utils.set_random_seed(0)
    plain_classifier = bench_classifier((40, 40, 1), 10)
    plain = PlainClassifier(plain_classifier)
    plain.compile(optimizer=keras.optimizers.Adam(3e-3))
    plain.fit(bench.train.images, train_targets, epochs=2, batch_size=32,
              verbose=0)
    plain_audit = audit(plain_classifier, images, labels, masks, seed=0)

    keras.utils.set_random_seed(0)
    isnet = build_isnet(bench_classifier((40, 40, 1), 10))  # the defaults
    isnet.compile()
    isnet.fit(bench.train.images, train_targets, epochs=8, batch_size=32,
              verbose=0)
    isnet_audit = audit(isnet, images, labels, masks, seed=0)

    print("plain:", plain_audit.to_dict())
    print("isnet:", isnet_audit.to_dict())
    assert plain_audit.verdict == "uses_background"
    assert plain_audit.follows_background_rate.value >= 0.5
    assert isnet_audit.verdict == "ignores_background"
    assert isnet_audit.follows_background_rate.value <= 0.1


def test_isnet_train_audits_its_validation_split(tmp_path, capsys):
    from isnet_keras.data import write_folder_dataset

    rng = np.random.default_rng(0)
    labels = np.arange(24) % 2
    masks = np.zeros((24, 16, 16, 1), np.float32)
    for mask, label in zip(masks, labels):
        top, left = rng.integers(2, 8, 2)
        mask[top:top + 5, left:left + (3 if label else 6)] = 1.0
    images = masks * rng.uniform(0.6, 1.0, masks.shape)
    write_folder_dataset(tmp_path / "data", images.astype(np.float32), masks,
                         labels, class_names=["bar", "square"])
    run = tmp_path / "run"
    status = isnet_main([
        "train", "--data-dir", str(tmp_path / "data"), "--val-split", "0.5",
        "--backbone", "smallcnn", "--image-size", "16", "--epochs", "1",
        "--batch-size", "4", "--verbose", "0", "--heatmap-images", "0",
        "--out", str(run)])
    assert status == 0, capsys.readouterr().err

    report = json.loads((run / "report" / AUDIT_FILE).read_text())
    assert json.loads((run / "run.json").read_text())["audit"] == report
    assert report["num_images"] == 12
    assert report["verdict"] in ("uses_background", "ignores_background",
                                 "inconclusive")
    assert (run / "report" / AUDIT_FIGURE).is_file()


def test_a_validation_set_of_one_class_skips_the_audit_with_the_reason(
        tmp_path):
    from isnet_keras.train import write_audit_report

    class Trained:
        deploy_model = pixel_reader(FOREGROUND_PIXEL)

    images, labels, masks = cue_set(num_images=6)
    report = write_audit_report(Trained(), images, labels * 0, masks,
                                ["a", "b"], tmp_path / "report", seed=0)
    assert "at least 2 classes" in report["skipped"]
    assert not (tmp_path / "report" / AUDIT_FILE).exists()
