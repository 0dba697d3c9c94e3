"""Shared test helpers: model builders and independent reference values."""

import contextlib

import keras
import numpy as np
import tensorflow as tf


@contextlib.contextmanager
def floatx(dtype):
    """Builds layers in `dtype` inside the block.

    Keras caches the global dtype policy on first use, so the policy is set
    along with floatx.
    """
    previous = keras.config.floatx()
    previous_policy = keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)
        keras.config.set_dtype_policy(previous_policy)


def randomize_batch_norms(model, seed=0):
    """Gives every batch norm non-trivial statistics and affine parameters."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0.0, 0.2, shape))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, shape))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, shape))
            if layer.center:
                layer.beta.assign(rng.normal(0.0, 0.1, shape))


def gradient_times_input(model, images, class_index):
    """`x * d y_c / d x` of the model's output `c` (logits), inference mode."""
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        selected = model(x, training=False)[:, class_index]
    return (tape.gradient(selected, x) * x).numpy()


def class_relevances(model, inputs, class_index, composite, hidden=(),
                     **graph_kwargs):
    """LRP relevance of logit `class_index` at the input and at the
    tensors of the layers named in `hidden`.

    Returns:
        `(input_relevance, {name: relevance})`, each without the class axis.
    """
    from isnet_keras.lrp.graph import LRPGraph
    from isnet_keras.lrp.outputs import ClassLogitRelevance, start_of_logits

    graph = LRPGraph(model, composite=composite, **graph_kwargs)
    targets = [graph.tensor_of(name) for name in hidden]
    seed = ClassLogitRelevance(graph.logits_layer, lrp_dtype=graph.lrp_dtype)
    classes = keras.Input((1,), dtype="int32")
    found = graph.propagate(graph.logits_call.output,
                            seed(start_of_logits(graph), classes),
                            targets=targets)
    outputs = [found[id(graph.input)]] + [found[id(t)] for t in targets]
    relevances = keras.Model([graph.input, classes], outputs)(
        [inputs, np.full((len(inputs), 1), class_index, np.int32)])
    if not isinstance(relevances, (list, tuple)):  # one output: no list
        relevances = [relevances]
    return relevances[0].numpy()[:, 0], {
        name: r.numpy()[:, 0] for name, r in zip(hidden, relevances[1:])}


def attention_weights(attention):
    """A `MultiHeadAttention`'s query, key, value and output kernels and
    biases, as constants: `(wq, bq, wk, bk, wv, bv, wo, bo)`."""
    dense = (attention._query_dense, attention._key_dense,
             attention._value_dense, attention._output_dense)
    return tuple(tf.constant(w.numpy()) for layer in dense
                 for w in layer.weights)


def halved_einsum(equation, x, y):
    """`einsum(equation, x, y)`, each factor taking half of the gradient:
    the uniform rule of a bilinear product as gradient x input."""
    return 0.5 * (tf.einsum(equation, tf.stop_gradient(x), y) +
                  tf.einsum(equation, x, tf.stop_gradient(y)))


def reference_attention(attention, query, value, key, mask=None,
                        rule="full"):
    """A `MultiHeadAttention`'s output in TensorFlow ops, the oracle of an
    attention rule as gradient x input: `"full"` halves the bilinear
    products `q k^T` and `A v` (`halved_einsum`), `"value"` holds the
    attention probabilities constant, `"relu"` is `"full"` with
    `ReLUAttention`'s probabilities `relu(l) / T_k` in place of the
    softmax. `mask`: boolean `(B or 1, 1, T_q, T_k)` or None."""
    wq, bq, wk, bk, wv, bv, wo, bo = attention_weights(attention)
    q = tf.einsum("btd,dhk->bthk", query, wq) + bq
    k = tf.einsum("btd,dhk->bthk", key, wk) + bk
    v = tf.einsum("btd,dhk->bthk", value, wv) + bv
    product = tf.einsum if rule == "value" else halved_einsum
    logits = product("bthk,bshk->bhts", q / np.sqrt(wq.shape[-1]), k)
    if mask is not None:
        logits = tf.where(mask, logits, tf.constant(-1e9, logits.dtype))
    if rule == "relu":
        probabilities = tf.nn.relu(logits) / logits.shape[-1]
    else:
        probabilities = tf.nn.softmax(logits, axis=-1)
    if rule == "value":
        probabilities = tf.stop_gradient(probabilities)
    mixed = product("bhts,bshk->bthk", probabilities, v)
    return tf.einsum("bthk,hkd->btd", mixed, wo) + bo


def check_one_isnet_step(isnet, size, num_classes=3):
    """Trains `isnet` one SGD step on four random `size` x `size` RGB
    images (mask: the central half) and checks that the losses are finite
    and the classifier's weights moved. Returns the images."""
    rng = np.random.default_rng(4)
    images = rng.uniform(0, 1, (4, size, size, 3)).astype("float32")
    labels = rng.integers(0, num_classes, 4)
    masks = np.zeros((4, size, size, 1), "float32")
    masks[:, size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
    isnet.compile(optimizer="sgd")
    weights = isnet.classifier.trainable_weights
    before = [w.numpy().copy() for w in weights]
    logs = isnet.train_on_batch(images, {"label": labels, "mask": masks},
                                return_dict=True)
    assert np.isfinite(logs["loss"]) and np.isfinite(logs["heatmap_loss"])
    assert any(not np.array_equal(b, w.numpy())
               for b, w in zip(before, weights))
    return images


def all_class_block(graph):
    """The LRP block of an `LRPGraph` for every class's logit, as a
    `keras.Model` from images to `(B, N, H, W, C)` heatmaps."""
    from isnet_keras.lrp import outputs

    seed = outputs.ClassLogitRelevance(graph.logits_layer, all_classes=True,
                                       lrp_dtype=graph.lrp_dtype)
    found = graph.propagate(graph.logits_call.output,
                            seed(outputs.start_of_logits(graph)))
    return keras.Model(graph.input, found[id(graph.input)])


def assert_same_gradients(variables, actual, expected, atol=1e-10):
    """Gradients equal to `atol` relative to the largest expected one (one
    scale for all: some true gradients are zero and computed ones of
    rounding size)."""
    scale = max(np.abs(g.numpy()).max() for g in expected)
    for variable, got, want in zip(variables, actual, expected):
        np.testing.assert_allclose(got.numpy() / scale, want.numpy() / scale,
                                   rtol=0, atol=atol, err_msg=variable.path)


def heatmap_loss_gradients(block, images, masks, variables, training=None):
    """`block`'s heatmaps of `images` and the gradients of the GWRP heatmap
    loss on `masks` with respect to `variables` (a bias that only enters
    gradient-stopped has none: a zero one).

    Returns:
        `(heatmaps as an array, list of gradient tensors)`.
    """
    from isnet_keras.losses import GWRPHeatmapLoss

    with tf.GradientTape() as tape:
        heatmaps = block(images, training=training)
        loss = GWRPHeatmapLoss()(masks, heatmaps)
    gradients = tape.gradient(loss, variables)
    return heatmaps.numpy(), [tf.zeros_like(v) if g is None else g
                              for v, g in zip(variables, gradients)]


def relative_l1(actual, expected):
    return float(np.abs(actual - expected).sum() / np.abs(expected).sum())


def small_cnn(input_shape=(16, 16, 1), num_classes=10, use_bias=True,
              batch_norm=True, dropout=0.25):
    """Conv/BN/ReLU/MaxPool/Dropout/Flatten/Dense, logits output."""
    layers = [keras.Input(input_shape),
              keras.layers.Conv2D(6, 3, padding="same", use_bias=use_bias)]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers += [
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(3, 2, padding="same"),
        keras.layers.Dropout(dropout),
        keras.layers.Conv2D(8, 3, strides=2, activation="relu",
                            use_bias=use_bias),
        keras.layers.Flatten(),
        keras.layers.Dense(num_classes, use_bias=use_bias),
    ]
    return keras.Sequential(layers)


def branchy_cnn(input_shape=(16, 16, 3), num_classes=4, use_bias=True,
                batch_norm=True, rescale=True):
    """A functional net with fan-out, Add, Concatenate, pools and padding,
    optionally starting with `Rescaling(2, offset=-1)`."""
    inputs = keras.Input(input_shape)
    x = inputs
    if rescale:
        x = keras.layers.Rescaling(2.0, offset=-1.0)(x)
    x = keras.layers.ZeroPadding2D(1)(x)
    x = keras.layers.Conv2D(8, 3, use_bias=use_bias)(x)
    if batch_norm:
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu",
                            use_bias=use_bias)(x)
    b = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=use_bias)(x)
    if batch_norm:
        b = keras.layers.BatchNormalization()(b)
    b = keras.layers.ReLU(6.0)(b)
    x = keras.layers.Add()([x, a, b])
    x = keras.layers.AveragePooling2D(2)(x)
    c = keras.layers.Conv2D(4, 1, activation="relu", use_bias=use_bias)(x)
    x = keras.layers.Concatenate()([x, c])
    if batch_norm:
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D(3, 2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, use_bias=use_bias)(x)
    return keras.Model(inputs, outputs)


def application_classifier(name, size=32, num_classes=5):
    """A keras.applications backbone (random weights) in a Sequential head."""
    backbone = getattr(keras.applications, name)(
        include_top=False, weights=None, input_shape=(size, size, 3),
        pooling="avg")
    return keras.Sequential([keras.Input((size, size, 3)), backbone,
                             keras.layers.Dense(num_classes)])


def _trainer_state(model):
    """Copies of the classifier's weights and the optimizer's variables."""
    return ([v.numpy().copy() for v in model.classifier.weights],
            {v.path: v.numpy().copy() for v in model.optimizer.variables})


def check_a_skipped_step_changes_nothing(model, images, targets, broken):
    """Trains `model` (compiled, with `classifier` and `optimizer`) on a
    finite batch, then on `broken` (non-finite loss), then on the finite
    batch again; asserts the broken step changed no weight and no optimizer
    variable, and the next step changed every one but the learning rate.
    The skipped step's NaN loss stays out of the running means.

    The warm-up fills the momentum (and Adam's moments): a zero gradient
    applied afterwards would still move the weights.
    """
    model.train_on_batch(images, targets)
    weights, slots = _trainer_state(model)
    logs = model.train_on_batch(broken, targets, return_dict=True)
    assert logs["skipped_steps"] == 1
    # (`train_on_batch` starts its means afresh: nothing else was averaged.)
    assert all(np.isfinite(value) for value in logs.values()), logs
    skipped_weights, skipped_slots = _trainer_state(model)
    for before, after in zip(weights, skipped_weights):
        np.testing.assert_array_equal(after, before)
    assert skipped_slots.keys() == slots.keys()
    for path, before in slots.items():
        np.testing.assert_array_equal(skipped_slots[path], before, path)
    assert int(model.optimizer.iterations.numpy()) == 1

    model.reset_metrics()
    logs = model.train_on_batch(images, targets, return_dict=True)
    assert logs["skipped_steps"] == 0
    new_weights, new_slots = _trainer_state(model)
    assert int(model.optimizer.iterations.numpy()) == 2
    for before, after in zip(skipped_weights, new_weights):
        assert not np.array_equal(after, before)
    unchanged = [path for path, before in skipped_slots.items()
                 if np.array_equal(new_slots[path], before)]
    assert unchanged == [model.optimizer.learning_rate.path]


# MNIST as IDX files ---------------------------------------------------------
# A user's machine has no ../shared/data/mnist (CI turns its lookup off with
# ISNET_KERAS_NO_SHARED_DATA=1): tests that need IDX files write them.


def idx_bytes(array, magic):
    """Encodes a uint8 array as IDX, written independently of the loader:
    big-endian magic (2051 images, 2049 labels), sizes, then the bytes."""
    header = magic.to_bytes(4, "big") + b"".join(
        size.to_bytes(4, "big") for size in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist_idx(directory, images, labels, prefix="t10k", compress=True):
    """Writes one MNIST split (`t10k-images-idx3-ubyte.gz` and its labels,
    the layout of ../shared/data/mnist) into `directory`; returns it."""
    import gzip
    import pathlib

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    encode = gzip.compress if compress else (lambda data: data)
    for kind, array, magic in (("images-idx3", images, 2051),
                               ("labels-idx1", labels, 2049)):
        (directory / f"{prefix}-{kind}-ubyte{suffix}").write_bytes(
            encode(idx_bytes(np.asarray(array), magic)))
    return directory


def write_digits_as_mnist(directory):
    """scikit-learn's digits in the MNIST layout (28x28 uint8,
    `load_digits_28`), written as the t10k IDX split of an MNIST folder.

    Returns:
        The `LoadedDigits` written.
    """
    from isnet_keras.data import load_digits_28

    digits = load_digits_28()
    write_mnist_idx(directory, digits.images, digits.labels)
    return digits


def without_mnist_on_this_machine(monkeypatch, tmp_path):
    """As on a user's machine without ../shared and without a Keras cache:
    ISNET_KERAS_NO_SHARED_DATA=1, KERAS_HOME and HOME in an empty folder,
    and no /tmp/.keras cache looked at (in this process)."""
    from isnet_keras.data import mnist

    home = tmp_path / "empty_home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv(mnist.NO_SHARED_DATA_ENV, "1")
    monkeypatch.setenv("KERAS_HOME", str(home / ".keras"))
    monkeypatch.setenv("HOME", str(home))
    keras_homes = mnist.keras_cache_files()[:2]  # $KERAS_HOME and ~/.keras
    monkeypatch.setattr(mnist, "keras_cache_files", lambda: keras_homes)


# Tiny folder sets and quick `isnet train` runs -------------------------------


def tiny_folder_set(folder, labels, class_names, empty=()):
    """Writes a folder set of 8x8 images, one mask per image (a 4x4 square);
    the masks of the `empty` indices mark no foreground. Returns `folder`."""
    from isnet_keras.data import write_folder_dataset

    masks = np.zeros((len(labels), 8, 8, 1), np.float32)
    masks[:, 2:6, 2:6] = 1.0
    masks[list(empty)] = 0.0
    images = np.random.default_rng(0).uniform(0, 1, masks.shape)
    write_folder_dataset(folder, images.astype(np.float32), masks,
                         np.asarray(labels), class_names=class_names)
    return folder


def quick_isnet_train(capsys, data, run, *args, epochs=1):
    """`isnet train` of the compact CNN on 8x8 images, quiet; returns the
    exit status and what it wrote to stderr."""
    from isnet_keras.cli import main

    quick = ("--backbone", "smallcnn", "--image-size", 8, "--epochs", epochs,
             "--batch-size", 4, "--verbose", 0, "--heatmap-images", 0)
    status = main(["train", "--data-dir", str(data), "--out", str(run),
                   *map(str, quick), *map(str, args)])
    return status, capsys.readouterr().err

