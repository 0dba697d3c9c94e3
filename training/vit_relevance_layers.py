"""Where a ViT's relevance goes, layer by layer.

Trains the ViT of docs/results.md's runs (`vit_small` with the token mean,
a GELU MLP and softmax attention) on one bias-zoo family with the zoo's
recipe of those runs (plain, or the ISNet with the absorbing rules and exact
masks, the library's defaults then), then explains the predicted class of biased
test images and reports, at the pixels and at each token layer (patch
embedding, position-embedded tokens, every block's attention sum and output,
the final norm, the token mean): the median ratio of the summed relevance to
the explained logit, and the share of `|R|` on patches without foreground
(the mask resized to the patch grid by the any-foreground rule).

    python training/vit_relevance_layers.py --model isnet [--family frame]
        [--seed 0] [--epochs 12] [--images 200]
        [--position-relevance absorb|identity] [--out FILE]

`--position-relevance identity` trains and explains with the position
embedding passing all of its relevance to the patch tokens instead of
keeping its share (an experiment, not a rule of the library).
"""

import argparse
import json
import sys
import time

TOKEN_LAYERS = ("tokens", "position_embedding")


def token_layer_names(depth=4):
    """The `vit_small` layers whose relevance is measured, input side first."""
    blocks = [f"block{block}_{part}" for block in range(1, depth + 1)
              for part in ("attention_add", "out")]
    return (*TOKEN_LAYERS, *blocks, "final_norm", "token_pool")


def layer_relevance(classifier, images, masks, layer_names,
                    composite=None):
    """Per layer: relevance sum over the logit, and background share.

    Args:
        classifier: A `vit_small` classifier (logits output).
        images: `(N, H, W, C)` images.
        masks: `(N, H, W, 1)` binary masks.
        layer_names: Names of token layers `(N, T, D)` (T square) or of
            the pooled `(N, D)` layer, whose relevance is measured besides
            the pixels'.
        composite: Optional `Composite` (default: `LRPGraph`'s).

    Returns:
        A dict from `"input"` and each name to `{"sum_over_logit": median
        of sum(R) / logit, "background_share": mean share of |R| outside
        the mask}` (no share for a pooled layer).
    """
    import numpy as np
    import tensorflow as tf

    from isnet_keras.losses import resize_masks
    from isnet_keras.lrp.explain import build_heatmap_model
    from isnet_keras.lrp.graph import LRPGraph

    probe = build_heatmap_model(LRPGraph(classifier, composite=composite),
                                hidden_layers=tuple(layer_names))
    values = probe.predict(images, batch_size=50, verbose=0)
    logit = values["logits"].max(-1)
    report = {}
    values["input"] = values["heatmaps"]
    for name in ("input", *layer_names):
        relevance = np.asarray(values[name])[:, 0]
        flat = relevance.reshape(len(relevance), -1)
        entry = {"sum_over_logit": float(np.median(flat.sum(1) / logit))}
        if name == "input":
            spread, mask = np.abs(relevance).sum(-1), masks[..., 0]
        elif relevance.ndim == 3:
            side = int(round(relevance.shape[1] ** 0.5))
            spread = np.abs(relevance).sum(-1).reshape(-1, side, side)
            mask = np.asarray(resize_masks(tf.constant(masks, tf.float32),
                                           side, side))[..., 0]
        else:
            report[name] = entry
            continue
        outside = (spread * (1.0 - mask)).reshape(len(spread), -1).sum(1)
        total = spread.reshape(len(spread), -1).sum(1)
        entry["background_share"] = float(np.mean(outside / (total + 1e-12)))
        report[name] = entry
    return report


def _pass_position_relevance_through():
    # Experiment only: every PositionEmbeddingMirror in this process gives
    # its whole relevance to the patch tokens.
    from isnet_keras.lrp import transformer_mirrors

    def identity(self, relevance, inputs, outputs, training=None):
        return [relevance]

    transformer_mirrors.PositionEmbeddingMirror.propagate = identity


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("plain", "isnet"), required=True)
    parser.add_argument("--family", default="frame")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--position-relevance", default="absorb",
                        choices=("absorb", "identity"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from isnet_keras.backbones import vit_small
    from isnet_keras.baselines import PlainClassifier
    from isnet_keras.data.zoo import make_zoo_benchmark
    from isnet_keras.isnet import build_isnet, default_optimizer
    from isnet_keras.lrp.composites import default_composite

    if args.position_relevance == "identity":
        _pass_position_relevance_through()
    bench = make_zoo_benchmark(args.family, source="auto", seed=args.seed,
                               limit_per_class=200, test_per_class=200)
    train = bench.train
    keras.utils.set_random_seed(args.seed)
    classifier = vit_small(int(train.labels.max()) + 1,
                           train.images.shape[1], train.images.shape[-1],
                           pooling="mean", mlp_activation="gelu",
                           attention="softmax")
    absorbing = default_composite()
    if args.model == "isnet":
        model = build_isnet(classifier, composite=absorbing, patch_masks=1)
        model.compile()
    else:
        model = PlainClassifier(classifier)
        model.compile(optimizer=default_optimizer())
    start = time.perf_counter()
    model.fit(train.images, {"label": train.labels, "mask": train.masks},
              epochs=args.epochs, batch_size=32, verbose=2)
    result = {"model": args.model, "family": args.family, "seed": args.seed,
              "position_relevance": args.position_relevance,
              "seconds": time.perf_counter() - start,
              "test": {name: float(np.mean(classifier.predict(
                  test.images, verbose=0).argmax(-1) == test.labels))
                  for name, test in bench.test.items()}}
    biased = bench.test["biased"]
    result["layers"] = layer_relevance(
        classifier, biased.images[:args.images], biased.masks[:args.images],
        token_layer_names(), composite=absorbing)
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
