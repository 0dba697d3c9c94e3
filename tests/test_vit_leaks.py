"""`training/vit_leaks.py`: the experiment's rule swaps and its ViT."""

import pathlib
import sys

import keras
import numpy as np
import pytest

from isnet_keras import backbones
from isnet_keras.lrp import rules, transformer_mirrors
from isnet_keras.lrp.composites import Composite
from isnet_keras.lrp.explain import build_heatmap_model
from isnet_keras.lrp.graph import LRPGraph

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))

import vit_leaks  # noqa: E402


def _library_rules():
    return (transformer_mirrors.PositionEmbeddingMirror.propagate,
            rules._stopped, transformer_mirrors.layer_norm_rule)


def test_rules_are_restored_after_the_experiment_even_on_error():
    before = _library_rules()
    with pytest.raises(RuntimeError):
        with vit_leaks.experiment_rules("identity", "ignore"):
            assert _library_rules() != before
            raise RuntimeError("stop")
    assert _library_rules() == before


def test_ignored_bias_passes_the_whole_logit_to_the_input():
    inputs = keras.Input((4,))
    logits = keras.layers.Dense(2, bias_initializer=keras.initializers
                                .Constant(3.0), name="logits")(inputs)
    model = keras.Model(inputs, logits)
    x = np.random.default_rng(0).uniform(0.5, 1, (3, 4)).astype("float32")
    lrp0 = Composite(default="zero", first_layer=None)
    logit = model(x).numpy().max(-1)

    def relevance_sum():
        graph = LRPGraph(model, composite=lrp0)
        return np.asarray(build_heatmap_model(graph)(x))[:, 0].sum(-1)

    absorbed = relevance_sum()
    with vit_leaks.experiment_rules(bias_relevance="ignore"):
        passed = relevance_sum()
    np.testing.assert_allclose(absorbed, logit - 3.0, rtol=1e-4)
    np.testing.assert_allclose(passed, logit, rtol=1e-4)


@pytest.mark.parametrize("pooling", ["mean", "class_token"])
def test_identity_position_rule_hands_all_token_relevance_down(pooling):
    keras.utils.set_random_seed(0)
    model = backbones.vit_small(3, 16, 1, depth=1, pooling=pooling,
                                mlp_activation="relu")
    images = np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 1))
    names = ("position_embedding", "tokens" if pooling == "mean"
             else "class_token")

    def relevance():
        found = build_heatmap_model(LRPGraph(model), hidden_layers=names)(
            images.astype("float32"))
        return [np.asarray(found[name]) for name in names]

    above, below = relevance()
    assert not np.allclose(above, below, atol=1e-6)
    with vit_leaks.experiment_rules(position_relevance="identity"):
        above, below = relevance()
    np.testing.assert_allclose(above, below, rtol=1e-6)
    assert model.output.shape == (None, 3)
    assert model.get_layer("block1_mlp1").activation.__name__ == "relu"
