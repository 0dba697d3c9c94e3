"""The `vit_small` backbone: builds, is explained by the LRP block, and
trains as an ISNet."""

import keras
import numpy as np
import pytest

from isnet_keras import backbones
from isnet_keras.export import load_keras_file
from isnet_keras.isnet import build_isnet
from isnet_keras.lrp.explain import explain
from isnet_keras.lrp.graph import LRPGraph


@pytest.mark.parametrize("size,channels,patch", [
    (32, 1, 4), (32, 3, 4), (64, 1, 8), (64, 3, 8)])
def test_vit_small_builds_for_32_and_64_px_with_1_or_3_channels(
        size, channels, patch):
    model = backbones.vit_small(3, size, channels)
    assert model.input_shape == (None, size, size, channels)
    assert model.output_shape == (None, 3)
    assert backbones.vit_patch_size(size) == patch
    assert model.get_layer("tokens").output.shape == (None, 64, 64)
    LRPGraph(model)  # every layer has a mirror


def test_vit_small_is_a_named_backbone_without_weights(tmp_path):
    assert backbones.is_backbone_name("ViT_Small")
    model = backbones.make_classifier("vit_small", 2, 32)
    assert model.input_shape == (None, 32, 32, 3)
    model.save(tmp_path / "vit.keras")
    loaded = load_keras_file(tmp_path / "vit.keras")
    images = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 3))
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="no pretrained weights"):
        backbones.build_classifier("vit_small", 2, 32, weights="imagenet")
    with pytest.raises(ValueError, match="at least 4x4"):
        backbones.vit_small(2, 3)


def test_vit_small_defaults_to_relu_attention_relu_mlp_and_class_token():
    from isnet_keras.hub import ClassToken
    from isnet_keras.lrp.relu_attention import ReLUAttention

    model = backbones.vit_small(2, 32, depth=2)
    kinds = {type(model.get_layer(f"block{i}_attention")) for i in (1, 2)}
    assert kinds == {ReLUAttention}
    assert model.get_layer("block1_mlp1").activation is \
        keras.activations.relu
    assert isinstance(model.get_layer("class_token"), ClassToken)
    # Every constant summand is left out of the default rules.
    assert LRPGraph(model).composite.bias_relevance == "ignore"


def test_vit_small_takes_softmax_attention_and_refuses_unknown_options():
    model = backbones.vit_small(2, 32, depth=1, attention="softmax",
                                pooling="mean", mlp_activation="gelu")
    assert type(model.get_layer("block1_attention")) is \
        keras.layers.MultiHeadAttention
    assert model.get_layer("token_pool").__class__ is \
        keras.layers.GlobalAveragePooling1D
    LRPGraph(model)
    with pytest.raises(ValueError, match="attention must be"):
        backbones.vit_small(2, 32, attention="sigmoid")
    with pytest.raises(ValueError, match="pooling must be"):
        backbones.vit_small(2, 32, pooling="max")


def test_default_P_is_lower_for_attention_networks_and_checked():
    vit = backbones.vit_small(2, 16, 1, width=8, depth=1, num_heads=2)
    cnn = keras.Sequential([keras.Input((8, 8, 1)),
                            keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
                            keras.layers.Dense(2)])
    assert build_isnet(vit).P == pytest.approx(0.8)
    assert build_isnet(cnn).P == pytest.approx(0.95)
    assert build_isnet(vit, P=0.5).P == pytest.approx(0.5)
    with pytest.raises(ValueError, match="P must be 'auto'"):
        build_isnet(cnn, P="high")
    with pytest.raises(ValueError, match="P must lie in"):
        build_isnet(cnn, P=1.5)


def test_vit_small_gets_no_deep_supervision_by_default():
    model = backbones.vit_small(2, 32)
    assert backbones.deep_supervision_layers(model) == ()
    assert build_isnet(model).deep_supervision == ()


@pytest.fixture(scope="module")
def vit_and_batch():
    keras.utils.set_random_seed(0)
    model = backbones.vit_small(3, 32)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    return model, images


def test_vit_small_isnet_trains_one_step_with_finite_losses(vit_and_batch):
    # One encoder block keeps the trace short; explain below runs all four.
    _, images = vit_and_batch
    model = backbones.vit_small(3, 32, depth=1)
    isnet = build_isnet(model, seed=0)
    isnet.compile()
    masks = np.zeros((2, 32, 32, 1), "float32")
    masks[:, 8:24, 8:24] = 1
    logs = isnet.train_on_batch(
        images, {"label": np.array([0, 2]), "mask": masks},
        return_dict=True)
    assert logs and all(np.isfinite(float(v)) for v in logs.values())


def test_explain_on_vit_small_gives_finite_input_shaped_heatmaps(
        vit_and_batch):
    model, images = vit_and_batch
    heatmaps = explain(model, images)
    assert heatmaps.shape == (2, 1, 32, 32, 3)
    assert np.isfinite(heatmaps).all()
    assert np.abs(heatmaps).sum() > 0


@pytest.mark.parametrize("variant", ["selective", "original", "stochastic",
                                     "dual"])
def test_every_variant_trains_a_vit(variant):
    keras.utils.set_random_seed(0)
    model = backbones.vit_small(3, 32, depth=1)
    isnet = build_isnet(model, variant=variant, seed=0)
    isnet.compile()
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 1, (4, 32, 32, 3)).astype("float32")
    masks = np.zeros((4, 32, 32, 1), "float32")
    masks[:, 8:24, 8:24] = 1
    before = [w.copy() for w in model.get_weights()]
    history = isnet.fit(images, {"label": np.array([0, 1, 2, 0]),
                                 "mask": masks},
                        batch_size=2, epochs=2, verbose=0)
    for name in ("loss", "heatmap_loss", "classification_loss"):
        assert np.isfinite(history.history[name]).all(), name
    assert history.history["heatmap_loss"][-1] > 0
    assert history.history["skipped_steps"][-1] == 0
    changed = [not np.array_equal(a, b)
               for a, b in zip(before, model.get_weights())]
    assert all(changed)
