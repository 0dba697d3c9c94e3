"""`isnet bench bias --benchmark decoy --protocol rrr`: the RRR paper's
DecoyMNIST protocol (model, optimizer, decoy, loss) and a tiny run."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.baselines import PlainClassifier, RRRClassifier
from isnet_keras.bench import rrr_protocol
from isnet_keras.bench.rrr_protocol import (RRRProtocolConfig,
                                            make_protocol_data,
                                            make_protocol_trainer,
                                            protocol_mlp)
from tests import support
from tests.support import floatx


def _dense_layers(model):
    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.Dense)]


def test_the_mlp_is_784_50_30_10_relu_on_grey_levels():
    keras.utils.set_random_seed(0)
    mlp = protocol_mlp()
    assert mlp.input_shape == (None, 28, 28, 1)
    assert mlp.output_shape == (None, 10)
    dense = _dense_layers(mlp)
    assert [layer.kernel.shape for layer in dense] == [
        (784, 50), (50, 30), (30, 10)]
    assert mlp.count_params() == 784 * 50 + 50 + 50 * 30 + 30 + 30 * 10 + 10
    # Every hidden Dense is followed by its own ReLU; the logits are linear.
    kinds = [type(layer).__name__ for layer in mlp.layers]
    assert kinds == ["Rescaling", "Flatten", "Dense", "ReLU", "Dense", "ReLU",
                     "Dense"]
    assert all(layer.activation is keras.activations.linear
               for layer in dense)
    assert float(mlp.layers[0].scale) == 255.0  # raw grey levels
    # N(0, 0.1) weights and biases, as the reference initialises them.
    first = np.asarray(dense[0].kernel)
    assert abs(first.mean()) < 0.005 and abs(first.std() - 0.1) < 0.003
    assert np.asarray(dense[0].bias).std() > 0.05


def test_the_isnet_mlp_has_the_same_layers_on_unit_inputs():
    mlp = protocol_mlp(**rrr_protocol.ISNET_MLP)
    assert [type(layer).__name__ for layer in mlp.layers][0] == "Flatten"
    assert [layer.units for layer in _dense_layers(mlp)] == [50, 30, 10]
    assert not np.any(np.asarray(_dense_layers(mlp)[0].bias))  # Keras zeros


def test_defaults_are_the_papers_settings():
    config = RRRProtocolConfig()
    assert config.resolved_epochs() == 64
    assert config.batch_size == 256
    assert config.learning_rate == 1e-3
    assert config.l2 == 1e-4
    assert config.rrr_penalty == 1000.0
    assert config.pixel_scale == 255.0
    assert config.hidden_units == (50, 30)
    assert RRRProtocolConfig(fast=True).resolved_epochs() == 1


@pytest.mark.parametrize("name", ["plain", "plain_clean", "rrr", "isnet"])
def test_every_model_trains_with_adam_and_the_papers_loss_form(name):
    config = RRRProtocolConfig()
    trainer = make_protocol_trainer(name, protocol_mlp(), config)
    optimizer = trainer.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)
    assert optimizer.epsilon == 1e-8
    assert optimizer.global_clipnorm is None and optimizer.clipnorm is None
    assert trainer.l2 == 1e-4
    if name.startswith("plain"):
        assert type(trainer) is PlainClassifier
        assert trainer.reduction == "sum"
    elif name == "rrr":
        assert isinstance(trainer, RRRClassifier)
        assert trainer.reduction == "sum"
        assert (trainer.penalty, trainer.pixel_scale) == (1000.0, 255.0)
    else:
        assert trainer.variant == "selective" and trainer.P == pytest.approx(
            0.95)
        # No 4-D feature map: "auto" supervises no hidden layer.
        assert trainer.deep_supervision == ()


def test_the_isnets_first_layer_after_flatten_takes_the_epsilon_rule():
    isnet = make_protocol_trainer("isnet", protocol_mlp(),
                                  RRRProtocolConfig())
    assert isnet.first_layer_rule == "zb"  # asked for ...
    assert rrr_protocol._first_dense_rule(isnet) == "epsilon"  # ... not given


# The decoy ---------------------------------------------------------------

CORNERS = ((0, 0), (0, 24), (24, 0), (24, 24))


def _patch(image):
    """`(corner, grey level 0-255)` of the one uniform, non-black 4x4
    corner of a (28, 28, 1) image, or None."""
    found = []
    for row, col in CORNERS:
        block = image[row:row + 4, col:col + 4, 0]
        if block.max() > 0 and np.all(block == block[0, 0]):
            found.append(((row, col), float(block[0, 0]) * 255.0))
    assert len(found) <= 1
    return found[0] if found else None


@pytest.fixture(scope="module")
def digits_data():
    # scikit-learn's digits (1,797, 28x28, empty border): offline, fast.
    return make_protocol_data(RRRProtocolConfig(data="digits"), seed=3)


def test_the_split_is_60_40_stratified(digits_data):
    train, test = digits_data.train.labels, digits_data.test["clean"].labels
    assert digits_data.split == "stratified-60/40"
    assert len(train) + len(test) == 1797
    assert abs(len(train) / 1797 - 0.6) < 0.01
    for label in range(10):
        share = np.mean(train == label) / np.mean(test == label)
        assert 0.9 < share < 1.1


def test_the_full_mnist_uses_its_own_train_and_test_split():
    labels = np.arange(70_000) % 10
    train, test, name = rrr_protocol.split_indices(labels, seed=0)
    assert name == "mnist-train-test"
    assert (train[0], train[-1], test[0], test[-1]) == (0, 59_999, 60_000,
                                                        69_999)


def test_training_patches_have_the_labels_grey_in_a_random_corner(
        digits_data):
    train = digits_data.train
    corners = []
    for image, label, note in zip(train.images, train.labels,
                                  digits_data.annotation):
        corner, grey = _patch(image)
        assert grey == pytest.approx(255 - 25 * label, abs=1e-3)
        corners.append(corner)
        # The annotation is exactly the patch.
        row, col = corner
        assert note.sum() == 16 and np.all(note[row:row + 4,
                                                col:col + 4] == 1)
    counts = np.array([corners.count(c) for c in CORNERS])
    # Each corner with probability 1/4 (n ~ 1,078: sd ~ 14).
    assert np.all(np.abs(counts - len(corners) / 4) < 5 * np.sqrt(
        len(corners) * 3 / 16))
    # The clean training set is the same digits without patches.
    assert all(_patch(image) is None for image in
               digits_data.train_clean.images)
    np.testing.assert_array_equal(digits_data.train_clean.labels,
                                  train.labels)


def test_randomized_test_patches_take_the_grey_of_a_random_class(
        digits_data):
    from scipy import stats

    test = digits_data.test["randomized"]
    shades, corners = [], []
    for image in test.images:
        corner, grey = _patch(image)
        shade = (255 - grey) / 25
        assert shade == pytest.approx(round(shade), abs=1e-3)
        shades.append(round(shade))
        corners.append(corner)
    shades = np.array(shades)
    count = len(shades)
    assert set(shades) <= set(range(10))
    # Uniform over the ten classes ...
    frequencies = np.bincount(shades, minlength=10)
    assert stats.chisquare(frequencies).pvalue > 1e-3
    # ... and unrelated to the label: the label's shade in about 1 in 10
    # (n ~ 719: sd ~ 0.011), not in every image as in training.
    agreement = np.mean(shades == test.labels)
    assert abs(agreement - 0.1) < 5 * np.sqrt(0.09 / count)
    table = np.zeros((10, 10))
    np.add.at(table, (test.labels, shades), 1)
    assert stats.chi2_contingency(table).pvalue > 1e-3
    # Same corners in the three test sets; the biased one has the label's
    # shade, the clean one none.
    for index, image in enumerate(digits_data.test["biased"].images):
        corner, grey = _patch(image)
        assert corner == corners[index]
        assert grey == pytest.approx(255 - 25 * test.labels[index], abs=1e-3)
    assert all(_patch(image) is None
               for image in digits_data.test["clean"].images)


# The loss ---------------------------------------------------------------

def _numpy_log_probs(weights, grey_images):
    """Sum over classes of log p, per image, of the MLP on grey levels."""
    h = grey_images.reshape(len(grey_images), -1)
    for index in range(0, len(weights), 2):
        h = h @ weights[index] + weights[index + 1]
        if index + 2 < len(weights):
            h = np.maximum(h, 0.0)
    shifted = h - h.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return log_probs


def _finite_difference_gradients(weights, grey_images, step=1e-4):
    """d/du sum_k log p_k(u) per grey-level pixel u, central differences."""
    gradients = np.zeros_like(grey_images)
    flat = grey_images.reshape(len(grey_images), -1)
    out = gradients.reshape(len(grey_images), -1)
    for pixel in range(flat.shape[1]):
        up, down = flat.copy(), flat.copy()
        up[:, pixel] += step
        down[:, pixel] -= step
        out[:, pixel] = (_numpy_log_probs(weights, up).sum(-1)
                         - _numpy_log_probs(weights, down).sum(-1)) / (
            2 * step)
    return gradients


def test_rrr_loss_is_the_papers_sum_against_finite_differences():
    rng = np.random.default_rng(0)
    batch, shape, classes = 5, (4, 4, 1), 3
    with floatx("float64"):
        keras.utils.set_random_seed(1)
        mlp = protocol_mlp(classes, (6, 5), pixel_scale=255.0,
                           init_stddev=0.1, input_shape=shape)
        # Small grey levels keep the softmax away from saturation.
        images = rng.uniform(0.0, 0.05, (batch, *shape))
        labels = rng.integers(0, classes, batch)
        annotation = (rng.uniform(size=(batch, *shape)) < 0.4).astype(
            "float64")
        lam, l2 = 7.0, 0.3
        rrr = RRRClassifier(mlp, penalty=lam, pixel_scale=255.0,
                            reduction="sum", l2=l2)
        rrr.compile(optimizer=keras.optimizers.SGD(0.0))
        logs = rrr.evaluate(images, {"label": labels,
                                     "mask": 1.0 - annotation},
                            batch_size=batch, return_dict=True, verbose=0)
        weights = [np.asarray(w, "float64") for w in mlp.get_weights()]
        default = RRRClassifier(mlp, penalty=lam)
        default.compile(optimizer=keras.optimizers.SGD(0.0))
        default_logs = default.evaluate(
            images, {"label": labels, "mask": 1.0 - annotation},
            batch_size=batch, return_dict=True, verbose=0)

    grey = images * 255.0
    gradients = _finite_difference_gradients(weights, grey)
    penalty = float(np.sum((annotation * gradients) ** 2))
    cross_entropy = float(-np.sum(
        _numpy_log_probs(weights, grey)[np.arange(batch), labels]))
    squares = float(sum(np.sum(w ** 2) for w in weights))
    assert logs["input_gradient_loss"] == pytest.approx(penalty, rel=1e-5)
    assert logs["classification_loss"] == pytest.approx(cross_entropy,
                                                        rel=1e-6)
    assert logs["loss"] == pytest.approx(
        cross_entropy + lam * penalty + l2 * squares, rel=1e-6)
    # The default RRRClassifier is unchanged: means over the batch,
    # gradients per unit of the [0, 1] input (255^2 larger), no L2.
    assert default_logs["input_gradient_loss"] == pytest.approx(
        penalty * 255.0 ** 2 / batch, rel=1e-5)
    assert default_logs["loss"] == pytest.approx(
        cross_entropy / batch + lam * penalty * 255.0 ** 2 / batch,
        rel=1e-5)


def test_the_isnets_loss_is_summed_over_the_batch_plus_l2():
    from isnet_keras.isnet import build_isnet

    keras.utils.set_random_seed(0)
    mlp = protocol_mlp(**rrr_protocol.ISNET_MLP)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (6, 28, 28, 1)).astype("float32")
    data = (images, {"label": rng.integers(0, 10, 6),
                     "mask": (rng.uniform(size=(6, 28, 28, 1)) > 0.5
                              ).astype("float32")})
    losses = {}
    for name, model in (("summed", rrr_protocol.SummedLossISNet(mlp, l2=0.5)),
                        ("plain", build_isnet(mlp))):
        model.compile(optimizer=keras.optimizers.SGD(0.0))
        losses[name] = model.evaluate(*data, batch_size=6, return_dict=True,
                                      verbose=0)["loss"]
    squares = sum(float(tf.reduce_sum(tf.square(v)))
                  for v in mlp.trainable_variables)
    assert losses["summed"] == pytest.approx(
        6 * losses["plain"] + 0.5 * squares, rel=1e-5)


# A tiny run ---------------------------------------------------------------

def test_a_tiny_run_writes_rows_per_seed_and_a_summary(tmp_path, capsys):
    from isnet_keras.cli import main

    mnist_dir = tmp_path / "mnist"
    support.write_digits_as_mnist(mnist_dir)
    out = tmp_path / "out"
    assert main(["bench", "bias", "--benchmark", "decoy", "--protocol",
                 "rrr", "--fast", "--seeds", "0", "1", "--models", "rrr",
                 "plain_clean", "--mnist-dir", str(mnist_dir), "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"] == "rrr" and results["seeds"] == [0, 1]
    assert results["data"].startswith("idx")
    assert results["settings"]["epochs"] == 1
    assert results["settings"]["batch_size"] == 256
    assert [(row["seed"], row["model"]) for row in results["rows"]] == [
        (0, "rrr"), (0, "plain_clean"), (1, "rrr"), (1, "plain_clean")]
    assert [row["train_set"] for row in results["rows"]] == [
        "decoy", "clean"] * 2
    assert results["split"]["name"] == "stratified-60/40"
    for row in results["rows"]:
        for test_set in ("biased", "clean", "randomized"):
            low, high = row[f"{test_set}_ci95"]
            assert 0 <= low <= row[test_set] <= high <= 1
    summary = {entry["model"]: entry for entry in results["summary"]}
    assert set(summary) == {"rrr", "plain_clean"}
    for name, entry in summary.items():
        assert entry["seeds"] == [0, 1]
        values = [row["randomized"] for row in results["rows"]
                  if row["model"] == name]
        assert entry["randomized"] == pytest.approx(
            {"mean": np.mean(values), "min": min(values),
             "max": max(values)})
    assert "Mean (min-max) over seeds" in printed
    assert "vs paper 0.9607" in printed and "vs paper 0.9611" in printed


@pytest.mark.parametrize("flags, message", [
    (["--protocol", "rrr"], "--benchmark decoy"),
    (["--protocol", "rrr", "--benchmark", "decoy", "--P", "0.5"], "--P"),
    (["--protocol", "rrr", "--benchmark", "decoy", "--models",
      "isnet_selective"], "unknown models isnet_selective"),
])
def test_the_protocol_refuses_flags_it_does_not_use(tmp_path, capsys, flags,
                                                    message):
    from isnet_keras.cli import main

    assert main(["bench", "bias", *flags, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()
