"""Writes a bias benchmark to disk as folder datasets (PNG files + CSV).

The worked example of the user guide starts here: it gives a folder of
images, a folder of masks and a label file, as a user would bring them,
without any download (`--source digits` uses scikit-learn's digits).

    python -m isnet_keras.data.example_folders --out example \\
        --benchmark decoy --source digits --limit-per-class 6

writes `example/train/` (the benchmark's biased training and validation
images; `isnet train` splits off its own validation set) and one folder
per test set, `example/test_<name>/`, each with `images/`, `masks/` and
`labels.csv`.

`--benchmark` also takes every bias-zoo family (`isnet_keras.data.zoo`);
those write `train_clean/` too, the same images without their cue, for a
reference model. `--classes K` keeps digits 0 to K - 1 and `--image-size S`
resizes to S x S; both use the zoo generator, so `shapes` and `decoy` with
either option get the zoo's test sets (biased, clean, confounding) instead
of their original ones.

    python -m isnet_keras.data.example_folders --out frames64 \\
        --benchmark frame --source digits --classes 4 --image-size 64
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from isnet_keras.data.bias import BENCHMARK_NAMES, make_bias_benchmark
from isnet_keras.data.folders import write_folder_dataset
from isnet_keras.data.zoo import ZOO_FAMILIES, make_zoo_benchmark

# The original two benchmark names first, then the zoo's other families.
BENCHMARK_CHOICES = BENCHMARK_NAMES + tuple(
    family for family in ZOO_FAMILIES if family not in BENCHMARK_NAMES
)


def _uses_zoo(benchmark, classes, image_size):
    """True unless this is one of the original benchmarks, unchanged."""
    original = benchmark in BENCHMARK_NAMES
    return not original or classes is not None or image_size is not None


def _benchmark_parts(benchmark, source, limit_per_class, seed, mnist_dir,
                     classes, image_size):
    """Folder name -> list of ImageSets to concatenate into it."""
    if not _uses_zoo(benchmark, classes, image_size):
        bench = make_bias_benchmark(benchmark, source=source, seed=seed,
                                    limit_per_class=limit_per_class,
                                    mnist_dir=mnist_dir)
        parts = {"train": [bench.train, bench.val]}
    else:
        bench = make_zoo_benchmark(benchmark, source=source, seed=seed,
                                   limit_per_class=limit_per_class,
                                   mnist_dir=mnist_dir, classes=classes,
                                   image_size=image_size)
        parts = {"train": [bench.train, bench.val],
                 "train_clean": [bench.train_clean, bench.val_clean]}
    parts.update({f"test_{name}": [images]
                  for name, images in bench.test.items()})
    return parts


def write_benchmark_folders(out, benchmark="decoy", source="digits",
                            limit_per_class=None, seed=0, mnist_dir=None,
                            classes=None, image_size=None):
    """Writes one bias benchmark as folder datasets.

    Args:
        out: str or Path. Must not exist yet (nothing is overwritten).
        benchmark: `"decoy"` or `"shapes"` (`make_bias_benchmark`), or any
            other of `ZOO_FAMILIES` (`make_zoo_benchmark`, which also
            writes `train_clean/`).
        source: digit source, as `make_bias_benchmark` (`"digits"` is
            offline; `"auto"` finds MNIST).
        limit_per_class: int or None. Digits kept per class.
        seed: int. Benchmark seed.
        mnist_dir: MNIST IDX folder, or None.
        classes: int or None. Keep digits 0 to K - 1 (zoo generator).
        image_size: int or None. Square side to resize to (zoo generator).

    Returns:
        dict: folder name -> number of images written.

    Example:

    >>> write_benchmark_folders("example", limit_per_class=6)
    ... # doctest: +SKIP
    {'train': 48, 'test_biased': 12, 'test_clean': 12, 'test_randomized': 12}
    """
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose a new folder.")
    parts = _benchmark_parts(benchmark, source, limit_per_class, seed,
                             mnist_dir, classes, image_size)
    counts = {}
    for folder, sets in parts.items():
        images = np.concatenate([s.images for s in sets])
        masks = np.concatenate([s.masks for s in sets])
        labels = np.concatenate([s.labels for s in sets])
        write_folder_dataset(out / folder, images, masks, labels,
                             prefix=folder.removeprefix("test_"))
        counts[folder] = int(len(images))
    return counts


def main(argv=None):
    """Command line of `python -m isnet_keras.data.example_folders`."""
    parser = argparse.ArgumentParser(
        prog="python -m isnet_keras.data.example_folders",
        description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="new output folder")
    parser.add_argument("--benchmark", choices=BENCHMARK_CHOICES,
                        default="decoy")
    parser.add_argument("--source", choices=("auto", "idx", "digits"),
                        default="digits",
                        help="digits: scikit-learn, offline (default); "
                        "auto: MNIST")
    parser.add_argument("--limit-per-class", type=int, default=None,
                        metavar="N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mnist-dir", default=None)
    parser.add_argument("--classes", type=int, default=None, metavar="K",
                        help="keep digits 0..K-1 (zoo generator)")
    parser.add_argument("--image-size", type=int, default=None, metavar="S",
                        help="resize to S x S (zoo generator)")
    args = parser.parse_args(argv)
    try:
        counts = write_benchmark_folders(
            args.out, args.benchmark, args.source, args.limit_per_class,
            args.seed, args.mnist_dir, args.classes, args.image_size)
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for folder, count in counts.items():
        print(f"{Path(args.out) / folder}: {count} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
