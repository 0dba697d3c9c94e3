"""The foreground bands (C1, C2) of an ISNet's GWRP heatmap losses: set
them, or widen them to the relevance of the network being trained.

The band bounds each heatmap's raw foreground total `sum |R|`
(docs/algorithm.md, "The foreground band"). Its default, `[1, 25]`, fits
networks without batch normalisation. Those with batch norm, trained from
random weights, start far above it: the median total of a fresh
MobileNetV2 is about 140 at the input and 180 at its first stage, of a
ResNet50 about 700 and 1,300 (random 64x64 images, training mode). Their
heatmap loss then starts at thousands, the gradient norm at millions, and
the foreground term keeps jumping back above C2 while they learn. The
ISNet's default, `foreground_band="auto"`, therefore raises every upper
bound to at least `INITIAL_BAND_FACTOR` times the median total that the
untrained network gives on the first training batches; a network that
starts inside the band keeps it unchanged.
"""

import itertools
import types
import warnings

import keras
import numpy as np
import tensorflow as tf

from isnet_keras.losses import GWRPHeatmapLoss

FOREGROUND_BANDS = ("auto", "fixed")
# C2 >= this factor x the initial median total: room for the totals to grow
# while the classifier gains confidence. The bias zoo's CNN and `smallcnn`
# start below 12.5 on every map, so the papers' band applies to them as it
# is.
INITIAL_BAND_FACTOR = 2.0
# Batches measured at the start of training.
INITIAL_BATCHES = 2


def check_foreground_band(value):
    """Raises `ValueError` unless `value` is one of `FOREGROUND_BANDS`."""
    if value not in FOREGROUND_BANDS:
        raise ValueError(f"foreground_band must be one of {FOREGROUND_BANDS}, "
                         f"received {value!r}.")


def apply_foreground_bounds(isnet, bounds):
    """Sets the foreground bands (C1, C2) of an ISNet's GWRP heatmap losses.

    The ISNet's `foreground_band` becomes `"fixed"`: a later `fit` keeps
    these bands.

    Args:
        isnet: An `ISNet` whose heatmap losses are `GWRPHeatmapLoss`es.
        bounds: dict with `C1` and `C2` (floats, or one per heatmap of an
            image) for the input heatmaps and, optionally, `hidden`: a dict
            `{layer name: {"C1": ..., "C2": ...}}` for deep-supervision
            layers (those not named keep their bands), as
            `AutoTuneForegroundBounds.result` holds them.

    Raises:
        ValueError: `hidden` names a layer that is not supervised.

    Example:

    >>> apply_foreground_bounds(isnet, {"C1": 2.0, "C2": 40.0})
    """
    hidden = dict(bounds.get("hidden") or {})
    unknown = sorted(set(hidden) - set(isnet.deep_supervision))
    if unknown:
        raise ValueError(f"Foreground bounds for {', '.join(unknown)}, which "
                         "the ISNet does not supervise (deep_supervision: "
                         f"{list(isnet.deep_supervision)}).")
    tuned = [(isnet.heatmap_loss, bounds)] + [
        (loss, hidden[name]) for loss, name in zip(
            isnet.hidden_losses, isnet.deep_supervision) if name in hidden]
    _set_bands(isnet, tuned)


def _set_bands(isnet, losses_and_bands):
    for loss, band in losses_and_bands:
        loss.C1, loss.C2 = band["C1"], band["C2"]
    isnet.foreground_band = "fixed"
    # The loss constants are traced into the step functions: rebuild those
    # that exist.
    if getattr(isnet, "train_function", None) is not None:
        isnet.make_train_function(force=True)
    if getattr(isnet, "test_function", None) is not None:
        isnet.make_test_function(force=True)


def _widened(loss, totals, factor):
    """`{"C1", "C2"}` of `loss` with C2 raised to `factor` x the median of
    `(N, M)` totals (per map where M > 1)."""
    medians = np.median(totals, axis=0)
    current = np.broadcast_to(np.asarray(loss.C2, float), medians.shape)
    # fmax: a non-finite median (a NaN image, which the training step
    # then reports) leaves the band as it is.
    upper = np.fmax(current, np.where(np.isfinite(medians),
                                      factor * medians, np.nan))
    c2 = float(upper[0]) if np.ndim(loss.C2) == 0 and upper.size == 1 \
        else [float(v) for v in upper]
    return {"C1": loss.C1, "C2": c2}


def widen_to_initial_relevance(isnet, batches, factor=INITIAL_BAND_FACTOR):
    """Raises each GWRP loss's C2 to `factor` x the median foreground total
    of the ISNet as it is now, and fixes the bands.

    Args:
        isnet: An `ISNet`, before training.
        batches: Image batches, or `(images, targets)` batches, in training
            batch size (batch norm uses their statistics, as in the loss).
        factor: float > 0.

    Returns:
        The bands, as `apply_foreground_bounds` takes them, plus the
        measured `medians` (input map first, then each supervised layer).

    Example:

    >>> widen_to_initial_relevance(isnet, list(train_ds.take(2)))["C2"]
    288.6
    """
    totals = isnet.foreground_totals(batches)
    losses = [isnet.heatmap_loss, *isnet.hidden_losses]
    bands = [_widened(loss, values, factor)
             if isinstance(loss, GWRPHeatmapLoss) else None
             for loss, values in zip(losses, totals)]
    _set_bands(isnet, [(loss, band) for loss, band in zip(losses, bands)
                       if band is not None])
    bounds = dict(bands[0] or {})
    bounds["hidden"] = {name: band for name, band in zip(
        isnet.deep_supervision, bands[1:]) if band is not None}
    bounds["medians"] = [np.median(values, axis=0).tolist()
                         for values in totals]
    return bounds


def _chained(taken, rest):
    """A generator again (what `fit` accepts), of `taken` then `rest`."""
    yield from taken
    yield from rest


def first_batches(x, y=None, batch_size=None, count=INITIAL_BATCHES):
    """The first `count` batches of `fit`'s `x`, without losing any.

    Args:
        x: What `fit` takes as `x`: a `tf.data.Dataset`, a
            `keras.utils.PyDataset`, a generator of batches, or images
            (array or tensor; then `y` holds the targets).
        y: `fit`'s `y`, the targets of in-memory images (or None).
        batch_size: `fit`'s batch size for in-memory images (default 32).
        count: int. Batches to return.

    Returns:
        `(batches, x)`: a list of batches (or None where `x` cannot be read
        ahead) and the `x` to hand to `fit` (a generator is replaced by one
        that yields the batches taken from it first).
    """
    if isinstance(x, tf.data.Dataset):
        return list(x.take(count)), x
    if isinstance(x, (np.ndarray, tf.Tensor)):
        size = batch_size or 32
        batches = []
        for start in range(0, min(count * size, len(x)), size):
            rows = slice(start, start + size)
            images = x[rows]
            batches.append(images if y is None else (
                images, tf.nest.map_structure(lambda a: a[rows], y)))
        return batches, x
    if isinstance(x, keras.utils.PyDataset):
        return [x[i] for i in range(min(count, len(x)))], x
    if isinstance(x, types.GeneratorType):
        taken = list(itertools.islice(x, count))
        return taken, _chained(taken, x)
    warnings.warn(
        f"foreground_band='auto' cannot read batches ahead from a "
        f"{type(x).__name__}; the heatmap losses keep their bands. Pass a "
        "tf.data.Dataset, arrays or a generator, or call "
        "widen_to_initial_relevance(isnet, batches) before fit.",
        stacklevel=3)
    return None, x
