"""ISNet training graph: gradients, deploy model, save/load, variants."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras import callbacks
from isnet_keras.isnet import ISNet, build_isnet
from isnet_keras.lrp import outputs
from isnet_keras.lrp.graph import LRPGraph
from tests import support


def _data(num=8, size=16, channels=1, num_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (num, size, size, channels)).astype("float32")
    labels = rng.integers(0, num_classes, num)
    masks = np.zeros((num, size, size, 1), "float32")
    masks[:, 4:12, 3:13] = 1
    return images, labels, masks


def test_heatmap_loss_reaches_kernels_but_never_biases_through_the_block():
    model = support.small_cnn(batch_norm=True)
    support.randomize_batch_norms(model)
    graph = LRPGraph(model)
    images, _, masks = _data()
    traced = [graph.input] + [c.output for c in graph.traced.calls]
    values = dict(zip(
        (id(t) for t in traced),
        (tf.stop_gradient(v) for v in keras.Model(graph.input, traced)(
            images, training=True))))
    seed = outputs.ClassLogitRelevance(graph.logits_layer)
    biases = [v for v in model.trainable_variables if "bias" in v.path
              or "beta" in v.path]
    kernels = [v for v in model.trainable_variables if "kernel" in v.path]
    assert biases and kernels
    with tf.GradientTape(persistent=True) as tape:
        start = values[id(outputs.start_of_logits(graph))]
        relevance = seed(start)
        heatmaps = graph.propagate(graph.logits_call.output, relevance,
                                   values=values)[id(graph.input)]
        from isnet_keras.losses import GWRPHeatmapLoss
        loss = GWRPHeatmapLoss()(masks, heatmaps)
    for kernel in kernels:
        gradient = tape.gradient(loss, kernel)
        assert gradient is not None and np.abs(gradient.numpy()).max() > 0
    for bias in biases:
        gradient = tape.gradient(loss, bias)
        assert gradient is None or np.all(gradient.numpy() == 0), bias.path


def test_second_order_gradients_match_central_differences():
    keras.utils.set_random_seed(3)
    with support.floatx("float64"):
        classifier = support.small_cnn(input_shape=(8, 8, 1), num_classes=3,
                                       batch_norm=False, dropout=0.0)
        isnet = build_isnet(classifier, variant="selective", P=0.6,
                            first_layer_rule="zb")
    rng = np.random.default_rng(4)
    images = rng.uniform(0, 1, (3, 8, 8, 1))
    labels = np.array([0, 2, 1])
    masks = np.zeros((3, 8, 8, 1))
    masks[:, 2:6, 2:7] = 1

    def total_loss():
        return isnet._loss_terms(images, labels, masks, training=False).total

    variable = classifier.layers[0].kernel
    with tf.GradientTape() as tape:
        loss = total_loss()
    analytic = tape.gradient(loss, variable).numpy()
    original = variable.numpy()
    step = 1e-6
    for index in [(0, 0, 0, 0), (1, 2, 0, 3), (2, 1, 0, 5)]:
        shifted = original.copy()
        shifted[index] += step
        variable.assign(shifted)
        up = float(total_loss())
        shifted[index] -= 2 * step
        variable.assign(shifted)
        down = float(total_loss())
        variable.assign(original)
        numeric = (up - down) / (2 * step)
        np.testing.assert_allclose(analytic[index], numeric, rtol=1e-5,
                                   atol=1e-9)


@pytest.mark.parametrize("variant", ["original", "selective", "stochastic",
                                     "dual"])
def test_deploy_model_is_the_classifier_and_the_graph_adds_no_variables(
        variant):
    classifier = support.small_cnn()
    isnet = build_isnet(classifier, variant=variant, seed=1)
    images, labels, masks = _data()
    assert isnet.deploy_model is classifier
    np.testing.assert_array_equal(isnet.predict(images, verbose=0),
                                  classifier(images, training=False).numpy())
    assert [id(v) for v in isnet.trainable_variables] == [
        id(v) for v in classifier.trainable_variables]
    classifier_ids = {id(v) for v in classifier.weights}
    extra = [v.path for v in isnet.train_graph.weights
             if id(v) not in classifier_ids]
    assert extra == []
    heatmaps = isnet.train_graph_outputs(images)["heatmaps"]
    expected_k = {"original": 10, "selective": 1, "stochastic": 1, "dual": 2}
    assert tuple(heatmaps.shape) == (8, expected_k[variant], 16, 16, 1)


def test_selective_lowest_explains_the_argmin_logit():
    classifier = support.small_cnn(num_classes=4)
    isnet = build_isnet(classifier, variant="selective", epsilon=1e-9,
                        first_layer_rule="epsilon")
    images, _, _ = _data(num=4, num_classes=4)
    x = tf.constant(images)
    lowest = np.argmin(classifier(images).numpy(), -1)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = classifier(x, training=False)
        chosen = tf.reduce_sum(tf.one_hot(lowest, 4) * logits, -1)
        eta = -tf.reduce_logsumexp(
            -(chosen[:, None] - logits) + tf.one_hot(lowest, 4) * -1e30, -1)
    reference = (tape.gradient(eta, x) * x).numpy()
    heatmaps = isnet.train_graph_outputs(images)["heatmaps"].numpy()[:, 0]
    assert support.relative_l1(heatmaps, reference) < 1e-3


def test_stochastic_draws_repeat_under_a_seed_and_pick_the_top_half_the_time():
    classifier = support.small_cnn(num_classes=10)
    graph = LRPGraph(classifier)
    images = np.random.default_rng(0).uniform(0, 1, (400, 16, 16, 1))
    start = keras.Model(graph.input, outputs.start_of_logits(graph))(images)

    def draws(seed):
        seed_layer = outputs.StochasticRelevance(graph.logits_layer, seed=seed)
        relevance = seed_layer(start).numpy()[:, 0]
        return np.argmax(np.abs(relevance), -1)

    first, second = draws(7), draws(7)
    np.testing.assert_array_equal(first, second)
    top = np.argmax(classifier(images).numpy(), -1)
    assert 0.4 < np.mean(first == top) < 0.6


def test_dual_positive_map_is_non_negative():
    isnet = build_isnet(support.small_cnn(batch_norm=False), variant="dual")
    images, _, _ = _data()
    heatmaps = isnet.train_graph_outputs(images)["heatmaps"].numpy()
    assert heatmaps[:, 0].min() >= 0
    assert heatmaps[:, 1].min() < 0  # the epsilon map is signed


def test_fit_logs_all_terms_and_save_load_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    isnet = build_isnet(support.small_cnn(), variant="selective")
    isnet.compile(optimizer=keras.optimizers.SGD(1e-2, momentum=0.9,
                                                 global_clipnorm=1.0))
    images, labels, masks = _data(num=16)
    history = isnet.fit(images, {"label": labels, "mask": masks},
                        batch_size=8, epochs=1, verbose=0,
                        validation_data=(images, (labels, masks)))
    for key in ("loss", "classification_loss", "heatmap_loss", "accuracy",
                "background_fraction", "val_loss", "val_heatmap_loss"):
        assert np.isfinite(history.history[key][0]), key
    path = tmp_path / "isnet.keras"
    isnet.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, ISNet)
    for a, b in zip(isnet.classifier.weights, restored.classifier.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(restored.predict(images, verbose=0),
                               isnet.predict(images, verbose=0), atol=1e-6)
    assert int(restored.optimizer.iterations) == 2
    restored.fit(images, {"label": labels, "mask": masks}, batch_size=8,
                 epochs=1, verbose=0)
    assert int(restored.optimizer.iterations) == 4


def test_labels_out_of_range_raise_a_clear_error():
    isnet = build_isnet(support.small_cnn(num_classes=3))
    isnet.compile(optimizer="sgd")
    images, _, masks = _data(num=4)
    with pytest.raises(Exception, match=r"labels out of range"):
        isnet.fit(images, {"label": np.array([0, 1, 2, 3]), "mask": masks},
                  epochs=1, verbose=0)


def test_images_outside_the_input_bounds_raise_a_clear_error():
    isnet = build_isnet(support.small_cnn(num_classes=3))
    isnet.compile(optimizer="sgd")
    images, _, masks = _data(num=4)
    with pytest.raises(Exception, match=r"needs inputs within input_bounds"):
        isnet.fit(255 * images, {"label": np.array([0, 1, 2, 0]),
                                 "mask": masks}, epochs=1, verbose=0)


def test_heatmap_weight_schedule_sets_P_per_epoch():
    isnet = build_isnet(support.small_cnn())
    isnet.compile(optimizer="sgd")
    images, labels, masks = _data(num=8)
    schedule = callbacks.HeatmapWeightSchedule({1: 0.2, 2: 0.5})
    history = isnet.fit(images, {"label": labels, "mask": masks}, epochs=3,
                        verbose=0, callbacks=[schedule])
    # Epoch 0 keeps the ISNet's own P (the default, 0.95).
    assert history.history["P"] == pytest.approx([0.95, 0.2, 0.5])


def test_best_checkpoint_from_epoch_ignores_the_epochs_before(tmp_path):
    path = tmp_path / "best.weights.h5"
    written = []

    class Spy(keras.callbacks.Callback):  # runs after the checkpoint
        def on_epoch_end(self, epoch, logs=None):
            written.append(path.exists())

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1e-2), loss="mse")
    x = np.random.default_rng(0).normal(size=(8, 2))
    model.fit(x, x.sum(1), epochs=3, verbose=0, callbacks=[
        callbacks.BestCheckpointFromEpoch(
            2, path, monitor="loss", save_best_only=True,
            save_weights_only=True), Spy()])
    assert written == [False, False, True]


def test_mixed_bfloat16_gives_float32_maps_close_to_float32():
    images, labels, masks = _data()
    keras.utils.set_random_seed(5)
    reference_model = support.small_cnn(batch_norm=False)
    weights = reference_model.get_weights()
    reference = build_isnet(reference_model).train_graph_outputs(images)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed_model = support.small_cnn(batch_norm=False)
        mixed_model.set_weights(weights)
        isnet = build_isnet(mixed_model)
        mixed = isnet.train_graph_outputs(images)
        isnet.compile(optimizer="sgd")
        history = isnet.fit(images, {"label": labels, "mask": masks},
                            epochs=1, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert mixed["heatmaps"].dtype == "float32"
    assert np.isfinite(history.history["loss"][0])
    assert history.history["skipped_steps"][0] == 0
    assert support.relative_l1(mixed["heatmaps"].numpy(),
                               reference["heatmaps"].numpy()) < 0.1


def test_mixed_precision_keeps_all_relevance_in_float32():
    # Fan-outs (the Add and Concatenate inputs), Dual's two maps and
    # deep-supervision maps are each joined by a layer of the train graph;
    # under a mixed policy a default layer there would round the relevance
    # to bfloat16.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        classifier = support.branchy_cnn(rescale=False)
        hidden = [layer.name for layer in classifier.layers
                  if isinstance(layer, keras.layers.Add)]
        isnet = build_isnet(classifier, variant="dual",
                            deep_supervision=hidden)
        out = isnet.train_graph_outputs(
            np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)),
            training=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out["heatmaps"].dtype == "float32"
    assert [h.dtype for h in out["hidden"]] == ["float32"]
    forward = {id(layer) for layer in classifier._flatten_layers()}
    lrp_side = [layer for layer in isnet.train_graph.layers
                if id(layer) not in forward and type(layer).__name__ not in (
                    "InputLayer", "PreActivation", "Activation")]
    assert len(lrp_side) > 20
    assert [layer.name for layer in lrp_side
            if layer.dtype_policy.compute_dtype != "float32"] == []


def _cue_task(num, rng, swap=False):
    """Bars in the centre carry the class; a corner patch carries it too
    (a planted background cue), or the other class's when swapped."""
    labels = rng.integers(0, 2, num)
    images = rng.uniform(0, 0.1, (num, 16, 16, 1)).astype("float32")
    masks = np.zeros((num, 16, 16, 1), "float32")
    masks[:, 4:12, 4:12] = 1
    for i, label in enumerate(labels):
        if label == 0:
            images[i, 5:11, 7:9] += 0.5
        else:
            images[i, 7:9, 5:11] += 0.5
        cue = 1 - label if swap else label
        images[i, 0:3, 0:3] = 1.0 if cue == 0 else images[i, 0:3, 0:3]
        images[i, 0:3, 13:16] = 1.0 if cue == 1 else images[i, 0:3, 13:16]
    return images, labels, masks


@pytest.mark.parametrize("variant", ["selective", "stochastic"])
def test_isnet_ignores_a_planted_background_cue_that_fools_a_plain_model(
        variant):
    rng = np.random.default_rng(0)
    train = _cue_task(800, rng)
    test = _cue_task(400, rng)
    swapped = _cue_task(400, rng, swap=True)

    def train_and_score(P):
        keras.utils.set_random_seed(0)  # same start for plain and ISNet
        classifier = keras.Sequential([
            keras.Input((16, 16, 1)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Flatten(), keras.layers.Dense(2)])
        isnet = build_isnet(classifier, variant=variant, P=P, seed=0)
        isnet.compile(optimizer=keras.optimizers.Adam(3e-3,
                                                      global_clipnorm=1.0))
        isnet.fit(train[0], {"label": train[1], "mask": train[2]},
                  batch_size=32, epochs=20, verbose=0)
        return [np.mean(isnet.predict(x, verbose=0).argmax(-1) == y)
                for x, y, _ in (test, swapped)]

    plain_biased, plain_swapped = train_and_score(0.0)
    isnet_biased, isnet_swapped = train_and_score(0.7)
    assert plain_biased > 0.95 and plain_biased - plain_swapped > 0.30
    assert isnet_biased > 0.9 and isnet_biased - isnet_swapped <= 0.02


class CaptureWarmUp(keras.callbacks.Callback):
    """Keeps the train-graph outputs of `images` at the end of `epoch`, in
    training mode (`outputs`) and in inference mode (`inference_outputs`).

    Listed before an `AutoTuneForegroundBounds`, it sees the weights that
    the tuner measures, before it restores the initial ones.
    """

    def __init__(self, images, epoch):
        super().__init__()
        self.images, self.epoch, self.outputs = images, epoch, None
        self.inference_outputs = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.inference_outputs = self.model.train_graph_outputs(
                self.images)
            self.outputs = self.model.train_graph_outputs(self.images,
                                                          training=True)


def fit_with_tuner(isnet, epochs):
    """Trains on 16 images with a one-epoch tuning warm-up.

    Returns:
        The `AutoTuneForegroundBounds`, the `CaptureWarmUp` of its warm-up
        epoch and the `fit` history.
    """
    isnet.compile(optimizer=keras.optimizers.SGD(1e-2))
    images, labels, masks = _data(num=16)
    tuner = callbacks.AutoTuneForegroundBounds(images, warmup_epochs=1)
    warm = CaptureWarmUp(images, epoch=0)
    history = isnet.fit(images, {"label": labels, "mask": masks},
                        batch_size=8, epochs=epochs, verbose=0,
                        callbacks=[warm, tuner])
    return tuner, warm, history


def test_auto_tuned_bounds_follow_the_warm_up_heatmaps_and_restart_weights():
    keras.utils.set_random_seed(0)
    classifier = support.small_cnn(batch_norm=False, dropout=0.0)
    initial = classifier.get_weights()
    isnet = build_isnet(classifier, P=0.5)
    isnet.compile(optimizer=keras.optimizers.SGD(1e-2, momentum=0.9))
    images, labels, masks = _data(num=16)
    tuner = callbacks.AutoTuneForegroundBounds(images, warmup_epochs=2)
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(self.model.P)

        def on_epoch_end(self, epoch, logs=None):
            optimizer = self.model.optimizer
            if epoch == 1:  # right after tuning: back to the start
                for a, b in zip(self.model.classifier.get_weights(), initial):
                    np.testing.assert_array_equal(a, b)
                assert int(optimizer.iterations) == 0
                assert all(not np.any(v.numpy()) for v in optimizer.variables
                           if "momentum" in v.path)
            # The configured learning rate survives the restart, and the
            # ISNet trains on from the initial weights.
            assert float(optimizer.learning_rate) == pytest.approx(1e-2)
            if epoch == 2:
                assert any(not np.array_equal(a, b) for a, b in zip(
                    self.model.classifier.get_weights(), initial))

    warm = CaptureWarmUp(images, epoch=1)
    isnet.fit(images, {"label": labels, "mask": masks}, batch_size=8,
              epochs=3, verbose=0, callbacks=[warm, tuner, Spy()])
    assert seen == pytest.approx([0.0, 0.0, 0.5])
    totals = np.abs(warm.outputs["heatmaps"].numpy()).sum((2, 3, 4)).mean(1)
    mean, std = totals.mean(), totals.std(ddof=1)
    c1 = max(mean / 5, mean - 3 * std)
    assert tuner.result["C1"] == pytest.approx(c1, rel=1e-5)
    assert tuner.result["C2"] == pytest.approx(min(25 * c1, mean + 3 * std),
                                               rel=1e-5)
    assert isnet.heatmap_loss.C1 == tuner.result["C1"]


def test_dual_tuning_gives_each_map_its_own_band(tmp_path):
    keras.utils.set_random_seed(0)
    isnet = build_isnet(support.small_cnn(batch_norm=False, dropout=0.0),
                        variant="dual", P=0.5)
    _, warm, history = fit_with_tuner(isnet, epochs=2)
    per_map = np.abs(warm.outputs["heatmaps"].numpy()).sum((2, 3, 4))
    assert per_map.shape == (16, 2)
    for k in range(2):  # z+ map, then LRP-epsilon map
        totals = per_map[:, k]
        mean, std = totals.mean(), totals.std(ddof=1)
        c1 = max(mean / 5, mean - 3 * std)
        assert isnet.heatmap_loss.C1[k] == pytest.approx(c1, rel=1e-5)
        assert isnet.heatmap_loss.C2[k] == pytest.approx(
            min(25 * c1, mean + 3 * std), rel=1e-5)
    assert isnet.heatmap_loss.C1[0] != pytest.approx(
        isnet.heatmap_loss.C1[1], rel=0.01)
    assert history.history["C1_map1"][0] == isnet.heatmap_loss.C1[1]
    assert np.all(np.isfinite(history.history["heatmap_loss"]))
    isnet.save(tmp_path / "dual.keras")
    loaded = keras.models.load_model(tmp_path / "dual.keras")
    assert list(loaded.heatmap_loss.C1) == list(isnet.heatmap_loss.C1)
    assert list(loaded.heatmap_loss.C2) == list(isnet.heatmap_loss.C2)


def test_tuning_measures_relevance_in_training_mode_as_the_loss_does():
    # With batch norm, a short warm-up leaves the moving statistics far
    # from the batch statistics that the training loss's heatmaps use.
    keras.utils.set_random_seed(0)
    isnet = build_isnet(support.small_cnn(batch_norm=True, dropout=0.0),
                        P=0.5)
    tuner, warm, _ = fit_with_tuner(isnet, epochs=1)

    def mean_total(outputs):
        return np.abs(outputs["heatmaps"].numpy()).sum((2, 3, 4)).mean()

    assert tuner.result["mean"] == pytest.approx(mean_total(warm.outputs),
                                                 rel=1e-5)
    inference = mean_total(warm.inference_outputs)
    assert abs(inference - tuner.result["mean"]) > 0.1 * tuner.result["mean"]


def test_tuning_measures_a_dataset_of_images_and_labels_alone():
    isnet = build_isnet(support.small_cnn(batch_norm=False, dropout=0.0))
    isnet.compile(optimizer=keras.optimizers.SGD(1e-2))
    images, labels, masks = _data(num=16)
    tuner = callbacks.AutoTuneForegroundBounds(
        tf.data.Dataset.from_tensor_slices((images, labels)).batch(8),
        warmup_epochs=1)
    isnet.fit(images, {"label": labels, "mask": masks}, batch_size=8,
              epochs=1, verbose=0, callbacks=[tuner])
    assert 0 < tuner.result["C1"] < tuner.result["C2"]


def test_bounds_for_layers_that_are_not_supervised_are_refused():
    isnet = build_isnet(support.small_cnn(batch_norm=False, dropout=0.0))
    with pytest.raises(ValueError, match="relu_9, which the ISNet does not "
                       "supervise"):
        callbacks.apply_foreground_bounds(isnet, {
            "C1": 2.0, "C2": 30.0, "hidden": {"relu_9": {"C1": 1, "C2": 5}}})
    assert (isnet.heatmap_loss.C1, isnet.heatmap_loss.C2) == (1.0, 25.0)


def test_logged_background_fraction_is_the_brf_of_the_heatmaps():
    from isnet_keras.metrics import background_relevance_fraction
    isnet = build_isnet(support.small_cnn(batch_norm=False, dropout=0.0))
    isnet.compile(optimizer="sgd")
    images, labels, masks = _data(num=8)
    logs = isnet.evaluate(images, {"label": labels, "mask": masks},
                          batch_size=8, verbose=0, return_dict=True)
    heatmaps = isnet.train_graph_outputs(images)["heatmaps"].numpy()
    expected = np.mean(np.asarray(background_relevance_fraction(heatmaps,
                                                                masks)))
    assert logs["background_fraction"] == pytest.approx(expected, rel=1e-5)


def _xla_friendly_cnn():
    """Fused-ReLU convs, batch norm, an Add, average pools: no max pool."""
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    y = keras.layers.Conv2D(6, 3, padding="same")(x)
    y = keras.layers.BatchNormalization()(y)
    x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def test_xla_compiled_training_matches_the_default_graph():
    # On a GPU Keras compiles with XLA by default ("auto"): the LRP block
    # must then give the same steps (checked here on the CPU).
    images, labels, masks = _data(num=16)
    histories = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(0)
        isnet = build_isnet(_xla_friendly_cnn(), variant="selective")
        isnet.compile(optimizer=keras.optimizers.SGD(1e-2),
                      jit_compile=jit_compile)
        assert isnet.jit_compile is jit_compile
        histories.append(isnet.fit(
            images, {"label": labels, "mask": masks}, batch_size=8,
            epochs=2, verbose=0, shuffle=False).history)
    for key in ("loss", "heatmap_loss", "background_fraction"):
        np.testing.assert_allclose(histories[1][key], histories[0][key],
                                   rtol=1e-4, err_msg=key)


def test_max_pool_mirrors_turn_xla_off_with_a_warning():
    isnet = build_isnet(support.small_cnn(), variant="selective")
    assert any(isinstance(layer, keras.layers.MaxPooling2D)
               for layer in isnet.classifier.layers)
    with pytest.warns(UserWarning, match="jit_compile"):
        isnet.compile(optimizer="sgd", jit_compile=True)
    assert isnet.jit_compile is False


def test_auto_tuning_gives_each_supervised_layer_its_own_bounds(tmp_path):
    keras.utils.set_random_seed(0)
    classifier = support.small_cnn(batch_norm=False, dropout=0.0)
    hidden_names = [layer.name for layer in classifier.layers
                    if isinstance(layer, (keras.layers.ReLU,
                                          keras.layers.MaxPooling2D))]
    assert len(hidden_names) == 2
    isnet = build_isnet(classifier, P=0.5, deep_supervision=hidden_names)
    tuner, warm, _ = fit_with_tuner(isnet, epochs=2)
    assert list(tuner.result["hidden"]) == hidden_names
    for name, maps, loss in zip(hidden_names, warm.outputs["hidden"],
                                isnet.hidden_losses):
        totals = np.abs(maps.numpy()).sum((2, 3, 4)).mean(1)
        mean, std = totals.mean(), totals.std(ddof=1)
        c1 = max(mean / 5, mean - 3 * std)
        assert tuner.result["hidden"][name]["C1"] == pytest.approx(
            c1, rel=1e-5)
        assert loss.C1 == tuner.result["hidden"][name]["C1"]
        assert loss.C2 == pytest.approx(min(25 * c1, mean + 3 * std),
                                        rel=1e-5)
    assert isnet.hidden_losses[0].C1 != isnet.hidden_losses[1].C1
    isnet.save(tmp_path / "tuned.keras")
    loaded = keras.models.load_model(tmp_path / "tuned.keras")
    assert [(loss.C1, loss.C2) for loss in loaded.hidden_losses] == [
        (loss.C1, loss.C2) for loss in isnet.hidden_losses]



@pytest.mark.parametrize("optimizer", [
    lambda: keras.optimizers.Adam(1e-2),
    lambda: keras.optimizers.SGD(1e-2, momentum=0.9)],
    ids=["adam", "sgd_momentum"])
def test_a_non_finite_step_changes_no_variable(optimizer):
    keras.utils.set_random_seed(4)
    # Batch norm: the training-mode pass of the skipped step updates its
    # moving statistics too. The epsilon rule accepts a NaN input (Z^B
    # stops on it).
    isnet = build_isnet(support.small_cnn(batch_norm=True),
                        first_layer_rule="epsilon")
    isnet.compile(optimizer=optimizer())
    images, labels, masks = _data()
    broken = images.copy()
    broken[2, 5, 5, 0] = np.nan
    support.check_a_skipped_step_changes_nothing(
        isnet, images, {"label": labels, "mask": masks}, broken)


def test_a_non_finite_loss_with_finite_gradients_is_skipped_under_loss_scaling():
    from isnet_keras.trainer import apply_if_finite

    weight = keras.Variable(np.ones(3, np.float32))
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    optimizer.build([weight])
    scale = float(optimizer.dynamic_scale.numpy())
    applied = apply_if_finite(optimizer, tf.constant(np.nan),
                              [tf.ones(3)], [weight])
    assert not bool(applied)
    np.testing.assert_array_equal(weight.numpy(), np.ones(3))
    assert float(optimizer.dynamic_scale.numpy()) == scale / 2
    applied = apply_if_finite(optimizer, tf.constant(1.0),
                              [tf.ones(3) * scale / 2], [weight])
    assert bool(applied)
    np.testing.assert_allclose(weight.numpy(), np.full(3, 0.9))



def _cnn_with_l2(l2, seed=0):
    keras.utils.set_random_seed(seed)
    regularizer = keras.regularizers.L2(l2) if l2 else None
    return keras.Sequential([
        keras.Input((16, 16, 1)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv",
                            kernel_regularizer=regularizer),
        keras.layers.Flatten(),
        keras.layers.Dense(10, name="logits", kernel_regularizer=regularizer)])


@pytest.mark.parametrize("step", ["train", "test"])
def test_weight_regularizers_of_the_classifier_are_in_the_loss(step):
    images, labels, masks = _data()
    targets = {"label": labels, "mask": masks}
    totals = []
    for l2 in (0.0, 0.5):
        isnet = build_isnet(_cnn_with_l2(l2), P=0.3)
        isnet.compile(optimizer=keras.optimizers.SGD(0.0))
        if step == "train":
            logs = isnet.train_on_batch(images, targets, return_dict=True)
        else:
            logs = isnet.evaluate(images, targets, verbose=0,
                                  return_dict=True)
        totals.append(logs["loss"])
    kernels = [layer.kernel.numpy() for layer in isnet.classifier.layers
               if hasattr(layer, "kernel")]
    penalty = 0.5 * sum(float(np.sum(k.astype(np.float64) ** 2))
                        for k in kernels)
    assert penalty > 0.1
    assert totals[1] - totals[0] == pytest.approx(penalty, rel=1e-5)


def test_build_isnet_takes_every_argument_of_isnet_with_its_default():
    import inspect

    from isnet_keras import builder

    assert builder.build_isnet is build_isnet

    def parameters(function, skip=()):
        return {name: (p.kind, p.default) for name, p in
                inspect.signature(function).parameters.items()
                if name not in skip}

    assert parameters(build_isnet) == parameters(ISNet.__init__,
                                                 skip=("self",))
    isnet = build_isnet(support.small_cnn(), deep_supervision=(),
                        name="named_isnet")
    assert isnet.name == "named_isnet"
