"""`training/vit_leaks.py`: the experiment's rule swaps and its ViT."""

import pathlib
import sys

import keras
import numpy as np
import pytest

from isnet_keras import backbones
from isnet_keras.lrp import transformer_mirrors
from isnet_keras.lrp.explain import build_heatmap_model
from isnet_keras.lrp.graph import LRPGraph

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))

import vit_leaks  # noqa: E402


def test_rules_are_restored_after_the_experiment_even_on_error():
    before = transformer_mirrors.PositionEmbeddingMirror.propagate
    with pytest.raises(RuntimeError):
        with vit_leaks.experiment_rules("identity"):
            assert transformer_mirrors.PositionEmbeddingMirror.propagate \
                is not before
            raise RuntimeError("stop")
    assert transformer_mirrors.PositionEmbeddingMirror.propagate is before


def test_options_reach_the_network_and_the_composite():
    args = vit_leaks.parse_args(["--attention", "relu", "--bias-relevance",
                                 "ignore", "--pooling", "class_token"])
    assert (args.attention, args.bias_relevance) == ("relu", "ignore")
    with pytest.raises(SystemExit):
        vit_leaks.parse_args(["--attention", "sigmoid"])


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


def test_a_tiny_run_trains_and_explains_with_relu_attention_and_ignore():
    args = vit_leaks.parse_args([
        "--attention", "relu", "--mlp-activation", "relu", "--pooling",
        "class_token", "--bias-relevance", "ignore", "--epochs", "1",
        "--limit-per-class", "3", "--test-per-class", "2",
        "--source", "digits", "--patch-masks"])
    result = vit_leaks.run(args)
    for name in ("biased", "clean", "confounding", "background_fraction"):
        assert 0.0 <= result[name] <= 1.0, name
    assert len(result["confounding_per_epoch"]) == 1
