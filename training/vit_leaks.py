"""Which parts of a ViT let a shortcut hide from the ISNet's heatmaps.

Trains one ISNet (every `build_isnet` default but `P`) on a bias-zoo family
with a ViT like `backbones.vit_small`, changed by the options below, and
reports the biased, clean and confounding test accuracies, the background
fraction of the heatmaps on biased test images, and the confounding accuracy
after each epoch (one line per epoch):

    python training/vit_leaks.py [--family frame] [--seed 0] [--epochs 12]
        [--pooling mean|class_token] [--mlp-activation gelu|relu]
        [--attention softmax|relu] [--patch-masks]
        [--position-relevance absorb|identity] [--bias-relevance absorb|ignore]
        [--P 0.95] [--learning-rate 3e-3] [--out FILE]

The network is `backbones.vit_small` with its `pooling` (the token mean, or a
class token as keras-hub's ViT has), `mlp_activation` and `attention` (the
softmax, or `ReLUAttention`'s `relu(l) / T_k`) options.

`--bias-relevance ignore` trains and explains with
`default_composite(bias_relevance="ignore")`: no bias, LayerNorm shift or
position embedding is part of any rule's `z`, so every layer passes on all
of the relevance it receives. `--position-relevance identity` changes one
LRP rule for this experiment only, inside `experiment_rules` (restored on
exit; not an option of the library): the position embedding gives all of
its relevance to the patch tokens while the biases still absorb theirs.
`--patch-masks` trains on masks widened to whole patches (a patch with any
foreground pixel is foreground; `build_isnet(patch_masks="auto")`, the
library's default since these runs): the patch embedding spreads a token's
relevance over its whole patch, so a token on the object's edge puts some
on background pixels whatever the network does. Without it the ISNet
trains on the exact masks (`patch_masks=1`). The reported background
fraction always uses the exact masks.
"""

import argparse
import contextlib
import json
import pathlib
import sys
import time


@contextlib.contextmanager
def experiment_rules(position_relevance="absorb"):
    """Swaps the position embedding's rule, then restores it.

    Args:
        position_relevance: `"absorb"` (the library's rule) or
            `"identity"` (all of it to the patch tokens).

    Yields:
        None. LRP graphs built and run inside use the chosen rule.
    """
    from isnet_keras.lrp import transformer_mirrors

    saved = transformer_mirrors.PositionEmbeddingMirror.propagate
    try:
        if position_relevance == "identity":
            transformer_mirrors.PositionEmbeddingMirror.propagate = (
                lambda self, relevance, inputs, outputs, training=None:
                [relevance])
        yield
    finally:
        transformer_mirrors.PositionEmbeddingMirror.propagate = saved


def run(args):
    """Trains and tests one ISNet; returns the result dict."""
    import keras
    import numpy as np

    from isnet_keras.backbones import vit_small
    from isnet_keras.data.zoo import make_zoo_benchmark
    from isnet_keras.isnet import DEFAULT_CLIPNORM, build_isnet
    from isnet_keras.lrp.composites import default_composite
    from isnet_keras.lrp.explain import Explainer
    from isnet_keras.metrics import background_relevance_fraction

    bench = make_zoo_benchmark(args.family, source=args.source,
                               seed=args.seed,
                               limit_per_class=args.limit_per_class,
                               test_per_class=args.test_per_class)
    train = bench.train
    confounding = bench.test["confounding"]
    keras.utils.set_random_seed(args.seed)
    classifier = vit_small(int(train.labels.max()) + 1,
                           train.images.shape[1], train.images.shape[-1],
                           pooling=args.pooling,
                           mlp_activation=args.mlp_activation,
                           attention=args.attention)

    def accuracy(test):
        predicted = classifier.predict(test.images, batch_size=256,
                                       verbose=0).argmax(-1)
        return float(np.mean(predicted == test.labels))

    curve = []
    report = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: (
        curve.append(accuracy(confounding)),
        print(f"epoch {epoch + 1}: training accuracy "
              f"{logs['accuracy']:.3f}, confounding {curve[-1]:.3f}",
              flush=True)))
    composite = default_composite(bias_relevance=args.bias_relevance)
    with experiment_rules(args.position_relevance):
        isnet = build_isnet(classifier, P=args.P, composite=composite,
                            patch_masks="auto" if args.patch_masks else 1)
        isnet.compile(optimizer=keras.optimizers.Adam(
            args.learning_rate, global_clipnorm=DEFAULT_CLIPNORM))
        start = time.perf_counter()
        history = isnet.fit(train.images, {"label": train.labels,
                                           "mask": train.masks},
                            epochs=args.epochs, batch_size=32, verbose=0,
                            callbacks=[report])
        seconds = time.perf_counter() - start
        biased = bench.test["biased"]
        heatmaps = Explainer(classifier, composite=composite)(
            biased.images[:300], "predicted")[:, 0]
    fraction = background_relevance_fraction(heatmaps, biased.masks[:300])
    return {**vars(args), "seconds": seconds,
            **{name: accuracy(test) for name, test in bench.test.items()},
            "background_fraction": float(np.mean(np.asarray(fraction))),
            "training_accuracy": float(history.history["accuracy"][-1]),
            "confounding_per_epoch": curve}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="frame")
    parser.add_argument("--source", default="auto",
                        choices=("auto", "digits", "keras"),
                        help="the digits: MNIST (found beside the repository "
                             "or in the Keras cache), scikit-learn's digits, "
                             "or keras.datasets (downloads)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--pooling", choices=("mean", "class_token"),
                        default="mean")
    parser.add_argument("--mlp-activation", choices=("gelu", "relu"),
                        default="gelu")
    parser.add_argument("--attention", choices=("softmax", "relu"),
                        default="softmax")
    parser.add_argument("--patch-masks", action="store_true")
    parser.add_argument("--position-relevance", default="absorb",
                        choices=("absorb", "identity"))
    parser.add_argument("--bias-relevance", default="absorb",
                        choices=("absorb", "ignore"))
    parser.add_argument("--P", type=float, default=0.95)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--limit-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--out", default=None)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
