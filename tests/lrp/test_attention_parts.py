"""Attention split into its parts at re-trace: the mirror reuses the
layer's own projections, logits, probabilities and mixed values.

The reference is the same LRP block with the attention recomputed from the
layer's inputs (the mirror offered no parts), in float64: heatmaps and the
gradients of a heatmap loss must agree, biases gradient-stopped in the
rules' factors as in the recomputation.
"""

import keras
import numpy as np
import pytest

from isnet_keras.backbones import vit_small
from isnet_keras.lrp import attention_parts
from isnet_keras.lrp import keras_graph
from isnet_keras.lrp.composites import Composite
from isnet_keras.lrp.graph import LRPGraph
from isnet_keras.lrp.relu_attention import ReLUAttention
from isnet_keras.lrp.transformer_mirrors import MultiHeadAttentionMirror
from tests import support
from tests.lrp.test_attention_masks import NoRelevanceMirror
from tests.lrp.test_attention_masks import PatternMask
from tests.lrp.test_attention_masks import masked_model
from tests.lrp.test_attention_query_key import attention_model

MODELS = {
    "vit_relu": lambda: vit_small(3, 8, width=8, depth=1, num_heads=2),
    "vit_softmax": lambda: vit_small(3, 8, width=8, depth=1, num_heads=2,
                                     attention="softmax", pooling="mean"),
    "query_value_key_causal": lambda: attention_model("query_value_key",
                                                      "causal"),
    "self_constant_mask": lambda: attention_model("self", "constant"),
    "graph_mask": lambda: masked_model("graph"),
}


def _randomize(model, seed=0):
    """Nonzero biases everywhere, so that their stopped gradients count."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0.0, 0.5, variable.shape))


class _PathSpy:
    """Counts the attention mirrors' runs that reuse parts or recompute."""

    def __init__(self, monkeypatch):
        self.reused = self.recomputed = 0
        reuse = MultiHeadAttentionMirror._reused_parts
        check = MultiHeadAttentionMirror._checked_output

        def spy_reuse(mirror, *args):
            self.reused += 1
            return reuse(mirror, *args)

        def spy_check(mirror, *args):
            self.recomputed += 1
            return check(mirror, *args)

        monkeypatch.setattr(MultiHeadAttentionMirror, "_reused_parts",
                            spy_reuse)
        monkeypatch.setattr(MultiHeadAttentionMirror, "_checked_output",
                            spy_check)


def _heatmaps_and_gradients(model, images, composite, reuse, monkeypatch):
    with monkeypatch.context() as patch:
        if not reuse:
            patch.setattr(MultiHeadAttentionMirror, "forward_z",
                          lambda self, outputs, split: None)
        block = support.all_class_block(LRPGraph(
            model, composite=composite,
            mirrors={PatternMask: NoRelevanceMirror}))
    masks = np.zeros((*images.shape[:3], 1))
    masks[:, :, : images.shape[2] // 2] = 1
    return support.heatmap_loss_gradients(block, images, masks,
                                          model.trainable_variables)


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("composite", [
    None,  # the default of attention networks: biases out of the rules
    Composite(bias_relevance="absorb"),
    Composite(attention_relevance="value"),
], ids=["default", "absorb", "value"])
def test_reused_attention_parts_give_recomputed_heatmaps_and_gradients(
        monkeypatch, model_name, composite):
    keras.utils.set_random_seed(0)
    with support.floatx("float64"):
        model = MODELS[model_name]()
    _randomize(model)
    images = np.random.default_rng(1).uniform(
        0, 1, (3, *model.input_shape[1:]))
    spy = _PathSpy(monkeypatch)
    reused_maps, reused_grads = _heatmaps_and_gradients(
        model, images, composite, True, monkeypatch)
    assert spy.reused > 0 and spy.recomputed == 0
    spy.reused = spy.recomputed = 0
    maps, grads = _heatmaps_and_gradients(model, images, composite, False,
                                          monkeypatch)
    assert spy.reused == 0 and spy.recomputed > 0
    assert np.abs(maps).max() > 0
    np.testing.assert_allclose(reused_maps, maps, rtol=1e-9,
                               atol=1e-12 * np.abs(maps).max())
    support.assert_same_gradients(model.trainable_variables, reused_grads,
                                  grads)
    attention_grads = [g for v, g in zip(model.trainable_variables, grads)
                       if "attention" in v.path and "kernel" in v.path]
    assert attention_grads and all(np.abs(g.numpy()).max() > 0
                                   for g in attention_grads)


@pytest.mark.parametrize("attention", ["relu", "softmax"])
def test_attention_is_split_at_retrace_without_changing_outputs(attention):
    keras.utils.set_random_seed(0)
    model = vit_small(3, 16, width=16, depth=2, num_heads=2,
                      attention=attention)
    traced = keras_graph.trace(model)
    calls = [c for c in traced.calls
             if isinstance(c.layer, keras.layers.MultiHeadAttention)]
    assert len(calls) == 2
    assert all(sorted(c.pre_activation) == sorted(attention_parts.PARTS)
               for c in calls)
    images = np.random.default_rng(0).uniform(0, 1, (4, 16, 16, 3))
    retraced = keras.Model(traced.input, traced.output)
    if attention == "relu":
        # The parts are `ReLUAttention`'s own ops: the same numbers.
        np.testing.assert_array_equal(retraced(images).numpy(),
                                      model(images).numpy())
    else:
        # Keras runs the softmax through its fused dot-product attention.
        np.testing.assert_allclose(retraced(images).numpy(),
                                   model(images).numpy(), rtol=1e-5,
                                   atol=1e-5)
    # The split layers own no weights: the classifier's are used.
    assert {id(v) for v in retraced.weights} == {id(v) for v in model.weights}


class _CustomAttention(keras.layers.MultiHeadAttention):
    """A subclass whose probabilities the split could not know."""


def _is_split(layer, arguments=None):
    if not layer.built:
        layer.build((None, 4, 8), (None, 4, 8))
    tokens = keras.KerasTensor((None, 4, 8))
    arguments = {"query": tokens, "value": tokens, **(arguments or {})}
    return attention_parts.splits_attention(layer, arguments)


def test_only_supported_attention_calls_are_split():
    assert _is_split(keras.layers.MultiHeadAttention(2, 4))
    assert _is_split(ReLUAttention(2, 4))
    assert not _is_split(_CustomAttention(2, 4))
    assert not _is_split(keras.layers.MultiHeadAttention(2, 4, dropout=0.1))
    assert not _is_split(keras.layers.MultiHeadAttention(
        2, 4, dtype="mixed_float16"))
    assert not _is_split(keras.layers.MultiHeadAttention(2, 4),
                         {"return_attention_scores": True})
    assert not _is_split(keras.layers.MultiHeadAttention(2, 4), {
        "query_mask": keras.KerasTensor((None, 4), dtype="bool")})
    layer = keras.layers.MultiHeadAttention(2, 4, attention_axes=(1, 2))
    layer.build((None, 3, 3, 8), (None, 3, 3, 8))
    assert not _is_split(layer)


def test_a_mixed_precision_attention_recomputes_its_parts():
    keras.utils.set_random_seed(0)
    with support.floatx("float32"):
        keras.config.set_dtype_policy("mixed_float16")
        model = vit_small(3, 8, width=8, depth=1, num_heads=2)
    traced = keras_graph.trace(model)
    assert not any(c.pre_activation for c in traced.calls
                   if isinstance(c.layer, keras.layers.MultiHeadAttention))
