"""LRP deep supervision on token sequences: the relevance of patch tokens
`(B, T, D)` is scored on the patch grid, in the order a `Reshape` of the
patch embedding gives the tokens."""

import keras
import numpy as np
import pytest

from isnet_keras.isnet import build_isnet, build_train_graph
from isnet_keras.lrp.graph import LRPGraph


def _patch_model(token_shape=(16, 3)):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(3, 2, strides=2, name="patches")(inputs)
    x = keras.layers.Reshape(token_shape, name="tokens")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def test_token_relevance_lands_on_the_patch_it_came_from():
    keras.utils.set_random_seed(0)
    model = _patch_model()
    graph = build_train_graph(LRPGraph(model),
                              deep_supervision=("patches", "tokens"))
    images = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 1))
    feature_map, tokens = (np.asarray(h) for h in graph(images)["hidden"])
    assert tokens.shape == feature_map.shape == (2, 1, 4, 4, 3)
    # The patch grid's own relevance, read off the 4-D layer before the
    # Reshape: any other token order (e.g. column-major) would differ.
    assert np.abs(feature_map).sum() > 0
    np.testing.assert_allclose(tokens, feature_map, rtol=1e-6, atol=1e-7)
    assert not np.allclose(tokens, np.swapaxes(tokens, 2, 3), atol=1e-4)


@pytest.mark.parametrize("variant", ["selective", "dual"])
def test_isnet_penalises_token_relevance_outside_the_mask_grid(variant):
    keras.utils.set_random_seed(0)
    isnet = build_isnet(_patch_model(), variant=variant,
                        deep_supervision=("tokens",))
    isnet.compile()
    images = np.random.default_rng(1).uniform(0, 1, (4, 8, 8, 1))
    labels = np.array([0, 1, 0, 1])
    inside = np.ones((4, 8, 8, 1), "float32")
    corner = np.zeros((4, 8, 8, 1), "float32")
    corner[:, :2, :2] = 1
    full = isnet.evaluate(images, {"label": labels, "mask": inside},
                          return_dict=True, verbose=0)["heatmap_loss"]
    small = isnet.evaluate(images, {"label": labels, "mask": corner},
                           return_dict=True, verbose=0)["heatmap_loss"]
    assert np.isfinite(full) and small > full


def test_non_square_token_counts_and_vectors_are_refused_by_name():
    with pytest.raises(ValueError, match="square token grids.*'tokens' outputs"):
        build_train_graph(LRPGraph(_patch_model(token_shape=(8, 6))),
                          deep_supervision=("tokens",))
    with pytest.raises(ValueError, match="'pool' outputs"):
        build_train_graph(LRPGraph(_patch_model()),
                          deep_supervision=("pool",))
