"""The ISNet: a classifier trained with a heatmap loss on its LRP maps.

`build_isnet(classifier, ...)` returns an `ISNet`, a `keras.Model` whose
`call()` is the classifier's (so `predict`, export and serving see the plain
classifier) and whose `train_step`/`test_step` run the *train-time graph*:
the re-traced classifier (same layer objects) plus its LRP block, one
forward pass per step, with the loss `(1 - P) * CE + P * L_heatmap`. The
step around that loss (data checks, skipped non-finite steps, metrics) is
`isnet_keras.trainer.Trainer`'s; `build_isnet` is `isnet_keras.builder`'s.
"""

import keras
import numpy as np
import tensorflow as tf

from isnet_keras import foreground_bands
from isnet_keras import losses as losses_lib
from isnet_keras import patch_masks as patch_masks_lib
from isnet_keras.metrics.attention import BackgroundRelevanceFraction
from isnet_keras.lrp import composites as composites_lib
from isnet_keras.lrp import graph as graph_lib
from isnet_keras.lrp import outputs
from isnet_keras import data_checks
from isnet_keras.data_checks import InvalidDataError  # noqa: F401
from isnet_keras.trainer import (LossTerms, Trainer, regularization_loss,
                                 unpack_batch)

VARIANTS = ("original", "selective", "stochastic", "dual")
# The papers train with P = 0.7. On the bias zoo (docs/results.md) 0.7 kept
# part of several shortcuts, and 0.9 kept part of the border-frame and
# background-shade ones, which 0.95 removed; it learns more slowly.
DEFAULT_P = 0.95
# The default P of networks with attention layers. ISNet ViTs at 0.95 stayed
# near chance for 10-12 epochs on the bias zoo; at 0.8 (with the ViT
# defaults of `backbones.vit_small`, constants left out of the rules and
# masks widened to patches) they learned the digits and ignored the
# shortcut (docs/results.md, "A ViT on the bias zoo").
DEFAULT_ATTENTION_P = 0.8
# The global gradient norm clip of `default_optimizer()` and `isnet train`.
DEFAULT_CLIPNORM = 0.3


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


def _supervised_grid(name, tensor):
    """The `(H, W)` grid of a deep-supervision layer's output.

    A 4-D feature map `(B, H, W, C)` is its own grid. A token sequence
    `(B, T, D)` with `T` a square number is read as patch tokens in
    row-major order (what a `Reshape` of a patch-embedding convolution
    makes, as in `backbones.vit_small`): token `t` covers the patch at row
    `t // sqrt(T)`, column `t % sqrt(T)`, so its relevance can be scored
    against the mask resized to the patch grid.
    """
    shape = tensor.shape
    if len(shape) == 4:
        return None
    if len(shape) == 3 and shape[1] is not None:
        side = int(round(float(shape[1]) ** 0.5))
        if side * side == shape[1]:
            return side, side
    raise ValueError(
        f"Deep supervision needs 4-D feature maps (B, H, W, C) or square "
        f"token grids (B, T, D) with T = H * W; layer '{name}' outputs "
        f"{shape}.")


def _as_grid(relevance, grid):
    """`(B, K, T, D)` token relevance as `(B, K, H, W, D)`."""
    if grid is None:
        return relevance
    # No layer name: the Dual ISNet reshapes each target once per map.
    return keras.layers.Reshape(
        (relevance.shape[1], *grid, relevance.shape[-1]),
        dtype=relevance.dtype)(relevance)


def build_train_graph(lrp_graph, variant="selective", class_policy="lowest",
                      deep_supervision=(), seed=None):
    """The train-time functional graph of an ISNet.

    Args:
        lrp_graph: An `LRPGraph` of the classifier.
        variant: One of `VARIANTS`.
        class_policy: Selective only: `"lowest"`, `"highest"` or `"label"`.
        deep_supervision: Names of hidden layers whose relevance is also
            returned: 4-D feature maps, or token sequences `(B, T, D)` with
            `T` square (patch tokens in row-major order), returned as
            `(B, K, sqrt(T), sqrt(T), D)`.
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
    grids = [_supervised_grid(name, tensor)
             for name, tensor in zip(deep_supervision, targets)]
    maps, hidden = [], []
    for start, relevance, rule in _heatmaps(lrp_graph, variant, class_policy,
                                            labels, seed):
        found = lrp_graph.propagate(start, relevance, rule=rule,
                                    targets=targets)
        maps.append(found[id(lrp_graph.input)])
        hidden.append([_as_grid(found[id(t)], grid)
                       for t, grid in zip(targets, grids)])
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


def default_heatmap_weight(layers):
    """The P that `build_isnet` uses for a classifier of `layers`:
    `DEFAULT_ATTENTION_P` (0.8) when it has attention layers, else
    `DEFAULT_P` (0.95).

    Example:

    >>> from isnet_keras.backbones import vit_small
    >>> default_heatmap_weight(vit_small(10, 32).layers)
    0.8
    """
    return DEFAULT_ATTENTION_P if composites_lib.has_attention(layers) \
        else DEFAULT_P


def resolve_heatmap_weight(P, layers):
    """`P` as a float in [0, 1]; `"auto"` is `default_heatmap_weight` of
    the classifier's `layers`.

    Raises:
        ValueError: another string, or a number outside [0, 1].
    """
    if isinstance(P, str):
        if P != "auto":
            raise ValueError(f"P must be 'auto' or a number in [0, 1], "
                             f"received {P!r}.")
        return default_heatmap_weight(layers)
    if not 0.0 <= float(P) <= 1.0:
        raise ValueError(f"P must lie in [0, 1], received {P}.")
    return float(P)


def default_optimizer():
    """The optimizer `ISNet.compile()` uses when given none.

    Adam at 3e-3 with the global gradient norm clipped at 0.3, chosen on the
    bias zoo (docs/results.md): at 1e-3 the Selective ISNet still kept part
    of the Shapes cue after 8 epochs. The heatmap loss makes a few steps in
    a hundred spikes (on the zoo's CNN: median norm 0.13-0.48 per epoch,
    2-14 % of the steps above 1, up to 98); clipped at 1 they still filled
    Adam's second moment and slowed learning, and without clipping the
    ISNet reached 0.70 instead of 0.94. (The papers train with SGD, 1e-3,
    momentum 0.99.)
    """
    return keras.optimizers.Adam(3e-3, global_clipnorm=DEFAULT_CLIPNORM)


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


def require_isnet(model, who):
    """Refuses a model that is not an `ISNet`.

    Args:
        model: The model a callback was given.
        who: The callback's name, for the message.

    Raises:
        TypeError: `model` is not an `ISNet`.
    """
    if not isinstance(model, ISNet):
        raise TypeError(f"{who} works on an ISNet model, received "
                        f"{type(model).__name__}.")


@keras.saving.register_keras_serializable(package="isnet_keras")
class ISNet(Trainer):
    """A classifier trained so that its LRP heatmaps ignore the background.

    Create it with `build_isnet`. `call()` runs the classifier alone (so
    `predict()` and exports see the deploy graph); `fit()` and `evaluate()`
    take data `(images, {"label": labels, "mask": masks})` (or
    `(images, (labels, masks))`): integer labels `(B,)` and binary masks
    `(B, H, W[, 1])`, 1 = foreground; a mask of -1 everywhere marks an image
    without annotation, which trains on cross-entropy only (the heatmap
    loss averages over annotated images, 0 if none). The training step, its data checks
    and its skipping of non-finite steps are `Trainer`'s.

    Args:
        classifier: A Functional or Sequential classifier (logits or softmax
            output).
        variant: `"selective"` (default), `"original"`, `"stochastic"` or
            `"dual"`.
        heatmap_loss: A heatmap loss (defaults to `GWRPHeatmapLoss()`).
        P: float in [0, 1], the weight of the heatmap loss, or `"auto"`
            (default): 0.95, or 0.8 for a classifier with attention layers
            (`default_heatmap_weight`).
        epsilon: LRP-epsilon stabiliser. Defaults to 1e-2.
        first_layer_rule: `"zb"` (default) or `"epsilon"`.
        input_bounds: `(lower, upper)` model input range for Z^B.
        class_policy: Selective only: `"lowest"` (default), `"highest"`,
            `"label"`.
        deep_supervision: `"auto"` (default): penalise the relevance at
            the hidden layers `backbones.deep_supervision_layers` picks (the
            papers' choice for `keras.applications` backbones, the last
            feature map of each resolution for any other classifier); a
            sequence of layer names (4-D feature maps, or patch tokens
            `(B, T, D)` with `T` square, scored on the patch grid); or
            `()` for the input heatmap only. Hidden relevance shows
            shortcuts that hidden units take through their biases, which
            the input heatmap cannot show.
        deep_supervision_decay: GWRP decay combining per-layer losses.
        seed: Seed of the Stochastic variant's class draws.
        hidden_losses: Optional `GWRPHeatmapLoss` per deep-supervision
            layer (each with its own C1, C2); default ones otherwise.
        composite: Optional `lrp.composites.Composite`, the LRP rule of
            each layer (default: the papers', see `first_layer_rule`).
        foreground_band: `"auto"` (default): at the start of the first
            `fit`, raise the upper bound C2 of every GWRP loss to twice the
            median foreground total of the untrained network on the first
            two training batches, where that is higher (networks with
            batch norm start far above the default band;
            docs/algorithm.md, "The foreground band"); the value becomes
            `"fixed"`. `"fixed"`: keep the losses' bands as given.
        patch_masks: `"auto"` (default): when the classifier begins with a
            patch embedding (a ViT; `patch_masks.patch_embedding_size`),
            the input heatmap loss scores against masks widened to whole
            patches, since the embedding spreads each token's relevance
            over its patch (docs/algorithm.md, "Masks of patch networks");
            exact masks for any other classifier. An int: that patch size
            (1: exact masks). Metrics and deep supervision use the exact
            masks.
        **kwargs: `keras.Model` arguments (`name`).
    """

    def __init__(self, classifier, variant="selective", heatmap_loss=None,
                 P="auto", epsilon=1e-2, first_layer_rule="zb",
                 input_bounds=(0.0, 1.0), class_policy="lowest",
                 deep_supervision="auto", deep_supervision_decay=0.8,
                 seed=None, hidden_losses=None, composite=None,
                 foreground_band="auto", patch_masks="auto", **kwargs):
        _check_classifier(classifier)
        foreground_bands.check_foreground_band(foreground_band)
        kwargs.setdefault("name", f"isnet_{classifier.name}")
        super().__init__(classifier, **kwargs)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, received "
                             f"{variant!r}.")
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
        self.composite = composite
        self.foreground_band = foreground_band
        self.patch_masks = patch_masks
        lrp_graph = graph_lib.LRPGraph(
            classifier, epsilon=epsilon, first_layer_rule=first_layer_rule,
            input_bounds=input_bounds, composite=composite)
        # Defaults that depend on the classifier's layers, read off the
        # graph's trace (leaf layers of nested models included).
        P = resolve_heatmap_weight(
            P, [call.layer for call in lrp_graph.traced.calls])
        self.mask_patch_size = patch_masks_lib.resolve_patch_masks(
            patch_masks, lrp_graph.traced)
        self.num_classes = lrp_graph.num_classes
        self.train_graph = build_train_graph(
            lrp_graph, variant, class_policy, self.deep_supervision, seed)
        self.heatmap_weight = keras.Variable(float(P), trainable=False,
                                             name="P", dtype="float32")
        self.heatmap_tracker = keras.metrics.Mean(name="heatmap_loss")
        self.fraction_tracker = BackgroundRelevanceFraction(
            name="background_fraction")
        # The classifier is built, so is the ISNet; this also lets a loaded
        # model rebuild its optimizer and restore its state.
        self.built = True

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
        `default_optimizer()` (Adam 3e-3, global norm clipping at 0.3)."""
        super().compile(optimizer=optimizer or default_optimizer(), **kwargs)

    def compile_from_config(self, config):
        # Keras does not recompile a loaded model whose compile() is
        # overridden; this one only fills in the default optimizer, so the
        # saved compile arguments apply as they are.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, *args, **kwargs):
        """`Trainer.fit`; with `foreground_band="auto"`, the bands are first
        widened to the relevance of the untrained network
        (`foreground_bands.widen_to_initial_relevance`)."""
        if self.foreground_band == "auto":
            batch_size = args[0] if args else kwargs.get("batch_size")
            batches, x = foreground_bands.first_batches(x, y, batch_size)
            if batches:
                try:
                    foreground_bands.widen_to_initial_relevance(self, batches)
                except tf.errors.InvalidArgumentError:
                    # Bad data (images outside the Z^B bounds, ...): the
                    # training step's checks report it, with their message.
                    pass
        return super().fit(x, y, *args, **kwargs)

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
        labels = self.check_labels(labels)
        out = self.train_graph_outputs(images, labels, training=training)
        logits = out["logits"]
        classification = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True))
        heatmaps = out["heatmaps"]
        heatmap = self.heatmap_loss(self._input_heatmap_masks(masks),
                                    heatmaps)
        if self.deep_supervision:
            layer_losses = [heatmap] + [
                loss(masks, h)
                for loss, h in zip(self.hidden_losses, out["hidden"])]
            heatmap = _combine_layer_losses(layer_losses,
                                            self.deep_supervision_decay)
        weight = tf.cast(self.heatmap_weight, heatmap.dtype)
        classification = tf.cast(classification, heatmap.dtype)
        total = (1.0 - weight) * classification + weight * heatmap
        total = total + regularization_loss(self.classifier, total.dtype)
        return LossTerms(total=total, classification=classification,
                         logits=logits, labels=labels, heatmap=heatmap,
                         heatmaps=heatmaps, masks=masks)

    def _input_heatmap_masks(self, masks):
        """The masks the input heatmap loss scores against: widened to
        whole patches for a patch-embedding classifier."""
        if self.mask_patch_size == 1:
            return masks
        masks = data_checks.mask_batch(masks)
        # Checked before widening, which could hide a mixed mask.
        with tf.control_dependencies(data_checks.partial_mask_checks(masks)):
            return patch_masks_lib.widen_masks_to_patches(
                tf.identity(masks), self.mask_patch_size)

    def _update_metrics(self, terms):
        super()._update_metrics(terms)
        self.heatmap_tracker.update_state(terms.heatmap)
        self.fraction_tracker.update_state(terms.heatmaps, terms.masks)

    def foreground_totals(self, data, batch_size=64):
        """Per-image relevance totals `v = sum |H|` of the maps that the
        foreground bands (C1, C2) of the heatmap losses bound.

        The maps are computed in training mode, as the loss sees them
        (batch statistics, dropout): with batch norm, inference-mode totals
        after a short warm-up can be orders of magnitude smaller. The
        forward pass updates the batch-norm moving statistics.

        Args:
            data: Images (measured in batches of `batch_size`), or an
                iterable of `(images, targets)` batches or of image batches.
            batch_size: int. The batch size of in-memory images.

        Returns:
            A list with an `(N, M)` float array for the input heatmaps, then
            one per deep-supervision layer: the totals of each map that
            gets its own band, `M = 2` for the Dual ISNet's z+ and
            LRP-epsilon maps, else `M = 1` (the mean over the heatmaps of an
            image).
        """
        batches = data
        if isinstance(batches, np.ndarray):
            batches = [batches[i:i + batch_size]
                       for i in range(0, len(batches), batch_size)]
        totals = []
        for batch in batches:
            images, labels = batch, None
            if isinstance(batch, (tuple, list)):
                images = batch[0]
                if self.explains_labels:
                    labels = unpack_batch(batch)[1]
            outputs = self.train_graph_outputs(images, labels, training=True)
            totals.append([
                np.abs(np.asarray(maps)).sum(axis=(2, 3, 4))
                for maps in [outputs["heatmaps"], *outputs["hidden"]]])
        totals = [np.concatenate(parts) for parts in zip(*totals)]
        if self.variant == "dual":
            return totals
        return [values.mean(axis=1, keepdims=True) for values in totals]

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
            "composite": keras.saving.serialize_keras_object(self.composite),
            "foreground_band": self.foreground_band,
            "patch_masks": self.patch_masks,
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
        config["composite"] = keras.saving.deserialize_keras_object(
            config.get("composite"))
        return cls(**config)


def __getattr__(name):
    # `build_isnet` lives in `isnet_keras.builder`, which imports this
    # module; it is loaded on first use.
    if name == "build_isnet":
        from isnet_keras.builder import build_isnet
        return build_isnet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
