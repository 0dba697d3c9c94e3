"""Conservation: on bias-free nets, relevance sums to the explained logit."""

import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.lrp import graph as graph_lib
from isnet_keras.lrp import outputs
from isnet_keras.lrp.explain import explain
from tests import support


@pytest.mark.parametrize("first_layer_rule", ["epsilon", "zb"])
@pytest.mark.parametrize("builder", [support.small_cnn, support.branchy_cnn])
def test_input_relevance_sums_to_logit_without_biases(builder,
                                                      first_layer_rule):
    with support.floatx("float64"):
        model = builder(use_bias=False, batch_norm=False)
    images = np.random.default_rng(0).uniform(
        0, 1, (3, *model.input_shape[1:]))
    heatmaps = explain(model, images, classes="all", epsilon=1e-12,
                       first_layer_rule=first_layer_rule)
    logits = model(images, training=False).numpy()
    np.testing.assert_allclose(heatmaps.sum(axis=(2, 3, 4)), logits,
                               rtol=1e-5, atol=1e-7)


def test_relevance_is_conserved_at_every_hidden_layer():
    with support.floatx("float64"):
        model = support.branchy_cnn(use_bias=False, batch_norm=False)
    lrp_graph = graph_lib.LRPGraph(model, epsilon=1e-12)
    hidden = [call.output for call in lrp_graph.traced.calls[:-1]
              if call.layer.__class__.__name__ in ("Add", "MaxPooling2D",
                                                   "Activation")]
    seed = outputs.ClassLogitRelevance(lrp_graph.logits_layer,
                                       lrp_dtype="float64")
    relevance = seed(outputs.start_of_logits(lrp_graph))
    found = lrp_graph.propagate(lrp_graph.logits_call.output, relevance,
                                targets=hidden)
    import keras
    probe = keras.Model(lrp_graph.input,
                        [found[id(t)] for t in hidden]
                        + [found[id(lrp_graph.input)]])
    images = np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 3))
    logits = model(images, training=False).numpy()
    predicted = logits[np.arange(2), logits.argmax(-1)]
    for relevance_map in probe(tf.constant(images)):
        totals = np.asarray(relevance_map).reshape(2, -1).sum(-1)
        np.testing.assert_allclose(totals, predicted, rtol=1e-6)
