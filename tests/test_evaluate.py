"""Tests of `isnet_keras.evaluate` and the `isnet evaluate` command.

Reference values come from elsewhere: scikit-learn's confusion matrix and
ROC AUC, SciPy's softmax, `explain` + `background_relevance_fraction` run
directly, and linear models whose LRP heatmaps are known in advance.
"""

import argparse
import csv
import json
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import scipy.special
from PIL import Image
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix
from sklearn.metrics import roc_auc_score

from isnet_keras.cli import evaluate as evaluate_command
from isnet_keras.cli.test_data import parse_data_spec
from isnet_keras.data import load_folder_dataset, make_bias_benchmark
from isnet_keras.evaluate import (
    class_probabilities,
    evaluate_classifier,
    format_summary,
    plot_confusion_matrix,
)
from isnet_keras.isnet import build_isnet
from isnet_keras.lrp.explain import explain
from isnet_keras.metrics import (
    background_relevance_fraction,
    positive_foreground_fraction,
    summarize_fraction,
    wilson_interval,
)
from tests.support import small_cnn

IMAGE_SHAPE = (16, 16, 1)
SAMPLES = 2000  # Posterior draws: enough for a summary, fast on a CPU.
FOLDER_CLASSES = ("circle", "square", "triangle")  # Sorted: indices 0, 1, 2.


def random_images(count, seed=0, shape=IMAGE_SHAPE):
    return np.random.default_rng(seed).uniform(size=(count, *shape)).astype(
        np.float32
    )


def random_masks(count, seed=1, shape=IMAGE_SHAPE):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(count, *shape[:2], 1)) > 0.5).astype(np.float32)


def classifier(num_classes, seed=0, softmax=False):
    """A small CNN with random weights; ends in a softmax if asked."""
    keras.utils.set_random_seed(seed)
    model = small_cnn(IMAGE_SHAPE, num_classes)
    if softmax:
        model = keras.Sequential(
            [keras.Input(IMAGE_SHAPE), model, keras.layers.Softmax()]
        )
    return model


def labels_spread_over_predictions(model, images, num_classes, seed=0):
    """Labels that agree with the model on about half the images, so that
    every cell of the confusion matrix and both AUC classes get samples."""
    predicted = model.predict(images, verbose=0).argmax(-1)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, len(images))
    keep = rng.uniform(size=len(images)) < 0.5
    labels[keep] = predicted[keep]
    return labels


def linear_model(weights):
    """Flatten -> Dense without bias: the first (Z^B) layer is the only one."""
    num_classes = weights.shape[-1]
    model = keras.Sequential([
        keras.Input(IMAGE_SHAPE),
        keras.layers.Flatten(),
        keras.layers.Dense(num_classes, use_bias=False),
    ])
    model.layers[-1].kernel.assign(weights.reshape(-1, num_classes))
    return model


# --------------------------------------------------------------------------
# Library
# --------------------------------------------------------------------------


def test_confusion_matrix_accuracy_and_auc_match_sklearn():
    model = classifier(num_classes=3)
    images = random_images(60)
    labels = labels_spread_over_predictions(model, images, 3)
    result = evaluate_classifier(model, images, labels, num_samples=SAMPLES)
    json.dumps(result, allow_nan=False)

    logits = model.predict(images, verbose=0)
    predicted = logits.argmax(-1)
    expected = sklearn_confusion_matrix(labels, predicted, labels=[0, 1, 2])
    matrix = np.array(result["confusion_matrix"])
    np.testing.assert_array_equal(matrix, expected)

    accuracy = result["accuracy"]
    assert accuracy["value"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert accuracy["value"] == pytest.approx(np.mean(predicted == labels))
    assert accuracy["wilson_ci95"] == pytest.approx(
        list(wilson_interval(int(np.trace(matrix)), len(labels)))
    )
    # sklearn's one-vs-one macro AUC is Hand & Till's M.
    assert result["auc"]["method"] == "hand_till"
    assert result["auc"]["value"] == pytest.approx(
        roc_auc_score(labels, scipy.special.softmax(logits, axis=1),
                      multi_class="ovo", average="macro")
    )
    assert result["bayesian"]["num_samples"] == SAMPLES
    assert result["background_attention"] is None
    assert result["class_names"] == ["0", "1", "2"]


def test_per_class_wilson_intervals_use_the_right_denominators():
    model = classifier(num_classes=3)
    images = random_images(60)
    labels = labels_spread_over_predictions(model, images, 3)
    result = evaluate_classifier(model, images, labels, num_samples=SAMPLES)
    matrix = np.array(result["confusion_matrix"])
    for k, row in enumerate(result["per_class"]):
        true_positives = matrix[k, k]
        predicted_k = matrix[:, k].sum()
        actual_k = matrix[k].sum()
        negatives = matrix.sum() - actual_k
        true_negatives = negatives - (predicted_k - true_positives)
        assert row["support"] == actual_k
        assert row["recall"]["wilson_ci95"] == pytest.approx(
            list(wilson_interval(int(true_positives), int(actual_k)))
        )
        assert row["specificity"]["value"] == pytest.approx(
            true_negatives / negatives
        )
        if predicted_k == 0:
            assert row["precision"] is None
        else:
            assert row["precision"]["value"] == pytest.approx(
                true_positives / predicted_k
            )


@pytest.mark.parametrize("softmax", [False, True], ids=["logits", "softmax"])
def test_binary_auc_is_delong_on_positive_class_probability(softmax):
    model = classifier(num_classes=2, softmax=softmax)
    images = random_images(50, seed=3)
    labels = labels_spread_over_predictions(model, images, 2, seed=3)
    outputs = model.predict(images, verbose=0)
    expected_probabilities = (
        outputs if softmax else scipy.special.softmax(outputs, axis=1)
    )
    # A classifier that ends in a softmax is not given a second one.
    np.testing.assert_allclose(
        class_probabilities(model, images), expected_probabilities, rtol=1e-6
    )

    auc = evaluate_classifier(model, images, labels, num_samples=SAMPLES)["auc"]
    assert auc["method"] == "delong"
    assert auc["positive_class"] == 1
    assert auc["value"] == pytest.approx(
        roc_auc_score(labels, expected_probabilities[:, 1])
    )
    low, high = auc["ci95"]
    half_width = 1.96 * np.sqrt(auc["variance"])
    assert low == pytest.approx(max(0.0, auc["value"] - half_width))
    assert high == pytest.approx(min(1.0, auc["value"] + half_width))


def test_auc_is_reported_unavailable_when_a_class_is_missing():
    model = classifier(num_classes=3)
    images = random_images(10)
    labels = np.array([0, 1] * 5)  # Class 2 never occurs.
    auc = evaluate_classifier(model, images, labels, num_samples=SAMPLES)["auc"]
    assert auc["value"] is None
    assert "[2]" in auc["unavailable"]


def test_brf_and_pff_of_linear_models_with_known_heatmaps():
    # Z^B on a bias-free linear layer gives each pixel the relevance
    # x w - l w+ - h w- (up to the logit's normalisation): exactly zero where
    # w = 0, and of the logit's sign elsewhere since 0 <= x <= 1.
    rng = np.random.default_rng(0)
    foreground = np.zeros(IMAGE_SHAPE, np.float32)
    foreground[:, :8] = 1.0  # Left half of every image.
    masks = np.broadcast_to(foreground, (12, *IMAGE_SHAPE)).copy()
    images = random_images(12, seed=5)
    labels = np.arange(12) % 2
    positive_weights = rng.uniform(0.1, 1.0, size=(*IMAGE_SHAPE, 2))

    looks_at_foreground = linear_model(positive_weights * foreground[..., None])
    result = evaluate_classifier(looks_at_foreground, images, labels,
                                 masks=masks, num_samples=SAMPLES)
    attention = result["background_attention"]
    assert attention["num_images"] == 12
    assert attention["brf"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert attention["pff"]["mean"] == pytest.approx(1.0, abs=1e-6)

    background = 1.0 - foreground
    looks_at_background = linear_model(positive_weights * background[..., None])
    attention = evaluate_classifier(
        looks_at_background, images, labels, masks=masks[..., 0],
        num_samples=SAMPLES,
    )["background_attention"]
    assert attention["brf"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert attention["pff"]["mean"] == pytest.approx(0.0, abs=1e-6)


def test_background_attention_equals_direct_lrp_computation():
    model = classifier(num_classes=3, seed=4)
    images = random_images(20, seed=6)
    masks = random_masks(20)
    labels = np.arange(20) % 3
    isnet = build_isnet(model)  # Evaluated through its deploy model.
    attention = evaluate_classifier(isnet, images, labels, masks=masks,
                                    num_samples=SAMPLES)["background_attention"]

    heatmaps = explain(model, images, classes="predicted")[:, 0]
    expected_brf = summarize_fraction(background_relevance_fraction(heatmaps, masks))
    expected_pff = summarize_fraction(positive_foreground_fraction(heatmaps, masks))
    for key in ("mean", "std", "ci_low", "ci_high"):
        assert attention["brf"][key] == pytest.approx(expected_brf[key], rel=1e-5)
        assert attention["pff"][key] == pytest.approx(expected_pff[key], rel=1e-5)
    assert 0.0 < attention["brf"]["mean"] < 1.0


def test_max_heatmaps_scores_a_seeded_subset():
    foreground = np.zeros(IMAGE_SHAPE, np.float32)
    foreground[:8] = 1.0
    weights = np.random.default_rng(1).uniform(0.1, 1.0, (*IMAGE_SHAPE, 2))
    model = linear_model(weights * foreground[..., None])
    images = random_images(30)
    masks = np.broadcast_to(foreground, images.shape).copy()
    labels = np.arange(30) % 2
    first = evaluate_classifier(model, images, labels, masks=masks,
                                num_samples=SAMPLES, max_heatmaps=7)
    again = evaluate_classifier(model, images, labels, masks=masks,
                                num_samples=SAMPLES, max_heatmaps=7)
    assert first["background_attention"]["num_images"] == 7
    assert first["background_attention"]["brf"]["n"] == 7
    assert first == again
    # Accuracy still uses every image.
    assert first["accuracy"]["total"] == 30


def test_model_forms_give_the_same_result(tmp_path):
    model = classifier(num_classes=3)
    images = random_images(12)
    labels = np.arange(12) % 3
    path = tmp_path / "model.keras"
    model.save(path)
    direct = evaluate_classifier(model, images, labels, num_samples=SAMPLES)
    for form in (types.SimpleNamespace(deploy_model=model), str(path), path):
        assert evaluate_classifier(form, images, labels,
                                   num_samples=SAMPLES) == direct


@pytest.mark.parametrize(
    "change, message",
    [
        ({"labels": np.array([0, 1, 3, 0])}, r"\[0, 3\).*\[3\]"),
        ({"labels": np.array([0, -1, 1, 0])}, r"\[0, 3\).*\[-1\]"),
        ({"labels": np.array([0, 1, 2])}, "3 entries but `images` has 4"),
        ({"labels": np.array([0.0, 1.5, 2.0, 0.0])}, "integer"),
        ({"images": np.zeros((4, 16, 15, 1))},
         r"\(4, 16, 15, 1\).*\(N, 16, 16, 1\)"),
        ({"images": np.zeros((4, 16, 16, 3))}, r"\(4, 16, 16, 3\)"),
        ({"images": np.zeros((16, 16, 1))}, r"\(16, 16, 1\)"),
        ({"masks": np.ones((4, 8, 8, 1))},
         r"`masks` have shape \(4, 8, 8, 1\).*`images` have shape "
         r"\(4, 16, 16, 1\)"),
        ({"masks": np.ones((3, 16, 16))}, r"\(3, 16, 16\).*\(4, 16, 16, 1\)"),
        ({"masks": np.full((4, 16, 16, 1), 0.5)}, "binary"),
        ({"class_names": ["a", "b"]}, "2 entries but there are 3 classes"),
        ({"max_heatmaps": 1}, "max_heatmaps"),
        ({"prior": 0.0}, "prior"),
        ({"num_samples": 1}, "num_samples"),
    ],
)
def test_bad_inputs_raise_clear_errors(change, message):
    arguments = {
        "images": np.zeros((4, *IMAGE_SHAPE), np.float32),
        "labels": np.array([0, 1, 2, 0]),
        "masks": np.ones((4, 16, 16, 1), np.float32),
    }
    arguments.update(change)
    model = keras.Sequential(
        [keras.Input(IMAGE_SHAPE), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    with pytest.raises(ValueError, match=message):
        evaluate_classifier(model, **arguments)


def test_confusion_matrix_figure_writes_every_count(tmp_path):
    matrix = [[5, 1, 0], [2, 7, 3], [0, 0, 11]]
    path = tmp_path / "confusion.png"
    figure = plot_confusion_matrix(matrix, ["cat", "dog", "fox"], path=path)
    texts = sorted(text.get_text() for text in figure.axes[0].texts)
    assert texts == sorted(str(count) for row in matrix for count in row)
    ticks = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert ticks == ["cat", "dog", "fox"]
    with Image.open(path) as image:
        assert image.format == "PNG"


def test_summary_names_the_key_numbers():
    model = classifier(num_classes=2)
    images = random_images(12)
    result = evaluate_classifier(model, images, np.arange(12) % 2,
                                 masks=random_masks(12), num_samples=SAMPLES)
    summary = format_summary(result)
    assert f"{result['accuracy']['value']:.4f}" in summary
    assert "AUC (DeLong)" in summary
    brf = result["background_attention"]["brf"]["mean"]
    assert f"Background relevance fraction: {brf:.4f}" in summary


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def run_command(argv):
    parser = argparse.ArgumentParser(prog="isnet")
    evaluate_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def saved_isnet(tmp_path_factory):
    """An ISNet around a 3-class CNN, saved to a .keras file."""
    model = classifier(num_classes=len(FOLDER_CLASSES), seed=2)
    path = tmp_path_factory.mktemp("model") / "isnet.keras"
    build_isnet(model).save(path)
    return path


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory):
    """12 grey 20x20 PNG images (resized to 16x16 on loading), PNG masks
    with 0/255 and a labels.csv naming the classes."""
    root = tmp_path_factory.mktemp("folder")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(7)
    rows = []
    for index in range(12):
        name = f"image_{index:02d}.png"
        pixels = rng.integers(0, 256, (20, 20), dtype=np.uint8)
        mask = np.zeros((20, 20), np.uint8)
        mask[4:16, 3 + index % 4:14 + index % 4] = 255
        Image.fromarray(pixels).save(root / "images" / name)
        Image.fromarray(mask).save(root / "masks" / name)
        rows.append((name, FOLDER_CLASSES[index % 3]))
    with open(root / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("filename", "label"))
        writer.writerows(rows)
    return root


def folder_spec(root):
    return f"folder:{root / 'images'},{root / 'masks'},{root / 'labels.csv'}"


def test_cli_evaluates_a_folder_dataset(saved_isnet, folder_dataset, tmp_path,
                                        capsys):
    out = tmp_path / "run"
    code = run_command([
        "--model", str(saved_isnet), "--data", folder_spec(folder_dataset),
        "--out", str(out), "--samples", str(SAMPLES), "--max-heatmaps", "all",
    ])
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads((out / "evaluation.json").read_text())
    for figure in ("confusion_matrix.png", "heatmaps.png"):
        with Image.open(out / figure) as image:
            assert image.format == "PNG"

    # Independent reference: the deploy classifier run on the same data.
    data = load_folder_dataset(folder_dataset / "images", folder_dataset / "masks",
                               folder_dataset / "labels.csv", image_size=16)
    deploy = keras.models.load_model(saved_isnet, compile=False).deploy_model
    predicted = deploy.predict(data.images, verbose=0).argmax(-1)
    np.testing.assert_array_equal(
        report["confusion_matrix"],
        sklearn_confusion_matrix(data.labels, predicted, labels=[0, 1, 2]),
    )
    assert report["class_names"] == list(FOLDER_CLASSES)
    assert report["num_images"] == 12
    assert report["data"]["kind"] == "folder"
    assert report["data"]["image_size"] == [16, 16]
    assert report["background_attention"]["num_images"] == 12
    assert report["model"] == str(saved_isnet)
    assert "Accuracy:" in printed and "Background relevance fraction" in printed


def test_cli_refuses_to_overwrite(saved_isnet, folder_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    existing = out / "evaluation.json"
    existing.write_text('{"kept": true}')
    # A missing model shows that the refusal comes before any loading.
    code = run_command([
        "--model", str(tmp_path / "absent.keras"),
        "--data", folder_spec(folder_dataset), "--out", str(out),
    ])
    assert code == 1
    error = capsys.readouterr().err
    assert "evaluation.json already exists" in error and "--overwrite" in error
    assert existing.read_text() == '{"kept": true}'

    code = run_command([
        "--model", str(saved_isnet), "--data", folder_spec(folder_dataset),
        "--out", str(out), "--samples", str(SAMPLES), "--max-heatmaps", "4",
        "--overwrite",
    ])
    assert code == 0
    report = json.loads(existing.read_text())
    assert report["background_attention"]["num_images"] == 4


def test_cli_rebuilds_the_benchmark_test_split(tmp_path):
    keras.utils.set_random_seed(0)
    model = small_cnn((40, 40, 1), 10)
    path = tmp_path / "shapes.keras"
    model.save(path)
    out = tmp_path / "run"
    code = run_command([
        "--model", str(path), "--data", "shapes:confounding",
        "--data-source", "digits", "--limit-per-class", "4",
        "--out", str(out), "--samples", str(SAMPLES),
    ])
    assert code == 0
    report = json.loads((out / "evaluation.json").read_text())
    test = make_bias_benchmark("shapes", source="digits", seed=0,
                               limit_per_class=4).test["confounding"]
    predicted = model.predict(test.images, verbose=0).argmax(-1)
    np.testing.assert_array_equal(
        report["confusion_matrix"],
        sklearn_confusion_matrix(test.labels, predicted, labels=range(10)),
    )
    assert report["data"]["test_set"] == "confounding"
    assert report["class_names"] == [str(k) for k in range(10)]


@pytest.mark.parametrize(
    "data, message",
    [
        ("shapes:clean", "not a test set.*shapes:confounding"),
        ("mnist", "not a test set"),
        ("folder:only,two", "three paths"),
    ],
)
def test_cli_rejects_malformed_data_specs(data, message, tmp_path, capsys):
    code = run_command(["--model", str(tmp_path / "m.keras"), "--data", data,
                        "--out", str(tmp_path / "run")])
    assert code == 2
    assert len(capsys.readouterr().err.splitlines()) == 1
    with pytest.raises(ValueError, match=message):
        parse_data_spec(data)


def test_cli_reports_a_model_that_does_not_fit_the_data(folder_dataset,
                                                        tmp_path, capsys):
    model = keras.Sequential([keras.Input(IMAGE_SHAPE), keras.layers.Flatten(),
                              keras.layers.Dense(5)])
    path = tmp_path / "five.keras"
    model.save(path)
    code = run_command(["--model", str(path), "--data",
                        folder_spec(folder_dataset), "--out",
                        str(tmp_path / "run")])
    assert code == 1
    assert "names 3 classes" in capsys.readouterr().err
    assert not (tmp_path / "run" / "evaluation.json").exists()


def test_registering_the_command_does_not_import_tensorflow():
    code = (
        "import argparse, sys\n"
        "from isnet_keras.cli import evaluate\n"
        "parser = argparse.ArgumentParser()\n"
        "evaluate.register(parser.add_subparsers())\n"
        "print('tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "False"
