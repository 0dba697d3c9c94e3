"""Classifiers for `isnet train`: named backbones and the user's .keras."""

import keras
import numpy as np
import pytest

from isnet_keras import backbones
from isnet_keras.isnet import ISNet, build_isnet


@pytest.mark.parametrize("name", [*backbones.BACKBONES, backbones.SMALL_CNN])
def test_each_backbone_builds_small_and_is_accepted_by_build_isnet(name):
    classifier = backbones.make_classifier(name, 3, 32)
    assert classifier.input_shape == (None, 32, 32, 3)
    assert classifier.output_shape == (None, 3)
    isnet = build_isnet(classifier, P=0.7)
    assert isinstance(isnet, ISNet) and isnet.num_classes == 3
    assert isnet.deploy_model is classifier


@pytest.mark.parametrize("mode,low,high", [
    ("tf", [-1.0] * 3, [1.0] * 3),
    ("caffe", [-123.68, -116.779, -103.939],
     [255 - 123.68, 255 - 116.779, 255 - 103.939]),
    ("torch", [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
     [0.515 / 0.229, 0.544 / 0.224, 0.594 / 0.225]),
])
def test_input_scaling_maps_unit_images_to_the_backbone_range(mode, low,
                                                              high):
    layer = backbones.input_scaling(mode)
    black_white = np.stack([np.zeros((1, 1, 3)), np.ones((1, 1, 3))])
    out = np.asarray(layer(black_white.astype("float32")))
    np.testing.assert_allclose(out[0, 0, 0], low, rtol=1e-5)
    np.testing.assert_allclose(out[1, 0, 0], high, rtol=1e-5)


def test_own_classifier_must_match_the_number_of_classes(tmp_path):
    path = tmp_path / "mine.keras"
    keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(),
                      keras.layers.Dense(4)]).save(path)
    assert backbones.make_classifier(path, 4, 999).input_shape == (
        None, 16, 16, 1)
    with pytest.raises(ValueError, match="outputs 4 classes but the data "
                       "has 2"):
        backbones.make_classifier(path, 2, 16)
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        backbones.make_classifier(tmp_path / "missing.keras", 2, 16)


def test_bad_backbone_settings_are_named():
    with pytest.raises(ValueError, match="Unknown backbone 'resnet9'"):
        backbones.make_classifier("resnet9", 2, 32)
    with pytest.raises(ValueError, match="at least 32x32"):
        backbones.make_classifier("vgg16", 2, 16)
    with pytest.raises(FileNotFoundError, match="nowhere.h5"):
        backbones.make_classifier("vgg16", 2, 32, weights="nowhere.h5")


def test_weights_path_loads_local_backbone_weights(tmp_path):
    source = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3),
        pooling="avg")
    rng = np.random.default_rng(0)
    source.set_weights([rng.normal(size=w.shape).astype(w.dtype)
                        for w in source.get_weights()])
    path = tmp_path / "backbone.weights.h5"
    source.save_weights(path)
    classifier = backbones.make_classifier("mobilenetv2", 2, 32,
                                           weights=str(path))
    nested = [layer for layer in classifier.layers
              if isinstance(layer, keras.Model)]
    assert len(nested) == 1
    for loaded, saved in zip(nested[0].get_weights(), source.get_weights()):
        np.testing.assert_array_equal(loaded, saved)


@pytest.mark.parametrize("name,expected", [
    ("densenet121", ("pool2_relu", "pool3_relu", "pool4_relu", "relu")),
    ("resnet50", ("conv2_block3_out", "conv3_block4_out",
                  "conv4_block6_out", "conv5_block3_out")),
    ("vgg16", ("block1_pool", "block2_pool", "block3_pool", "block4_pool",
               "block5_pool")),
    ("mobilenetv2", ("block_2_add", "block_5_add", "block_12_add",
                     "out_relu")),
    ("smallcnn", ("block1_relu", "block2_relu", "block3_relu")),
])
def test_auto_deep_supervision_picks_each_backbones_stage_outputs(name,
                                                                  expected):
    classifier = backbones.make_classifier(name, 3, 32)
    assert backbones.deep_supervision_layers(classifier) == expected
    # build_isnet checks that each is a 4-D feature map of the classifier.
    isnet = build_isnet(classifier, deep_supervision="auto")
    assert isnet.deep_supervision == expected
    assert len(isnet.hidden_losses) == len(expected)


def test_auto_deep_supervision_takes_each_resolutions_last_map_elsewhere():
    # Fused ReLUs, a Dense hidden layer, padding and a residual block.
    layers = keras.layers
    inputs = keras.Input((28, 28, 1))
    x = layers.ZeroPadding2D(2, name="pad")(inputs)
    x = layers.Conv2D(8, 3, activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    y = layers.Conv2D(8, 3, padding="same", name="conv2")(x)
    y = layers.ReLU(name="relu2")(y)
    x = layers.Add(name="residual")([x, y])
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(16, activation="relu")(x)
    classifier = keras.Model(inputs, layers.Dense(3)(x), name="mine")
    expected = ("conv1", "residual", "pool2")
    assert backbones.deep_supervision_layers(classifier) == expected
    isnet = build_isnet(classifier, deep_supervision="auto")
    assert isnet.deep_supervision == expected
    # Each supervised map is the layer's own output: the hidden relevance
    # has its shape.
    hidden = isnet.train_graph(np.random.rand(2, 28, 28, 1))["hidden"]
    assert [tuple(h.shape[2:]) for h in hidden] == [
        (30, 30, 8), (15, 15, 8), (7, 7, 8)]


def test_auto_deep_supervision_is_empty_without_feature_maps():
    mlp = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(16, activation="relu"),
                            keras.layers.Dense(2)], name="mlp")
    assert backbones.deep_supervision_layers(mlp) == ()
    assert build_isnet(mlp).deep_supervision == ()
    with pytest.raises(ValueError, match="'auto', received 'all'"):
        build_isnet(mlp, deep_supervision="all")


def test_a_layer_called_twice_is_never_supervised():
    shared = keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                                 name="shared")
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="first")(inputs)
    x = shared(shared(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    classifier = keras.Model(inputs, keras.layers.Dense(2)(x))
    assert backbones.deep_supervision_layers(classifier) == ("first",)
