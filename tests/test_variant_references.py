"""What each ISNet variant computes, against references computed apart.

The train graph's heatmaps are compared with an LRP pass written out in
NumPy on a tiny network (convolutions as explicit matrices), with
`explain()` and with gradient x input; the logged losses with NumPy
recomputations from the classifier's logits and the graph's heatmaps.
"""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras import isnet as isnet_lib
from isnet_keras.isnet import build_isnet
from isnet_keras.losses import GWRPHeatmapLoss
from isnet_keras.lrp.explain import Explainer, explain
from tests import support

EPSILON = 1e-2  # the library default: the references spell out its role


def _images(num, shape, seed):
    # Multiples of 1/256 in [0, 1]: exact in float32 (explain() feeds
    # float32) and within the default Z^B bounds.
    rng = np.random.default_rng(seed)
    return rng.integers(0, 257, (num, *shape)) / 256.0


# NumPy LRP on a tiny network --------------------------------------------


def _tiny_net(seed=0):
    """Conv(ReLU) -> MaxPool -> [Conv(ReLU) + identity] -> Flatten ->
    Dense -> Dense (logits).

    float64, every weight and bias drawn at random (biases of both signs,
    so `max(b, 0)` and the stopped biases matter). The hidden Dense is
    linear: the logits layer gets signed inputs, which the z+ rule treats
    apart.
    """
    with support.floatx("float64"):
        inputs = keras.Input((6, 6, 2))
        a1 = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(
            inputs)
        pooled = keras.layers.MaxPooling2D(2)(a1)
        a2 = keras.layers.Conv2D(4, 3, padding="same",
                                 activation="relu")(pooled)
        summed = keras.layers.Add()([pooled, a2])
        hidden = keras.layers.Dense(5)(keras.layers.Flatten()(summed))
        model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.4, w.shape) if w.ndim > 1
                       else rng.normal(0.05, 0.2, w.shape)
                       for w in model.get_weights()])
    return model


def _conv_matrix(kernel, height, width):
    """The `(H*W*C, H*W*F)` matrix of a stride-1 'same' convolution."""
    kh, kw, channels, filters = kernel.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    matrix = np.zeros((height, width, channels, height, width, filters))
    for oy in range(height):
        for ox in range(width):
            for dy in range(kh):
                for dx in range(kw):
                    iy, ix = oy + dy - top, ox + dx - left
                    if 0 <= iy < height and 0 <= ix < width:
                        matrix[iy, ix, :, oy, ox, :] += kernel[dy, dx]
    return matrix.reshape(height * width * channels, -1)


def _stab(z, eps):
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def _epsilon_step(x, matrix, bias, relevance, eps):
    z = x @ matrix + bias
    return x * (matrix @ (relevance / _stab(z, eps)))


def _zplus_step(x, matrix, bias, relevance, eps):
    pos, neg = np.maximum(matrix, 0), np.minimum(matrix, 0)
    xp, xn = np.maximum(x, 0), np.minimum(x, 0)
    z = xp @ pos + xn @ neg + np.maximum(bias, 0) + eps
    s = relevance / z
    return xp * (pos @ s) + xn * (neg @ s)


def _zb_step(x, matrix, bias, relevance, eps, lower=0.0, upper=1.0):
    pos, neg = np.maximum(matrix, 0), np.minimum(matrix, 0)
    low, high = np.full_like(x, lower), np.full_like(x, upper)
    z = x @ matrix - low @ pos - high @ neg + np.maximum(bias, 0) + eps
    s = relevance / z
    return x * (matrix @ s) - low * (pos @ s) - high * (neg @ s)


class NumpyTinyNet:
    """The forward pass and LRP of `_tiny_net`, one image at a time."""

    def __init__(self, model):
        k1, b1, k2, b2, w3, b3, dense, dense_bias = model.get_weights()
        self.m1, self.b1 = _conv_matrix(k1, 6, 6), np.tile(b1, 36)
        self.m2, self.b2 = _conv_matrix(k2, 3, 3), np.tile(b2, 9)
        self.w3, self.b3 = w3, b3
        self.dense, self.dense_bias = dense, dense_bias

    def forward(self, image):
        x = image.ravel()
        a1 = np.maximum(x @ self.m1 + self.b1, 0).reshape(6, 6, 4)
        windows = a1.reshape(3, 2, 3, 2, 4)
        pooled = windows.max(axis=(1, 3))
        winner = windows == pooled[:, None, :, None, :]
        # Tied maxima share a window's relevance evenly.
        share = (winner / winner.sum(axis=(1, 3), keepdims=True)).reshape(
            6, 6, 4)
        p = pooled.ravel()
        a2 = np.maximum(p @ self.m2 + self.b2, 0)
        s = p + a2
        h = s @ self.w3 + self.b3
        return dict(x=x, p=p, share=share, a2=a2, s=s, h=h,
                    logits=h @ self.dense + self.dense_bias)

    def from_logits(self, acts, relevance, rule, eps=EPSILON):
        """Relevance at the logits -> input heatmap `(6, 6, 2)`."""
        step = _zplus_step if rule == "zplus" else _epsilon_step
        at_h = step(acts["h"], self.dense, self.dense_bias, relevance, eps)
        return self.from_hidden(acts, at_h, rule, eps)

    def from_hidden(self, acts, relevance, rule, eps=EPSILON):
        """Relevance at the hidden Dense output (the logits layer's input)
        -> input heatmap."""
        step = _zplus_step if rule == "zplus" else _epsilon_step
        relevance = step(acts["s"], self.w3, self.b3, relevance, eps)
        p, a2 = acts["p"], acts["a2"]
        # Add: each summand takes its share of the sum.
        ratio = relevance / _stab(p + a2, eps)
        at_a2 = a2 * ratio
        # The ReLU passes relevance unchanged; the conv's rule uses its
        # pre-activation. The pooled map fans out: its parts add up.
        at_p = p * ratio + step(p, self.m2, self.b2, at_a2, eps)
        # Max pooling: the window's relevance goes to its maximum.
        per_window = (at_p * p / _stab(p, eps)).reshape(3, 3, 4)
        at_a1 = acts["share"] * per_window.repeat(2, 0).repeat(2, 1)
        # The first layer (fed by the input) takes Z^B with bounds [0, 1].
        heatmap = _zb_step(acts["x"], self.m1, self.b1, at_a1.ravel(), eps)
        return heatmap.reshape(6, 6, 2)


def _selective_seed(a, dense, bias, chosen, eps=EPSILON):
    """Relevance of `eta_c` at the Dense input, written from its definition:
    a virtual layer `z_cc' = a (w_c - w_c') + b_c - b_c'` with
    `R_c' = z_cc' softmax_{c' != c}(-z_cc')`, then LRP-epsilon."""
    others = [k for k in range(dense.shape[1]) if k != chosen]
    gaps = np.array([a @ (dense[:, chosen] - dense[:, k])
                     + bias[chosen] - bias[k] for k in others])
    weights = np.exp(-gaps - np.max(-gaps))
    weights /= weights.sum()
    contribution = np.stack([dense[:, chosen] - dense[:, k] for k in others],
                            axis=1)
    return a * (contribution @ (gaps * weights / _stab(gaps, eps)))


@pytest.fixture(scope="module")
def tiny():
    model = _tiny_net()
    images = _images(3, (6, 6, 2), seed=1)
    reference = NumpyTinyNet(model)
    acts = [reference.forward(image) for image in images]
    # The NumPy forward pass is the network's, or nothing below means much.
    np.testing.assert_allclose(np.stack([a["logits"] for a in acts]),
                               model(images).numpy(), rtol=1e-12, atol=1e-12)
    # Each rule's cases occur: signed logits-layer inputs, a live residual
    # branch, inactive units.
    for act in acts:
        assert (act["h"] < 0).any() and (act["h"] > 0).any()
        assert (act["a2"] > 0).any() and (act["a2"] == 0).any()
    return model, images, reference, acts


def _assert_maps_equal(actual, expected):
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=1e-9,
                               atol=1e-12 * scale)


def test_original_maps_match_numpy_lrp_epsilon_of_each_logit(tiny):
    model, images, reference, acts = tiny
    isnet = build_isnet(model, variant="original", deep_supervision=())
    heatmaps = isnet.train_graph_outputs(images)["heatmaps"].numpy()
    assert heatmaps.shape == (3, 3, 6, 6, 2)
    for b, act in enumerate(acts):
        for k in range(3):
            seed = np.zeros(3)
            seed[k] = act["logits"][k]
            _assert_maps_equal(heatmaps[b, k],
                               reference.from_logits(act, seed, "epsilon"))


def test_dual_maps_match_numpy_zplus_and_epsilon_of_the_logit_sum(tiny):
    model, images, reference, acts = tiny
    isnet = build_isnet(model, variant="dual", deep_supervision=())
    heatmaps = isnet.train_graph_outputs(images)["heatmaps"].numpy()
    assert heatmaps.shape == (3, 2, 6, 6, 2)
    dense, bias = reference.dense, reference.dense_bias
    for b, act in enumerate(acts):
        h = act["h"]
        # The z+ map starts from each logit's positive part
        # z+_n = h+ W+_n + h- W-_n + max(b_n, 0), all classes at once.
        positive = np.maximum(h, 0) @ np.maximum(dense, 0) + \
            np.minimum(h, 0) @ np.minimum(dense, 0) + np.maximum(bias, 0)
        _assert_maps_equal(heatmaps[b, 0],
                           reference.from_logits(act, positive, "zplus"))
        _assert_maps_equal(heatmaps[b, 1],
                           reference.from_logits(act, act["logits"],
                                                 "epsilon"))
    assert heatmaps[:, 0].min() >= 0


@pytest.mark.parametrize("class_policy", ["lowest", "highest", "label"])
def test_selective_map_matches_numpy_lrp_of_eta(tiny, class_policy):
    model, images, reference, acts = tiny
    logits = np.stack([a["logits"] for a in acts])
    # Labels that are neither the top nor the bottom logit.
    labels = np.argsort(logits, axis=-1)[:, 1]
    with pytest.warns(UserWarning) if class_policy == "label" else \
            contextlib.nullcontext():
        isnet = build_isnet(model, variant="selective",
                            class_policy=class_policy, deep_supervision=())
    heatmaps = isnet.train_graph_outputs(images, labels)["heatmaps"].numpy()
    chosen = {"lowest": logits.argmin(-1), "highest": logits.argmax(-1),
              "label": labels}[class_policy]
    for b, act in enumerate(acts):
        at_h = _selective_seed(act["h"], reference.dense,
                               reference.dense_bias, chosen[b])
        _assert_maps_equal(heatmaps[b, 0],
                           reference.from_hidden(act, at_h, "epsilon"))


# References through the library's other paths ---------------------------


def _small_cnn64(num_classes, seed):
    keras.utils.set_random_seed(seed)
    with support.floatx("float64"):
        model = support.small_cnn(input_shape=(8, 8, 1),
                                  num_classes=num_classes)
    support.randomize_batch_norms(model, seed)
    # Keras starts biases at zero; non-zero ones test their handling.
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "use_bias", False):
            layer.bias.assign(rng.normal(0.0, 0.1, layer.bias.shape))
    return model


def test_original_maps_equal_explain_of_every_class():
    # Batch norm, dropout (inference), max pooling, biases, Z^B first layer.
    model = _small_cnn64(num_classes=4, seed=2)
    images = _images(3, (8, 8, 1), seed=3)
    isnet = build_isnet(model, variant="original", deep_supervision=())
    heatmaps = isnet.train_graph_outputs(images)["heatmaps"].numpy()
    explainer = Explainer(model)
    expected = explain(explainer, images, classes="all")
    assert heatmaps.shape == expected.shape == (3, 4, 8, 8, 1)
    # explain() returns float32: a float32 tolerance.
    atol = 1e-6 * np.abs(expected).max()
    np.testing.assert_allclose(heatmaps, expected, rtol=1e-5, atol=atol)
    for k in range(4):
        np.testing.assert_allclose(heatmaps[:, k],
                                   explain(explainer, images, classes=k)[:, 0],
                                   rtol=1e-5, atol=atol)


def test_dual_epsilon_map_is_the_sum_of_the_class_maps():
    # LRP-epsilon is linear in the seed: explaining the sum of logits gives
    # the sum of the per-class maps.
    model = _small_cnn64(num_classes=4, seed=4)
    images = _images(3, (8, 8, 1), seed=5)
    isnet = build_isnet(model, variant="dual", deep_supervision=())
    heatmaps = isnet.train_graph_outputs(images)["heatmaps"].numpy()
    expected = explain(model, images, classes="all").sum(axis=1)
    np.testing.assert_allclose(heatmaps[:, 1], expected, rtol=1e-5,
                               atol=1e-6 * np.abs(expected).max())


def test_stochastic_map_is_the_map_of_one_class_per_image():
    model = _small_cnn64(num_classes=4, seed=6)
    images = _images(6, (8, 8, 1), seed=7)
    isnet = build_isnet(model, variant="stochastic", seed=3,
                        deep_supervision=())
    heatmaps = isnet.train_graph_outputs(images)["heatmaps"].numpy()[:, 0]
    class_maps = explain(model, images, classes="all")
    for b in range(len(images)):
        errors = [support.relative_l1(heatmaps[b], class_maps[b, k])
                  for k in range(4)]
        assert sorted(errors)[0] < 1e-5 < sorted(errors)[1], errors


def _eta_gradient_times_input(model, images, chosen):
    """`x * d eta_c / d x`, `eta_c = z_c - log sum_{c' != c} exp z_c'`."""
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, training=False)
        is_chosen = tf.one_hot(chosen, logits.shape[-1], dtype=logits.dtype)
        z_chosen = tf.reduce_sum(logits * is_chosen, -1)
        rest = tf.reduce_logsumexp(
            tf.where(is_chosen > 0, tf.constant(-np.inf, logits.dtype),
                     logits), -1)
        eta = z_chosen - rest
    return (tape.gradient(eta, x) * x).numpy()


@pytest.mark.parametrize("class_policy", ["lowest", "highest", "label"])
def test_selective_at_small_epsilon_is_gradient_times_input_of_eta(
        class_policy):
    # LRP-0 through ReLU, max pooling and folded batch norm is gradient x
    # input, and the Selective seed is built so that at epsilon -> 0 it is
    # `a * d eta_c / d a` at the Dense input.
    model = _small_cnn64(num_classes=4, seed=8)
    images = _images(4, (8, 8, 1), seed=9)
    logits = model(images, training=False).numpy()
    # Labels that are neither the top nor the bottom logit.
    labels = np.argsort(logits, axis=-1)[np.arange(4), 1 + np.arange(4) % 2]
    chosen = {"lowest": logits.argmin(-1), "highest": logits.argmax(-1),
              "label": labels}[class_policy]
    with pytest.warns(UserWarning) if class_policy == "label" else \
            contextlib.nullcontext():
        isnet = build_isnet(model, variant="selective", epsilon=1e-10,
                            first_layer_rule="epsilon",
                            class_policy=class_policy, deep_supervision=())
    heatmaps = isnet.train_graph_outputs(images, labels)["heatmaps"].numpy()
    references = [_eta_gradient_times_input(model, images,
                                            np.full(4, k, "int32"))
                  for k in range(4)]
    for b in range(4):
        errors = [support.relative_l1(heatmaps[b, 0], references[k][b])
                  for k in range(4)]
        # The map is the chosen class's, and unlike every other class's.
        assert errors[chosen[b]] < 1e-7, errors
        assert min(e for k, e in enumerate(errors) if k != chosen[b]) > 1e-2


# The logged losses -------------------------------------------------------


def _numpy_gwrp(values, decay):
    ordered = np.sort(np.asarray(values, np.float64))[::-1]
    weights = decay ** np.arange(len(ordered))  # 0 ** 0 == 1
    return float((ordered * weights).sum() / weights.sum())


@pytest.mark.parametrize("decay", [0.0, 0.3, 0.8, 1.0])
def test_layer_losses_combine_by_gwrp_with_the_worst_layer_first(decay):
    rng = np.random.default_rng(10)
    for values in (rng.uniform(0, 5, 3), rng.uniform(0, 5, 6),
                   np.array([2.0, 2.0, 0.5, 3.0])):
        combined = isnet_lib._combine_layer_losses(
            [tf.constant(v) for v in values], decay)
        assert float(combined) == pytest.approx(_numpy_gwrp(values, decay),
                                                rel=1e-12)


def _cross_entropy(logits, labels):
    logits = np.asarray(logits, np.float64)
    top = logits.max(-1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(-1))
    return float(np.mean(log_norm - logits[np.arange(len(labels)), labels]))


def _expected_logs(isnet, images, labels, masks, hidden_names):
    """The loss terms on the current weights, recomputed apart."""
    logits = isnet.classifier(images, training=False).numpy()
    out = isnet.train_graph_outputs(images)
    heatmap = float(GWRPHeatmapLoss()(masks, out["heatmaps"]))
    if hidden_names:
        # Deep supervision: the input map's loss and each hidden layer's
        # (GWRP over the channels' summed relevance), combined by GWRP.
        layer_losses = [heatmap] + [
            float(GWRPHeatmapLoss(channels="sum")(masks, h))
            for h in out["hidden"]]
        assert len(layer_losses) == 1 + len(hidden_names)
        heatmap = _numpy_gwrp(layer_losses, 0.8)
    classification = _cross_entropy(logits, labels)
    P = isnet.P
    return {"classification_loss": classification, "heatmap_loss": heatmap,
            "loss": (1 - P) * classification + P * heatmap,
            "accuracy": float(np.mean(logits.argmax(-1) == labels))}


@pytest.mark.parametrize("variant,supervised", [("selective", False),
                                                ("dual", True)])
def test_logged_losses_equal_their_recomputation(variant, supervised):
    keras.utils.set_random_seed(11)
    classifier = support.small_cnn(input_shape=(8, 8, 1), num_classes=3,
                                   batch_norm=False, dropout=0.0)
    hidden_names = [layer.name for layer in classifier.layers
                    if isinstance(layer, (keras.layers.ReLU,
                                          keras.layers.MaxPooling2D))]
    hidden_names = hidden_names if supervised else []
    isnet = build_isnet(classifier, variant=variant,
                        deep_supervision=hidden_names)
    isnet.compile(optimizer=keras.optimizers.SGD(0.05))
    rng = np.random.default_rng(12)
    images = rng.uniform(0, 1, (6, 8, 8, 1)).astype("float32")
    labels = rng.integers(0, 3, 6)
    masks = np.zeros((6, 8, 8, 1), "float32")
    masks[:, 2:6, 1:7] = 1
    targets = {"label": labels, "mask": masks}
    for P in (0.3, 0.7):
        isnet.P = P
        expected = _expected_logs(isnet, images, labels, masks, hidden_names)
        assert expected["heatmap_loss"] != pytest.approx(
            expected["classification_loss"], rel=0.05)
        logs = isnet.evaluate(images, targets, batch_size=6, verbose=0,
                              return_dict=True)
        # No dropout or batch norm: the training-mode pass of the step sees
        # the same values, and logs them for the weights before its update.
        weights = [w.copy() for w in classifier.get_weights()]
        step_logs = isnet.train_on_batch(images, targets, return_dict=True)
        assert any(not np.array_equal(a, b) for a, b in
                   zip(weights, classifier.get_weights()))
        for logged in (logs, step_logs):
            for key, value in expected.items():
                assert float(logged[key]) == pytest.approx(
                    value, rel=1e-5, abs=1e-6), (P, key)
