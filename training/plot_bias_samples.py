"""Draws test samples of the two bias benchmarks with their mask outlines.

One row per test set (Shapes: biased, unbiased, confounding; DecoyMNIST:
biased, clean, randomized), the same test digits in every row of a
benchmark. The cyan line outlines the foreground mask; dotted orange boxes
are the candidate bias regions, where every mask is 0.

    python training/plot_bias_samples.py [--out docs/figures/bias_samples.png]
        [--source auto|idx|keras|digits] [--mnist-dir DIR] [--columns 10]
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from isnet_keras.data import (  # noqa: E402
    SHAPE_TABLE,
    decoy_candidate_regions,
    make_bias_benchmark,
    shapes_candidate_regions,
)
from isnet_keras.data.bias import (  # noqa: E402
    DECOY_CORNER_STARTS,
    DECOY_PATCH,
    SHAPE_SIZE,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPOSITORY_ROOT / "docs" / "figures" / "bias_samples.png"
MASK_COLOUR = "#00d5ff"
REGION_COLOUR = "#ff9d00"
# Mask outlines are traced on an upsampled copy so they follow pixel edges.
OUTLINE_UPSAMPLING = 8


def candidate_boxes(name):
    """(row, column, size) of every candidate bias region of a benchmark."""
    if name == "shapes":
        return [(*spec.origin, SHAPE_SIZE) for spec in SHAPE_TABLE]
    return [
        (row, col, DECOY_PATCH)
        for row in DECOY_CORNER_STARTS
        for col in DECOY_CORNER_STARTS
    ]


def draw_sample(axis, image, mask, boxes):
    height, width = image.shape
    axis.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    if mask.any():
        fine = np.kron(mask, np.ones((OUTLINE_UPSAMPLING, OUTLINE_UPSAMPLING)))
        axis.contour(
            fine,
            levels=[0.5],
            colors=[MASK_COLOUR],
            linewidths=0.9,
            extent=(-0.5, width - 0.5, height - 0.5, -0.5),
            origin="upper",
        )
    for row, col, size in boxes:
        axis.add_patch(
            Rectangle(
                (col - 0.5, row - 0.5), size, size, fill=False,
                edgecolor=REGION_COLOUR, linewidth=0.6, linestyle=(0, (1, 1)),
            )
        )
    axis.set_xticks([])
    axis.set_yticks([])


def caption(benchmark, set_name, label):
    if benchmark == "shapes" and set_name == "confounding":
        return f"y={label}, shape of {(label + 1) % 10}"
    return f"y={label}"


def pick_examples(labels, count):
    """Indices of `count` images: one per label first, sorted by label."""
    first_of_label = {}
    for index, label in enumerate(labels.tolist()):
        first_of_label.setdefault(label, index)
    chosen = sorted(first_of_label.values(), key=lambda i: labels[i])
    chosen = chosen[:count]
    extra = [index for index in range(len(labels)) if index not in chosen]
    return chosen + extra[: count - len(chosen)]


def describe_source(source):
    """Where the digits came from, without machine-specific paths."""
    kind = source.split(":", 1)[0]
    return {
        "idx": "MNIST, IDX files",
        "keras-cache": "MNIST, Keras cache",
        "keras": "MNIST, Keras download",
        "digits": "scikit-learn digits, upscaled",
    }.get(kind, kind)


def plot(benchmarks, columns, output):
    rows = sum(len(bench.test) for bench in benchmarks)
    figure_size = (1.3 * columns + 1.0, 1.4 * rows + 0.7)
    figure, axes = plt.subplots(
        rows, columns, figsize=figure_size, squeeze=False
    )
    row = 0
    for bench in benchmarks:
        boxes = candidate_boxes(bench.name)
        examples = pick_examples(bench.test["biased"].labels, columns)
        if bench.name == "shapes":
            title = "Shapes (40x40)"
        else:
            title = "DecoyMNIST (28x28)"
        for set_name, image_set in bench.test.items():
            for column, index in enumerate(examples):
                axis = axes[row, column]
                image = image_set.images[index, ..., 0]
                mask = image_set.masks[index, ..., 0]
                draw_sample(axis, image, mask, boxes)
                label = int(image_set.labels[index])
                axis.set_title(
                    caption(bench.name, set_name, label), fontsize=7, pad=2
                )
            axes[row, 0].set_ylabel(f"{title}\n{set_name}", fontsize=8)
            row += 1
    legend = [
        Line2D(
            [], [], color=MASK_COLOUR, linewidth=1.2,
            label="mask outline (1 inside)",
        ),
        Line2D(
            [], [], color=REGION_COLOUR, linewidth=1.0, linestyle=":",
            label="candidate bias regions (mask 0)",
        ),
    ]
    figure.legend(
        handles=legend, loc="lower center", ncol=2, fontsize=8, frameon=False
    )
    figure.suptitle(
        f"Bias benchmark test sets ({describe_source(benchmarks[0].source)}; "
        f"{len(benchmarks[0].test['biased'].labels)} test images each)",
        fontsize=9,
    )
    figure.tight_layout(rect=(0, 0.03, 1, 0.98))
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110, facecolor="white")
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--source", default="auto", choices=("auto", "idx", "keras", "digits")
    )
    parser.add_argument("--mnist-dir", type=Path, default=None)
    parser.add_argument("--columns", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    benchmarks = [
        make_bias_benchmark(
            name, source=args.source, seed=args.seed, mnist_dir=args.mnist_dir
        )
        for name in ("shapes", "decoy")
    ]
    # Sanity: the candidate boxes drawn are the regions the masks clear.
    regions = (shapes_candidate_regions(), decoy_candidate_regions())
    for bench, bench_regions in zip(benchmarks, regions):
        assert bench.test["biased"].masks[:, bench_regions].sum() == 0
    plot(benchmarks, args.columns, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
