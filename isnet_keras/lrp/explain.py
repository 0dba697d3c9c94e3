"""Inference-time heatmaps: `explain()` and the reusable `Explainer`."""

import collections

import keras
import numpy as np
import tensorflow as tf

from isnet_keras.lrp import graph as graph_lib
from isnet_keras.lrp import outputs

# `explain()` keeps its Explainers on the model under this name (see
# `_ExplainerCache`), at most this many settings per model.
_CACHE_ATTRIBUTE = "_isnet_keras_explainer_cache"
_CACHE_SIZE = 4
# Image indices named in an error message before it says "... (N in all)".
_NAMED_INDICES = 10


def build_heatmap_model(lrp_graph, num_heatmaps=None, hidden_layers=()):
    """A Keras model `images (, classes) -> heatmaps (B, K, H, W, C)`.

    It consumes the classifier's own intermediate tensors (one forward pass,
    shared layers) and runs the mirror layers on them.

    Args:
        lrp_graph: An `LRPGraph`.
        num_heatmaps: None to explain each image's predicted class (the
            model takes only images, K = 1); an int K to take a second
            input, integer classes of shape `(B, K)`.
        hidden_layers: Names of classifier layers whose output relevance
            is returned too.

    Returns:
        A `keras.Model`. Without `hidden_layers` it returns the heatmaps;
        with them, a dict of `"heatmaps"`, `"logits"` and each named
        layer's `(B, K, *layer_output_shape)` relevance.

    Raises:
        ValueError: `hidden_layers` names `"heatmaps"` or `"logits"`.

    Example:

    >>> graph = LRPGraph(classifier)
    >>> probe = build_heatmap_model(graph, hidden_layers=("block1_out",))
    >>> probe.predict(images)["block1_out"].shape  # (B, 1, T, D)
    """
    start = outputs.start_of_logits(lrp_graph)
    seed = outputs.ClassLogitRelevance(lrp_graph.logits_layer,
                                       lrp_dtype=lrp_graph.lrp_dtype,
                                       name="lrp_seed")
    inputs = [lrp_graph.input]
    if num_heatmaps is None:
        relevance = seed(start)
    else:
        classes = keras.Input((num_heatmaps,), dtype="int32", name="classes")
        inputs.append(classes)
        relevance = seed(start, classes)
    clashes = {"heatmaps", "logits"} & set(hidden_layers)
    if clashes:
        raise ValueError(f"hidden_layers may not name {sorted(clashes)}: "
                         "those keys hold the heatmaps and the logits.")
    targets = [lrp_graph.tensor_of(name) for name in hidden_layers]
    found = lrp_graph.propagate(lrp_graph.logits_call.output, relevance,
                                targets=targets)
    heatmaps = found[id(lrp_graph.input)]
    if not hidden_layers:
        return keras.Model(inputs, heatmaps, name="lrp_heatmaps")
    return keras.Model(inputs, {
        "heatmaps": heatmaps, "logits": lrp_graph.logits_call.output,
        **{name: found[id(t)] for name, t in zip(hidden_layers, targets)}},
        name="lrp_heatmaps")


class Explainer:
    """Builds the LRP graph of a classifier once and explains many batches.

    Args:
        model: A Functional or Sequential classifier (logits or softmax
            output), possibly with nested backbones.
        epsilon: LRP-epsilon stabiliser. Defaults to `1e-2`.
        first_layer_rule: `"zb"` (default) or `"epsilon"`: the first
            layers' rule in the default composite.
        input_bounds: `(lower, upper)` of the model input for Z^B, scalars
            or per channel. Defaults to `(0.0, 1.0)`.
        batch_size: Images per traced call. Defaults to 32.
        composite: Optional `composites.Composite` giving each layer its
            rule; defaults to the papers' (LRP-epsilon everywhere, Z^B at
            the first layers), see `composites.default_composite`.

    Example:

    >>> explainer = Explainer(classifier)
    >>> heatmaps = explainer(images, classes="predicted")  # (B, 1, H, W, C)
    >>> lrp0 = Explainer(classifier, composite=Composite(
    ...     default="zero", first_layer=None))
    """

    def __init__(self, model, epsilon=1e-2, first_layer_rule="zb",
                 input_bounds=(0.0, 1.0), batch_size=32, composite=None):
        try:
            finite = bool(np.isfinite(epsilon))
        except TypeError:
            finite = False
        if not finite:
            # A NaN epsilon would pass the graph's `epsilon < 0` test and
            # turn every heatmap into NaN.
            raise ValueError(
                f"epsilon must be a finite number >= 0, received {epsilon!r}.")
        self.model = model
        self.graph = graph_lib.LRPGraph(model, epsilon=epsilon,
                                        first_layer_rule=first_layer_rule,
                                        input_bounds=input_bounds,
                                        composite=composite)
        self.batch_size = int(batch_size)
        self._functions = {}

    @property
    def num_classes(self):
        return self.graph.num_classes

    def function(self, num_heatmaps=None):
        """The traced `tf.function` for `num_heatmaps` (None = predicted)."""
        if num_heatmaps not in self._functions:
            heatmap_model = build_heatmap_model(self.graph, num_heatmaps)
            self._functions[num_heatmaps] = tf.function(
                lambda *args: heatmap_model(list(args), training=False),
                reduce_retracing=True,
            )
        return self._functions[num_heatmaps]

    def _check_images(self, images):
        images = np.asarray(images)
        expected = tuple(self.graph.input.shape[1:])
        if images.ndim != 4:
            raise ValueError(
                f"images must be a batch of shape (B, H, W, C) = (B, "
                f"{', '.join(str(d) for d in expected)}); received shape "
                f"{images.shape}."
            )
        for axis, (got, want) in enumerate(zip(images.shape[1:], expected)):
            if want is not None and got != want:
                what = ("channel count", "height", "width")[(axis + 1) % 3]
                raise ValueError(
                    f"images have {what} {got}, but the model expects "
                    f"{want} (input shape {expected}); received shape "
                    f"{images.shape}."
                )
        if not np.issubdtype(images.dtype, np.number):
            raise ValueError(f"images must be numeric, got {images.dtype}.")
        if images.shape[0] == 0:
            raise ValueError(f"images is an empty batch (shape "
                             f"{images.shape}); explain needs at least one "
                             "image.")
        images = images.astype(np.float32)
        # Checked here for every first-layer rule: Z^B's bounds check would
        # stop NaN inputs only inside the graph and without naming the
        # image, and the epsilon rule would return NaN heatmaps silently.
        bad = _non_finite_rows(images)
        if bad.size:
            raise ValueError(
                f"images {_index_list(bad)} hold non-finite values (NaN or "
                "inf); their heatmaps are undefined. Drop or repair those "
                "images before explaining them."
            )
        return images

    def _class_array(self, classes, batch):
        num_classes = self.num_classes
        if isinstance(classes, str):
            if classes == "predicted":
                return None
            if classes == "all":
                return np.tile(np.arange(num_classes, dtype=np.int32),
                               (batch, 1))
            raise ValueError("classes must be 'predicted', 'all', an int or "
                             f"an array of ints, received {classes!r}.")
        array = np.asarray(classes)
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"classes must be integers, received dtype "
                             f"{array.dtype}.")
        if array.ndim == 0:
            array = np.full((batch, 1), int(array))
        elif array.ndim == 1:
            if array.shape[0] != batch:
                raise ValueError(f"classes has {array.shape[0]} entries for "
                                 f"{batch} images.")
            array = array[:, None]
        elif array.ndim != 2 or array.shape[0] != batch:
            raise ValueError(f"classes must have shape (B,) or (B, K) with "
                             f"B = {batch}, received {array.shape}.")
        if array.min() < 0 or array.max() >= num_classes:
            raise ValueError(
                f"classes must lie in [0, {num_classes - 1}] for a model with "
                f"{num_classes} classes; received values from {array.min()} "
                f"to {array.max()}."
            )
        return array.astype(np.int32)

    def __call__(self, images, classes="predicted"):
        """Heatmaps for `images`.

        Args:
            images: `(B, H, W, C)` array in the model's input range.
            classes: `"predicted"` (K = 1), `"all"` (K = number of classes),
                an int, or integer array `(B,)` or `(B, K)`.

        Returns:
            float32 NumPy array `(B, K, H, W, C)`.

        Raises:
            ValueError: bad shapes or classes, or images holding NaN or inf
                (the message names their indices).
        """
        images = self._check_images(images)
        class_array = self._class_array(classes, len(images))
        num_heatmaps = None if class_array is None else class_array.shape[1]
        function = self.function(num_heatmaps)
        results = []
        for start in range(0, len(images), self.batch_size):
            stop = start + self.batch_size
            args = [tf.constant(images[start:stop])]
            if class_array is not None:
                args.append(tf.constant(class_array[start:stop]))
            results.append(np.asarray(function(*args), dtype=np.float32))
        return np.concatenate(results, axis=0)


def explain(model, images, classes="predicted", epsilon=1e-2,
            first_layer_rule="zb", input_bounds=(0.0, 1.0), composite=None):
    """LRP heatmaps of a classifier's logits.

    The first call for a model and a choice of `epsilon`,
    `first_layer_rule`, `input_bounds` and `composite` builds an `Explainer` and keeps
    it on the model, in a private attribute that Keras neither tracks nor
    saves; later calls with the same settings reuse it, so explaining
    batch after batch costs about one backward pass each. The cached graph
    shares the model's weights (it sees weight updates) and is rebuilt if
    the model's layers change.

    Args:
        model: A Keras classifier, or an `Explainer`.
        images: `(B, H, W, C)` array in the model's input range; every value
            must be finite.
        classes: `"predicted"` (K = 1), `"all"` (K = number of classes), an
            int, or a per-image integer array `(B,)` / `(B, K)`.
        epsilon: LRP-epsilon stabiliser, finite and `>= 0`.
        first_layer_rule: `"zb"` or `"epsilon"`, the first layers' rule in
            the default composite.
        input_bounds: `(lower, upper)` input range for Z^B.
        composite: Optional `composites.Composite` giving each layer its
            rule (default: the papers', `composites.default_composite`).

    Returns:
        float32 NumPy array `(B, K, H, W, C)`, all finite.

    Raises:
        ValueError: an image holds NaN or inf (the message names its
            index), or a heatmap is not finite although its image is (the
            model's weights or outputs are not finite).

    Example:

    >>> heatmaps = explain(classifier, images[:4], classes="all")
    >>> heatmaps.shape
    (4, 10, 28, 28, 1)
    """
    if isinstance(model, Explainer):
        explainer = model
    else:
        explainer = _cached_explainer(model, epsilon, first_layer_rule,
                                      input_bounds, composite)
    heatmaps = explainer(images, classes)
    bad = _non_finite_rows(heatmaps)
    if bad.size:
        raise ValueError(_non_finite_heatmaps_message(explainer.model, bad))
    return heatmaps


def _non_finite_rows(array):
    """Indices along axis 0 of `array` whose entries are not all finite."""
    finite = np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    return np.flatnonzero(~finite)


def _index_list(indices):
    """`[0, 3, 7]`, or the first few and a count when there are many."""
    shown = ", ".join(str(int(i)) for i in indices[:_NAMED_INDICES])
    if len(indices) > _NAMED_INDICES:
        return f"[{shown}, ...] ({len(indices)} in all)"
    return f"[{shown}]"


def _non_finite_heatmaps_message(model, bad):
    """Why the heatmaps of images `bad` are not finite, naming bad weights.

    Only called on failure, so reading every weight back costs nothing in
    the usual case.
    """
    message = (f"The heatmaps of images {_index_list(bad)} are not finite "
               "(NaN or inf) although the images are: the model's weights "
               "or outputs are not finite.")
    weights = [w for w in model.weights
               if not np.isfinite(np.asarray(w)).all()]
    if weights:
        names = ", ".join(getattr(w, "path", w.name) for w in weights[:3])
        more = f" and {len(weights) - 3} more" if len(weights) > 3 else ""
        return (f"{message} Non-finite weights: {names}{more} (e.g. a "
                "diverged training run); reload or retrain the model.")
    return (f"{message} Its weights are finite, so its activations or "
            "logits overflow for these images; check that they are scaled "
            "like the training inputs.")


class _ExplainerCache:
    """The Explainers that `explain()` built for one model, kept on it.

    A plain object (not a dict, list or Keras/TensorFlow trackable), set
    with `object.__setattr__`: Keras neither tracks nor saves it, so
    `model.save`, the weights and `model.summary()` are unchanged.

    An Explainer is keyed by its settings and is valid for the structure it
    was built from: the model's layers (all nesting levels), their
    activations (a fused ReLU is split off when the graph is traced) and the
    model's input tensor (rebuilt when a Sequential gains or loses a layer).
    These are compared by identity and held, so that no id is reused while
    cached. Weights are not part of the key: the mirrors read the
    classifier's variables, so an update is seen without a rebuild.
    """

    def __init__(self):
        self.structure = ()
        self.explainers = collections.OrderedDict()

    def explainer(self, structure, settings, build):
        """The cached Explainer for `settings`, built by `build()` if needed.

        Args:
            structure: Tuple from `_structure_of(model)`.
            settings: Hashable key from `_settings_key`.
            build: Callable returning a new `Explainer`.

        Returns:
            An `Explainer`.
        """
        if not _same_objects(structure, self.structure):
            self.explainers.clear()
            self.structure = structure
        if settings in self.explainers:
            self.explainers.move_to_end(settings)
            return self.explainers[settings]
        explainer = build()
        self.explainers[settings] = explainer
        while len(self.explainers) > _CACHE_SIZE:
            self.explainers.popitem(last=False)  # least recently used
        return explainer


def _same_objects(first, second):
    return len(first) == len(second) and all(
        a is b for a, b in zip(first, second))


def _structure_of(model):
    """The objects an LRP graph of `model` is built from (see the cache)."""
    structure = [model.inputs[0]]
    for layer in model._flatten_layers(include_self=True, recursive=True):
        structure += [layer, getattr(layer, "activation", None)]
    return tuple(structure)


def _settings_key(epsilon, first_layer_rule, input_bounds, composite=None):
    """A hashable key of the Explainer settings, or None if there is none.

    Bounds are keyed by value (lists, tuples and arrays of the same numbers
    share an entry). Settings without a key are ones the Explainer rejects;
    building it uncached lets it raise its own error.
    """
    if not isinstance(first_layer_rule, str):
        return None
    try:
        epsilon = float(epsilon)
        if input_bounds is None:
            bounds = None
        else:
            lower, upper = (np.asarray(bound, dtype=np.float64)
                            for bound in input_bounds)
            bounds = tuple((b.shape, b.tobytes()) for b in (lower, upper))
        composite_key = None if composite is None else composite.key()
    except (TypeError, ValueError, AttributeError):
        return None
    return epsilon, first_layer_rule, bounds, composite_key


def _cached_explainer(model, epsilon, first_layer_rule, input_bounds,
                      composite=None):
    """The Explainer cached on `model` for these settings (built if new)."""

    def build():
        return Explainer(model, epsilon=epsilon,
                         first_layer_rule=first_layer_rule,
                         input_bounds=input_bounds, composite=composite)

    settings = _settings_key(epsilon, first_layer_rule, input_bounds,
                             composite)
    if settings is None or not isinstance(model, keras.Model):
        return build()
    try:
        structure = _structure_of(model)
    except (AttributeError, IndexError, ValueError):
        return build()  # e.g. not built: the Explainer says what is wrong
    cache = vars(model).get(_CACHE_ATTRIBUTE)
    if cache is None:
        cache = _ExplainerCache()
        # Bypasses Keras' attribute tracking (see `_ExplainerCache`).
        object.__setattr__(model, _CACHE_ATTRIBUTE, cache)
    return cache.explainer(structure, settings, build)
