"""`build_isnet`: wraps a classifier in an `ISNet`.

It takes every argument of `ISNet` (with the same defaults) and forwards
them; `isnet_keras.isnet.build_isnet` is this function.
"""

from isnet_keras.isnet import ISNet


def build_isnet(classifier, variant="selective", heatmap_loss=None,
                P="auto", epsilon=1e-2, first_layer_rule="zb",
                input_bounds=(0.0, 1.0), class_policy="lowest",
                deep_supervision="auto", seed=None,
                deep_supervision_decay=0.8, hidden_losses=None,
                composite=None, foreground_band="auto", patch_masks="auto",
                **kwargs):
    """Wraps a classifier in an ISNet (train-time graph + deploy model).

    Args:
        classifier: A Functional or Sequential `keras.Model` with one image
            input and a logits (or softmax) output; `keras.applications`
            backbones inside a head are supported.
        variant: `"selective"`, `"original"`, `"stochastic"` or `"dual"`.
            Selective (the default) or Stochastic for training from scratch:
            on the bias zoo (docs/results.md, "Variants under the
            defaults") the Stochastic ISNet matches the Selective one in as
            many optimizer steps, and the Original ISNet, which explains
            every class (K LRP passes a step), was still at 0.54-0.87
            accuracy after 24 epochs at 4-6x the Stochastic's time.
        heatmap_loss: `GWRPHeatmapLoss` (default) or `VarianceHeatmapLoss`.
        P: Weight of the heatmap loss in `(1 - P) CE + P L_H`, or
            `"auto"` (default): 0.95, or 0.8 for a classifier with
            attention layers.
        epsilon: LRP-epsilon stabiliser.
        first_layer_rule: `"zb"` or `"epsilon"`.
        input_bounds: `(lower, upper)` input range for Z^B.
        class_policy: Selective: `"lowest"`, `"highest"` or `"label"`.
        deep_supervision: `"auto"` (default; see `ISNet`), hidden layer
            names, or `()` for none.
        seed: Stochastic variant seed.
        deep_supervision_decay: GWRP decay combining per-layer losses.
        hidden_losses: Optional heatmap loss per deep-supervision layer.
        composite: Optional `lrp.composites.Composite`: the LRP rule of each
            layer (defaults to the papers', from `first_layer_rule`).
        foreground_band: `"auto"` (default): the first `fit` raises each
            heatmap loss's upper bound C2 to twice the untrained network's
            median foreground relevance, where that is higher (batch-norm
            networks start far above the default band); `"fixed"`: the
            losses' bands as given.
        patch_masks: `"auto"` (default): for a classifier that begins
            with a patch embedding (a ViT), the input heatmap loss scores
            against masks widened to whole patches; an int: that patch
            size (1: exact masks).
        **kwargs: `keras.Model` arguments of the `ISNet` (`name`).

    Returns:
        An `ISNet`; `isnet.deploy_model` is `classifier`.

    Example:

    >>> isnet = build_isnet(classifier)  # Selective, P 0.95, deep supervision
    >>> isnet.compile()                   # Adam 3e-3, global clipping at 0.3
    >>> isnet.fit(train_ds, validation_data=val_ds, epochs=10)
    >>> isnet.deploy_model.export("serving/1")
    """
    return ISNet(classifier, variant=variant, heatmap_loss=heatmap_loss, P=P,
                 epsilon=epsilon, first_layer_rule=first_layer_rule,
                 input_bounds=input_bounds, class_policy=class_policy,
                 deep_supervision=deep_supervision, seed=seed,
                 deep_supervision_decay=deep_supervision_decay,
                 hidden_losses=hidden_losses, composite=composite,
                 foreground_band=foreground_band, patch_masks=patch_masks,
                 **kwargs)
