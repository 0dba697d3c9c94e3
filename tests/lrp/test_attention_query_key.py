"""MultiHeadAttention under AttnLRP's full rule: relevance through the
query and key as well as the value.

The independent oracle, in float64: with epsilon = 0 the rule is gradient
x input of the same network written in TensorFlow ops in which each of the
two bilinear products, `q k^T` and `A v`, passes each factor half of the
gradient (`x y -> (sg(x) y + x sg(y)) / 2`, the same value), the softmax
left as it is. With `attention_relevance="value"` it is gradient x input
with the attention probabilities gradient-stopped instead (the rule of
earlier versions).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.lrp.composites import Composite, default_composite
from isnet_keras.lrp.explain import explain
from isnet_keras.lrp.graph import LRPGraph
from isnet_keras.lrp.transformer_mirrors import MultiHeadAttentionMirror
from tests import support

CLASS = 1
HEADS, KEY_DIM, WIDTH, TOKENS = 2, 3, 4, 4
FULL = Composite(default="zero", first_layer=None)
VALUE = Composite(default="zero", first_layer=None,
                  attention_relevance="value")
# Every query sees the keys 0 to 2; the key of token 3 is hidden from all.
KEY_HIDDEN = np.array([[1, 1, 1, 0]] * TOKENS, bool)
MASKS = {None: None, "causal": np.tril(np.ones((TOKENS, TOKENS), bool)),
         "constant": KEY_HIDDEN}
# The argument each embedding is passed as, by the model's inputs.
ROLES = {"self": ("query",), "query_value": ("query", "value"),
         "query_value_key": ("query", "value", "key")}


def attention_model(inputs_kind="self", mask=None):
    """Tokens, one Dense embedding per attention argument, one
    MultiHeadAttention, Flatten, logits.

    Args:
        inputs_kind: `"self"` (`layer(h, h)`), `"query_value"` or
            `"query_value_key"` (an embedding of its own for each).
        mask: None, `"causal"` (`use_causal_mask=True`) or `"constant"`
            (`attention_mask=KEY_HIDDEN`).
    """
    inputs = keras.Input((2, 2, 3))
    tokens = keras.layers.Reshape((TOKENS, 3), name="tokens")(inputs)
    embedded = {role: keras.layers.Dense(WIDTH, name=f"embed_{role}")(tokens)
                for role in ROLES[inputs_kind]}
    query = embedded["query"]
    value = embedded.get("value", query)
    kwargs = {}
    if "key" in embedded:
        kwargs["key"] = embedded["key"]
    if mask == "causal":
        kwargs["use_causal_mask"] = True
    elif mask == "constant":
        kwargs["attention_mask"] = KEY_HIDDEN[None]
    x = keras.layers.MultiHeadAttention(HEADS, KEY_DIM, name="attention")(
        query, value, **kwargs)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs)


def _randomized(model, seed):
    """Non-trivial biases everywhere (the attention's projections too)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if weight.path.split("/")[-1] == "bias":
            weight.assign(rng.normal(0.0, 0.3, weight.shape))
    return model


def _model(inputs_kind="self", mask=None, seed=31):
    keras.utils.set_random_seed(seed)
    with support.floatx("float64"):
        model = attention_model(inputs_kind, mask)
    return _randomized(model, seed + 1)


def _images(seed=33, count=3):
    return np.random.default_rng(seed).uniform(0, 1, (count, 2, 2, 3))


def _reference(model, x, mode, mask):
    """The model in TensorFlow ops: the oracle of `mode` (`"full"`:
    bilinear products halved; `"value"`: probabilities constant).

    Returns:
        `(logit, embeddings)`: the class logit `(B,)` and the output of
        each embedding layer by its role.
    """
    def weights(name):
        return [tf.constant(w.numpy())
                for w in model.get_layer(name).weights]

    layer = model.get_layer("attention")
    tokens = tf.reshape(x, (-1, TOKENS, 3))
    embedded = {}
    for role in ("query", "value", "key"):
        try:
            kernel, bias = weights(f"embed_{role}")
        except ValueError:  # no such layer
            continue
        embedded[role] = tokens @ kernel + bias
    h_q = embedded["query"]
    h_v = embedded.get("value", h_q)
    h_k = embedded.get("key", h_v)
    out = support.reference_attention(layer, h_q, h_v, h_k, mask, mode)
    # The values of Keras's fused attention kernel, which rounds otherwise
    # (about 1e-9 relative in float64), with the gradient of the above.
    kwargs = {"key": h_k} if "key" in embedded else {}
    if mask is not None:
        kwargs["attention_mask"] = mask[None]
    fused = layer(h_q, h_v, **kwargs)
    out = out + tf.stop_gradient(fused - out)
    kernel, bias = weights("logits")
    logit = (tf.reshape(out, (-1, TOKENS * WIDTH)) @ kernel + bias)[:, CLASS]
    return logit, embedded


def _oracle(model, images, mode, mask=None):
    """Gradient x input of the oracle at the input and the embeddings."""
    with tf.GradientTape() as tape:
        x = tf.constant(images)
        tape.watch(x)
        logit, embedded = _reference(model, x, mode, mask)
        total = tf.reduce_sum(logit)
    np.testing.assert_allclose(logit, model(images)[:, CLASS], rtol=1e-7)
    grads = tape.gradient(total, {"x": x, "h": embedded},
                          unconnected_gradients="zero")
    return (x * grads["x"]).numpy(), {
        role: (h * grads["h"][role]).numpy() for role, h in embedded.items()}


def _lrp(model, images, composite):
    roles = [layer.name for layer in model.layers
             if layer.name.startswith("embed_")]
    heatmaps, hidden = support.class_relevances(model, images, CLASS,
                                                composite, roles)
    return heatmaps, {name[len("embed_"):]: r for name, r in hidden.items()}


def _assert_close(actual, expected, what):
    """Max abs difference below 1e-7 of the expected values' scale."""
    error = np.abs(actual - expected).max()
    assert error <= 1e-7 * np.abs(expected).max(), (what, error)


def _assert_matches_oracle(model, images, composite, mode, mask=None):
    heatmaps, hidden = _lrp(model, images, composite)
    expected, expected_hidden = _oracle(model, images, mode, mask)
    assert np.isfinite(heatmaps).all()
    _assert_close(heatmaps, expected, "input")
    assert hidden.keys() == expected_hidden.keys()
    for role, relevance in hidden.items():
        _assert_close(relevance, expected_hidden[role], role)
    return heatmaps, hidden


@pytest.mark.parametrize("inputs_kind", list(ROLES))
def test_full_rule_is_halved_bilinear_gradient_times_input(inputs_kind):
    model = _model(inputs_kind)
    images = _images()
    heatmaps, hidden = _assert_matches_oracle(model, images, FULL, "full")
    # It is neither plain gradient x input nor the value-path rule.
    plain = support.gradient_times_input(model, images, CLASS)
    old, _ = _oracle(model, images, "value")
    for other in (plain, old):
        assert support.relative_l1(heatmaps, other) > 1e-3
    # Every embedding, the query's too, takes relevance.
    for role, relevance in hidden.items():
        assert np.abs(relevance).sum() > 1e-3 * np.abs(heatmaps).sum(), role


@pytest.mark.parametrize("mask", ["causal", "constant"])
@pytest.mark.parametrize("inputs_kind", ["self", "query_value"])
def test_full_rule_with_masks_is_the_oracle(mask, inputs_kind):
    model = _model(inputs_kind, mask, seed=41)
    images = _images(seed=42)
    _, hidden = _assert_matches_oracle(model, images, FULL, "full",
                                       MASKS[mask])
    if mask == "constant" and inputs_kind == "query_value":
        # The key of token 3 is hidden from every query, so its value is
        # never used either: the value input's token 3 gets exactly 0,
        # its query a share.
        assert (hidden["value"][:, 3] == 0).all()
        assert np.abs(hidden["query"][:, 3]).sum() > 0


@pytest.mark.parametrize("mask", [None, "causal", "constant"])
def test_value_option_is_the_earlier_rule(mask):
    model = _model("query_value_key", mask, seed=51)
    images = _images(seed=52)
    _, hidden = _assert_matches_oracle(model, images, VALUE, "value",
                                       MASKS[mask])
    assert (hidden["query"] == 0).all() and (hidden["key"] == 0).all()


def test_a_token_that_acts_only_through_its_key_shows_with_full_only():
    """Channel 2 of each pixel feeds the keys alone (the query and value
    embeddings ignore it): it changes the output only through the
    attention probabilities, as a background shortcut through query-key
    attention would. The value-path rule cannot see it."""
    model = _model("query_value_key", seed=61)
    for role in ("query", "value"):
        kernel = model.get_layer(f"embed_{role}").kernel
        kernel.assign(kernel.numpy() * np.array([[1.0], [1.0], [0.0]]))
    kernel = model.get_layer("embed_key").kernel
    kernel.assign(kernel.numpy() * np.array([[0.0], [0.0], [1.0]]))
    images = _images(seed=62)
    # The logit does depend on channel 2.
    plain = support.gradient_times_input(model, images, CLASS)
    assert np.abs(plain[..., 2]).sum() > 1e-3 * np.abs(plain).sum()
    full, _ = _assert_matches_oracle(model, images, FULL, "full")
    value, _ = _assert_matches_oracle(model, images, VALUE, "value")
    assert np.abs(full[..., 2]).sum() > 1e-2 * np.abs(full).sum()
    assert (value[..., 2] == 0).all()


def _attention_mirror(graph):
    (mirror,) = [step.mirror for step in graph._plan("epsilon", ())
                 if isinstance(step.mirror, MultiHeadAttentionMirror)]
    return mirror


def test_the_option_round_trips_and_is_checked():
    from isnet_keras.builder import build_isnet
    from isnet_keras.isnet import ISNet

    model = _model("self", "causal", seed=71)
    # The composite's option reaches the mirror; full is the default.
    assert _attention_mirror(LRPGraph(model)).attention_relevance == "full"
    mirror = _attention_mirror(LRPGraph(model, composite=VALUE))
    assert mirror.attention_relevance == "value"
    config = mirror.get_config()
    assert config["attention_relevance"] == "value"
    restored = MultiHeadAttentionMirror.from_config(config, classifier=model)
    assert restored.attention_relevance == "value"
    assert restored.call_kwargs == {"use_causal_mask": True}
    # Composites, and the ISNet that saves one.
    assert Composite.from_config(VALUE.get_config()) == VALUE
    assert VALUE != FULL and hash(VALUE) != hash(FULL)
    legacy = {k: v for k, v in FULL.get_config().items()
              if k != "attention_relevance"}
    assert Composite.from_config(legacy) == FULL
    assert default_composite().attention_relevance == "full"
    composite = default_composite(attention_relevance="value")
    isnet = build_isnet(model, variant="original", composite=composite)
    loaded = ISNet.from_config(isnet.get_config())
    assert loaded.composite.attention_relevance == "value"
    # The config holds no weights: the loaded classifier gets them here.
    loaded.classifier.set_weights(model.get_weights())
    images = _images(seed=72, count=2)
    maps = loaded.train_graph(images, training=False)["heatmaps"].numpy()
    np.testing.assert_allclose(
        maps, isnet.train_graph(images, training=False)["heatmaps"].numpy(),
        rtol=1e-10, atol=1e-14)
    # Unknown values fail early, with the choices named.
    for bad in ("keys", None):
        with pytest.raises(ValueError, match="attention_relevance.*full"):
            Composite(attention_relevance=bad)
        with pytest.raises(ValueError, match="attention_relevance.*value"):
            MultiHeadAttentionMirror((model.get_layer("attention"),),
                                     attention_relevance=bad)
        with pytest.raises(ValueError, match="attention_relevance"):
            default_composite(attention_relevance=bad)


def test_mixed_bfloat16_masked_attention_trains_and_explains_finitely():
    """Under mixed_bfloat16 the layer computes in bfloat16 and the rule in
    float32; the masked logits (-1e9 there) give exactly 0, never NaN."""
    from isnet_keras.builder import build_isnet

    keras.utils.set_random_seed(81)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = attention_model("query_value", "constant")
        _randomized(model, 82)
        images = support.check_one_isnet_step(build_isnet(model), 2)
        heatmaps = explain(model, images, "all")
        _, hidden = _lrp(model, images, FULL)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert np.isfinite(heatmaps).all() and np.abs(heatmaps).sum() > 0
    assert np.isfinite(hidden["query"]).all()
    assert (hidden["value"][:, 3] == 0).all()
