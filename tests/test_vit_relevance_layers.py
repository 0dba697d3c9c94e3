"""`training/vit_relevance_layers.py`: relevance shares of a ViT, per layer."""

import pathlib
import sys

import keras
import numpy as np

from isnet_keras import backbones
from isnet_keras.lrp.explain import explain

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))

import vit_relevance_layers  # noqa: E402


def test_pixel_share_matches_explain_and_a_full_mask_leaves_no_background():
    keras.utils.set_random_seed(0)
    model = backbones.vit_small(3, 16, channels=1, depth=1, pooling="mean")
    images = np.random.default_rng(0).uniform(0, 1, (4, 16, 16, 1))
    images = images.astype("float32")
    masks = np.zeros((4, 16, 16, 1), "float32")
    masks[:, :, :8] = 1                      # the left half of each image
    names = vit_relevance_layers.token_layer_names(depth=1)

    report = vit_relevance_layers.layer_relevance(model, images, masks, names)

    heatmaps = np.abs(np.asarray(explain(model, images))[:, 0, ..., 0])
    expected = np.mean(heatmaps[:, :, 8:].sum((1, 2)) / heatmaps.sum((1, 2)))
    np.testing.assert_allclose(report["input"]["background_share"], expected,
                               rtol=1e-4)
    assert set(report) == {"input", *names}
    assert "background_share" not in report["token_pool"]
    full = vit_relevance_layers.layer_relevance(
        model, images, np.ones_like(masks), names)
    assert all(entry.get("background_share", 0.0) == 0.0
               for entry in full.values())
