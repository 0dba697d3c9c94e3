"""Inference-time heatmaps: `explain()` and the reusable `Explainer`."""

import keras
import numpy as np
import tensorflow as tf

from isnet_keras.lrp import graph as graph_lib
from isnet_keras.lrp import outputs


def build_heatmap_model(lrp_graph, num_heatmaps=None):
    """A Keras model `images (, classes) -> heatmaps (B, K, H, W, C)`.

    It consumes the classifier's own intermediate tensors (one forward pass,
    shared layers) and runs the mirror layers on them.

    Args:
        lrp_graph: An `LRPGraph`.
        num_heatmaps: None to explain each image's predicted class (the
            model takes only images, K = 1); an int K to take a second
            input, integer classes of shape `(B, K)`.

    Returns:
        A `keras.Model`.
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
    found = lrp_graph.propagate(lrp_graph.logits_call.output, relevance)
    heatmaps = found[id(lrp_graph.input)]
    return keras.Model(inputs, heatmaps, name="lrp_heatmaps")


class Explainer:
    """Builds the LRP graph of a classifier once and explains many batches.

    Args:
        model: A Functional or Sequential classifier (logits or softmax
            output), possibly with nested backbones.
        epsilon: LRP-epsilon stabiliser. Defaults to `1e-2`.
        first_layer_rule: `"zb"` (default) or `"epsilon"`.
        input_bounds: `(lower, upper)` of the model input for Z^B, scalars
            or per channel. Defaults to `(0.0, 1.0)`.
        batch_size: Images per traced call. Defaults to 32.

    Example:

    >>> explainer = Explainer(classifier)
    >>> heatmaps = explainer(images, classes="predicted")  # (B, 1, H, W, C)
    """

    def __init__(self, model, epsilon=1e-2, first_layer_rule="zb",
                 input_bounds=(0.0, 1.0), batch_size=32):
        self.model = model
        self.graph = graph_lib.LRPGraph(model, epsilon=epsilon,
                                        first_layer_rule=first_layer_rule,
                                        input_bounds=input_bounds)
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
        return images.astype(np.float32)

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
            first_layer_rule="zb", input_bounds=(0.0, 1.0)):
    """LRP heatmaps of a classifier's logits.

    Builds the LRP graph each call; to explain many batches, build an
    `Explainer` once (or pass one as `model`).

    Args:
        model: A Keras classifier, or an `Explainer`.
        images: `(B, H, W, C)` array in the model's input range.
        classes: `"predicted"` (K = 1), `"all"` (K = number of classes), an
            int, or a per-image integer array `(B,)` / `(B, K)`.
        epsilon: LRP-epsilon stabiliser.
        first_layer_rule: `"zb"` or `"epsilon"`.
        input_bounds: `(lower, upper)` input range for Z^B.

    Returns:
        float32 NumPy array `(B, K, H, W, C)`.

    Example:

    >>> heatmaps = explain(classifier, images[:4], classes="all")
    >>> heatmaps.shape
    (4, 10, 28, 28, 1)
    """
    if isinstance(model, Explainer):
        return model(images, classes)
    return Explainer(model, epsilon=epsilon, first_layer_rule=first_layer_rule,
                     input_bounds=input_bounds)(images, classes)
