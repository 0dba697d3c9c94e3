"""Relevance forms: how relevance travels between mirrors.

A relevance is `(B, K, ...)`: K heatmaps per image, propagated in parallel.
Besides a plain tensor (`TENSOR`), the speed-ups of the LRP core hand it on
in two unmultiplied forms, which save passes over the K-fold tensor:

* `Factored` (`FACTORED`): `per_class(per_image) * per_class`, the layer
  input times a class-dependent part, multiplied by the next rule down
  only after its own per-image factor.
* `WindowRelevance` (`WINDOW`): max-pool relevance kept at the pooled size,
  divided at the pooled size by a linear layer below that knows its `z`
  there.

This module is internal to the LRP core. A mirror declares the forms it
takes (`Mirror.relevance_forms`) and the base `Mirror` converts whatever
arrives with `convert`; rules and mirror subclasses never choose a form
themselves.

Example:

>>> r = Factored(tf.constant([[2.0]]), tf.constant([[[3.0]]]))
>>> form_of(r)
'factored'
>>> convert(r, (TENSOR,)).numpy()
array([[[6.]]], dtype=float32)
"""

import collections

import keras
import tensorflow as tf

from isnet_keras.lrp import linear_maps

TENSOR = "tensor"
FACTORED = "factored"
WINDOW = "window"
FORMS = (TENSOR, FACTORED, WINDOW)


class Factored(collections.namedtuple("Factored", ["per_image",
                                                   "per_class"])):
    """Relevance kept as `per_class(per_image) * per_class`, unmultiplied.

    A rule's relevance at its input is the layer input `x` (activation
    size, `(B, ...)`) times a class-dependent part (`(B, K, ...)`), and the
    next rule down divides it by its `stab(z)`, also of activation size.
    Kept apart, the next rule multiplies `x / stab(z)` first and touches
    the K-fold tensor once instead of twice (and its gradient likewise):
    element-wise passes over `(B, K, ...)` tensors bound the step's speed
    on CPUs when K is large. `materialize` gives the plain tensor.

    Attributes:
        per_image: `(B, *shape)` tensor.
        per_class: `(B, K, *shape)` tensor.
    """


class WindowRelevance(collections.namedtuple(
        "WindowRelevance", ["mask", "peaks", "per_window"])):
    """Relevance on the maxima of max-pool windows that tile the input.

    The relevance is `mask * broadcast(per_window)`, each window's share
    copied onto its maxima, kept at the pooled size. The linear layer below
    divides it by its `stab(z)`; where it knows that its `z` equals the
    pooling's input at the maxima (a ReLU or no activation between them),
    it divides at the pooled size by `stab(peaks)` (`epsilon_rule`'s
    `output_at_maxima`), and the only work left at the input's size is the
    product with the mask. Any other rule takes it as `as_factored` gives
    it.

    Windows tile the input exactly: `H = h * ph`, `W = w * pw`.

    Attributes:
        mask: `(B, H, W, C)`, 1 at each window's maxima, else 0
            (gradient-stopped).
        peaks: `(B, h, w, C)`, the pooling's output: wherever it is
            positive, the value of the pooling's input at the maxima.
        per_window: `(B, K, h, w, C)` relevance of each maximum (a window's
            relevance divided among its tied maxima); 0 where `peaks` is 0.
    """

    def broadcast(self, values):
        """Copies `(B, K, h, w, C)` values over their windows."""
        (height, width), (h, w) = self.mask.shape[1:3], self.peaks.shape[1:3]
        return linear_maps.broadcast_windows(
            values, (height // h, width // w), tuple(self.mask.shape))


class BiasedOutput(collections.namedtuple("BiasedOutput",
                                          ["output", "bias"])):
    """A linear layer's forward output `L(x; W) + bias`, kept with its bias.

    For z reuse: a rule forms its `z = L(x; W) + c` as
    `output + (c - bias)`, so the bias-sized (or one-image) terms combine
    first and the activation-size tensor takes one addition, not a
    subtraction and an addition. `bias` carries its live gradient, which
    cancels that of the bias inside `output` (rules take biases stopped).

    Attributes:
        output: `(B, *out)` tensor `L(x; W) + bias`.
        bias: Tensor broadcastable to `output`.
    """


def form_of(relevance):
    """The form of a relevance: `TENSOR`, `FACTORED` or `WINDOW`."""
    if isinstance(relevance, WindowRelevance):
        return WINDOW
    if isinstance(relevance, Factored):
        return FACTORED
    return TENSOR


def as_factored(relevance):
    """A `WindowRelevance` as `Factored`; any other relevance unchanged."""
    if isinstance(relevance, WindowRelevance):
        return Factored(relevance.mask,
                        relevance.broadcast(relevance.per_window))
    return relevance


def materialize(relevance):
    """The `(B, K, ...)` tensor of a relevance, plain or in parts.

    On concrete tensors; graph builders call it inside a layer (a
    `WindowRelevance` is expanded with TensorFlow ops).

    Args:
        relevance: A tensor, `Factored` or `WindowRelevance`.

    Returns:
        A `(B, K, ...)` tensor.
    """
    relevance = as_factored(relevance)
    if isinstance(relevance, Factored):
        return keras.ops.multiply(
            keras.ops.expand_dims(relevance.per_image, 1),
            relevance.per_class)
    return relevance


def convert(relevance, forms):
    """`relevance` in the richest of `forms` it can take, unchanged if it is
    already in one of them.

    A `WindowRelevance` becomes `Factored` where that is accepted, and
    anything else a plain tensor; a plain tensor is always accepted.

    Args:
        relevance: A tensor, `Factored` or `WindowRelevance`.
        forms: The accepted forms, a collection of `FORMS`.

    Returns:
        The relevance in an accepted form (the same values).
    """
    form = form_of(relevance)
    if form == TENSOR or form in forms:
        return relevance
    if form == WINDOW and FACTORED in forms:
        return as_factored(relevance)
    return materialize(relevance)


def cast(relevance, dtype):
    """Casts a relevance, plain or in parts, to `dtype`."""
    if isinstance(relevance, tuple):
        return type(relevance)(*(tf.cast(t, dtype) for t in relevance))
    return tf.cast(relevance, dtype)


def num_classes_of(relevance):
    """K, the static size of the class axis of a relevance."""
    if isinstance(relevance, WindowRelevance):
        relevance = relevance.per_window
    if isinstance(relevance, Factored):
        relevance = relevance.per_class
    return relevance.shape[1]
