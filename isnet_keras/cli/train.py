"""`isnet train`: train an ISNet on a folder of images, masks and labels.

Examples:

```
isnet train --data-dir data/train --backbone resnet50 --image-size 224 \\
    --epochs 20 --batch-size 32 --out runs/resnet
isnet train --config run.yaml --epochs 30           # flags override the file
isnet train --config run.yaml --resume              # continue after a stop
```

`--data-dir DIR` holds `images/`, `masks/` and `labels.csv` (see
docs/data.md). Every file is checked before training starts. The run
directory receives the effective config, a checkpoint every epoch,
TensorBoard logs with heatmap panels, the final `model.keras` and an
evaluation report of the validation set (see `isnet_keras.train`).
"""

import sys

_COMMAND = "isnet train"


def _flag(parser, name, help_text, **kwargs):
    # Default None: "not given", so the config file's value stays.
    parser.add_argument(name, default=None, help=help_text, **kwargs)


def register(subparsers):
    """Adds the `train` sub-command to an argparse sub-parser group.

    Args:
        subparsers: The object returned by `ArgumentParser.add_subparsers`.

    Returns:
        The new `argparse.ArgumentParser`.

    Example:

    ```python
    parser = argparse.ArgumentParser(prog="isnet")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", "--data-dir", "d", "--out", "r"])
    args.func(args)
    ```
    """
    from isnet_keras import run_config as rc

    defaults = rc.DEFAULTS
    parser = subparsers.add_parser(
        "train",
        help="train an ISNet on a folder dataset",
        description="Train an ISNet (a classifier whose LRP heatmaps ignore "
        "the background) on DIR/images, DIR/masks and DIR/labels.csv. Every "
        "option may also be set in a YAML --config file (keys: the flag "
        "names with _ for -); flags override the file.",
    )
    data = parser.add_argument_group("data")
    _flag(data, "--data-dir", "folder with images/, masks/, labels.csv",
          metavar="DIR")
    _flag(data, "--val-split", "fraction of --data-dir held out for "
          f"validation, stratified (default {defaults['val_split']})",
          type=float, metavar="F")
    _flag(data, "--val-dir", "separate validation folder (same layout); "
          "replaces --val-split", metavar="DIR")
    _flag(data, "--partial-masks", "images without a mask file (or, with "
          "--boxes, without a box) train on cross-entropy only instead of "
          "being an error", action="store_true", dest="partial_masks")
    _flag(data, "--boxes", "CSV of boxes filename,x0,y0,x1,y1[,label] "
          "(pixels, x1 and y1 exclusive) made into the masks of --data-dir "
          "instead of DIR/masks", metavar="FILE.csv")
    _flag(data, "--box-margin", "pixels added around every box, clipped "
          f"to the image (default {defaults['box_margin']})", type=int,
          metavar="N")
    _flag(data, "--image-size", "input height and width for named "
          f"backbones (default {defaults['image_size']})", type=int)
    model = parser.add_argument_group("model")
    _flag(model, "--backbone", "densenet121, resnet50, vgg16, mobilenetv2 "
          "(keras.applications, new logits head), smallcnn (a compact CNN "
          "for small images), vit_small (a small vision transformer) or "
          "PATH.keras, your own classifier (default "
          f"{defaults['backbone']})")
    _flag(model, "--weights", "backbone weights file (include_top=False); "
          "default: random initialisation", metavar="PATH")
    _flag(model, "--variant", "ISNet variant (default "
          f"{defaults['variant']})", choices=rc.VARIANTS)
    _flag(model, "--P", "weight of the heatmap loss in (1-P) CE + P L_H "
          "(default: 0.95, or 0.8 for a backbone with attention layers "
          "such as vit_small)", type=float, dest="P")
    _flag(model, "--P-schedule", "P from given epochs on, e.g. 0=0 3=0.7 "
          "(cross-entropy alone for epochs 0-2); earlier epochs use --P",
          nargs="+", dest="P_schedule", metavar="EPOCH=P")
    supervision = model.add_mutually_exclusive_group()
    supervision.add_argument(
        "--deep-supervision", nargs="*", default=None, metavar="LAYER",
        help="also penalise the relevance at these hidden layers (LRP deep "
        "supervision); without names, the backbone's stage outputs (the "
        "default)")
    supervision.add_argument(
        "--no-deep-supervision", action="store_true",
        help="penalise the input heatmap only")
    _flag(model, "--foreground-bounds", "band (C1, C2) of the relevance "
          "each heatmap loss keeps on the foreground (default 1 25, with C2 "
          "raised to twice the untrained network's median relevance where "
          "that is higher)",
          type=float, nargs=2, metavar=("C1", "C2"))
    _flag(model, "--tune-bounds", "instead, choose every band from the "
          "training images' relevance after this many warm-up epochs of "
          "cross-entropy alone, then restart from the initial weights "
          "(default 0: off)", type=int, metavar="EPOCHS")
    fit = parser.add_argument_group("optimisation")
    _flag(fit, "--epochs", f"(default {defaults['epochs']})", type=int)
    _flag(fit, "--batch-size", "global batch size (default "
          f"{defaults['batch_size']})", type=int)
    _flag(fit, "--optimizer", "adam or sgd (default "
          f"{defaults['optimizer']}; both clip the global gradient norm)",
          choices=rc.OPTIMIZERS)
    _flag(fit, "--learning-rate", "(default "
          f"{defaults['learning_rate']})", type=float)
    _flag(fit, "--lr-schedule", "constant, or cosine: from --learning-rate "
          "down to 0 over the run, step by step (default "
          f"{defaults['lr_schedule']})", choices=rc.LR_SCHEDULES,
          dest="lr_schedule")
    _flag(fit, "--momentum", "SGD momentum (default "
          f"{defaults['momentum']})", type=float)
    _flag(fit, "--seed", "seed of the split, initialisation, shuffling and "
          f"augmentation (default {defaults['seed']})", type=int)
    augment = parser.add_argument_group(
        "augmentation (training images only; masks follow the geometric "
        "changes)")
    _flag(augment, "--flip", f"(default {defaults['flip']})",
          choices=rc.FLIP_MODES)
    _flag(augment, "--rotation", "largest rotation, fraction of a full "
          "turn", type=float)
    _flag(augment, "--translation", "largest shift, fraction of the size",
          type=float)
    _flag(augment, "--zoom", "largest zoom in or out, fraction", type=float)
    _flag(augment, "--brightness", "largest brightness change (images "
          "only)", type=float)
    _flag(augment, "--contrast", "largest contrast change (images only)",
          type=float)
    run = parser.add_argument_group("run")
    _flag(run, "--out", "run directory", metavar="RUN_DIR")
    _flag(run, "--config", "YAML file of options", metavar="FILE.yaml")
    _flag(run, "--strategy", "tf.distribute strategy (multiworker: "
          "TF_CONFIG, or cluster/task_index in the config)",
          choices=rc.STRATEGIES)
    _flag(run, "--precision", "(default float32)", choices=rc.PRECISIONS)
    _flag(run, "--heatmap-images", "validation images in the TensorBoard "
          f"heatmap panel (default {defaults['heatmap_images']})", type=int)
    _flag(run, "--verbose", "0 silent, 1 progress bar, 2 one line per "
          "epoch", type=int, choices=(0, 1, 2))
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out after an interruption")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the previous run in --out")
    parser.set_defaults(func=run_command)
    return parser


def effective_config(args):
    """The run configuration from parsed arguments (file, then flags).

    With `--resume` and no `--config`, the run directory's saved config is
    the file.

    Args:
        args: `argparse.Namespace` of the `train` parser.

    Returns:
        A checked configuration dict.

    Raises:
        ConfigError: a bad option or config file.
    """
    from pathlib import Path

    from isnet_keras import run_config as rc

    overrides = {key: getattr(args, key, None) for key in rc.DEFAULTS}
    if overrides.get("deep_supervision") == []:
        overrides["deep_supervision"] = "auto"
    if getattr(args, "no_deep_supervision", False):
        # None would mean "not given" to effective_config: an empty list is
        # the configuration's "off".
        overrides["deep_supervision"] = []
    if overrides.get("P_schedule") is not None:
        from isnet_keras.callbacks.schedule import \
            parse_heatmap_weight_schedule
        try:
            overrides["P_schedule"] = parse_heatmap_weight_schedule(
                overrides["P_schedule"])
        except ValueError as error:
            raise rc.ConfigError(str(error)) from None
    config_file = args.config
    if config_file is None and args.resume and args.out:
        saved = Path(args.out) / rc.CONFIG_FILE
        config_file = saved if saved.is_file() else None
    file_config = rc.read_config_file(config_file) if config_file else None
    config = rc.effective_config(file_config, overrides)
    if args.momentum is not None and config["optimizer"] != "sgd":
        raise rc.ConfigError("--momentum applies to --optimizer sgd; the "
                             f"optimizer is {config['optimizer']}.")
    return config


def run_command(args, callbacks=()):
    """Runs `isnet train` with parsed arguments.

    Args:
        args: `argparse.Namespace` from the parser built by `register`.
        callbacks: extra Keras callbacks (for programmatic use).

    Returns:
        int exit status: 0 on success; 1 when the data, the run directory
        or a file is unusable, or training diverged (the message says
        what to change); 2 for a bad option; 130 when interrupted
        (Ctrl-C).
    """
    from pathlib import Path

    from isnet_keras import run_config as rc
    from isnet_keras.data import FolderDatasetError
    from isnet_keras.errors import TrainingDivergedError

    if args.resume and args.out and not (
            Path(args.out) / rc.CONFIG_FILE).is_file():
        return _fail(f"--resume: {args.out} holds no run to continue (no "
                     f"{rc.CONFIG_FILE}).", status=1)
    try:
        config = effective_config(args)
    except rc.ConfigError as error:
        return _fail(str(error), status=2)

    from isnet_keras import train

    try:
        result = train.train(config, callbacks=callbacks, resume=args.resume,
                             overwrite=args.overwrite)
    except rc.ConfigError as error:
        return _fail(str(error), status=2)
    except (FolderDatasetError, train.RunDirectoryError, OSError,
            ValueError, TrainingDivergedError) as error:
        return _fail(str(error), status=1)
    except KeyboardInterrupt:
        # The run directory keeps the last completed epoch (BackupAndRestore).
        print(f"\n{_COMMAND}: interrupted. Continue the run with the same "
              f"command and --resume (only the current epoch is lost).",
              file=sys.stderr)
        return 130
    if result["evaluation"] is not None:
        from isnet_keras.evaluate import format_summary

        print(f"Validation set of {result['run_dir']}:")
        print(format_summary(result["evaluation"]))
        print(f"Wrote {result['model']} and {result['run_dir']}/report/.")
    return 0


def _fail(message, status):
    print(f"{_COMMAND}: error: {message}", file=sys.stderr)
    return status
