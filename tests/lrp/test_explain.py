"""explain(): class selection, shapes, dtypes, the figure helper."""

import numpy as np
import pytest

from isnet_keras.lrp.explain import Explainer, explain
from isnet_keras.viz import plot_heatmaps
from tests import support


@pytest.fixture(scope="module")
def model_and_images():
    model = support.small_cnn(num_classes=4)
    images = np.random.default_rng(0).uniform(0, 1, (5, 16, 16, 1))
    return model, images


def test_class_modes_give_the_documented_shapes(model_and_images):
    model, images = model_and_images
    explainer = Explainer(model, batch_size=2)
    assert explainer(images).shape == (5, 1, 16, 16, 1)
    assert explainer(images, "all").shape == (5, 4, 16, 16, 1)
    assert explainer(images, 2).shape == (5, 1, 16, 16, 1)
    per_image = np.array([0, 1, 2, 3, 0])
    assert explainer(images, per_image).dtype == np.float32


def test_predicted_and_all_agree_with_explicit_classes(model_and_images):
    model, images = model_and_images
    explainer = Explainer(model)
    predicted = model(images, training=False).numpy().argmax(-1)
    all_maps = explainer(images, "all")
    np.testing.assert_allclose(explainer(images, "predicted")[:, 0],
                               all_maps[np.arange(5), predicted], rtol=1e-5,
                               atol=1e-8)
    np.testing.assert_allclose(explainer(images, predicted)[:, 0],
                               all_maps[np.arange(5), predicted], rtol=1e-5,
                               atol=1e-8)


def test_first_layer_rule_changes_the_heatmap(
        model_and_images):
    model, images = model_and_images
    zb = explain(model, images, 1, first_layer_rule="zb")
    eps = explain(model, images, 1, first_layer_rule="epsilon")
    assert zb.shape == eps.shape
    assert not np.allclose(zb, eps)


def test_plot_heatmaps_writes_a_png(model_and_images, tmp_path):
    model, images = model_and_images
    heatmaps = explain(model, images[:3], "all")
    path = tmp_path / "maps.png"
    figure = plot_heatmaps(images[:3], np.moveaxis(heatmaps, 1, 0),
                           row_titles=list("abcd"), path=path)
    assert path.stat().st_size > 1000
    assert len(figure.axes) == 5 * 3
    with pytest.raises(ValueError, match="B = 3"):
        plot_heatmaps(images[:3], heatmaps[:2, 0])


def test_inputs_outside_the_first_layer_bounds_raise_a_clear_error(
        model_and_images):
    model, images = model_and_images
    images = images.copy()
    images[0, 0, 0] = 1.0  # 255 after scaling: 254 above the bound 1
    with pytest.raises(Exception, match=r"Z\^B rule needs inputs within "
                       r"input_bounds[\s\S]*\[254\]"):
        explain(model, images * 255, 1)
    # The same images are fine with their range as the bounds, or with
    # the epsilon rule at the first layer.
    assert np.isfinite(explain(model, images * 255, 1,
                               input_bounds=(0.0, 255.0))).all()
    assert np.isfinite(explain(model, images * 255, 1,
                               first_layer_rule="epsilon")).all()


def test_bounds_mapped_through_rescaling_admit_inputs_at_the_bounds():
    import keras
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    images = np.zeros((4, 8, 8, 3))
    images[:2] = 255.0
    images[2, ::2] = 255.0
    heatmaps = explain(model, images, 1, input_bounds=(0.0, 255.0))
    assert np.isfinite(heatmaps).all()


def test_lrp_zero_gives_finite_maps_where_windows_and_pre_activations_are_zero():
    # Max-pool windows that are all zero and zero pre-activations are 0/0
    # under LRP-0; their relevance is zero, not NaN.
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    images = np.zeros((2, 8, 8, 1), np.float32)
    images[:, 2:5, 2:5] = 0.7  # the rest is black: zero windows
    for rule in ("zb", "epsilon"):
        exact = np.asarray(explain(model, images, classes="all", epsilon=0.0,
                                   first_layer_rule=rule))
        near = np.asarray(explain(model, images, classes="all",
                                  epsilon=1e-9, first_layer_rule=rule))
        assert np.all(np.isfinite(exact)), rule
        np.testing.assert_allclose(exact, near, rtol=1e-3, atol=1e-6)
        assert np.abs(exact).sum() > 0


def test_selective_isnet_at_lrp_zero_gives_finite_maps():
    import keras

    from isnet_keras.isnet import build_isnet

    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([keras.Input((6, 6, 1)),
                                   keras.layers.Flatten(),
                                   keras.layers.Dense(3)])
    isnet = build_isnet(classifier, epsilon=0.0, deep_supervision=())
    images = np.random.default_rng(0).uniform(0, 1, (4, 6, 6, 1))
    heatmaps = np.asarray(isnet.train_graph_outputs(
        images.astype("float32"))["heatmaps"])
    assert np.all(np.isfinite(heatmaps))
    assert np.abs(heatmaps).sum() > 0


def test_heatmap_model_returns_hidden_relevance_as_gradient_times_input():
    import keras
    import tensorflow as tf

    from isnet_keras.lrp.composites import Composite
    from isnet_keras.lrp.explain import build_heatmap_model
    from isnet_keras.lrp.graph import LRPGraph

    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu", use_bias=False,
                                name="hidden")(inputs)
    logits = keras.layers.Dense(3, use_bias=False, name="logits")(hidden)
    model = keras.Model(inputs, logits)
    x = np.random.default_rng(1).uniform(0, 1, (4, 6)).astype("float32")
    graph = LRPGraph(model, composite=Composite(default="zero",
                                                first_layer=None))
    probe = build_heatmap_model(graph, hidden_layers=("hidden",))
    found = probe(x)
    np.testing.assert_allclose(found["heatmaps"],
                               build_heatmap_model(graph)(x), rtol=1e-6)
    # LRP-0 on a bias-free ReLU network is gradient x input, layer by layer.
    features = keras.Model(inputs, hidden)(x)
    head = model.get_layer("logits")
    with tf.GradientTape() as tape:
        tape.watch(features)
        chosen = tf.reduce_max(head(features), axis=-1)
    expected = (features * tape.gradient(chosen, features)).numpy()
    assert found["hidden"].shape == (4, 1, 8)
    np.testing.assert_allclose(found["hidden"][:, 0], expected, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(found["logits"], model(x), rtol=1e-6)
    with pytest.raises(ValueError, match="logits"):
        build_heatmap_model(graph, hidden_layers=("logits",))
