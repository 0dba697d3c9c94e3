"""LRP rules: the maths only, on tensors.

A rule maps the relevance at a layer's output to the relevance at its input.
Relevance tensors carry a class axis right after the batch axis,
`(B, K, ...)`: K heatmaps per image are propagated in parallel, and K is
folded into the batch axis wherever a transposed operator runs. Rules take
a relevance as a tensor or in the forms of `relevance.py` that each one
names (the calling mirror converts it), and most return theirs as
`Factored(x, class_part)`, the product left to the next rule down; max
pooling over windows that tile its input returns a `WindowRelevance`.

Rules know nothing about Keras layers or graphs. Linear rules take a *linear
map* (see `linear_maps.py`): an object with `forward(x, kernel)`, the
bias-free operator, and `transpose(s, kernel, input_shape)`, its transpose
(vector-Jacobian product) run as a forward op with the tied kernel.

Biases only ever enter through `tf.stop_gradient`, so the heatmap loss cannot
grow biases to absorb relevance; they still reach the loss through the live
activations `x`.

TensorFlow ops are used directly (not `keras.ops`): the transposed
convolutions and pooling gradients are TensorFlow kernels, and the training
step differentiates these maps a second time.

The names of the rules, as composites (`composites.py`) assign them:

* `"epsilon"`: LRP-epsilon (`epsilon_rule`), and the epsilon-stabilised
  rules of layers without a choice (`winner_take_all_rule`, `affine_rule`,
  `sum_rule`).
* `"zero"`: the same with epsilon = 0 (LRP-0).
* `"zplus"`: the z+ rule of linear layers (`zplus_rule`).
* `"zb"`: Z^B (`zb_rule`), for linear layers fed by the model input.
"""

import tensorflow as tf

from isnet_keras.lrp import relevance as relevance_lib
# The relevance forms, also importable from here.
from isnet_keras.lrp.relevance import (  # noqa: F401
    BiasedOutput,
    Factored,
    WindowRelevance,
    as_factored,
    materialize,
    num_classes_of,
)

RULE_NAMES = ("epsilon", "zero", "zplus", "zb")
"""Rules a composite may assign to a layer."""
LINEAR_RULES = ("epsilon", "zplus", "zb")
"""Rules of linear layers (LRP-0 is `"epsilon"` with epsilon = 0)."""
RULES = ("epsilon", "zplus")
"""Rules of a propagation pass: `"zplus"` runs z+ wherever the composite
gives LRP-epsilon to a layer that has z+ (the Dual ISNet's first map)."""
FIRST_LAYER_RULES = ("zb", "epsilon")
"""Choices of the `first_layer_rule` shorthand for the default composite."""
ATTENTION_RELEVANCE = ("full", "value")
"""Treatments of multi-head attention a composite may choose:
`"full"`, AttnLRP's (relevance through the value path and, via the
softmax, the query and key), or `"value"`, the value path alone with the
attention probabilities held constant (the rule before AttnLRP's full
treatment; see `transformer_mirrors.MultiHeadAttentionMirror`)."""
BIAS_RELEVANCE = ("absorb", "ignore")
"""How rules treat constant summands (biases, batch-norm and LayerNorm
shifts, a learned position embedding): `"absorb"`, each keeps its share
of the relevance (it is part of every `z`); `"ignore"`, no `z` includes
them, so each layer passes on all of the relevance it receives."""


def stabilize(z, epsilon):
    """Returns `z + epsilon * sgn(z)` with `sgn(0) = +1`, so `|out| >= epsilon`.

    With `epsilon = 0` (LRP-0) exact zeros become 1: the relevance divided
    by a zero `z` is itself zero (relevance follows the activation), so the
    quotient is 0 instead of 0/0 = NaN.

    Args:
        z: Tensor of pre-activations.
        epsilon: Non-negative float, or None for a `z` the caller already
            stabilised (returned as it is).

    Returns:
        A tensor like `z`.

    Example:

    >>> stabilize(tf.constant([0.0, -0.5, 2.0]), 0.01).numpy()
    array([ 0.01, -0.51,  2.01], dtype=float32)
    """
    if epsilon is None:
        return z
    if not epsilon:
        return tf.where(tf.equal(z, 0), tf.ones_like(z), z)
    # Scalar branches: no tensors of ones, and no gradient ops for them.
    return z + tf.where(z >= 0, tf.constant(epsilon, z.dtype),
                        tf.constant(-epsilon, z.dtype))


def merge_classes(tensor):
    """Folds the class axis into the batch axis: `(B, K, ...) -> (B*K, ...)`."""
    shape = tf.shape(tensor)
    return tf.reshape(tensor, tf.concat([[shape[0] * shape[1]], shape[2:]], 0))


def split_classes(tensor, num_classes):
    """Inverse of `merge_classes`: `(B*K, ...) -> (B, K, ...)`."""
    shape = tf.shape(tensor)
    return tf.reshape(
        tensor, tf.concat([[-1, num_classes], shape[1:]], 0)
    )


def _repeated_shape(x, num_classes):
    """The shape of `x` with its batch repeated K times, for transposes."""
    shape = tf.shape(x)
    return tf.concat([[shape[0] * num_classes], shape[1:]], 0)


def per_class(tensor):
    """`(B, ...) -> (B, 1, ...)`, to broadcast over the class axis.

    `tf.expand_dims` rather than `tensor[:, None]`: the gradient of a
    strided slice is a `StridedSliceGrad` op at activation size, that of
    `expand_dims` a free reshape, and the training step differentiates
    every rule.
    """
    return tf.expand_dims(tensor, 1)


def _stopped(bias):
    return None if bias is None else tf.stop_gradient(bias)


def _ratio(relevance, z, epsilon, per_image_factor=None):
    """`s = R / stab(z)`, with `z` (B, ...) broadcast over the class axis.

    The reciprocal is taken once per image and multiplied into the K
    relevances: a broadcast division would make its gradient (with respect
    to `z`, summed over K) run several divisions at relevance size. A
    `Factored` relevance gets its per-image factor multiplied in first, and
    so does `per_image_factor` (B, ...), an optional extra factor of `s`.
    `relevance` is a tensor or `Factored`.
    """
    inverse = tf.math.reciprocal(stabilize(z, epsilon))
    if per_image_factor is not None:
        inverse = inverse * per_image_factor
    if isinstance(relevance, Factored):
        return relevance.per_class * per_class(relevance.per_image * inverse)
    return relevance * per_class(inverse)


def _pre_activation(linear, x, kernel, linear_output, offset):
    """`z = L(x; W) + offset`, from `linear_output` when given.

    Args:
        linear: A linear map.
        x: `(B, *in)` layer input.
        kernel: The kernel tensor.
        linear_output: None (compute `L(x; W)`), the tensor `L(x; W)`, or
            a `BiasedOutput`.
        offset: None or a tensor broadcastable to the output that does not
            depend on the batch (a bias, bound terms).
    """
    if isinstance(linear_output, BiasedOutput):
        offset = -linear_output.bias if offset is None \
            else offset - linear_output.bias
        linear_output = linear_output.output
    elif linear_output is None:
        linear_output = linear.forward(x, kernel)
    return linear_output if offset is None else linear_output + offset


def _transpose(linear, s, kernel, x, num_classes):
    merged = linear.transpose(
        merge_classes(s), kernel, _repeated_shape(x, num_classes)
    )
    return split_classes(merged, num_classes)


def _transposes(linear, s, kernels, x, num_classes):
    """`[_transpose(linear, s, k, ...) for k in kernels]`, in one op if possible.

    Maps with `stacks_input_channels` run one transpose of the kernels
    concatenated along their input axis: at a first layer's full
    resolution, each transposed operator and its two gradient operators
    cost about as much as with one kernel.
    """
    if len(kernels) == 1 or not getattr(linear, "stacks_input_channels",
                                        False):
        return [_transpose(linear, s, k, x, num_classes) for k in kernels]
    shape = _repeated_shape(x, num_classes)
    shape = tf.concat([shape[:-1], shape[-1:] * len(kernels)], 0)
    merged = linear.transpose(merge_classes(s), tf.concat(kernels, axis=-2),
                              shape)
    return [split_classes(part, num_classes)
            for part in tf.split(merged, len(kernels), axis=-1)]


def epsilon_rule(relevance, x, linear, kernel, bias=None, epsilon=1e-2,
                 linear_output=None, output_at_maxima=None):
    """LRP-epsilon through a linear layer.

    `R_j = x_j * sum_k w_jk R_k / stab(z_k)` with `z = L(x; W) + sg(b)`.

    Args:
        relevance: `(B, K, *out)` relevance at the layer output: a tensor,
            `Factored` or `WindowRelevance`.
        x: `(B, *in)` the layer input of the same forward pass.
        linear: A linear map (`forward`, `transpose`).
        kernel: The kernel tensor passed to `linear`.
        bias: Optional bias broadcastable to the output; gradient-stopped.
        epsilon: The stabiliser. 0 gives LRP-0.
        linear_output: Optional `L(x; W)` from the forward pass, or a
            `BiasedOutput` (z reuse).
        output_at_maxima: Optional, with a `WindowRelevance`: `L(x; W)`
            at the relevance's maxima wherever its `peaks` are positive,
            `(B, h, w, C)`, as a tensor or `BiasedOutput` (the caller knows
            that the pooling's input is this layer's output there). `s` is
            then formed at the pooled size, and `z` is never needed at the
            full size.

    Returns:
        `Factored(x, ...)`: the `(B, K, *in)` relevance at the layer input.

    Example:

    >>> from isnet_keras.lrp import linear_maps
    >>> R = epsilon_rule(tf.ones((1, 1, 2)), tf.constant([[1.0, 3.0]]),
    ...                  linear_maps.DenseMap(), tf.eye(2), epsilon=0.0)
    >>> materialize(R).numpy()
    array([[[1., 1.]]], dtype=float32)
    """
    num_classes = num_classes_of(relevance)
    if output_at_maxima is not None and isinstance(relevance,
                                                   WindowRelevance):
        z = _pre_activation(linear, x, kernel, output_at_maxima,
                            _stopped(bias))
        s = per_class(relevance.mask) * relevance.broadcast(
            _ratio(relevance.per_window, z, epsilon))
    else:
        z = _pre_activation(linear, x, kernel, linear_output, _stopped(bias))
        s = _ratio(relevance_lib.as_factored(relevance), z, epsilon)
    return Factored(x, _transpose(linear, s, kernel, x, num_classes))


def _plus_epsilon(offset, epsilon, dtype):
    """`offset + epsilon`, the stabiliser of a `z` known to be `>= 0`."""
    if not epsilon:
        return offset
    if offset is None:
        return tf.constant(epsilon, dtype)
    return offset + tf.constant(epsilon, offset.dtype)


def check_within_bounds(x, lower, upper, tolerance=0.0):
    """`x`, after asserting `lower - tolerance <= x <= upper + tolerance`.

    Z^B's relevance and its `z` are non-negative only for inputs within
    its bounds; outside them it would divide by values near zero without
    any sign of it. The tolerance admits rounding (bounds mapped through a
    `Rescaling` layer, inputs rounded to a lower precision).

    Args:
        x: `(B, *in)` layer input.
        lower: Bounds broadcastable to `x`, or None for zeros.
        upper: Like `lower`.
        tolerance: Non-negative float.

    Returns:
        `x`, which now depends on the check (an `InvalidArgumentError`
        that names the offending range when it fails).

    Example:

    >>> check_within_bounds(tf.constant([0.0, 0.5]), None, 1.0).numpy()
    array([0. , 0.5], dtype=float32)
    """
    below = tf.reduce_min(x if lower is None else x - lower)
    above = tf.reduce_max(x if upper is None else x - upper)
    inside = (below >= -tolerance) & (above <= tolerance)
    check = tf.debugging.Assert(inside, [
        "The first layer's Z^B rule needs inputs within input_bounds "
        "(lower <= x <= upper). Scale the images into the bounds, or pass "
        "the range of the preprocessed inputs as input_bounds (or "
        "first_layer_rule='epsilon'). Smallest x - lower, largest "
        "x - upper (nan: the inputs hold NaN):", below, above])
    with tf.control_dependencies([check]):
        return tf.identity(x)


def zb_rule(relevance, x, linear, kernel, bias, lower, upper, epsilon=1e-2,
            linear_output=None):
    """The Z^B (bounded input) rule for a first linear layer.

    `R_j = sum_k (x_j w_jk - l_j w+_jk - h_j w-_jk) R_k / (z_k + epsilon)`
    with `z_k = sum_j (x_j w_jk - l_j w+_jk - h_j w-_jk) + sg(max(b_k, 0))`.

    For inputs within the bounds every term of `z` is non-negative, so
    `stab(z) = z + epsilon` needs no sign test: epsilon joins the one-image
    bound and bias terms. Callers check the bounds (`check_within_bounds`);
    out of them `z` may be negative and the relevance meaningless.

    Args:
        relevance: `(B, K, *out)` relevance at the layer output, a tensor
            or `Factored`.
        x: `(B, *in)` layer input, with `lower <= x <= upper`.
        linear: A linear map.
        kernel: The kernel tensor.
        bias: Optional bias; enters as `sg(max(b, 0))`.
        lower: Lower bounds, broadcastable to `x` (`(1, *in)`), or None
            for bounds that are all zero (their terms vanish; skipping
            them saves a transposed operator).
        upper: Upper bounds, like `lower`.
        epsilon: The stabiliser.
        linear_output: Optional `L(x; W)` from the forward pass, or a
            `BiasedOutput` (z reuse).

    Returns:
        `(B, K, *in)` relevance at the layer input.
    """
    bound_terms = [(bound, part) for bound, part in (
        (lower, tf.maximum(kernel, 0.0)), (upper, tf.minimum(kernel, 0.0)))
        if bound is not None]
    # The bounds are one image: their terms and the bias combine before
    # they meet the batch.
    offset = None if bias is None else _stopped(tf.maximum(bias, 0.0))
    for bound, part in bound_terms:
        term = linear.forward(bound, part)
        offset = -term if offset is None else offset - term
    offset = _plus_epsilon(offset, epsilon, x.dtype)
    z = _pre_activation(linear, x, kernel, linear_output, offset)
    num_classes = num_classes_of(relevance)
    # Already offset by epsilon; LRP-0 still needs the zero guard.
    s = _ratio(relevance, z, None if epsilon else 0.0)
    kernels = [kernel] + [part for _, part in bound_terms]
    transposed = _transposes(linear, s, kernels, x, num_classes)
    relevance_in = per_class(x) * transposed[0]
    for (bound, _), term in zip(bound_terms, transposed[1:]):
        relevance_in = relevance_in - per_class(bound) * term
    return relevance_in


def zplus_rule(relevance, x, linear, kernel, bias=None, epsilon=1e-2):
    """The z+ rule (alpha=1, beta=0), valid for signed inputs.

    `z+ = L(x+; W+) + L(x-; W-) + sg(max(b, 0))` and
    `R = x+ * L^T(s; W+) + x- * L^T(s; W-)`, `s = R_out / (z+ + epsilon)`
    (`z+ >= 0`: its stabiliser needs no sign).

    Args:
        relevance: `(B, K, *out)` relevance at the layer output, a tensor
            or `Factored`.
        x: `(B, *in)` layer input.
        linear: A linear map.
        kernel: The kernel tensor.
        bias: Optional bias; enters as `sg(max(b, 0))`.
        epsilon: The stabiliser.

    Returns:
        `(B, K, *in)` non-negative relevance where `relevance >= 0`.
    """
    x_pos = tf.maximum(x, 0.0)
    x_neg = tf.minimum(x, 0.0)
    k_pos = tf.maximum(kernel, 0.0)
    k_neg = tf.minimum(kernel, 0.0)
    # Every term of z+ is non-negative: stab(z+) = z+ + epsilon.
    offset = None if bias is None else _stopped(tf.maximum(bias, 0.0))
    offset = _plus_epsilon(offset, epsilon, x.dtype)
    z = linear.forward(x_pos, k_pos) + linear.forward(x_neg, k_neg)
    if offset is not None:
        z = z + offset
    num_classes = num_classes_of(relevance)
    # Already offset by epsilon; LRP-0 still needs the zero guard.
    s = _ratio(relevance, z, None if epsilon else 0.0)
    from_pos, from_neg = _transposes(linear, s, [k_pos, k_neg], x,
                                     num_classes)
    return per_class(x_pos) * from_pos + per_class(x_neg) * from_neg


def winner_take_all_rule(relevance, x, pooled, unpool, epsilon=1e-2,
                         scale=None, shift=None, winners=None):
    """Max pooling: each window's relevance goes to its maximum.

    `z = scale * p + sg(shift)` (a following batch norm folded in, else
    `z = p`), `s = R / stab(z)`, `R_in = x * unpool(scale * s)`, where
    `unpool` scatter-*adds* into the window maxima, so overlapping windows
    sum their shares.

    Args:
        relevance: `(B, K, *out)` relevance at the pooling output, a
            tensor or `Factored`.
        x: `(B, *in)` pooling input.
        pooled: `(B, *out)` pooling output of the same pass.
        unpool: `unpool(s)` maps `(B, K, *out)` to `(B, K, *in)`.
        epsilon: The stabiliser.
        scale: Optional per-channel gain of a folded batch norm.
        shift: Optional per-channel shift of a folded batch norm.
        winners: Optional `(mask, share, pool_size)` for windows that
            tile the input, where `unpool` copies each window's value over
            it: `mask` `(B, *in)` is 1 at each window's maxima and `share`
            `(B, *out)` the fraction of the window's relevance each
            receives. Since `x` equals `pooled` at the maxima, the
            relevance is then `mask * unpool(s * pooled * share)`: the
            product with the live activation is taken at the pooled size.
            Returned as a `WindowRelevance` where the windows cover the
            input exactly.

    Returns:
        `Factored` or `WindowRelevance`: the `(B, K, *in)` relevance at the
        pooling input.
    """
    z = pooled if scale is None else pooled * scale
    if shift is not None:
        z = z + _stopped(shift)
    if winners is None:
        s = _ratio(relevance, z, epsilon, per_image_factor=scale)
        return Factored(x, unpool(s))
    mask, share, (ph, pw) = winners
    factor = pooled * share if scale is None else pooled * share * scale
    per_window = _ratio(relevance, z, epsilon, per_image_factor=factor)
    if tuple(mask.shape[1:3]) != (pooled.shape[1] * ph, pooled.shape[2] * pw):
        return Factored(mask, unpool(per_window))
    return WindowRelevance(mask, pooled, per_window)


def affine_rule(relevance, x, scale, shift=None, epsilon=1e-2):
    """A per-element affine layer `z = scale * x + sg(shift)` (standalone BN).

    Args:
        relevance: `(B, K, *shape)` relevance at the layer output, a
            tensor or `Factored`.
        x: `(B, *shape)` layer input.
        scale: Gain broadcastable to `x`.
        shift: Optional shift broadcastable to `x`.
        epsilon: The stabiliser.

    Returns:
        `Factored`: the `(B, K, *shape)` relevance at the layer input.
    """
    z = x * scale
    if shift is not None:
        z = z + _stopped(shift)
    return Factored(x * scale, _ratio(relevance, z, epsilon))


def sum_rule(relevance, inputs, epsilon=1e-2, weights=None):
    """Element-wise sums (`Add`, `Average`): `R_i = a_i * R / stab(sum a)`.

    Args:
        relevance: `(B, K, *shape)` relevance at the sum, a
            tensor or `Factored`.
        inputs: List of `(B, *shape)` summands.
        epsilon: The stabiliser.
        weights: Optional per-input factors (`1/n` for `Average`).

    Returns:
        A list of `Factored` `(B, K, *shape)` relevances, one per input.
    """
    if weights is None:
        weights = [1.0] * len(inputs)
    terms = [a * w for a, w in zip(inputs, weights)]
    s = _ratio(relevance, tf.add_n(terms), epsilon)
    return [Factored(t, s) for t in terms]
