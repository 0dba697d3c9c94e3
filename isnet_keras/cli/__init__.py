"""The `isnet` command line: one module per sub-command.

Each module in `COMMAND_MODULES` exposes `register(subparsers)`, which adds
its parser and sets `func` to the function that runs it. Modules are imported
only when the CLI starts, and TensorFlow only when a command runs, so
`isnet --help` stays fast.
"""

import argparse
import importlib
import os
import sys

COMMAND_MODULES = ("bench", "train", "evaluate", "audit", "metrics", "export",
                   "predict")


def build_parser():
    """Returns the `isnet` argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="isnet",
        description="ISNet for Keras: classifiers whose LRP heatmaps "
        "ignore the image background.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"isnet_keras.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv=None):
    """Entry point of the `isnet` console script."""
    # TensorFlow 2.21's CPU wheels leave oneDNN kernels off; with them an
    # ISNet training step ran 1.3-3x faster on 2 x86 cores (docs/
    # performance.md). Read when TensorFlow is imported, i.e. by the
    # command; `TF_ENABLE_ONEDNN_OPTS=0` keeps them off.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
