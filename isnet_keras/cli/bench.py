"""`isnet bench bias`: the background-bias benchmark (the main job)."""

import dataclasses
import sys


def register(subparsers):
    from isnet_keras import run_config as rc

    parser = subparsers.add_parser(
        "bench", help="Run a benchmark.",
        description="Run a benchmark.")
    benchmarks = parser.add_subparsers(dest="benchmark_kind", required=True)
    bias = benchmarks.add_parser(
        "bias",
        help="Plain classifier vs ISNet variants vs baselines on "
             "background-biased MNIST.",
        description="Trains the plain classifier, ISNet (selective, "
                    "stochastic, original), RRR and the masked-input pipeline "
                    "on background-biased MNIST and tests them with the bias "
                    "kept, removed and confounding.")
    bias.add_argument("--data", choices=("mnist", "digits"), default="mnist",
                      help="mnist: IDX files (--mnist-dir, else "
                           "../shared/data/mnist beside the repository, else "
                           "the keras.datasets cache); digits: scikit-learn's "
                           "digits, offline.")
    bias.add_argument("--mnist-dir", default=None,
                      help="Folder with MNIST IDX files (.gz or raw).")
    bias.add_argument("--benchmark", choices=("shapes", "decoy"),
                      default="shapes")
    bias.add_argument("--protocol", choices=("project", "rrr"),
                      default="project",
                      help="project (default): this project's CNN and "
                           "recipe; rrr (with --benchmark decoy): the RRR "
                           "paper's DecoyMNIST protocol, a 784-50-30-10 MLP "
                           "trained plain, with RRR and as an ISNet, and "
                           "plain on clean digits (docs/results.md).")
    bias.add_argument("--out", default=None,
                      help="Output folder (results.json, heatmaps.png; "
                           "default runs/bias, runs/rrr_decoy with "
                           "--protocol rrr).")
    bias.add_argument("--fast", action="store_true",
                      help="About a minute: few images, one epoch.")
    bias.add_argument("--epochs", type=int, default=None)
    bias.add_argument("--seed", type=int, default=None,
                      help="Seed of the split, the weights and the data "
                           "order (default 0).")
    bias.add_argument("--seeds", type=int, nargs="+", default=None,
                      metavar="SEED",
                      help="Run each seed in turn; results.json keeps a row "
                           "per seed and model and their mean, min and max, "
                           "and the table shows mean (min-max).")
    # Recipe options default to None: BiasBenchConfig holds the defaults
    # (and the reasons for them) in one place.
    bias.add_argument("--P", type=float, default=None,
                      help="Heatmap-loss weight of the ISNets (default: "
                           "BiasBenchConfig.P, 0.9).")
    bias.add_argument("--P-schedule", nargs="+", default=None,
                      metavar="EPOCH=P",
                      help="Heatmap weight per epoch for the ISNets, e.g. "
                           "0=0.3 4=0.8 (piecewise constant), as for "
                           "'isnet train'.")
    bias.add_argument("--foreground-bounds", type=float, nargs=2,
                      default=None, metavar=("C1", "C2"),
                      help="Band of the ISNets' raw foreground relevance "
                           "(GWRP heatmap loss; default 1 25).")
    bias.add_argument("--batch-size", type=int, default=None,
                      help="Training batch size (default 128).")
    bias.add_argument("--learning-rate", type=float, default=None,
                      help="Adam learning rate (default 3e-3).")
    bias.add_argument("--deep-supervision", nargs="*", default=None,
                      metavar="LAYER",
                      help="Hidden layers (relu_1 relu_2 relu_3) whose "
                           "relevance the Selective ISNet penalises too; "
                           "without names, none (default: all three).")
    bias.add_argument("--models", nargs="+", default=None,
                      help="Subset of: plain isnet_selective isnet_stochastic "
                           "isnet_original rrr masked_input (--protocol rrr: "
                           "plain rrr isnet plain_clean rrr_background).")
    bias.add_argument("--tune-baselines", action="store_true",
                      help="Choose RRR's penalty weight on the validation "
                           "split first (its paper's rule: the penalty and "
                           "the cross-entropy of the same order; "
                           "isnet_keras/bench/baseline_tuning.py) and "
                           "record it in results.json.")
    bias.set_defaults(func=run)

    zoo = benchmarks.add_parser(
        "zoo",
        help="Plain vs default ISNet on every family of the bias zoo.",
        description="For every bias family and seed, trains the plain "
                    "classifier on biased images, the same classifier on "
                    "the images without the bias (the reference), and the "
                    "ISNet with every default, and tests them with the bias "
                    "kept, removed and confounding. Writes results.json.")
    zoo.add_argument("--families", nargs="+", default=None,
                     metavar="FAMILY",
                     help="Bias families (default: all): shapes decoy marker "
                          "frame texture brightness noise watermark.")
    zoo.add_argument("--seeds", nargs="+", type=int, default=[0])
    zoo.add_argument("--out", default="runs/zoo",
                     help="Output folder (results.json).")
    zoo.add_argument("--overwrite", action="store_true",
                     help="Replace an existing OUT/results.json.")
    zoo.add_argument("--fast", action="store_true",
                     help="A minute or two: 30 digits per class, one epoch.")
    zoo.add_argument("--data", choices=("mnist", "digits"), default="mnist",
                     help="As for 'isnet bench bias'.")
    zoo.add_argument("--mnist-dir", default=None)
    zoo.add_argument("--epochs", type=int, default=None,
                     help="Epochs of every model (default 12; 1 with --fast).")
    zoo.add_argument("--limit-per-class", type=int, default=200,
                     help="Digits per class before the 70/10/20 split.")
    zoo.add_argument("--test-per-class", type=int, default=200,
                     help="Digits per class in each test set (the split's "
                          "own, topped up with digits the limit left out).")
    zoo.add_argument("--classifier", choices=("bench_cnn", "vit_small"),
                     default="bench_cnn",
                     help="The network of every model: the bias benchmark's "
                          "CNN (default) or the small ViT.")
    zoo.add_argument("--lr-schedule", choices=rc.LR_SCHEDULES,
                     default=None,
                     help="Learning-rate schedule of every model (default: "
                          "isnet train's).")
    zoo.set_defaults(func=run_zoo)


def parse_schedule(items):
    """The `--P-schedule` of `isnet bench bias` -> `{epoch: P}`.

    Args:
        items: `EPOCH=P` items (`0=0.3 4=0.8`), as `isnet train` takes
            them, or one string of them separated by spaces.

    Returns:
        dict, or None for no schedule.

    Raises:
        SystemExit: an item that is not `EPOCH=P`, named.
    """
    from isnet_keras.callbacks.schedule import parse_heatmap_weight_schedule

    if not items:
        return None
    try:
        return parse_heatmap_weight_schedule(items)
    except ValueError as error:
        raise SystemExit(f"isnet bench bias: --P-schedule: {error}") \
            from None


# Flags of the project's recipe, which the RRR protocol fixes.
_RECIPE_FLAGS = (("P", "--P"), ("P_schedule", "--P-schedule"),
                 ("foreground_bounds", "--foreground-bounds"),
                 ("batch_size", "--batch-size"),
                 ("learning_rate", "--learning-rate"),
                 ("deep_supervision", "--deep-supervision"))


def _seeds(args):
    if args.seed is not None and args.seeds is not None:
        raise SystemExit("isnet bench bias: give --seed or --seeds, not "
                         "both.")
    if args.seeds is not None:
        if len(set(args.seeds)) != len(args.seeds):
            raise SystemExit("isnet bench bias: --seeds must differ, "
                             f"received {args.seeds}.")
        return tuple(args.seeds)
    return (0 if args.seed is None else args.seed,)


def run_rrr(args):
    from isnet_keras.bench.rrr_protocol import (OPTIONAL_MODELS,
                                                PROTOCOL_MODELS,
                                                RRRProtocolConfig,
                                                run_rrr_protocol)

    if args.benchmark != "decoy":
        print("isnet bench bias: --protocol rrr is the RRR paper's "
              "DecoyMNIST protocol; add --benchmark decoy.", file=sys.stderr)
        return 2
    given = [flag for name, flag in _RECIPE_FLAGS
             if getattr(args, name) is not None]
    if given:
        print(f"isnet bench bias: --protocol rrr fixes the paper's settings; "
              f"{', '.join(given)} applies to --protocol project only.",
              file=sys.stderr)
        return 2
    if args.tune_baselines:
        print("isnet bench bias: --tune-baselines applies to --protocol "
              "project only (the RRR protocol fixes the paper's lambda).",
              file=sys.stderr)
        return 2
    known = PROTOCOL_MODELS + OPTIONAL_MODELS
    unknown = [name for name in args.models or () if name not in known]
    if unknown:
        print(f"isnet bench bias: unknown models {', '.join(unknown)} for "
              f"--protocol rrr; choose from {' '.join(known)}.",
              file=sys.stderr)
        return 2
    config = RRRProtocolConfig(
        data=args.data, mnist_dir=args.mnist_dir,
        out=args.out or "runs/rrr_decoy", fast=args.fast, seeds=_seeds(args),
        epochs=args.epochs, models=tuple(args.models or PROTOCOL_MODELS))
    return _run_with_digits_fallback("bias", run_rrr_protocol, config, args)


def run(args):
    from isnet_keras.bench.bias import (MODEL_NAMES, BiasBenchConfig,
                                        run_bias_benchmark)

    if args.protocol == "rrr":
        return run_rrr(args)
    seeds = _seeds(args)
    recipe = {"P": args.P, "learning_rate": args.learning_rate,
              "batch_size": args.batch_size,
              "foreground_bounds": (tuple(args.foreground_bounds)
                                    if args.foreground_bounds else None),
              "deep_supervision": (tuple(args.deep_supervision)
                                   if args.deep_supervision is not None
                                   else None)}
    config = BiasBenchConfig(
        data=args.data, benchmark=args.benchmark, mnist_dir=args.mnist_dir,
        out=args.out or "runs/bias", fast=args.fast, seed=seeds[0],
        seeds=seeds if len(seeds) > 1 else None, epochs=args.epochs,
        models=tuple(args.models or MODEL_NAMES),
        P_schedule=parse_schedule(args.P_schedule),
        tune_baselines=args.tune_baselines,
        verbose=2 if not sys.stdout.isatty() else "auto",
        **{key: value for key, value in recipe.items() if value is not None})
    return _run_with_digits_fallback("bias", run_bias_benchmark, config,
                                     args)


def _run_with_digits_fallback(name, run_benchmark, config, args):
    """Runs `run_benchmark(config)`; without MNIST and without an explicit
    folder, runs it on scikit-learn's digits (offline) and says so."""
    from isnet_keras.data.mnist import MnistNotFoundError

    try:
        run_benchmark(config)
    except MnistNotFoundError as error:
        print(f"isnet bench {name}: {error}", file=sys.stderr)
        if args.mnist_dir is not None or args.data != "mnist":
            return 2
        print(f"isnet bench {name}: falling back to --data digits "
              "(scikit-learn's digits, offline); pass --mnist-dir DIR to use "
              "MNIST.", file=sys.stderr)
        run_benchmark(dataclasses.replace(config, data="digits"))
    return 0


def run_zoo(args):
    from isnet_keras.bench.zoo import ZooBenchConfig, run_zoo_benchmark

    config = ZooBenchConfig(
        families=tuple(args.families) if args.families else None,
        seeds=tuple(args.seeds), out=args.out, fast=args.fast,
        data=args.data, mnist_dir=args.mnist_dir,
        limit_per_class=args.limit_per_class, epochs=args.epochs,
        classifier=args.classifier, test_per_class=args.test_per_class,
        overwrite=args.overwrite,
        **({} if args.lr_schedule is None else
           {"lr_schedule": args.lr_schedule}))
    try:
        return _run_with_digits_fallback("zoo", run_zoo_benchmark, config,
                                         args)
    except (ValueError, FileExistsError) as error:
        print(f"isnet bench zoo: {error}", file=sys.stderr)
        return 2
