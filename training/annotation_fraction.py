"""How many masks does the default ISNet need? One bias-zoo family with a
fraction of the training masks kept and the others set to -1 (no
annotation: those images train on cross-entropy only).

For each fraction, a seeded random subset of the training images keeps its
mask; the same CNN, data and order as `isnet bench zoo`, 12 epochs, batch 64,
with `build_isnet(classifier)` at every default. With `--boxes`, each kept
mask is replaced by its bounding box (widened by `--box-margin` pixels), as
`isnet train --boxes` would make it from a box file. Prints
and writes (`--out`, JSON) the biased / clean / confounding test accuracies
with Wilson 95% intervals and the background fraction on biased test
images.

    python training/annotation_fraction.py [--family frame] [--seed 0]
        [--fractions 1 0.25 0.1 0.05] [--epochs 12] [--boxes] [--box-margin N]
        [--out FILE]
"""

import argparse
import json
import time


def bounding_box_masks(masks, margin=0):
    """Each `(H, W, 1)` mask replaced by the filled box around its
    foreground (`isnet_keras.data.boxes.box_mask`), widened by `margin`."""
    import numpy as np

    from isnet_keras.data.boxes import box_mask

    boxed = np.zeros_like(masks)
    height, width = masks.shape[1:3]
    for index, mask in enumerate(masks[..., 0] > 0.5):
        rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        box = (columns[0], rows[0], columns[-1] + 1, rows[-1] + 1)
        boxed[index, ..., 0] = box_mask([box], (height, width), margin)
    return boxed


def run(family, seed, fraction, epochs, batch_size=64, boxes=False,
        box_margin=0):
    import keras
    import numpy as np

    from isnet_keras.bench.bias import bench_classifier
    from isnet_keras.bench.zoo import _test_row
    from isnet_keras.data.zoo import make_zoo_benchmark
    from isnet_keras.isnet import build_isnet
    from isnet_keras.lrp.explain import Explainer

    bench = make_zoo_benchmark(family, seed=seed, limit_per_class=200)
    train = bench.train
    count = len(train.labels)
    annotated = np.random.default_rng([seed, 7]).permutation(count)[
        :int(round(fraction * count))]
    kept = (bounding_box_masks(train.masks, box_margin) if boxes
            else train.masks)
    masks = np.full_like(train.masks, -1.0)
    masks[annotated] = kept[annotated]
    keras.utils.set_random_seed(seed)
    classifier = bench_classifier(train.images.shape[1:],
                                  int(train.labels.max()) + 1)
    isnet = build_isnet(classifier)
    isnet.compile()
    start = time.perf_counter()
    isnet.fit(train.images, {"label": train.labels, "mask": masks},
              epochs=epochs, batch_size=batch_size, verbose=0)
    row = {"family": family, "seed": seed, "fraction": fraction,
           "masks": f"boxes, margin {box_margin}" if boxes else "exact",
           "annotated": int(len(annotated)), "train_images": int(count),
           **_test_row(classifier, Explainer(classifier), bench, 500),
           "seconds": time.perf_counter() - start}
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="frame")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fractions", type=float, nargs="+",
                        default=(1.0, 0.25, 0.1, 0.05))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--boxes", action="store_true",
                        help="Train on each mask's bounding box instead.")
    parser.add_argument("--box-margin", type=int, default=0)
    parser.add_argument("--out", default="runs/annotation_fraction.json")
    args = parser.parse_args()
    rows = []
    for fraction in args.fractions:
        row = run(args.family, args.seed, fraction, args.epochs,
                  boxes=args.boxes, box_margin=args.box_margin)
        rows.append(row)
        print(f"{row['fraction']:>5.2f} ({row['annotated']}/"
              f"{row['train_images']})  biased {row['biased']:.3f}  clean "
              f"{row['clean']:.3f}  confounding {row['confounding']:.3f}  "
              f"bg {row['background_fraction']:.3f}  "
              f"{row['seconds']:.0f} s", flush=True)
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
