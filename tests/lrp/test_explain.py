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
