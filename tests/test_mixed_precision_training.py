"""ISNet training under the mixed_float16 policy (on CPU).

`isnet train --precision mixed_float16` builds the classifier and the ISNet
under the global policy and compiles it; Keras then wraps the optimizer in a
`LossScaleOptimizer`. These tests train a tiny ISNet that way and check the
loss scaling: finite steps train, and a step that overflows float16 changes
no weight and no optimizer state except the loss scale, which halves.
"""

import keras
import numpy as np
import pytest

from isnet_keras.isnet import build_isnet

# float16's largest finite value: a pixel above it is finite in float32 but
# becomes inf where the first layer casts its input to float16.
_FLOAT16_MAX = float(np.finfo(np.float16).max)


@pytest.fixture
def mixed_float16():
    previous = keras.config.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _classifier(head_dtype):
    """Conv + ReLU + Flatten + Dense on 8x8 images, built under the global
    policy; the logits layer in `head_dtype` (None: the policy's)."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2, dtype=head_dtype)(x)
    return keras.Model(inputs, outputs)


def _data(num=16, seed=0):
    """A bright 3x3 square on the left (class 0) or right (class 1) half;
    the mask is the square dilated by one pixel."""
    rng = np.random.default_rng(seed)
    labels = np.arange(num) % 2
    images = rng.uniform(0, 0.1, (num, 8, 8, 1)).astype("float32")
    masks = np.zeros((num, 8, 8, 1), "float32")
    for i, label in enumerate(labels):
        row = rng.integers(1, 5)
        col = rng.integers(1, 2) + 4 * label
        images[i, row:row + 3, col:col + 3] = 1.0
        masks[i, row - 1:row + 4, col - 1:col + 4] = 1.0
    return images, labels.astype("int32"), masks


def _optimizer_state(optimizer):
    return {v.path: v.numpy().copy() for v in optimizer.variables}


# "float32": the logits layer in float32, as Keras recommends; None: every
# layer under the policy, as `isnet train --precision mixed_float16` builds
# named backbones.
@pytest.mark.parametrize("head_dtype", ["float32", None],
                         ids=["float32_head", "policy_head"])
def test_mixed_float16_isnet_trains_with_loss_scaling(mixed_float16,
                                                      head_dtype):
    keras.utils.set_random_seed(3)
    classifier = _classifier(head_dtype)
    conv, head = classifier.layers[1], classifier.layers[-1]
    assert conv.compute_dtype == "float16"
    assert conv.kernel.dtype == "float32"
    assert head.compute_dtype == (head_dtype or "float16")
    # The epsilon rule at the first layer: the overflowing batch below lies
    # outside Z^B's input bounds, which would stop the step with an error.
    isnet = build_isnet(classifier, first_layer_rule="epsilon")
    isnet.compile(optimizer=keras.optimizers.Adam(1e-2))
    optimizer = isnet.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(optimizer.inner_optimizer, keras.optimizers.Adam)

    images, labels, masks = _data()
    targets = {"label": labels, "mask": masks}
    out = isnet.train_graph_outputs(images[:4], training=False)
    # LRP and the losses run in float32 under the mixed policy.
    assert out["logits"].dtype == "float32"
    assert out["heatmaps"].dtype == "float32"

    initial = [w.numpy().copy() for w in classifier.weights]
    history = isnet.fit(images, targets, batch_size=8, epochs=2, verbose=0,
                        shuffle=False)
    for name in ("loss", "classification_loss", "heatmap_loss"):
        assert np.isfinite(history.history[name]).all(), name
    for before, weight in zip(initial, classifier.weights):
        assert not np.array_equal(weight.numpy(), before), weight.path
    # The loss scale starts at 2**15 (Keras's default), where the scaled
    # gradients of the first steps overflow float16 (measured: one step in
    # each epoch here). Each such step is skipped and counted, halves the
    # scale and leaves `iterations` alone; the others are applied.
    skipped = int(sum(history.history["skipped_steps"]))
    applied = int(optimizer.iterations.numpy())
    assert applied + skipped == 4
    assert applied >= 2
    scale_path = optimizer.dynamic_scale.path
    counter_path = optimizer.step_counter.path
    state = _optimizer_state(optimizer)
    assert scale_path in state and counter_path in state
    assert state[scale_path] == 2.0 ** (15 - skipped)
    assert 0 <= state[counter_path] <= applied

    # An applied step first, so that the count of finite steps the loss
    # scale keeps is not 0 before the overflow.
    batch = {"label": labels[:8], "mask": masks[:8]}
    for _ in range(3):
        logs = isnet.train_on_batch(images[:8], batch, return_dict=True)
        if logs["skipped_steps"] == 0:
            break
    assert logs["skipped_steps"] == 0
    assert optimizer.step_counter.numpy() > 0

    # A finite float32 batch that overflows in float16: one pixel above
    # float16's range makes the first convolution's output inf.
    broken = images[:8].copy()
    broken[3, 4, 4, 0] = 2 * _FLOAT16_MAX
    assert np.isfinite(broken).all()
    overflow = isnet.train_graph_outputs(broken, training=False)["logits"]
    assert not np.isfinite(overflow.numpy()).all()

    weights = [w.numpy().copy() for w in classifier.weights]
    before = _optimizer_state(optimizer)
    iterations = int(optimizer.iterations.numpy())
    logs = isnet.train_on_batch(broken, batch, return_dict=True)
    assert logs["skipped_steps"] == 1
    for old, weight in zip(weights, classifier.weights):
        np.testing.assert_array_equal(weight.numpy(), old, weight.path)
    after = _optimizer_state(optimizer)
    assert after.keys() == before.keys()
    # The loss scale halves and its count of finite steps restarts; nothing
    # else in the optimizer (Adam's moments, iterations) changes.
    assert after[scale_path] == before[scale_path] / 2
    assert after[counter_path] == 0
    changed = [path for path in before
               if not np.array_equal(after[path], before[path])]
    assert sorted(changed) == sorted([scale_path, counter_path])
    assert int(optimizer.iterations.numpy()) == iterations

    # The batch that was applied at twice this scale trains again.
    logs = isnet.train_on_batch(images[:8], batch, return_dict=True)
    assert logs["skipped_steps"] == 0
    assert np.isfinite(logs["loss"])
    assert int(optimizer.iterations.numpy()) == iterations + 1
    assert optimizer.dynamic_scale.numpy() == after[scale_path]
    assert int(optimizer.step_counter.numpy()) == 1
    for old, weight in zip(weights, classifier.weights):
        assert not np.array_equal(weight.numpy(), old), weight.path
