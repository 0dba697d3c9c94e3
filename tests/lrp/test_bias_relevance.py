"""`Composite(bias_relevance=...)`: constant summands absorb relevance, or
are left out of every rule's `z`.

The independent check is conservation, in float64 with LRP-0: under
`"ignore"` each layer passes on all of the relevance it receives, so the
input heatmap of a network of linear layers, ReLUs, max pooling, batch
norm (folded and standalone), LayerNorm, a learned position embedding and
ReLU attention sums to the logit, biases and shifts notwithstanding; under
`"absorb"` (the default) it does not.
"""

import keras
import numpy as np
import pytest

from isnet_keras.backbones import vit_small
from isnet_keras.isnet import ISNet, build_isnet
from isnet_keras.lrp.composites import Composite, default_composite
from isnet_keras.lrp.graph import LRPGraph
from isnet_keras.lrp.mirror_base import Mirror
from tests import support

CLASS = 1
IGNORE = Composite(default="zero", first_layer=None, bias_relevance="ignore")
ABSORB = Composite(default="zero", first_layer=None)


def _with_random_constants(model, seed):
    """Every bias, shift, embedding and batch-norm statistic non-trivial."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        name = weight.path.split("/")[-1]
        if name in ("bias", "beta", "embedding", "moving_mean"):
            weight.assign(rng.normal(0.0, 0.3, weight.shape))
        elif name in ("gamma", "moving_variance"):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape))
    return model


def _cnn():
    layers = keras.layers
    keras.utils.set_random_seed(3)
    with support.floatx("float64"):
        # Each batch norm sees no exact zeros (none follows a ReLU): a unit
        # whose input is 0 and whose output is its shift alone has
        # relevance that no input can take, under either option.
        model = keras.Sequential([
            keras.Input((8, 8, 2)),
            layers.Conv2D(4, 3, padding="same"),
            layers.BatchNormalization(),  # folded into the convolution
            layers.ReLU(),
            layers.Conv2D(4, 3, padding="same"),
            layers.MaxPooling2D(2),
            layers.BatchNormalization(),  # folded into the pooling
            layers.ReLU(),
            layers.Conv2D(6, 3, padding="same"),
            layers.Flatten(),
            layers.BatchNormalization(),  # standalone
            layers.ReLU(),
            layers.Dense(5, activation="relu"),
            layers.Dense(3),
        ])
    return _with_random_constants(model, 4)


def _vit():
    keras.utils.set_random_seed(5)
    with support.floatx("float64"):
        model = vit_small(3, 16, 1, width=8, depth=2, num_heads=2,
                          pooling="mean", mlp_activation="relu",
                          attention="relu")
    return _with_random_constants(model, 105)


def _constant_only_units(model, images):
    """Attention rows with every logit <= 0 and tokens with every hidden
    MLP unit <= 0: their outputs are biases alone, so under `"ignore"`
    their relevance reaches no input (the seeds above have none)."""
    count = 0
    for block in (1, 2):
        def output(name):
            return keras.Model(model.input,
                               model.get_layer(name).output)(images)

        tokens = output(f"block{block}_norm1")
        _, attention = model.get_layer(f"block{block}_attention")(
            tokens, tokens, return_attention_scores=True)
        count += int((np.asarray(attention).sum(-1) == 0).sum())
        count += int((np.asarray(output(f"block{block}_mlp1")).max(-1)
                      <= 0).sum())
    return count


def _sums(model, images, composite):
    heatmaps, _ = support.class_relevances(model, images, CLASS, composite)
    return heatmaps.reshape(len(images), -1).sum(1)


@pytest.mark.parametrize("build", [_cnn, _vit], ids=["cnn", "vit"])
def test_ignored_constants_conserve_the_logit_and_absorbed_ones_do_not(
        build):
    model = build()
    shape = (4,) + tuple(model.input_shape[1:])
    images = np.random.default_rng(7).uniform(0, 1, shape)
    logit = model(images, training=False)[:, CLASS].numpy()
    if build is _vit:
        assert _constant_only_units(model, images) == 0
    np.testing.assert_allclose(_sums(model, images, IGNORE), logit,
                               rtol=1e-8)
    absorbed = _sums(model, images, ABSORB)
    assert np.abs(absorbed - logit).max() > 1e-2 * np.abs(logit).max()


def test_ignore_changes_only_the_denominators_of_each_layer():
    """One Dense layer: `R_x = x * W (R / (W x))` against `R / (W x + b)`."""
    keras.utils.set_random_seed(8)
    with support.floatx("float64"):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(
            2, bias_initializer=keras.initializers.Constant(0.7))])
    x = np.random.default_rng(9).uniform(0.5, 1, (2, 3))
    kernel, bias = (w.numpy() for w in model.weights)
    z = x @ kernel
    # LRP-0 starts from the logit `z + b`.
    expected = {"ignore": x * kernel[:, CLASS] * ((z + bias)[:, CLASS]
                                                  / z[:, CLASS])[:, None],
                "absorb": x * kernel[:, CLASS]}
    for name, composite in (("ignore", IGNORE), ("absorb", ABSORB)):
        heatmaps, _ = support.class_relevances(model, x, CLASS, composite)
        np.testing.assert_allclose(heatmaps, expected[name], rtol=1e-10)


def test_the_option_reaches_every_mirror_round_trips_and_is_checked():
    model = _vit()
    graph = LRPGraph(model, composite=IGNORE)
    mirrors = [step.mirror for step in graph._plan("epsilon", ())]
    assert mirrors and all(m.bias_relevance == "ignore" for m in mirrors)
    assert all(m.bias_relevance == "absorb"
               for m in [s.mirror for s in LRPGraph(
                   model, composite=ABSORB)._plan("epsilon", ())])
    # Without a composite, attention networks leave constants out and
    # CNNs keep the papers' absorbing rules.
    assert LRPGraph(model).composite.bias_relevance == "ignore"
    assert LRPGraph(_cnn()).composite.bias_relevance == "absorb"
    config = mirrors[-1].get_config()
    assert config["bias_relevance"] == "ignore"
    restored = type(mirrors[-1]).from_config(config, classifier=model)
    assert restored.bias_relevance == "ignore"
    assert Composite.from_config(IGNORE.get_config()) == IGNORE
    assert IGNORE != ABSORB
    legacy = {k: v for k, v in ABSORB.get_config().items()
              if k != "bias_relevance"}
    assert Composite.from_config(legacy) == ABSORB
    composite = default_composite(bias_relevance="ignore")
    isnet = build_isnet(model, composite=composite)
    assert ISNet.from_config(isnet.get_config()).composite == composite
    for bad in ("keep", None):
        with pytest.raises(ValueError, match="bias_relevance.*absorb"):
            Composite(bias_relevance=bad)
        with pytest.raises(ValueError, match="bias_relevance.*ignore"):
            default_composite(bias_relevance=bad)
        with pytest.raises(ValueError, match="bias_relevance"):
            Mirror((model.layers[1],), bias_relevance=bad)
