"""The ISNet: a classifier trained with a heatmap loss on its LRP maps.

`build_isnet(classifier, ...)` returns an `ISNet`, a `keras.Model` whose
`call()` is the classifier's (so `predict`, export and serving see the plain
classifier) and whose `train_step`/`test_step` run the *train-time graph*:
the re-traced classifier (same layer objects) plus its LRP block, one
forward pass per step, with the loss `(1 - P) * CE + P * L_heatmap`.
"""

import ast
import contextlib
import re

import keras
import numpy as np
import tensorflow as tf

from isnet_keras import losses as losses_lib
from isnet_keras import errors
from isnet_keras.metrics.attention import BackgroundRelevanceFraction
from isnet_keras.lrp import graph as graph_lib
from isnet_keras.lrp import outputs

VARIANTS = ("original", "selective", "stochastic", "dual")
# The papers train with P = 0.7. On the bias zoo (docs/results.md) 0.7 kept
# part of several shortcuts, and 0.9 kept part of the border-frame and
# background-shade ones, which 0.95 removed; it learns more slowly.
DEFAULT_P = 0.95


@keras.saving.register_keras_serializable(package="isnet_keras")
class DenseLogits(keras.layers.Layer):
    """`a W + b` of a Dense layer whose activation is softmax or sigmoid:
    the logits that cross-entropy and LRP need (weights tied, owns none)."""

    def __init__(self, dense, lrp_dtype="float32", **kwargs):
        super().__init__(dtype=lrp_dtype, **kwargs)
        object.__setattr__(self, "_dense", dense)
        self.lrp_dtype = lrp_dtype

    def call(self, a):
        dense, dtype = self._dense, self.lrp_dtype
        z = tf.matmul(tf.cast(a, dtype), tf.cast(dense.kernel, dtype))
        return z + tf.cast(dense.bias, dtype) if dense.use_bias else z


def _logits_tensor(lrp_graph):
    call = lrp_graph.logits_call
    layer = call.layer
    if type(layer) is keras.layers.Dense and \
            getattr(layer.activation, "__name__", "") != "linear":
        return DenseLogits(layer, lrp_graph.lrp_dtype,
                           name="isnet_logits")(call.inputs[0])
    return keras.ops.cast(call.output, lrp_graph.lrp_dtype)


def _heatmaps(lrp_graph, variant, class_policy, labels, seed):
    """Seeds the variant's output relevance.

    Returns:
        A list of `(start_tensor, relevance, rule)`, one per propagation
        (two for Dual: the z+ map and the epsilon map).
    """
    layer = lrp_graph.logits_layer
    dtype = lrp_graph.lrp_dtype
    start = outputs.start_of_logits(lrp_graph)
    logits_out = lrp_graph.logits_call.output
    if variant == "selective":
        seed_layer = outputs.SelectiveRelevance(
            layer, class_policy, lrp_graph.epsilon, lrp_dtype=dtype,
            name="lrp_selective_seed")
        relevance = seed_layer(start, labels) if class_policy == "label" \
            else seed_layer(start)
        return [(start, relevance, "epsilon")]
    if variant == "original":
        seed_layer = outputs.ClassLogitRelevance(
            layer, all_classes=True, lrp_dtype=dtype, name="lrp_all_seed")
        return [(logits_out, seed_layer(start), "epsilon")]
    if variant == "stochastic":
        seed_layer = outputs.StochasticRelevance(
            layer, seed=seed, lrp_dtype=dtype, name="lrp_stochastic_seed")
        return [(logits_out, seed_layer(start), "epsilon")]
    positive, plain = outputs.DualRelevance(
        layer, lrp_dtype=dtype, name="lrp_dual_seed")(start)
    return [(logits_out, positive, "zplus"), (logits_out, plain, "epsilon")]


def build_train_graph(lrp_graph, variant="selective", class_policy="lowest",
                      deep_supervision=(), seed=None):
    """The train-time functional graph of an ISNet.

    Args:
        lrp_graph: An `LRPGraph` of the classifier.
        variant: One of `VARIANTS`.
        class_policy: Selective only: `"lowest"`, `"highest"` or `"label"`.
        deep_supervision: Names of hidden layers whose relevance is also
            returned.
        seed: Stochastic only: the seed of the class draws.

    Returns:
        A `keras.Model` taking images (and labels with
        `class_policy="label"`) and returning a dict with `"logits"` (B, N)
        float32, `"heatmaps"` (B, K, H, W, C) and `"hidden"`, a list of
        hidden relevance maps.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, received "
                         f"{variant!r}.")
    inputs = [lrp_graph.input]
    labels = None
    if variant == "selective" and class_policy == "label":
        labels = keras.Input((), dtype="int32", name="labels")
        inputs.append(labels)
    targets = [lrp_graph.tensor_of(name) for name in deep_supervision]
    for name, tensor in zip(deep_supervision, targets):
        if len(tensor.shape) != 4:
            raise ValueError(f"Deep supervision needs 4-D feature maps; "
                             f"layer '{name}' outputs {tensor.shape}.")
    maps, hidden = [], []
    for start, relevance, rule in _heatmaps(lrp_graph, variant, class_policy,
                                            labels, seed):
        found = lrp_graph.propagate(start, relevance, rule=rule,
                                    targets=targets)
        maps.append(found[id(lrp_graph.input)])
        hidden.append([found[id(t)] for t in targets])
    # In the LRP precision: a layer of the global mixed policy would round
    # the maps to float16 or bfloat16.
    dtype = lrp_graph.lrp_dtype
    heatmaps = maps[0] if len(maps) == 1 else keras.layers.Concatenate(
        axis=1, dtype=dtype, name="dual_heatmaps")(maps)
    hidden = [h[0] if len(maps) == 1 else keras.layers.Concatenate(
        axis=1, dtype=dtype)(list(h)) for h in zip(*hidden)]
    result = {"logits": _logits_tensor(lrp_graph), "heatmaps": heatmaps,
              "hidden": hidden}
    model_inputs = inputs[0] if len(inputs) == 1 else inputs
    return keras.Model(model_inputs, result, name="isnet_train_graph")


def _unpack(data):
    """`(images, {"label", "mask"})` or `(images, (labels, masks))`."""
    if not isinstance(data, (tuple, list)) or len(data) < 2:
        raise ValueError(
            "ISNet data must be (images, {'label': labels, 'mask': masks}) "
            "or (images, (labels, masks)).")
    images, targets = data[0], data[1]
    if isinstance(targets, dict):
        missing = {"label", "mask"} - set(targets)
        if missing:
            raise ValueError(f"The targets dict lacks {sorted(missing)}; it "
                             "needs 'label' and 'mask'.")
        return images, targets["label"], targets["mask"]
    if isinstance(targets, (tuple, list)) and len(targets) == 2:
        return images, targets[0], targets[1]
    raise ValueError("ISNet targets must be {'label': ..., 'mask': ...} or "
                     "(labels, masks).")


_NON_INTEGER_LABELS = ("labels must be integer class indices; received "
                       "non-integer values such as")


def _check_integer_labels(targets):
    """Refuses in-memory labels that are not whole numbers.

    Checked before Keras builds its dataset, so the error names the problem
    instead of coming from inside the traced step (which checks again, for
    datasets).

    Args:
        targets: The `y` given to `fit`/`evaluate`: `{"label", "mask"}`,
            `(labels, masks)`, or anything else (not checked here).

    Raises:
        ValueError: float labels with a fractional part (or NaN).
    """
    if isinstance(targets, dict):
        labels = targets.get("label")
    elif isinstance(targets, (tuple, list)) and len(targets) == 2:
        labels = targets[0]
    else:
        return
    if not (isinstance(labels, (np.ndarray, list, tuple)) or (
            isinstance(labels, tf.Tensor) and tf.executing_eagerly())):
        return
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.floating):
        return
    # NaN differs from its floor too.
    fractional = labels[labels != np.floor(labels)]
    if fractional.size:
        raise ValueError(
            f"{_NON_INTEGER_LABELS} {fractional[:3].tolist()}; a cast to int "
            "would truncate them to other classes.")


# The data checks that run inside the compiled steps (`tf.debugging.Assert`
# in `ISNet._check_labels`, `losses.prepare_masks` and
# `lrp.rules.check_within_bounds`), by the start of their message, with how
# the values the assertion prints read after it.
_STEP_CHECKS = (
    ("labels out of range", "{message}; received labels from {0} to {1}"),
    (_NON_INTEGER_LABELS, "{message} {0}"),
    ("non-binary mask", "{message}"),
    ("The first layer's Z^B rule needs inputs within input_bounds",
     "{message} {0}, {1}"),
)

_ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")
_EAGER_SUMMARY = re.compile(
    r"Summarized data: (b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\")")


class InvalidDataError(tf.errors.InvalidArgumentError,
                       errors.InvalidDataError):
    """The `isnet_keras.errors.InvalidDataError` that `ISNet.fit` and
    `ISNet.evaluate` raise: still the `tf.errors.InvalidArgumentError` that
    these checks raised before, with the library's message first."""


def _bracketed(text):
    """The contents of the `[...]` groups that start `text` (nested brackets
    kept), up to the first character outside them that is not a space."""
    groups, depth, begin = [], 0, 0
    for index, char in enumerate(text):
        if char == "[":
            if depth == 0:
                begin = index + 1
            depth += 1
        elif char == "]" and depth:
            depth -= 1
            if depth == 0:
                groups.append(text[begin:index])
        elif depth == 0 and char != " ":
            break
    return groups


def _failed_assertion(text):
    """`(message, values)` of a failed `tf.debugging.Assert`, read from the
    text of the error it raised, or None.

    A compiled step reports `assertion failed: [message] [value] ...`; an
    eager one `Summarized data: b'message'` with one value a line.
    """
    text = _ANSI_CODES.sub("", text)
    marker = "assertion failed: "
    start = text.find(marker)
    if start >= 0:
        groups = _bracketed(text[start + len(marker):])
        if groups:
            message = groups[0].replace("\\'", "'").replace('\\"', '"')
            return message, [value.strip() for value in groups[1:]]
    match = _EAGER_SUMMARY.search(text)
    if match:
        message = ast.literal_eval(match.group(1)).decode("utf-8", "replace")
        values = []
        for line in text[match.end():].split("\n")[1:]:
            if not line.strip():
                break
            values.append(line.strip())
        return message, values
    return None


def _library_data_error(error):
    """The `InvalidDataError` for a TensorFlow error that one of the
    library's step checks raised, its message first; None for any other."""
    if isinstance(error, errors.InvalidDataError):
        return None
    failed = _failed_assertion(getattr(error, "message", str(error)))
    if failed is None:
        return None
    message, values = failed
    for start, template in _STEP_CHECKS:
        if message.startswith(start):
            try:
                text = template.format(*values, message=message)
            except IndexError:
                text = " ".join([message, *values])
            return InvalidDataError(error.node_def, None, text)
    return None


@contextlib.contextmanager
def _library_data_errors_first(model):
    """Re-raises a failed step check of the library (a TensorFlow
    `InvalidArgumentError` whose text starts "Graph execution error") as an
    `InvalidDataError` that starts with the library's message, chained to
    the original.

    Only the outermost call on `model` translates: `fit` runs `evaluate`
    for the validation data, and Keras' `fit` drops the cause of what
    passes through it. The depth is kept on the model, not in the module.
    """
    depth = getattr(model, "_data_error_depth", 0)
    object.__setattr__(model, "_data_error_depth", depth + 1)
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        translated = None if depth else _library_data_error(error)
        if translated is None:
            raise
        raise translated from error
    finally:
        object.__setattr__(model, "_data_error_depth", depth)


def _logs(metrics):
    """Metric results as the step's logs.

    Under multi-worker collectives Keras averages each logged value along
    axis 0 across workers, so there they get a length-1 axis (reduced back
    to scalars by that average).
    """
    strategy = tf.distribute.get_strategy()
    multi_worker = isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy) and getattr(
            strategy.extended, "_in_multi_worker_mode", lambda: False)()
    logs = {m.name: m.result() for m in metrics}
    if multi_worker:
        logs = {name: tf.reshape(value, (1,)) for name, value in logs.items()}
    return logs


def _snapshot(variables):
    """The values of `variables` now, to put back after a skipped step.

    Args:
        variables: Variables that the forward pass updates (batch-norm
            moving statistics).

    Returns:
        A list of `(variable, value)` pairs.
    """
    return [(v, tf.identity(v.value)) for v in variables]


def _finite_on_every_replica(finite):
    """Whether the step is finite on all replicas.

    Every replica must take the same branch: the optimizer's update
    all-reduces the gradients, and a replica that skipped it would leave the
    others waiting on that collective.
    """
    if tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return finite
    failures = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, "float32"))
    return tf.equal(failures, 0.0)


def _apply_if_finite(optimizer, loss, gradients, variables, snapshot=()):
    """Applies the gradients of a finite step; a skipped step changes no
    variable.

    Zero gradients would not do: Adam's moments and `iterations` still
    advance on them, and momentum still moves the weights. The update runs
    under a `tf.cond` instead, as in Keras's `LossScaleOptimizer`: where the
    strategy's updates go through `merge_call` (which a branch in replica
    context may not call), the cond runs in cross-replica context and the
    update in `call_for_each_replica`. A `LossScaleOptimizer` gets every
    step: it skips non-finite ones itself, and must see them to lower its
    loss scale (the only variable it then changes).

    Args:
        optimizer: The compiled `keras.optimizers.Optimizer` (built).
        loss: This replica's scalar loss.
        gradients: One gradient (or None) per variable.
        variables: The trainable variables.
        snapshot: `_snapshot()` of the variables the forward pass updated;
            put back when the step is skipped.

    Returns:
        The scalar boolean tensor of whether the step was applied (finite
        on every replica).
    """
    finite = tf.math.is_finite(loss) & tf.reduce_all([
        tf.reduce_all(tf.math.is_finite(g)) for g in gradients
        if g is not None])
    finite = _finite_on_every_replica(finite)

    def skip():
        return None

    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        # It skips a step (and lowers its scale) when a gradient is not
        # finite; a non-finite loss with finite gradients must be skipped
        # too, so it gets NaN gradients.
        not_a_number = tf.where(finite, 1.0, float("nan"))
        gradients = [None if g is None else g * tf.cast(not_a_number, g.dtype)
                     for g in gradients]
        optimizer.apply(gradients, variables)
    elif tf.__internal__.distribute.strategy_supports_no_merge_call():
        def apply():
            optimizer.apply(gradients, variables)
            return None

        tf.cond(finite, apply, skip)
    else:
        def cross_replica(distribution, gradients, variables, finite):
            # `finite` is the same on every replica (all-reduced above).
            finite = distribution.experimental_local_results(finite)[0]

            def apply():
                distribution.extended.call_for_each_replica(
                    optimizer.apply, args=(gradients, variables))
                return None

            tf.cond(finite, apply, skip)

        tf.distribute.get_replica_context().merge_call(
            cross_replica, args=(gradients, variables, finite))
    # A select, not a cond: these assignments run in replica context, like
    # the forward pass's own updates of the same variables.
    for variable, value in snapshot:
        variable.assign(tf.where(finite, variable.value, value))
    return finite


def _regularization(classifier, dtype):
    """The sum of the classifier's own losses (weight regularizers such as
    `kernel_regularizer`, activity regularizers), which Keras adds to a
    compiled model's loss: a custom training step must add them itself."""
    losses = classifier.losses
    if not losses:
        return tf.constant(0.0, dtype)
    return tf.cast(tf.add_n([tf.cast(loss, dtype) for loss in losses]), dtype)


def _update_if_finite(finite, update_metrics):
    """Runs `update_metrics()` only for an applied step.

    A skipped step's NaN loss would make the epoch's means NaN although no
    weight took it: the metrics average the applied steps only.
    """

    def update():
        update_metrics()
        return tf.constant(True)

    tf.cond(finite, update, lambda: tf.constant(False))


def default_optimizer():
    """The optimizer `ISNet.compile()` uses when given none.

    Adam at 3e-3 with the global gradient norm clipped at 1, chosen on the
    bias zoo (docs/results.md): at 1e-3 the Selective ISNet still kept part
    of the Shapes cue after 8 epochs. (The papers train with SGD, 1e-3,
    momentum 0.99.)
    """
    return keras.optimizers.Adam(3e-3, global_clipnorm=1.0)


def default_hidden_loss():
    """The heatmap loss of each deep-supervision layer by default: GWRP on
    the channels' summed relevance (a per-channel GWRP costs more than the
    whole LRP pass on deep feature maps, and removed shortcuts no better on
    the bias zoo)."""
    return losses_lib.GWRPHeatmapLoss(channels="sum")


def _combine_layer_losses(values, decay):
    """GWRP over per-layer losses: the worst layer weighs most."""
    stacked = tf.stack(values)
    return losses_lib.gwrp(stacked[None], decay)[0]


def _check_classifier(classifier):
    """Refuses, before anything is built, a classifier an ISNet cannot train.

    Args:
        classifier: What `build_isnet` received.

    Raises:
        TypeError: not a `keras.Model` (e.g. a backbone's name).
        ValueError: its input is not a batch of images `(H, W, C)`, or it
            outputs fewer than 2 classes.
    """
    if not isinstance(classifier, keras.Model):
        hint = ""
        if isinstance(classifier, str):
            hint = (f" To train a named backbone, build it first: "
                    f"isnet_keras.backbones.build_classifier({classifier!r}, "
                    "num_classes, image_size).")
        raise TypeError(
            "build_isnet needs a Keras classifier model (a keras.Model); "
            f"received {type(classifier).__name__} {classifier!r}.{hint}")
    try:
        inputs, outputs = classifier.inputs, classifier.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        return  # Unbuilt, subclassed or multi-input: the LRP graph says why.
    shape = tuple(inputs[0].shape[1:])
    if len(shape) != 3:
        raise ValueError(
            f"ISNet needs image inputs of shape (H, W, C); the classifier "
            f"'{classifier.name}' takes inputs of shape {shape} (the masks "
            "and heatmaps are images of the input's size).")
    width = outputs[0].shape[-1]
    if width is not None and width < 2:
        raise ValueError(
            f"ISNet needs a classifier of at least 2 classes; "
            f"'{classifier.name}' outputs {width} (shape "
            f"{tuple(outputs[0].shape)}). For two classes give it a 2-unit "
            "logits (or softmax) head.")


@keras.saving.register_keras_serializable(package="isnet_keras")
class ISNet(keras.Model):
    """A classifier trained so that its LRP heatmaps ignore the background.

    Create it with `build_isnet`. `call()` runs the classifier alone (so
    `predict()` and exports see the deploy graph); `fit()` and `evaluate()`
    take data `(images, {"label": labels, "mask": masks})` (or
    `(images, (labels, masks))`): integer labels `(B,)` and binary masks
    `(B, H, W[, 1])`, 1 = foreground.

    Args:
        classifier: A Functional or Sequential classifier (logits or softmax
            output).
        variant: `"selective"` (default), `"original"`, `"stochastic"` or
            `"dual"`.
        heatmap_loss: A heatmap loss (defaults to `GWRPHeatmapLoss()`).
        P: float in [0, 1]. Weight of the heatmap loss. Defaults to 0.95.
        epsilon: LRP-epsilon stabiliser. Defaults to 1e-2.
        first_layer_rule: `"zb"` (default) or `"epsilon"`.
        input_bounds: `(lower, upper)` model input range for Z^B.
        class_policy: Selective only: `"lowest"` (default), `"highest"`,
            `"label"`.
        deep_supervision: `"auto"` (default): penalise the relevance at
            the hidden layers `backbones.deep_supervision_layers` picks (the
            papers' choice for `keras.applications` backbones, the last
            feature map of each resolution for any other classifier); a
            sequence of layer names; or `()` for the input heatmap only.
            Hidden relevance shows shortcuts that hidden units take through
            their biases, which the input heatmap cannot show.
        deep_supervision_decay: GWRP decay combining per-layer losses.
        seed: Seed of the Stochastic variant's class draws.
        hidden_losses: Optional `GWRPHeatmapLoss` per deep-supervision
            layer (each with its own C1, C2); default ones otherwise.
    """

    def __init__(self, classifier, variant="selective", heatmap_loss=None,
                 P=DEFAULT_P, epsilon=1e-2, first_layer_rule="zb",
                 input_bounds=(0.0, 1.0), class_policy="lowest",
                 deep_supervision="auto", deep_supervision_decay=0.8,
                 seed=None, hidden_losses=None, **kwargs):
        _check_classifier(classifier)
        kwargs.setdefault("name", f"isnet_{classifier.name}")
        super().__init__(**kwargs)
        if not 0.0 <= float(P) <= 1.0:
            raise ValueError(f"P must lie in [0, 1], received {P}.")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, received "
                             f"{variant!r}.")
        self.classifier = classifier
        self.variant = variant
        self.heatmap_loss = heatmap_loss or losses_lib.GWRPHeatmapLoss()
        self.epsilon = float(epsilon)
        self.first_layer_rule = first_layer_rule
        self.input_bounds = tuple(np.asarray(b).tolist() for b in input_bounds)
        self.class_policy = class_policy
        if isinstance(deep_supervision, str):
            if deep_supervision != "auto":
                raise ValueError(
                    "deep_supervision must be a sequence of layer names or "
                    f"'auto', received {deep_supervision!r}.")
            from isnet_keras.backbones import deep_supervision_layers
            deep_supervision = deep_supervision_layers(classifier)
        self.deep_supervision = tuple(deep_supervision or ())
        self.deep_supervision_decay = float(deep_supervision_decay)
        self.seed = seed
        if variant == "selective" and class_policy == "label":
            import warnings
            warnings.warn("class_policy='label' explains the true class; the "
                          "papers' code trains with 'lowest'.", stacklevel=2)
        if hidden_losses is not None and len(hidden_losses) != len(
                self.deep_supervision):
            raise ValueError(
                f"{len(hidden_losses)} hidden_losses for "
                f"{len(self.deep_supervision)} deep-supervision layers.")
        self.hidden_losses = list(hidden_losses or (
            default_hidden_loss() for _ in self.deep_supervision))
        lrp_graph = graph_lib.LRPGraph(
            classifier, epsilon=epsilon, first_layer_rule=first_layer_rule,
            input_bounds=input_bounds)
        self.num_classes = lrp_graph.num_classes
        self.train_graph = build_train_graph(
            lrp_graph, variant, class_policy, self.deep_supervision, seed)
        self.heatmap_weight = keras.Variable(float(P), trainable=False,
                                             name="P", dtype="float32")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.classification_tracker = keras.metrics.Mean(
            name="classification_loss")
        self.heatmap_tracker = keras.metrics.Mean(name="heatmap_loss")
        self.fraction_tracker = BackgroundRelevanceFraction(
            name="background_fraction")
        self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(
            name="accuracy")
        self.skipped_tracker = keras.metrics.Sum(name="skipped_steps")
        # The classifier is built, so is the ISNet; this also lets a loaded
        # model rebuild its optimizer and restore its state.
        self.built = True

    @property
    def deploy_model(self):
        """The classifier itself: the graph to export and serve."""
        return self.classifier

    @property
    def P(self):
        return float(self.heatmap_weight.numpy())

    @P.setter
    def P(self, value):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"P must lie in [0, 1], received {value}.")
        self.heatmap_weight.assign(float(value))

    @property
    def metrics(self):
        return [self.loss_tracker, self.classification_tracker,
                self.heatmap_tracker, self.accuracy_metric,
                self.fraction_tracker, self.skipped_tracker]

    def compile(self, optimizer=None, **kwargs):
        """Configures training; `optimizer` defaults to
        `default_optimizer()` (Adam 3e-3, global norm clipping at 1)."""
        super().compile(optimizer=optimizer or default_optimizer(), **kwargs)

    def compile_from_config(self, config):
        # Keras does not recompile a loaded model whose compile() is
        # overridden; this one only fills in the default optimizer, so the
        # saved compile arguments apply as they are.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def call(self, inputs, training=False):
        return self.classifier(inputs, training=training)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds compiled metrics from a data batch that it first
        # averages across replicas, which fails on multi-worker datasets.
        # An ISNet's metrics exist from __init__: only the optimizer needs
        # building, inside the strategy scope.
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.classifier.trainable_variables)

    def _check_labels(self, labels):
        labels = tf.reshape(labels, (-1,))
        checks = []
        if labels.dtype.is_floating:
            # The cast to int32 would truncate 1.7 to class 1 silently.
            fractional = tf.not_equal(labels, tf.floor(labels))
            first = tf.argmax(tf.cast(fractional, tf.int32))
            checks.append(tf.debugging.Assert(
                tf.logical_not(tf.reduce_any(fractional)),
                [_NON_INTEGER_LABELS, tf.gather(labels, first)]))
        with tf.control_dependencies(checks):
            labels = tf.cast(labels, tf.int32)
        in_range = tf.reduce_all((labels >= 0) & (labels < self.num_classes))
        with tf.control_dependencies([tf.debugging.Assert(in_range, [
                f"labels out of range: must lie in [0, {self.num_classes - 1}]",
                tf.reduce_min(labels), tf.reduce_max(labels)])]):
            return tf.identity(labels)

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, after checking that in-memory labels (of `y`
        and `validation_data`) are integers.

        Raises:
            InvalidDataError: (`isnet_keras.errors`; also a
                `tf.errors.InvalidArgumentError`) when a batch fails a check
                of the compiled step: labels out of range, non-binary
                masks, images outside the Z^B input bounds or holding NaN.
                Its message starts with the check's own.
        """
        _check_integer_labels(y)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) >= 2:
            _check_integer_labels(validation[1])
        with _library_data_errors_first(self):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, after checking that in-memory labels (of
        `y`) are integers; raises `InvalidDataError` as `fit` does."""
        _check_integer_labels(y)
        with _library_data_errors_first(self):
            return super().evaluate(x, y, *args, **kwargs)

    @property
    def explains_labels(self):
        """Whether the train graph takes the labels (Selective with
        `class_policy="label"`)."""
        return self.variant == "selective" and self.class_policy == "label"

    def train_graph_outputs(self, images, labels=None, training=False):
        """Logits, heatmaps and hidden maps from one pass of the graph."""
        inputs = images
        if self.explains_labels:
            inputs = [images, labels]
        return self.train_graph(inputs, training=training)

    def _loss_terms(self, images, labels, masks, training):
        labels = self._check_labels(labels)
        out = self.train_graph_outputs(images, labels, training=training)
        logits = out["logits"]
        classification = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True))
        heatmaps = out["heatmaps"]
        heatmap = self.heatmap_loss(masks, heatmaps)
        if self.deep_supervision:
            layer_losses = [heatmap] + [
                loss(masks, h)
                for loss, h in zip(self.hidden_losses, out["hidden"])]
            heatmap = _combine_layer_losses(layer_losses,
                                            self.deep_supervision_decay)
        weight = tf.cast(self.heatmap_weight, heatmap.dtype)
        classification = tf.cast(classification, heatmap.dtype)
        total = (1.0 - weight) * classification + weight * heatmap
        total = total + _regularization(self.classifier, total.dtype)
        return total, classification, heatmap, logits, labels, (heatmaps,
                                                                masks)

    def _update_metrics(self, total, classification, heatmap, logits, labels,
                        maps_and_masks):
        self.loss_tracker.update_state(total)
        self.classification_tracker.update_state(classification)
        self.heatmap_tracker.update_state(heatmap)
        self.accuracy_metric.update_state(labels, logits)
        self.fraction_tracker.update_state(*maps_and_masks)

    def train_step(self, data):
        images, labels, masks = _unpack(data)
        variables = self.classifier.trainable_variables
        # The training-mode pass updates batch-norm statistics; a skipped
        # step puts them back (a NaN image would make them NaN for good).
        snapshot = _snapshot(self.classifier.non_trainable_weights)
        with tf.GradientTape() as tape:
            values = self._loss_terms(images, labels, masks, training=True)
            total = values[0]
            # Gradients are summed over replicas: average the loss here.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(total / replicas)
        gradients = tape.gradient(scaled, variables)
        # A non-finite step is counted and changes no variable.
        finite = _apply_if_finite(self.optimizer, total, gradients,
                                  variables, snapshot)
        # Each replica adds its share: the tracker sums over replicas.
        self.skipped_tracker.update_state(
            (1.0 - tf.cast(finite, "float32")) / replicas)
        _update_if_finite(finite, lambda: self._update_metrics(*values))
        return _logs(self.metrics)

    def test_step(self, data):
        images, labels, masks = _unpack(data)
        self._update_metrics(*self._loss_terms(images, labels, masks,
                                           training=False))
        return _logs(m for m in self.metrics if m is not self.skipped_tracker)

    def predict_step(self, data):
        images = data[0] if isinstance(data, (tuple, list)) else data
        return self.classifier(images, training=False)

    def get_config(self):
        return {
            "name": self.name,
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "variant": self.variant,
            "heatmap_loss": keras.saving.serialize_keras_object(
                self.heatmap_loss),
            "P": self.P,
            "epsilon": self.epsilon,
            "first_layer_rule": self.first_layer_rule,
            "input_bounds": list(self.input_bounds),
            "class_policy": self.class_policy,
            "deep_supervision": list(self.deep_supervision),
            "deep_supervision_decay": self.deep_supervision_decay,
            "seed": self.seed,
            "hidden_losses": [keras.saving.serialize_keras_object(loss)
                              for loss in self.hidden_losses],
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(
            config["classifier"])
        config["heatmap_loss"] = keras.saving.deserialize_keras_object(
            config["heatmap_loss"])
        config["hidden_losses"] = [
            keras.saving.deserialize_keras_object(loss)
            for loss in config.get("hidden_losses", [])] or None
        return cls(**config)


def build_isnet(classifier, variant="selective", heatmap_loss=None,
                P=DEFAULT_P, epsilon=1e-2, first_layer_rule="zb",
                input_bounds=(0.0, 1.0), class_policy="lowest",
                deep_supervision="auto", seed=None,
                deep_supervision_decay=0.8, hidden_losses=None):
    """Wraps a classifier in an ISNet (train-time graph + deploy model).

    Args:
        classifier: A Functional or Sequential `keras.Model` with one image
            input and a logits (or softmax) output; `keras.applications`
            backbones inside a head are supported.
        variant: `"selective"`, `"original"`, `"stochastic"` or `"dual"`.
            Selective (the default) or Stochastic for training from scratch:
            on the bias zoo (docs/results.md, "Variants under the
            defaults") the Stochastic ISNet needs about twice the epochs of
            the Selective one, and the Original ISNet, which explains every
            class (K LRP passes a step), was still at 0.60 accuracy after
            24 epochs at 7.5x the Stochastic's time.
        heatmap_loss: `GWRPHeatmapLoss` (default) or `VarianceHeatmapLoss`.
        P: Weight of the heatmap loss in `(1 - P) CE + P L_H`
            (default 0.95).
        epsilon: LRP-epsilon stabiliser.
        first_layer_rule: `"zb"` or `"epsilon"`.
        input_bounds: `(lower, upper)` input range for Z^B.
        class_policy: Selective: `"lowest"`, `"highest"` or `"label"`.
        deep_supervision: `"auto"` (default; see `ISNet`), hidden layer
            names, or `()` for none.
        seed: Stochastic variant seed.
        deep_supervision_decay: GWRP decay combining per-layer losses.
        hidden_losses: Optional heatmap loss per deep-supervision layer.

    Returns:
        An `ISNet`; `isnet.deploy_model` is `classifier`.

    Example:

    >>> isnet = build_isnet(classifier)  # Selective, P 0.95, deep supervision
    >>> isnet.compile()                   # Adam 3e-3, global clipping at 1
    >>> isnet.fit(train_ds, validation_data=val_ds, epochs=10)
    >>> isnet.deploy_model.export("serving/1")
    """
    return ISNet(classifier, variant=variant, heatmap_loss=heatmap_loss, P=P,
                 epsilon=epsilon, first_layer_rule=first_layer_rule,
                 input_bounds=input_bounds, class_policy=class_policy,
                 deep_supervision=deep_supervision, seed=seed,
                 deep_supervision_decay=deep_supervision_decay,
                 hidden_losses=hidden_losses)
