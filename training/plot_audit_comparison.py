"""Shortcut audit of a plain CNN and of a default ISNet on Shapes, side by side.

Trains both models on the Shapes bias benchmark built from scikit-learn's
digits (150 images per class), as in
`tests/test_audit.py::test_audit_tells_a_shortcut_model_from_an_isnet_on_shapes`:
the plain `bench_classifier` for 2 epochs, the default ISNet
`build_isnet(bench_classifier(...))` for 8 epochs, Adam 3e-3 and batches of
32 for both. Both are audited (`isnet_keras.shortcut_audit.audit`) on the
held-out biased images (validation split + biased test set) with the same
donor seed. Prints one markdown table row per model and writes one figure:
the same four images for each model, original / swapped / neutral, titled
with the predictions, the mask outlined.

    python training/plot_audit_comparison.py
        [--out docs/figures/audit_plain_vs_isnet.png] [--seed 0] [--overwrite]
"""

import argparse
import time
from pathlib import Path

import keras
import numpy as np
from matplotlib.figure import Figure

from isnet_keras.baselines import PlainClassifier
from isnet_keras.bench.bias import bench_classifier
from isnet_keras.data import make_bias_benchmark
from isnet_keras.isnet import build_isnet
from isnet_keras.shortcut_audit import audit

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPOSITORY_ROOT / "docs" / "figures" / "audit_plain_vs_isnet.png"
NUM_EXAMPLES = 4


def train_and_audit(seed):
    """Trains the plain CNN and the default ISNet and audits both.

    Args:
        seed: int. Seed of the benchmark, of the weights and of the donors.

    Returns:
        `[("plain CNN", AuditResult), ("default ISNet", AuditResult)]`.
    """
    bench = make_bias_benchmark("shapes", source="digits",
                                limit_per_class=150, seed=seed)
    images, labels, masks = (
        np.concatenate([getattr(bench.val, name),
                        getattr(bench.test["biased"], name)])
        for name in ("images", "labels", "masks"))
    targets = {"label": bench.train.labels, "mask": bench.train.masks}

    keras.utils.set_random_seed(seed)
    classifier = bench_classifier((40, 40, 1), 10)
    plain = PlainClassifier(classifier)
    plain.compile(optimizer=keras.optimizers.Adam(3e-3))
    plain.fit(bench.train.images, targets, epochs=2, batch_size=32, verbose=0)
    plain_audit = audit(classifier, images, labels, masks, seed=seed,
                        num_examples=NUM_EXAMPLES)

    keras.utils.set_random_seed(seed)
    isnet = build_isnet(bench_classifier((40, 40, 1), 10))  # the defaults
    isnet.compile()
    isnet.fit(bench.train.images, targets, epochs=8, batch_size=32, verbose=0)
    isnet_audit = audit(isnet, images, labels, masks, seed=seed,
                        num_examples=NUM_EXAMPLES)
    return [("plain CNN", plain_audit), ("default ISNet", isnet_audit)]


def table_row(name, result):
    """One markdown table row: the four proportions and the verdict.

    Args:
        name: str. Model name, first column.
        result: `AuditResult`.

    Returns:
        str, e.g. `| plain CNN | 1.000 [0.992, 1.000] | ... | ... |`.
    """
    cells = [name]
    for share in (result.original_accuracy, result.swapped_accuracy,
                  result.neutral_accuracy, result.follows_background_rate):
        low, high = share.wilson_ci95
        cells.append(f"{share.value:.3f} [{low:.3f}, {high:.3f}]")
    cells.append(f"`{result.verdict}`")
    return "| " + " | ".join(cells) + " |"


def draw_panel(panel, examples, title):
    """Draws one model's examples into a subfigure: 3 rows x M columns.

    Args:
        panel: `matplotlib.figure.SubFigure`.
        examples: `AuditExamples`.
        title: str. Panel title.
    """
    names = examples.class_names
    rows = (("original", examples.original, examples.predicted_original),
            ("swapped\nbackground", examples.swapped,
             examples.predicted_swapped),
            ("neutral\nbackground", examples.neutral,
             examples.predicted_neutral))
    axes = panel.subplots(len(rows), len(examples.labels), squeeze=False)
    for row, (name, images, predicted) in enumerate(rows):
        for column, axis in enumerate(axes[row]):
            axis.imshow(images[column, ..., 0], cmap="gray", vmin=0.0,
                        vmax=1.0, interpolation="nearest")
            axis.contour(examples.masks[column, ..., 0], levels=[0.5],
                         colors="lime", linewidths=0.7)
            true = examples.labels[column]
            donor = (f", donor {names[examples.donor_labels[column]]}"
                     if row == 1 else "")
            axis.set_title(f"true {names[true]}{donor}\npred "
                           f"{names[predicted[column]]}", fontsize=8,
                           color="black" if predicted[column] == true
                           else "crimson")
            axis.set(xticks=[], yticks=[])
        axes[row, 0].set_ylabel(name, fontsize=9)
    panel.suptitle(title, fontsize=11)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if args.out.exists() and not args.overwrite:
        parser.error(f"{args.out} exists; pass --overwrite to replace it.")

    start = time.perf_counter()
    results = train_and_audit(args.seed)
    first, second = (result.examples for _, result in results)
    # Same inputs and seed: both audits keep the same images and donors.
    assert np.array_equal(first.original, second.original)
    assert np.array_equal(first.swapped, second.swapped)

    print("| model | original accuracy | swapped accuracy | neutral accuracy "
          "| follows background | verdict |")
    print("|---|---|---|---|---|---|")
    for name, result in results:
        print(table_row(name, result))

    figure = Figure(figsize=(12.5, 5.8), layout="constrained")
    panels = figure.subfigures(1, 2, wspace=0.04)
    for panel, (name, result) in zip(panels, results):
        draw_panel(panel, result.examples, name)
    figure.suptitle("Shortcut audit on Shapes (scikit-learn digits, "
                    f"{results[0][1].num_images} held-out images); follows "
                    "background: " + ", ".join(
                        f"{name} {result.follows_background_rate.value:.1%}"
                        for name, result in results)
                    + " (red: wrong prediction)", fontsize=11)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110, facecolor="white")
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
