"""Draws test samples of every bias-zoo family, biased and confounding.

One row per family; the columns come in pairs, one pair per class shown:
the biased image (cue of its own class y) and the confounding image of the
same digit (cue of class y + 1). The cyan line outlines the foreground
mask, which never covers a cue.

    python training/plot_zoo_samples.py [--out docs/figures/zoo_samples.png]
        [--source auto|idx|keras|digits] [--mnist-dir DIR] [--classes-shown 5]
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from plot_bias_samples import (  # noqa: E402
    MASK_COLOUR,
    describe_source,
    draw_sample,
    pick_examples,
)

from isnet_keras.data import ZOO_FAMILIES, make_zoo_benchmark  # noqa: E402

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPOSITORY_ROOT / "docs" / "figures" / "zoo_samples.png"
SHOWN_SETS = ("biased", "confounding")


def caption(set_name, label):
    if set_name == "confounding":
        return f"y={label}, cue {(label + 1) % 10}"
    return f"y={label}, biased"


def plot(benchmarks, classes_shown, output):
    rows = len(benchmarks)
    columns = classes_shown * len(SHOWN_SETS)
    figure, axes = plt.subplots(
        rows, columns, figsize=(1.05 * columns + 0.9, 1.15 * rows + 0.7),
        squeeze=False,
    )
    for row, bench in enumerate(benchmarks):
        examples = pick_examples(bench.test["biased"].labels, classes_shown)
        for pair, index in enumerate(examples):
            for offset, set_name in enumerate(SHOWN_SETS):
                image_set = bench.test[set_name]
                axis = axes[row, pair * len(SHOWN_SETS) + offset]
                draw_sample(axis, image_set.images[index, ..., 0],
                            image_set.masks[index, ..., 0], boxes=())
                label = int(image_set.labels[index])
                axis.set_title(caption(set_name, label), fontsize=6, pad=2)
        size = bench.test["biased"].images.shape[1]
        axes[row, 0].set_ylabel(f"{bench.family}\n{size}x{size}", fontsize=8)
    legend = [Line2D([], [], color=MASK_COLOUR, linewidth=1.2,
                     label="mask outline (1 inside)")]
    figure.legend(handles=legend, loc="lower center", fontsize=8,
                  frameon=False)
    figure.suptitle(
        f"Bias zoo test samples ({describe_source(benchmarks[0].source)}): "
        "biased image, then the same digit with the next class's cue",
        fontsize=9,
    )
    figure.tight_layout(rect=(0, 0.025, 1, 0.98))
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=90, facecolor="white")
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--source", default="auto", choices=("auto", "idx", "keras", "digits")
    )
    parser.add_argument("--mnist-dir", type=Path, default=None)
    parser.add_argument("--classes-shown", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    # A few digits per class are enough for a figure and keep it quick.
    parser.add_argument("--limit-per-class", type=int, default=20)
    args = parser.parse_args()
    benchmarks = [
        make_zoo_benchmark(
            family, source=args.source, seed=args.seed,
            limit_per_class=args.limit_per_class, mnist_dir=args.mnist_dir,
        )
        for family in ZOO_FAMILIES
    ]
    # Sanity: the cue never lies under the mask in what is drawn.
    for bench in benchmarks:
        clean = bench.test["clean"].images
        for set_name in SHOWN_SETS:
            shown = bench.test[set_name]
            assert not ((shown.images != clean) & (shown.masks == 1)).any()
    plot(benchmarks, args.classes_shown, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
