"""Rules against direct (explicit-sum) implementations."""

import numpy as np
import pytest
import tensorflow as tf

from isnet_keras.lrp import linear_maps
from isnet_keras.lrp import rules


def _stab(z, eps):
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def test_stabilize_treats_zero_as_positive():
    out = rules.stabilize(tf.constant([0.0, -0.5, 2.0], tf.float64), 0.1)
    np.testing.assert_allclose(out.numpy(), [0.1, -0.6, 2.1])


def _direct_zb(x, w, b, lower, upper, r, eps):
    """R_j = sum_k (x_j w_jk - l_j w+_jk - h_j w-_jk) R_k / stab(z_k)."""
    wp, wn = np.maximum(w, 0), np.minimum(w, 0)
    out = np.zeros_like(x)
    for n in range(x.shape[0]):
        numer = (x[n][:, None] * w - lower[:, None] * wp
                 - upper[:, None] * wn)
        z = numer.sum(0) + np.maximum(b, 0)
        for j in range(x.shape[1]):
            out[n, j] = sum(numer[j, k] * r[n, k] / _stab(z[k], eps)
                            for k in range(w.shape[1]))
    return out


def _direct_zplus(x, w, b, r, eps):
    xp, xn = np.maximum(x, 0), np.minimum(x, 0)
    wp, wn = np.maximum(w, 0), np.minimum(w, 0)
    out = np.zeros_like(x)
    for n in range(x.shape[0]):
        numer = xp[n][:, None] * wp + xn[n][:, None] * wn
        z = numer.sum(0) + np.maximum(b, 0)
        out[n] = (numer * (r[n] / _stab(z, eps))[None]).sum(1)
    return out


def _im2col_matrix(in_shape, kernel, stride, padding):
    """The (H*W*C, h*w*F) matrix of a 'same'/'valid' conv, built by loops."""
    height, width, channels = in_shape
    kh, kw, _, filters = kernel.shape
    if padding == "same":
        out_h, out_w = -(-height // stride), -(-width // stride)
        pad_h = max((out_h - 1) * stride + kh - height, 0)
        pad_w = max((out_w - 1) * stride + kw - width, 0)
        top, left = pad_h // 2, pad_w // 2
    else:
        out_h = (height - kh) // stride + 1
        out_w = (width - kw) // stride + 1
        top = left = 0
    matrix = np.zeros((height * width * channels, out_h * out_w * filters))
    for oy in range(out_h):
        for ox in range(out_w):
            for dy in range(kh):
                for dx in range(kw):
                    iy, ix = oy * stride + dy - top, ox * stride + dx - left
                    if not (0 <= iy < height and 0 <= ix < width):
                        continue
                    for c in range(channels):
                        for f in range(filters):
                            row = (iy * width + ix) * channels + c
                            col = (oy * out_w + ox) * filters + f
                            matrix[row, col] += kernel[dy, dx, c, f]
    return matrix, (out_h, out_w, filters)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_zb_dense_matches_explicit_sums(rng):
    x = rng.uniform(-1, 2, (2, 5))
    w = rng.normal(size=(5, 3))
    b = rng.normal(size=3)
    lower, upper = rng.uniform(-2, -1, 5), rng.uniform(2, 3, 5)
    r = rng.normal(size=(2, 1, 3))
    out = rules.zb_rule(tf.constant(r), tf.constant(x), linear_maps.DenseMap(),
                        tf.constant(w), tf.constant(b), tf.constant(lower[None]),
                        tf.constant(upper[None]), 1e-2)
    expected = _direct_zb(x, w, b, lower, upper, r[:, 0], 1e-2)
    np.testing.assert_allclose(out.numpy()[:, 0], expected, rtol=1e-10)


@pytest.mark.parametrize("stride,padding", [(1, "same"), (2, "same"),
                                            (2, "valid")])
def test_zb_conv_matches_im2col(rng, stride, padding):
    in_shape = (5, 6, 2)
    kernel = rng.normal(size=(3, 3, 2, 3))
    bias = rng.normal(size=3)
    x = rng.uniform(0, 1, (2, *in_shape))
    lower = rng.uniform(-0.5, 0, in_shape)
    upper = rng.uniform(1, 1.5, in_shape)
    matrix, out_shape = _im2col_matrix(in_shape, kernel, stride, padding)
    r = rng.normal(size=(2, 1, *out_shape))
    conv = linear_maps.Conv2DMap((stride, stride), padding)
    out = rules.zb_rule(tf.constant(r), tf.constant(x), conv,
                        tf.constant(kernel), tf.constant(bias),
                        tf.constant(lower[None]), tf.constant(upper[None]),
                        1e-2)
    # The conv bias repeats over positions: tile it to the matrix columns.
    tiled_bias = np.tile(bias, out_shape[0] * out_shape[1])
    expected = _direct_zb(x.reshape(2, -1), matrix, tiled_bias,
                          lower.reshape(-1), upper.reshape(-1),
                          r.reshape(2, -1), 1e-2)
    np.testing.assert_allclose(out.numpy().reshape(2, -1), expected,
                               rtol=1e-9, atol=1e-12)


def test_zplus_dense_and_conv_match_direct(rng):
    x = rng.normal(size=(2, 4))
    w = rng.normal(size=(4, 3))
    b = rng.normal(size=3)
    r = rng.uniform(0, 1, (2, 1, 3))
    out = rules.zplus_rule(tf.constant(r), tf.constant(x),
                           linear_maps.DenseMap(), tf.constant(w),
                           tf.constant(b), 1e-2)
    np.testing.assert_allclose(out.numpy()[:, 0],
                               _direct_zplus(x, w, b, r[:, 0], 1e-2),
                               rtol=1e-10)
    assert np.all(out.numpy() >= 0)

    kernel = rng.normal(size=(3, 3, 2, 2))
    xc = rng.normal(size=(1, 5, 5, 2))
    matrix, out_shape = _im2col_matrix((5, 5, 2), kernel, 2, "same")
    rc = rng.uniform(0, 1, (1, 1, *out_shape))
    out = rules.zplus_rule(tf.constant(rc), tf.constant(xc),
                           linear_maps.Conv2DMap((2, 2), "same"),
                           tf.constant(kernel), None, 1e-2)
    expected = _direct_zplus(xc.reshape(1, -1), matrix,
                             np.zeros(matrix.shape[1]), rc.reshape(1, -1),
                             1e-2)
    np.testing.assert_allclose(out.numpy().reshape(1, -1), expected,
                               rtol=1e-9, atol=1e-12)


def test_overlapping_max_pool_windows_sum_their_shares():
    # 3x3 windows, stride 2, on 5x5: the centre (2, 2) is in all 4 windows
    # and is their common maximum, so it must collect all four shares.
    x = np.full((1, 5, 5, 1), 0.1)
    x[0, 2, 2, 0] = 1.0
    x[0, 0, 0, 0] = 0.5  # a cell in one window only, not a maximum
    x = tf.constant(x)
    pooled, argmax = tf.nn.max_pool_with_argmax(
        x, 3, 2, "VALID", include_batch_in_index=False)
    r = tf.constant(np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2, 1))
    eps = 1e-2

    def unpool(s):
        return linear_maps.max_unpool(s, argmax, tf.shape(x))

    out = rules.materialize(
        rules.winner_take_all_rule(r, x, pooled, unpool, eps)).numpy()
    expected_centre = np.sum(r.numpy() * 1.0 / _stab(1.0, eps))
    np.testing.assert_allclose(out[0, 0, 2, 2, 0], expected_centre)
    np.testing.assert_allclose(out.sum(), expected_centre)
    # An overwriting unpool would have kept a single share.
    assert out[0, 0, 2, 2, 0] > r.numpy().max()


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("kernel_size", [1, 2, 3])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_transposes_return_the_exact_input_shape_and_equal_the_vjp(
        size, kernel_size, stride, padding):
    rng = np.random.default_rng(size * 100 + kernel_size * 10 + stride)
    x = tf.constant(rng.normal(size=(2, size, size + 1, 3)))
    maps_and_kernels = [
        (linear_maps.Conv2DMap((stride, stride), padding),
         tf.constant(rng.normal(size=(kernel_size, kernel_size, 3, 4)))),
        (linear_maps.DepthwiseConv2DMap((stride, stride), padding),
         tf.constant(rng.normal(size=(kernel_size, kernel_size, 3, 2)))),
        (linear_maps.AveragePooling2DMap((kernel_size, kernel_size),
                                         (stride, stride), padding),
         tf.constant(rng.uniform(0.5, 2, size=3))),
    ]
    for linear, kernel in maps_and_kernels:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = linear.forward(x, kernel)
        s = tf.constant(rng.normal(size=y.shape))
        vjp = tape.gradient(y, x, output_gradients=s)
        transposed = linear.transpose(s, kernel, tf.shape(x))
        assert tuple(transposed.shape) == tuple(x.shape)
        np.testing.assert_allclose(transposed.numpy(), vjp.numpy(),
                                   rtol=1e-10, atol=1e-12)


def test_zb_skips_all_zero_bounds_without_changing_the_result(rng):
    x = rng.uniform(0, 1, (2, 6, 6, 2))
    kernel = rng.normal(size=(3, 3, 2, 3))
    r = rng.normal(size=(2, 1, 6, 6, 3))
    conv = linear_maps.Conv2DMap((1, 1), "same")
    upper = tf.ones((1, 6, 6, 2), tf.float64)
    explicit = rules.zb_rule(tf.constant(r), tf.constant(x), conv,
                             tf.constant(kernel), None,
                             tf.zeros((1, 6, 6, 2), tf.float64), upper)
    skipped = rules.zb_rule(tf.constant(r), tf.constant(x), conv,
                            tf.constant(kernel), None, None, upper)
    np.testing.assert_allclose(skipped.numpy(), explicit.numpy(), rtol=1e-12)


@pytest.mark.parametrize("rule", ["epsilon", "zb", "zplus", "affine", "sum",
                                  "pool"])
def test_factored_relevance_gives_the_materialized_values_and_gradients(
        rng, rule):
    # A rule fed `Factored(a, c)` must compute what it computes from the
    # product `a * c`, and pass the same gradients to `a` and `c`.
    x = tf.constant(rng.uniform(0, 1, (2, 6, 6, 2)))
    kernel = tf.constant(rng.normal(size=(3, 3, 2, 3)))
    bias = tf.constant(rng.normal(size=3))
    conv = linear_maps.Conv2DMap((1, 1), "same")
    activation = tf.constant(rng.uniform(0.1, 1, (2, 6, 6, 3)))
    pooled, argmax = tf.nn.max_pool_with_argmax(
        activation, 2, 2, "VALID", include_batch_in_index=False)
    # The relevance factors live at the rule's output.
    out_shape = pooled.shape if rule == "pool" else activation.shape
    a = tf.constant(rng.uniform(0.1, 1, out_shape))
    c = tf.constant(rng.normal(size=(2, 4, *out_shape[1:])))

    def apply(relevance):
        if rule == "epsilon":
            return rules.epsilon_rule(relevance, x, conv, kernel, bias)
        if rule == "zb":
            return rules.zb_rule(relevance, x, conv, kernel, bias, None,
                                 tf.ones((1, 6, 6, 2), tf.float64))
        if rule == "zplus":
            return rules.zplus_rule(relevance, x - 0.5, conv, kernel, bias)
        if rule == "affine":
            return rules.affine_rule(relevance, activation, tf.constant(
                [1.5, -2.0, 0.5], tf.float64), bias)
        if rule == "sum":
            return rules.sum_rule(relevance, [activation,
                                              -0.5 * activation + 0.2])[1]
        return rules.winner_take_all_rule(
            relevance, activation, pooled,
            lambda s: linear_maps.max_unpool(s, argmax, tf.shape(activation)))

    results = []
    for factored in (True, False):
        with tf.GradientTape() as tape:
            tape.watch([a, c])
            relevance = rules.Factored(a, c)
            if not factored:
                relevance = rules.materialize(relevance)
            out = rules.materialize(apply(relevance))
            objective = tf.reduce_sum(out * out)
        results.append((out.numpy(), *(
            g.numpy() for g in tape.gradient(objective, [a, c]))))
    for factored, plain in zip(*results):
        np.testing.assert_allclose(factored, plain, rtol=1e-10, atol=1e-12)


class _Unstacked:
    """A map that hides `stacks_input_channels`: one transpose per kernel."""

    def __init__(self, linear):
        self.forward = linear.forward
        self.transpose = linear.transpose


@pytest.mark.parametrize("layer", ["dense", "conv"])
@pytest.mark.parametrize("rule", ["zb", "zplus"])
def test_stacked_transposes_give_the_separate_values_and_gradients(
        rng, layer, rule):
    if layer == "dense":
        linear, x_shape, kernel_shape = linear_maps.DenseMap(), (3, 5), (5, 4)
        out_shape = (3, 2, 4)
    else:
        linear = linear_maps.Conv2DMap((2, 2), "same")
        x_shape, kernel_shape, out_shape = (3, 7, 6, 2), (3, 3, 2, 4), (
            3, 2, 4, 3, 4)
    assert linear.stacks_input_channels
    x = tf.constant(rng.uniform(0, 1, x_shape))
    kernel = tf.Variable(rng.normal(size=kernel_shape))
    relevance = tf.constant(rng.normal(size=out_shape))
    upper = tf.ones((1, *x_shape[1:]), tf.float64)
    results = []
    for candidate in (linear, _Unstacked(linear)):
        with tf.GradientTape() as tape:
            tape.watch([x, relevance])
            if rule == "zb":
                out = rules.zb_rule(relevance, x, candidate, kernel, None,
                                    -upper, upper)
            else:
                out = rules.zplus_rule(relevance, x - 0.5, candidate, kernel)
            objective = tf.reduce_sum(tf.sin(out))
        results.append((out.numpy(), *(g.numpy() for g in tape.gradient(
            objective, [x, relevance, kernel]))))
    for stacked, separate in zip(*results):
        np.testing.assert_allclose(stacked, separate, rtol=1e-12,
                                   atol=1e-14)


def test_bounds_check_passes_inputs_within_the_tolerance_and_names_the_excess():
    x = tf.constant([[0.0, 0.5, 1.0 + 1e-7]])
    np.testing.assert_array_equal(
        rules.check_within_bounds(x, None, tf.constant(1.0), 1e-6).numpy(),
        x.numpy())
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"input_bounds[\s\S]*0\.5"):
        rules.check_within_bounds(tf.constant([[0.2, 1.5]]), None,
                                  tf.constant(1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="input_bounds"):
        rules.check_within_bounds(tf.constant([[-0.1, 0.5]]),
                                  tf.constant(0.0), tf.constant(1.0))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"nan: the inputs hold NaN\)[\s\S]*nan"):
        rules.check_within_bounds(tf.constant([[0.5, np.nan]]),
                                  tf.constant(0.0), tf.constant(1.0))


def test_zb_and_zplus_denominators_add_epsilon_without_a_sign_test(rng):
    # z >= 0 for Z^B within its bounds and for z+: the result must equal
    # the explicit sums with stab(z) = z + epsilon, also where z = 0
    # (a black image under a kernel without negative weights).
    kernel = np.abs(rng.normal(size=(4, 3)))
    x = np.zeros((1, 4))
    r = rng.normal(size=(1, 1, 3))
    zb = rules.zb_rule(tf.constant(r), tf.constant(x), linear_maps.DenseMap(),
                       tf.constant(kernel), None, None,
                       tf.ones((1, 4), tf.float64), 1e-2)
    zplus = rules.zplus_rule(tf.constant(r), tf.constant(x),
                             linear_maps.DenseMap(), tf.constant(kernel),
                             None, 1e-2)
    # All terms vanish: z = 0, R_in = 0 for both, with finite gradients.
    np.testing.assert_array_equal(rules.materialize(zb).numpy(), 0.0)
    np.testing.assert_array_equal(rules.materialize(zplus).numpy(), 0.0)
    x = rng.uniform(0, 1, (3, 4))
    kernel = rng.normal(size=(4, 3))
    out = rules.zb_rule(tf.constant(r), tf.constant(x),
                        linear_maps.DenseMap(), tf.constant(kernel), None,
                        None, tf.ones((1, 4), tf.float64), 1e-2)
    terms = x[:, :, None] * kernel - np.minimum(kernel, 0)
    expected = (terms * r[:, 0, None, :] / (terms.sum(1)[:, None, :] + 1e-2)
                ).sum(-1)
    np.testing.assert_allclose(out.numpy()[:, 0], expected, rtol=1e-12)
