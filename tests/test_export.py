"""Contract tests for deployment: SavedModel (TF Serving), TFLite and the CLI.

TF Serving itself is not run here. What stands in for it: `saved_model_cli`
must list both signatures with their input and output names, and the
signatures reloaded with `tf.saved_model.load` must return what the Keras
classifier returns. LiteRT is exercised for real through `ai_edge_litert`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from sklearn.datasets import load_digits
from tensorflow.core.protobuf import saved_model_pb2

from isnet_keras import export
from isnet_keras.cli import export as export_command
from isnet_keras.cli import predict as predict_command

# Ops that an LRP block brings into a graph (transposed convolutions, pooling
# switches, scatter-based unpooling). An exported deploy graph may contain
# one only if the classifier itself uses it.
EXPLANATION_OPS = {
    "Conv2DBackpropInput",
    "MaxPoolWithArgmax",
    "MaxPoolGrad",
    "AvgPoolGrad",
    "DepthwiseConv2dNativeBackpropInput",
    "UnsortedSegmentSum",
    "ScatterNd",
    "TensorScatterAdd",
}
TRAIN_SIZE = 1300


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def small_cnn(image_shape=(8, 8, 1), classes=10, head=None, name="cnn"):
    """Conv -> pool -> dense; `head` is appended after the logits."""
    inputs = keras.Input(image_shape)
    x = keras.layers.Conv2D(
        8, 3, padding="same", activation="relu", name="conv"
    )(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(
        classes, activation="softmax" if head == "dense_softmax" else None,
        name="dense",
    )(x)
    if head == "activation_softmax":
        x = keras.layers.Activation("softmax")(x)
    elif head == "softmax_layer":
        x = keras.layers.Softmax()(x)
    elif head == "log_softmax":
        x = keras.layers.Activation("log_softmax")(x)
    return keras.Model(inputs, x, name=name)


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def graph_op_types(graph_def):
    """Op types of a GraphDef, including every function in its library."""
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types.update(node.op for node in function.node_def)
    return types


def saved_model_op_types(version_dir):
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as stream:
        saved_model.ParseFromString(stream.read())
    types = set()
    for meta_graph in saved_model.meta_graphs:
        types |= graph_op_types(meta_graph.graph_def)
    return types


def traced_op_types(fn, image_shape):
    spec = tf.TensorSpec((None, *image_shape), tf.float32)
    graph = tf.function(fn).get_concrete_function(spec).graph
    return graph_op_types(graph.as_graph_def())


def snapshot(directory):
    """Bytes and modification time of every file below `directory`."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as stream:
                files[os.path.relpath(path, directory)] = (
                    stream.read(),
                    os.stat(path).st_mtime_ns,
                )
    return files


def run_cli(module, argv):
    parser = argparse.ArgumentParser(prog="isnet")
    module.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


class DeployStandIn:
    """Anything with a `deploy_model`, as an ISNet has."""

    def __init__(self, deploy_model):
        self.deploy_model = deploy_model


class ExplainingStandIn(keras.Model):
    """A train-time graph with LRP-like ops; its deploy model is plain.

    `call` returns logits plus a heatmap computed with a pooling switch, a
    scatter unpool and a transposed convolution through the classifier's own
    conv kernel (tied weights, as in ISNet).
    """

    def __init__(self, classifier, **kwargs):
        super().__init__(**kwargs)
        self.deploy_model = classifier

    def call(self, images):
        logits = self.deploy_model(images)
        conv = self.deploy_model.get_layer("conv")
        activations = conv(images)
        pooled, switches = tf.nn.max_pool_with_argmax(
            activations, 2, 2, "VALID", include_batch_in_index=True
        )
        unpooled = tf.tensor_scatter_nd_add(
            tf.zeros([tf.size(activations)]),
            tf.reshape(switches, (-1, 1)),
            tf.reshape(pooled, (-1,)),
        )
        unpooled = tf.reshape(unpooled, tf.shape(activations))
        heatmap = tf.nn.conv2d_transpose(
            unpooled, conv.kernel, tf.shape(images), 1, "SAME"
        )
        return logits, heatmap


@keras.saving.register_keras_serializable(package="isnet_export_tests")
class SavedStandIn(keras.Model):
    """A serializable wrapper with a `deploy_model`, saved as `.keras`."""

    def __init__(self, classifier, **kwargs):
        super().__init__(**kwargs)
        self.deploy_model = classifier

    def call(self, images):
        return self.deploy_model(images) * 0.0  # Deliberately not the classifier.

    def get_config(self):
        return {
            **super().get_config(),
            "classifier": keras.saving.serialize_keras_object(self.deploy_model),
        }

    @classmethod
    def from_config(cls, config):
        config["classifier"] = keras.saving.deserialize_keras_object(
            config["classifier"]
        )
        return cls(**config)


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[..., np.newaxis]
    return {
        "x_train": images[:TRAIN_SIZE],
        "y_train": data.target[:TRAIN_SIZE],
        "x_test": images[TRAIN_SIZE:],
        "y_test": data.target[TRAIN_SIZE:],
    }


@pytest.fixture(scope="module")
def classifier(digits):
    """A small CNN trained on 8x8 digits; outputs logits."""
    keras.utils.set_random_seed(0)
    model = small_cnn()
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        digits["x_train"], digits["y_train"], epochs=8, batch_size=32,
        verbose=0,
    )
    return model


@pytest.fixture(scope="module")
def keras_probabilities(classifier, digits):
    return softmax(np.asarray(classifier.predict_on_batch(digits["x_test"])))


@pytest.fixture(scope="module")
def served(classifier, tmp_path_factory):
    base_dir = tmp_path_factory.mktemp("serving") / "digits"
    return export.export_serving(classifier, base_dir)


@pytest.fixture(scope="module")
def keras_file(classifier, tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "digits.keras"
    classifier.save(path)
    return str(path)


@pytest.fixture(scope="module")
def float_tflite(keras_file, tmp_path_factory):
    # Exported from the .keras file: also covers loading by path.
    path = tmp_path_factory.mktemp("tflite") / "float.tflite"
    return export.export_tflite(keras_file, path)


@pytest.fixture(scope="module")
def matrix_inverse_model():
    class MatrixInverse(keras.layers.Layer):
        def call(self, x):
            matrices = tf.reshape(x, (-1, 2, 2)) + tf.eye(2)
            return tf.reshape(tf.linalg.inv(matrices), (-1, 4))

    inputs = keras.Input((2, 2, 1))
    outputs = keras.layers.Dense(3)(
        MatrixInverse()(keras.layers.Flatten()(inputs))
    )
    return keras.Model(inputs, outputs)


# --------------------------------------------------------------------------
# SavedModel contract
# --------------------------------------------------------------------------


def test_saved_model_cli_lists_both_signatures(served):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli):
        cli = shutil.which("saved_model_cli")
    assert cli is not None, "saved_model_cli ships with tensorflow"
    shown = subprocess.run(
        [cli, "show", "--dir", served, "--all"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    ).stdout
    for signature in ("serving_default", "serving_uint8"):
        block = shown.split(f"signature_def['{signature}']:")[1]
        block = block.split("signature_def[")[0]
        assert "inputs['images']" in block
        assert "outputs['probabilities']" in block
        assert "outputs['class_id']" in block
        assert "DT_INT64" in block
        assert "tensorflow/serving/predict" in block
        expected_input = "DT_UINT8" if signature == "serving_uint8" else "DT_FLOAT"
        input_block = block.split("outputs[")[0]
        assert f"dtype: {expected_input}" in input_block
        assert "shape: (-1, 8, 8, 1)" in input_block


def test_serving_default_matches_keras(served, digits, keras_probabilities):
    signature = tf.saved_model.load(served).signatures["serving_default"]
    outputs = signature(images=tf.constant(digits["x_test"]))
    assert outputs["probabilities"].dtype == tf.float32
    assert outputs["class_id"].dtype == tf.int64
    assert outputs["class_id"].shape == (len(digits["x_test"]),)
    np.testing.assert_allclose(
        outputs["probabilities"].numpy(), keras_probabilities, atol=1e-5
    )
    np.testing.assert_array_equal(
        outputs["class_id"].numpy(), keras_probabilities.argmax(-1)
    )


def test_uint8_signature_equals_float_on_scaled_pixels(served):
    pixels = np.random.default_rng(0).integers(
        0, 256, (16, 8, 8, 1), dtype=np.uint8
    )
    signatures = tf.saved_model.load(served).signatures
    from_uint8 = signatures["serving_uint8"](images=tf.constant(pixels))
    from_float = signatures["serving_default"](
        images=tf.constant(pixels.astype(np.float32) / 255.0)
    )
    np.testing.assert_allclose(
        from_uint8["probabilities"].numpy(),
        from_float["probabilities"].numpy(),
        # Grappler may turn the division by 255 into a multiplication by its
        # reciprocal: inputs then differ by one ulp, outputs by ~1e-7.
        rtol=0, atol=1e-6,
    )
    np.testing.assert_array_equal(
        from_uint8["class_id"].numpy(), from_float["class_id"].numpy()
    )


def test_runners_open_every_kind_of_artifact(served, keras_file, tmp_path):
    pixels = np.random.default_rng(4).integers(0, 256, (3, 8, 8, 1), np.uint8)
    from_uint8 = export.SavedModelClassifier(served, "serving_uint8").predict(
        pixels
    )
    from_float = export.load_classifier(served).predict(pixels / 255.0)
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-6)
    np.testing.assert_allclose(
        export.load_classifier(keras_file).predict(pixels / 255.0),
        from_float, atol=1e-5,
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        export.load_classifier(tmp_path / "empty")
    (tmp_path / "weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="weights.h5"):
        export.load_classifier(tmp_path / "weights.h5")
    with pytest.raises(ValueError, match=r"\(batch, 8, 8, 1\)"):
        export.load_classifier(served).predict(np.zeros((2, 4, 4, 1)))


def test_uint8_signature_maps_onto_input_range(classifier, tmp_path):
    version_dir = export.export_serving(
        classifier, tmp_path / "signed", input_range=(-1.0, 1.0)
    )
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 8, 1), np.uint8)
    signatures = tf.saved_model.load(version_dir).signatures
    from_uint8 = signatures["serving_uint8"](images=tf.constant(pixels))
    from_float = signatures["serving_default"](
        images=tf.constant(pixels.astype(np.float32) / 255.0 * 2.0 - 1.0)
    )
    np.testing.assert_allclose(
        from_uint8["probabilities"].numpy(),
        from_float["probabilities"].numpy(),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "head, is_probability",
    [
        (None, False),
        ("dense_softmax", True),
        ("activation_softmax", True),
        ("softmax_layer", True),
        ("log_softmax", False),
    ],
)
def test_softmax_detection(head, is_probability):
    model = small_cnn(head=head)
    assert export.classifier_outputs_probabilities(model) is is_probability


def test_nested_softmax_head_is_detected():
    head = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]
    )
    inputs = keras.Input((4,))
    model = keras.Model(inputs, head(keras.layers.Dense(4)(inputs)))
    assert export.classifier_outputs_probabilities(model)


@pytest.mark.parametrize("head", ["dense_softmax", "log_softmax"])
def test_exported_probabilities_are_softmaxed_once(head, tmp_path):
    keras.utils.set_random_seed(2)
    model = small_cnn(head=head)
    images = np.random.default_rng(2).random((6, 8, 8, 1), np.float32)
    expected = np.asarray(model.predict_on_batch(images))
    if head == "log_softmax":
        expected = np.exp(expected)
    version_dir = export.export_serving(model, tmp_path / "m")
    served = tf.saved_model.load(version_dir).signatures["serving_default"]
    probabilities = served(images=tf.constant(images))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


# --------------------------------------------------------------------------
# Versions, atomicity, refusals
# --------------------------------------------------------------------------


def test_versions_count_up_from_the_highest(classifier, tmp_path):
    base_dir = tmp_path / "base"
    first = export.export_serving(classifier, base_dir)
    second = export.export_serving(classifier, base_dir)
    chosen = export.export_serving(classifier, base_dir, version=5)
    after_chosen = export.export_serving(classifier, base_dir)
    assert [os.path.basename(p) for p in (first, second, chosen, after_chosen)] == [
        "1", "2", "5", "6",
    ]
    assert sorted(os.listdir(base_dir)) == ["1", "2", "5", "6"]
    assert export.latest_version_dir(base_dir) == after_chosen


def test_existing_version_is_refused_and_left_unchanged(classifier, tmp_path):
    base_dir = tmp_path / "base"
    version_dir = export.export_serving(classifier, base_dir, version=1)
    before = snapshot(version_dir)
    other = small_cnn(name="other")
    with pytest.raises(FileExistsError, match=r"base[/\\]1"):
        export.export_serving(other, base_dir, version=1)
    assert snapshot(version_dir) == before
    assert os.listdir(base_dir) == ["1"]


def test_existing_empty_version_directory_is_refused(classifier, tmp_path):
    (tmp_path / "base" / "3").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="3"):
        export.export_serving(classifier, tmp_path / "base", version=3)
    assert os.listdir(tmp_path / "base" / "3") == []


def test_base_dir_that_is_a_file_is_refused(classifier, tmp_path):
    not_a_dir = tmp_path / "models"
    not_a_dir.write_text("keep me")
    with pytest.raises(NotADirectoryError, match="models"):
        export.export_serving(classifier, not_a_dir)
    assert not_a_dir.read_text() == "keep me"


def test_failed_export_leaves_nothing_behind(classifier, tmp_path, monkeypatch):
    real_save = tf.saved_model.save

    def save_half_then_fail(obj, export_dir, *args, **kwargs):
        with open(os.path.join(export_dir, "saved_model.pb"), "wb") as stream:
            stream.write(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", save_half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_serving(classifier, tmp_path / "base")
    assert os.listdir(tmp_path / "base") == []
    monkeypatch.setattr(tf.saved_model, "save", real_save)
    assert os.path.basename(
        export.export_serving(classifier, tmp_path / "base")
    ) == "1"


@pytest.mark.parametrize("version", [0, -2, True, "3", 1.5])
def test_bad_version_is_refused(classifier, tmp_path, version):
    with pytest.raises(ValueError, match="version"):
        export.export_serving(classifier, tmp_path / "base", version=version)


# --------------------------------------------------------------------------
# What gets exported: the deploy model, and nothing more
# --------------------------------------------------------------------------


def test_deploy_model_attribute_is_exported(classifier, digits, tmp_path):
    version_dir = export.export_serving(
        DeployStandIn(classifier), tmp_path / "base"
    )
    served = tf.saved_model.load(version_dir)
    probabilities = served.signatures["serving_default"](
        images=tf.constant(digits["x_test"][:32])
    )["probabilities"].numpy()
    expected = softmax(np.asarray(classifier.predict_on_batch(digits["x_test"][:32])))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_keras_file_with_deploy_model_exports_the_deploy_model(
    classifier, digits, tmp_path
):
    wrapper = SavedStandIn(classifier)
    wrapper(digits["x_test"][:1])
    path = tmp_path / "wrapped.keras"
    wrapper.save(path)
    tflite_path = export.export_tflite(path, tmp_path / "wrapped.tflite")
    probabilities = export.run_tflite(tflite_path, digits["x_test"][:16])
    expected = softmax(np.asarray(classifier.predict_on_batch(digits["x_test"][:16])))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_exported_graph_has_no_explanation_ops(classifier, tmp_path):
    train_time_model = ExplainingStandIn(classifier)
    image_shape = (8, 8, 1)
    train_ops = traced_op_types(lambda x: train_time_model(x), image_shape)
    classifier_ops = traced_op_types(
        lambda x: classifier(x, training=False), image_shape
    )
    # Control: the walk sees the LRP-like ops of the train-time graph.
    assert {"MaxPoolWithArgmax", "TensorScatterAdd", "Conv2DBackpropInput"} <= (
        train_ops
    )

    version_dir = export.export_serving(train_time_model, tmp_path / "base")
    exported_ops = saved_model_op_types(version_dir)
    assert "Conv2D" in exported_ops and "MaxPool" in exported_ops
    assert (exported_ops & EXPLANATION_OPS) <= classifier_ops
    assert not exported_ops & EXPLANATION_OPS

    reloaded = tf.saved_model.load(version_dir)
    parameters = sum(int(np.prod(v.shape)) for v in reloaded.variables)
    assert parameters == classifier.count_params()

    tflite_path = export.export_tflite(train_time_model, tmp_path / "m.tflite")
    ops = export.tflite_ops(tflite_path)
    assert "TRANSPOSE_CONV" not in ops
    assert "CONV_2D" in ops


def test_library_isnet_exports_its_classifier(digits, tmp_path):
    from isnet_keras import isnet as isnet_module

    keras.utils.set_random_seed(3)
    classifier = small_cnn()
    isnet = isnet_module.build_isnet(classifier)
    isnet(digits["x_test"][:1])
    keras_file = tmp_path / "isnet.keras"
    isnet.save(keras_file)

    version_dir = export.export_serving(keras_file, tmp_path / "base")
    assert not saved_model_op_types(version_dir) & EXPLANATION_OPS
    reloaded = tf.saved_model.load(version_dir)
    assert sum(int(np.prod(v.shape)) for v in reloaded.variables) == (
        classifier.count_params()
    )
    probabilities = reloaded.signatures["serving_default"](
        images=tf.constant(digits["x_test"][:16])
    )["probabilities"].numpy()
    expected = softmax(
        np.asarray(classifier.predict_on_batch(digits["x_test"][:16]))
    )
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_graph_walk_sees_ops_inside_functions(tmp_path):
    # A classifier that legitimately uses a transposed convolution: the op
    # lives in the function library of the SavedModel, and must be found.
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2DTranspose(2, 3, padding="same")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    version_dir = export.export_serving(model, tmp_path / "base")
    exported_ops = saved_model_op_types(version_dir)
    assert "Conv2DBackpropInput" in exported_ops
    assert "Conv2DBackpropInput" in traced_op_types(
        lambda x: model(x, training=False), (8, 8, 1)
    )


def test_dropout_state_is_not_exported(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Dropout(0.5)(keras.layers.Flatten()(inputs))
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    reloaded = tf.saved_model.load(
        export.export_serving(model, tmp_path / "base")
    )
    assert sum(int(np.prod(v.shape)) for v in reloaded.variables) == (
        model.count_params()
    )


# --------------------------------------------------------------------------
# Model argument errors
# --------------------------------------------------------------------------


def test_wrong_model_type_names_the_type(tmp_path):
    with pytest.raises(TypeError, match="int"):
        export.export_serving(42, tmp_path / "base")
    with pytest.raises(TypeError, match="dict"):
        export.export_tflite({"model": None}, tmp_path / "m.tflite")
    with pytest.raises(TypeError, match="deploy_model.*str"):
        export.export_serving(DeployStandIn("not a model"), tmp_path / "base")
    assert not os.path.exists(tmp_path / "base")
    assert not os.path.exists(tmp_path / "m.tflite")


def test_missing_model_path_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "model.keras"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        export.export_serving(missing, tmp_path / "base")
    with pytest.raises(FileNotFoundError, match="model.keras"):
        export.export_tflite(str(missing), tmp_path / "m.tflite")


# --------------------------------------------------------------------------
# TFLite
# --------------------------------------------------------------------------


def test_float_tflite_matches_keras(float_tflite, digits, keras_probabilities):
    runner = export.TFLiteClassifier(float_tflite)
    assert runner.image_shape == (8, 8, 1)
    probabilities = runner.predict(digits["x_test"])
    np.testing.assert_allclose(probabilities, keras_probabilities, atol=1e-5)
    # One image without a batch axis, after a large batch: the input resizes.
    np.testing.assert_allclose(
        runner.predict(digits["x_test"][3]), keras_probabilities[3:4], atol=1e-5
    )
    ops = export.tflite_ops(float_tflite)
    assert {"CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(ops)
    assert all(name.isupper() for name in ops)
    assert "TRANSPOSE_CONV" not in ops


def test_dynamic_quantization_keeps_predictions(
    classifier, float_tflite, digits, keras_probabilities, tmp_path
):
    path = export.export_tflite(
        classifier, tmp_path / "dynamic.tflite", quantize="dynamic"
    )
    probabilities = export.run_tflite(path, digits["x_test"])
    agreement = np.mean(
        probabilities.argmax(-1) == keras_probabilities.argmax(-1)
    )
    assert agreement >= 0.95
    assert os.path.getsize(path) < os.path.getsize(float_tflite)
    assert all(name.isupper() for name in export.tflite_ops(path))


def test_int8_quantization_agrees_with_keras(
    classifier, digits, keras_probabilities, tmp_path
):
    path = export.export_tflite(
        classifier,
        tmp_path / "int8.tflite",
        quantize="int8",
        representative_data=digits["x_train"],
    )
    probabilities = export.run_tflite(path, digits["x_test"])
    agreement = np.mean(
        probabilities.argmax(-1) == keras_probabilities.argmax(-1)
    )
    assert agreement >= 0.99, agreement

    ops = export.tflite_ops(path)
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE"
    assert all(name.isupper() for name in ops)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    int8_tensors = [
        detail for detail in interpreter.get_tensor_details()
        if detail["dtype"] == np.int8
    ]
    assert int8_tensors, "full-integer model has no int8 tensors"
    assert interpreter.get_input_details()[0]["dtype"] == np.float32


def test_int8_accepts_uint8_calibration_images(classifier, digits, tmp_path):
    pixels = np.round(digits["x_train"][:100] * 255).astype(np.uint8)
    path = export.export_tflite(
        classifier, tmp_path / "int8.tflite", quantize="int8",
        representative_data=pixels,
    )
    assert os.path.getsize(path) > 0


def test_int8_needs_representative_data(classifier, digits, tmp_path):
    path = tmp_path / "int8.tflite"
    with pytest.raises(ValueError, match="representative_data"):
        export.export_tflite(classifier, path, quantize="int8")
    with pytest.raises(ValueError, match="input range"):
        export.export_tflite(
            classifier, path, quantize="int8",
            representative_data=digits["x_train"][:20] * 255.0,
        )
    with pytest.raises(ValueError, match="shape"):
        export.export_tflite(
            classifier, path, quantize="int8",
            representative_data=np.zeros((4, 16, 16, 1), np.float32),
        )
    with pytest.raises(ValueError, match="only with quantize='int8'"):
        export.export_tflite(
            classifier, path, representative_data=digits["x_train"][:20]
        )
    with pytest.raises(ValueError, match="quantize"):
        export.export_tflite(classifier, path, quantize="float16")
    assert not path.exists()


def test_existing_tflite_file_is_kept(classifier, float_tflite, tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="model.tflite"):
        export.export_tflite(classifier, path)
    assert path.read_bytes() == b"precious"
    export.export_tflite(classifier, path, overwrite=True)
    assert path.read_bytes() == open(float_tflite, "rb").read()
    assert [p.name for p in tmp_path.iterdir()] == ["model.tflite"]


def test_ops_without_builtin_kernel_are_refused(matrix_inverse_model, tmp_path):
    with pytest.raises(ValueError, match="builtin"):
        export.export_tflite(matrix_inverse_model, tmp_path / "inverse.tflite")
    assert list(tmp_path.iterdir()) == []


def test_flex_ops_in_converter_output_are_refused(
    matrix_inverse_model, tmp_path, monkeypatch
):
    # Make a Flex model the way export_tflite refuses to, then let the
    # converter hand it back: the op check after conversion must catch it.
    archive = keras.export.ExportArchive()
    archive.add_endpoint(
        "serving_default",
        lambda images: {"probabilities": matrix_inverse_model(images)},
        input_signature=[tf.TensorSpec((None, 2, 2, 1), tf.float32)],
    )
    archive.write_out(str(tmp_path / "sm"), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm"))
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    flex_model = converter.convert()
    flex_path = tmp_path / "flex.tflite"
    flex_path.write_bytes(flex_model)
    assert "FlexMatrixInverse" in export.tflite_ops(flex_path)

    # from_saved_model returns a subclass with its own convert(): patch that.
    monkeypatch.setattr(type(converter), "convert", lambda self: flex_model)
    with pytest.raises(ValueError, match="FlexMatrixInverse"):
        export.export_tflite(small_cnn(), tmp_path / "out.tflite")
    assert not (tmp_path / "out.tflite").exists()


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def test_cli_export_writes_both_formats(keras_file, digits, tmp_path, capsys):
    base_dir = tmp_path / "served"
    assert run_cli(export_command, [
        "export", "--model", keras_file, "--format", "savedmodel",
        "--out", str(base_dir),
    ]) == 0
    assert run_cli(export_command, [
        "export", "--model", keras_file, "--format", "savedmodel",
        "--out", str(base_dir), "--version", "4",
    ]) == 0
    assert sorted(os.listdir(base_dir)) == ["1", "4"]

    np.save(tmp_path / "calibration.npy", digits["x_train"][:100])
    tflite_path = tmp_path / "int8.tflite"
    assert run_cli(export_command, [
        "export", "--model", keras_file, "--format", "tflite",
        "--out", str(tflite_path), "--quantize", "int8",
        "--calibration-data", str(tmp_path / "calibration.npy"),
    ]) == 0
    assert "QUANTIZE" in export.tflite_ops(tflite_path)
    assert str(tflite_path) in capsys.readouterr().out

    # Refusals: an existing file, and an option of the other format.
    assert run_cli(export_command, [
        "export", "--model", keras_file, "--format", "tflite",
        "--out", str(tflite_path),
    ]) == 1
    assert "already exists" in capsys.readouterr().err
    assert run_cli(export_command, [
        "export", "--model", keras_file, "--format", "tflite",
        "--out", str(tmp_path / "x.tflite"), "--version", "2",
    ]) == 2
    assert "--version" in capsys.readouterr().err
    assert run_cli(export_command, [
        "export", "--model", str(tmp_path / "missing.keras"),
        "--format", "savedmodel", "--out", str(base_dir),
    ]) == 1
    assert "missing.keras" in capsys.readouterr().err


@pytest.fixture(scope="module")
def digit_pngs(digits, tmp_path_factory):
    """Test digits as PNG files: grayscale 8x8, upscaled 16x16, and RGB."""
    directory = tmp_path_factory.mktemp("pngs")
    paths = []
    for index in range(12):
        pixels = np.round(digits["x_test"][index, ..., 0] * 255).astype(np.uint8)
        image = Image.fromarray(pixels, mode="L")
        if index % 3 == 1:
            image = image.resize((16, 16), Image.NEAREST)
        elif index % 3 == 2:
            image = image.convert("RGB")
        path = directory / f"digit_{index}.png"
        image.save(path)
        paths.append(str(path))
    return paths


def test_cli_predict_agrees_across_formats(
    classifier, served, float_tflite, keras_file, digit_pngs, capsys
):
    results = {}
    for model_path in (served, os.path.dirname(served), float_tflite, keras_file):
        assert run_cli(predict_command, [
            "predict", "--model", model_path, "--images", *digit_pngs, "--json",
        ]) == 0
        results[model_path] = json.loads(capsys.readouterr().out)["predictions"]

    inputs = predict_command.load_inputs(digit_pngs, (8, 8, 1))
    batch = np.stack([image for _, image in inputs])
    expected = softmax(np.asarray(classifier.predict_on_batch(batch)))
    for predictions in results.values():
        assert [p["file"] for p in predictions] == digit_pngs
        assert [p["class_id"] for p in predictions] == list(expected.argmax(-1))
        np.testing.assert_allclose(
            [p["probability"] for p in predictions], expected.max(-1), atol=1e-5
        )


def test_cli_predict_prints_one_line_per_image(float_tflite, digit_pngs, capsys):
    assert run_cli(predict_command, [
        "predict", "--model", float_tflite, "--images", *digit_pngs[:3],
    ]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line, path in zip(lines, digit_pngs):
        name, class_id, probability = line.split("\t")
        assert name == path
        assert 0 <= int(class_id) <= 9
        assert 0.0 < float(probability) <= 1.0


def test_cli_predict_reads_npy_arrays(
    float_tflite, digits, keras_probabilities, tmp_path, capsys
):
    np.save(tmp_path / "batch.npy", digits["x_test"][:5])
    np.save(tmp_path / "no_channel.npy", digits["x_test"][5:7, ..., 0])
    assert run_cli(predict_command, [
        "predict", "--model", float_tflite, "--json", "--images",
        str(tmp_path / "batch.npy"), str(tmp_path / "no_channel.npy"),
    ]) == 0
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    assert [p["file"] for p in predictions] == [
        f"{tmp_path / 'batch.npy'}[{i}]" for i in range(5)
    ] + [f"{tmp_path / 'no_channel.npy'}[{i}]" for i in range(2)]
    assert [p["class_id"] for p in predictions] == list(
        keras_probabilities[:7].argmax(-1)
    )


def test_cli_predict_names_unreadable_images(
    float_tflite, digit_pngs, tmp_path, capsys
):
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    assert run_cli(predict_command, [
        "predict", "--model", float_tflite, "--images", digit_pngs[0], str(broken),
    ]) == 1
    captured = capsys.readouterr()
    assert "broken.png" in captured.err
    assert captured.out == ""

    assert run_cli(predict_command, [
        "predict", "--model", float_tflite, "--images", str(tmp_path / "gone.jpg"),
    ]) == 1
    assert "gone.jpg" in capsys.readouterr().err

    wrong_shape = tmp_path / "wrong.npy"
    np.save(wrong_shape, np.zeros((2, 5, 5, 1), np.float32))
    assert run_cli(predict_command, [
        "predict", "--model", float_tflite, "--images", str(wrong_shape),
    ]) == 1
    assert "wrong.npy" in capsys.readouterr().err


# --------------------------------------------------------------------------
# Benchmark script (smoke run with tiny settings)
# --------------------------------------------------------------------------


def test_bench_deploy_runs_and_prints_ratios(capsys):
    import importlib.util

    script = os.path.join(
        os.path.dirname(__file__), os.pardir, "training", "bench_deploy.py"
    )
    spec = importlib.util.spec_from_file_location("bench_deploy", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main([
        "--image-size", "8", "--channels", "1", "--throughput-batch", "4",
        "--latency-repeats", "3", "--throughput-repeats", "2", "--warmup", "1",
        "--isnet-factory", "copy",
    ]) == 0
    table = capsys.readouterr().out
    for runtime in ("keras", "savedmodel", "tflite"):
        assert f"| {runtime} | latency b=1 (ms) |" in table
    assert "| tflite | file size (bytes) |" in table
    assert "independent copy" in table
