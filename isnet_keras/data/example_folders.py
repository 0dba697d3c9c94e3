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
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from isnet_keras.data.bias import BENCHMARK_NAMES, make_bias_benchmark
from isnet_keras.data.folders import write_folder_dataset


def write_benchmark_folders(out, benchmark="decoy", source="digits",
                            limit_per_class=None, seed=0, mnist_dir=None):
    """Writes one bias benchmark as folder datasets.

    Args:
        out: str or Path. Must not exist yet (nothing is overwritten).
        benchmark: `"decoy"` or `"shapes"`.
        source: digit source, as `make_bias_benchmark` (`"digits"` is
            offline; `"auto"` finds MNIST).
        limit_per_class: int or None. Digits kept per class.
        seed: int. Benchmark seed.
        mnist_dir: MNIST IDX folder, or None.

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
    bench = make_bias_benchmark(benchmark, source=source, seed=seed,
                                limit_per_class=limit_per_class,
                                mnist_dir=mnist_dir)
    parts = {"train": [bench.train, bench.val]}
    parts.update({f"test_{name}": [images]
                  for name, images in bench.test.items()})
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
    parser.add_argument("--benchmark", choices=BENCHMARK_NAMES,
                        default="decoy")
    parser.add_argument("--source", choices=("auto", "idx", "digits"),
                        default="digits",
                        help="digits: scikit-learn, offline (default); "
                        "auto: MNIST")
    parser.add_argument("--limit-per-class", type=int, default=None,
                        metavar="N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mnist-dir", default=None)
    args = parser.parse_args(argv)
    try:
        counts = write_benchmark_folders(
            args.out, args.benchmark, args.source, args.limit_per_class,
            args.seed, args.mnist_dir)
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for folder, count in counts.items():
        print(f"{Path(args.out) / folder}: {count} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
