"""explain() keeps its Explainer on the model and reuses it safely."""

import zipfile

import keras
import numpy as np
import pytest

from isnet_keras.lrp import explain as explain_lib
from isnet_keras.lrp.explain import Explainer, explain
from tests import support


@pytest.fixture
def builds(monkeypatch):
    """Counts the Explainers that `explain()` constructs."""
    count = []

    class CountingExplainer(Explainer):
        def __init__(self, *args, **kwargs):
            count.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(explain_lib, "Explainer", CountingExplainer)
    return count


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(0, 1, (3, 16, 16, 1))


def tiny_cnn():
    """Quick to trace, for the tests that only count Explainers."""
    return keras.Sequential([keras.Input((16, 16, 1)),
                             keras.layers.Conv2D(2, 3, activation="relu"),
                             keras.layers.Flatten(),
                             keras.layers.Dense(4)])


def summary_text(model):
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    return "\n".join(lines)


def test_repeated_calls_reuse_one_explainer(builds, images):
    model = tiny_cnn()
    first = explain(model, images)
    second = explain(model, images[:2], classes="all")
    third = explain(model, images, classes=1)
    assert len(builds) == 1
    assert first.shape == (3, 1, 16, 16, 1)
    assert second.shape == (2, 4, 16, 16, 1)
    assert third.shape == (3, 1, 16, 16, 1)


def test_each_setting_gets_its_own_explainer(builds, images):
    model = tiny_cnn()
    settings = [
        {},
        {"epsilon": 0.1},
        {"first_layer_rule": "epsilon"},
        {"input_bounds": (-1.0, 2.0)},
    ]
    for kwargs in settings:
        explain(model, images, **kwargs)
    assert len(builds) == len(settings)
    for kwargs in settings:  # all four still cached
        explain(model, images, **kwargs)
    # Bounds are keyed by value: a list or an array of the same numbers.
    explain(model, images, input_bounds=[-1, 2])
    explain(model, images, input_bounds=np.array([-1.0, 2.0]))
    assert len(builds) == len(settings)
    # Another model has its own cache.
    explain(tiny_cnn(), images)
    assert len(builds) == len(settings) + 1


def test_cached_heatmaps_equal_a_fresh_explainer(images):
    model = support.small_cnn(num_classes=4)
    support.randomize_batch_norms(model)
    for kwargs, classes in [
        ({}, "predicted"),
        ({"epsilon": 0.25, "first_layer_rule": "epsilon",
          "input_bounds": (-1.0, 2.0)}, "all"),
    ]:
        explain(model, images, classes=classes, **kwargs)  # fills the cache
        np.testing.assert_allclose(
            explain(model, images, classes=classes, **kwargs),
            Explainer(model, **kwargs)(images, classes), rtol=0, atol=1e-6)


def test_cached_explainer_sees_new_weights(builds, images):
    model = support.small_cnn(num_classes=4)
    before = explain(model, images, classes="all")
    rng = np.random.default_rng(1)
    model.set_weights([w + rng.normal(0, 0.3, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    support.randomize_batch_norms(model, seed=2)  # folded into the conv
    after = explain(model, images, classes="all")
    assert len(builds) == 1
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, Explainer(model)(images, "all"),
                               rtol=0, atol=1e-6)


def test_a_changed_structure_rebuilds_the_explainer(builds, images):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((16, 16, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(4),
    ])
    assert explain(model, images, "all").shape[1] == 4
    model.pop()
    model.add(keras.layers.Dense(3))
    after_pop = explain(model, images, "all")
    assert after_pop.shape[1] == 3
    assert len(builds) == 2
    np.testing.assert_allclose(after_pop, Explainer(model)(images, "all"),
                               rtol=0, atol=1e-6)
    # The graph splits a fused activation off as it is when traced.
    model.layers[0].activation = keras.activations.linear
    after_activation = explain(model, images, "all")
    assert len(builds) == 3
    np.testing.assert_allclose(after_activation,
                               Explainer(model)(images, "all"), rtol=0,
                               atol=1e-6)


def test_a_cached_explainer_changes_nothing_keras_sees(images, tmp_path):
    model = support.small_cnn(num_classes=4)
    summary, params = summary_text(model), model.count_params()
    num_weights = len(model.weights)
    model.save(tmp_path / "plain.keras")

    heatmaps = explain(model, images, "all")
    assert summary_text(model) == summary
    assert model.count_params() == params
    assert len(model.weights) == num_weights
    model.save(tmp_path / "cached.keras")
    with zipfile.ZipFile(tmp_path / "plain.keras") as plain, \
            zipfile.ZipFile(tmp_path / "cached.keras") as cached:
        assert plain.namelist() == cached.namelist()
        assert plain.read("config.json") == cached.read("config.json")

    loaded = keras.models.load_model(tmp_path / "cached.keras")
    for saved, restored in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(saved, restored)
    np.testing.assert_allclose(explain(loaded, images, "all"), heatmaps,
                               rtol=0, atol=1e-6)
