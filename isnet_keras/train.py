"""The training loop of `isnet train`: building the ISNet, its callbacks
and datasets, fitting, and saving the model and its reports.

The run directory it writes is described in `isnet_keras.run_directory`;
the data are checked and split by `isnet_keras.train_data`. In a
multi-worker run only the chief writes the model and reports.

`train(config)` runs it all; `isnet train` is its command line.
"""

import contextlib
import csv
import os
import pathlib

import keras

from isnet_keras import run_config
from isnet_keras.backbones import make_classifier
from isnet_keras.callbacks import (
    AutoTuneForegroundBounds,
    BackupUnlessDiverged,
    BestCheckpointFromEpoch,
    CheckpointUnlessDiverged,
    CosineLearningRate,
    HeatmapWeightSchedule,
    PreciseBatchNorm,
    StopOnDivergence,
    TensorBoardHeatmaps,
    apply_foreground_bounds,
)
from isnet_keras.data.augment import JointAugmentation
from isnet_keras.data.pipeline import dataset_arrays, folder_dataset
from isnet_keras.distribute import make_strategy
from isnet_keras.errors import TrainingDivergedError
from isnet_keras.evaluate.report import write_json
from isnet_keras.export.classifier import (
    check_image_file_channels,
    image_input_shape,
    load_keras_file,
)
from isnet_keras.foreground_bands import (
    INITIAL_BATCHES,
    widen_to_initial_relevance,
)
from isnet_keras.isnet import build_isnet
from isnet_keras.run_directory import (
    BOUNDS_FILE,
    RUN_ARTIFACTS,
    RunDirectoryError,
    clear_run_dir,
    prepare_run_dir,
    read_bounds,
    write_audit_report,
    write_report,
)
from isnet_keras.train_data import (
    MIN_VAL_IMAGES,
    data_folders,
    fixed_images,
    scan_data,
)

# Subject of the error messages of the classifier's shape checks.
_PURPOSE = "Training"

__all__ = [
    "BOUNDS_FILE",
    "MIN_VAL_IMAGES",
    "RUN_ARTIFACTS",
    "RunDirectoryError",
    "build_model",
    "clear_run_dir",
    "data_folders",
    "dtype_policy",
    "prepare_run_dir",
    "scan_data",
    "set_foreground_bounds",
    "train",
    "write_audit_report",
    "write_report",
]


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy inside the block.

    Args:
        name: str. A Keras dtype policy name, e.g. `"mixed_float16"`.

    Example:

    >>> with dtype_policy("mixed_float16"):  # doctest: +SKIP
    ...     model = build_model(config, 10)
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(config, num_classes):
    """The compiled ISNet of a configuration (call inside the strategy).

    Args:
        config: The run configuration.
        num_classes: int >= 2.

    Returns:
        The compiled `ISNet`.

    Example:

    >>> with strategy.scope():  # doctest: +SKIP
    ...     isnet = build_model(config, len(class_names))
    """
    classifier = make_classifier(config["backbone"], num_classes,
                                 config["image_size"], config["weights"])
    isnet = build_isnet(classifier, variant=config["variant"], P=config["P"],
                        deep_supervision=config["deep_supervision"],
                        seed=config["seed"])
    if config["optimizer"] == "sgd":
        optimizer = keras.optimizers.SGD(
            config["learning_rate"], momentum=config["momentum"],
            global_clipnorm=config["clipnorm"])
    else:
        optimizer = keras.optimizers.Adam(
            config["learning_rate"], global_clipnorm=config["clipnorm"])
    isnet.compile(optimizer=optimizer)
    return isnet


def set_foreground_bounds(isnet, config, run_dir, train_data, tuning_data):
    """Sets the heatmap losses' bands (C1, C2) as configured.

    `foreground_bounds` sets every loss's band. `tune_bounds` epochs of
    warm-up (a `fit` of their own, kept out of the run's history and
    checkpoints) choose them with `AutoTuneForegroundBounds` from
    `tuning_data()` and restart from the initial weights. Neither given
    (the default), each loss keeps its band with C2 raised to twice the
    untrained network's median relevance on the first batches of
    `tuning_data()`, where that is higher
    (`foreground_bands.widen_to_initial_relevance`). Tuned or widened, the
    bands go to `run_dir/foreground_bounds.json`, which a resumed run reads
    instead of choosing them again. A run stopped during the warm-up
    repeats it.

    Args:
        isnet: The compiled ISNet, before training.
        config: The run configuration.
        run_dir: Path of the run directory.
        train_data: The training dataset (for the warm-up).
        tuning_data: Callable returning the unaugmented training images.

    Returns:
        The bands as `AutoTuneForegroundBounds.result` holds them (with
        `medians` instead of `mean` and `std` when widened).

    Example:

    >>> set_foreground_bounds(isnet, config, run_dir, train_data,
    ...                       lambda: train_data)  # doctest: +SKIP
    {'C1': 0.1, 'C2': 0.4, 'hidden': {...}}
    """
    saved = run_dir / BOUNDS_FILE
    if config["foreground_bounds"] is not None:
        c1, c2 = config["foreground_bounds"]
        bounds = {"C1": c1, "C2": c2, "hidden": {
            name: {"C1": c1, "C2": c2} for name in isnet.deep_supervision}}
    elif saved.is_file():
        bounds = read_bounds(saved)
    elif not config["tune_bounds"]:
        # The ISNet's default: C2 raised to the untrained network's
        # relevance, measured here on unaugmented images and kept in the
        # run directory, so that a resumed run trains with the same bands.
        bounds = widen_to_initial_relevance(
            isnet, list(tuning_data().take(INITIAL_BATCHES)))
        write_json(saved, bounds)
        if config["verbose"]:
            print(f"Foreground bands: C1 = {bounds['C1']}, C2 = "
                  f"{bounds['C2']} for the input heatmaps (C2 at least "
                  "twice the untrained network's median relevance; "
                  f"written to {saved}).")
        return bounds
    else:
        tuner = AutoTuneForegroundBounds(
            tuning_data(), warmup_epochs=config["tune_bounds"])
        if config["verbose"]:
            print(f"Warm-up: {config['tune_bounds']} epoch(s) of "
                  "cross-entropy to choose the foreground bands (C1, C2).")
        isnet.fit(train_data, epochs=config["tune_bounds"],
                  verbose=config["verbose"], shuffle=False,
                  callbacks=[tuner])
        bounds = tuner.result
        # Every worker writes the same values: a resumed worker reads them
        # from its own run directory.
        write_json(saved, bounds)
        if config["verbose"]:
            print(f"Foreground bands: C1 = {bounds['C1']}, C2 = "
                  f"{bounds['C2']} (written to {saved}); training restarts "
                  "from the initial weights.")
    apply_foreground_bounds(isnet, bounds)
    return bounds



def _best_val_loss(history_csv, first_epoch=0):
    """Lowest `val_loss` from `first_epoch` on in a previous run's history,
    or None."""
    if not history_csv.is_file():
        return None
    with history_csv.open(newline="") as handle:
        values = [float(row["val_loss"]) for row in csv.DictReader(handle)
                  if row.get("val_loss") not in (None, "", "nan")
                  and int(row["epoch"]) >= first_epoch]
    return min(values) if values else None


def _callbacks(config, run_dir, train_data, heatmap_images, heatmap_masks,
               extra, divergence=None, chief=True):
    """The run's callbacks, in the order they must run.

    The chief gets checkpoints, the history CSV and TensorBoard logs; every
    worker gets the divergence check, the backup, precise batch norm and
    the P schedule. `extra` callbacks run last.
    """
    if divergence is None:
        divergence = StopOnDivergence()
    checkpoints = run_dir / "checkpoints"
    schedule = config["P_schedule"]
    # Validation losses are comparable only at one P: with a schedule, the
    # best weights are looked for once P has its final value.
    final_p_from = max(schedule) if schedule else 0
    best = _best_val_loss(run_dir / "history.csv", final_p_from)
    # Checkpoints and logs are the chief's; a non-chief worker keeps only
    # the backup it resumes from.
    outputs = [
        CheckpointUnlessDiverged(os.fspath(checkpoints / "last.keras"),
                                 divergence=divergence),
        BestCheckpointFromEpoch(
            final_p_from, os.fspath(checkpoints / "best.weights.h5"),
            monitor="val_loss", save_best_only=True, save_weights_only=True,
            initial_value_threshold=best, divergence=divergence),
        keras.callbacks.CSVLogger(os.fspath(run_dir / "history.csv"),
                                  append=True),
        keras.callbacks.TensorBoard(os.fspath(run_dir / "logs"),
                                    write_graph=False),
        *([] if heatmap_images is None else [TensorBoardHeatmaps(
            run_dir / "logs" / "heatmaps", heatmap_images, heatmap_masks)]),
    ] if chief else []
    return [
        # First, so an epoch is judged before anything saves it: the backup
        # and checkpoints skip a diverged epoch and keep the last finite
        # one. It reads no weights before the first epoch, so the backup's
        # restore (in on_train_begin) still comes first.
        divergence,
        # Kept after the last epoch, so --resume with more epochs continues
        # a finished run; two copies, so a kill while saving loses nothing.
        BackupUnlessDiverged(
            os.fspath(run_dir / "backup"), save_freq="epoch",
            double_checkpoint=True, delete_checkpoint=False,
            divergence=divergence),
        # Before validation and the checkpoints: the moving batch-norm
        # statistics lag behind the weights on small training sets.
        PreciseBatchNorm(train_data),
        # Before the logger, which then records each epoch's P.
        *([] if schedule is None else [HeatmapWeightSchedule(schedule)]),
        *([CosineLearningRate(config["learning_rate"])]
          if config["lr_schedule"] == "cosine" else []),
        *outputs,
        *extra,
    ]


def _diverged_error(diverged, config, run_dir):
    """The `TrainingDivergedError` of a run that `StopOnDivergence` stopped.

    Args:
        diverged: `StopOnDivergence.diverged`.
        config: The run configuration (the advice names its values).
        run_dir: Path of the run directory.

    Returns:
        A `TrainingDivergedError` whose message says where, why and how to
        fix it.
    """
    epoch = diverged["epoch"] + 1
    loss = diverged["loss"]
    rate = config["learning_rate"]
    kept = ("the checkpoints keep the last finite epoch"
            if (run_dir / "checkpoints" / "last.keras").is_file()
            else "no checkpoint was written")
    if config["clipnorm"] is None:
        clipping = ("; gradient clipping is off here: set clipnorm (e.g. "
                    "0.3, the default) in a --config file")
    else:
        clipping = (f" (gradient clipping is already on: clipnorm "
                    f"{float(config['clipnorm'])})")
    precision = ("; or train with --precision float32, whose range does not "
                 "overflow as float16's does"
                 if config["precision"] == "mixed_float16" else "")
    message = (
        f"Training diverged at epoch {epoch} (loss {loss}): "
        f"{'; '.join(diverged['reasons'])}. Training stopped; "
        f"{run_dir / 'model.keras'} was not written and {kept}. Lower "
        f"--learning-rate (it is {rate:g}; try {rate / 10:g} or less) and "
        f"train again with --overwrite or another --out{clipping}"
        f"{precision}.")
    return TrainingDivergedError(message, epoch, loss, diverged["reasons"])


def train(config, callbacks=(), resume=False, overwrite=False):
    """Trains an ISNet as configured; writes everything into `config["out"]`.

    Every file of the data is checked, and the run directory too, before
    the model is built. With `resume`, training continues from the last
    completed epoch of an interrupted run (BackupAndRestore), with the same
    data split, and appends to its history.

    Args:
        config: dict from `run_config.effective_config`.
        callbacks: extra Keras callbacks, run after the run's own.
        resume: bool. Continue the run in `config["out"]`.
        overwrite: bool. Replace a previous run in `config["out"]`.

    Returns:
        dict: `run_dir`, `model` (path of the final `.keras`), `history`
        (the `fit` history dict of this invocation), `evaluation` (the
        report's result) and `class_names`.

    Raises:
        RunDirectoryError, ConfigError, FolderDatasetError (ValueErrors),
        FileNotFoundError: before training, naming the file or option.
        TrainingDivergedError: training stopped because the loss or the
            weights stopped being finite (`StopOnDivergence`); the final
            model and report are not written, and the checkpoints and
            backup keep the last finite epoch.

    Example:

    >>> config = run_config.effective_config(None, {
    ...     "data_dir": "data/train", "out": "runs/a", "backbone": "resnet50",
    ...     "image_size": 64, "epochs": 5})
    >>> train(config)["model"]  # doctest: +SKIP
    'runs/a/model.keras'
    """
    run_dir = pathlib.Path(config["out"])
    saved = prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    if saved is not None:
        run_config.check_resume_matches(config, saved, run_dir)
    data = scan_data(config)
    class_names = data["class_names"]

    keras.utils.set_random_seed(config["seed"])
    strategy = make_strategy(config["strategy"], config["cluster"],
                             config["task_index"])
    # False on the non-chief workers of a multi-worker run only.
    chief = getattr(strategy.extended, "should_checkpoint", True)
    # Built before the precision policy is set: the data stays float32.
    augmentation = JointAugmentation(
        flip=config["flip"], rotation=config["rotation"],
        translation=config["translation"], zoom=config["zoom"],
        brightness=config["brightness"], contrast=config["contrast"],
        seed=config["seed"])
    with dtype_policy(config["precision"]):
        with strategy.scope():
            isnet = build_model(config, len(class_names))
        height, width, channels = image_input_shape(isnet.deploy_model,
                                                    purpose=_PURPOSE)
        check_image_file_channels(channels, "the classifier")
        cache = config["cache"]
        train_data = folder_dataset(
            data["train_index"], data["train_indices"], (height, width),
            channels, config["batch_size"], augmentation=augmentation,
            shuffle=True, seed=config["seed"],
            cache=f"{cache}_train" if isinstance(cache, str) else cache)
        val_data = folder_dataset(
            data["val_index"], data["val_indices"], (height, width),
            channels, config["batch_size"],
            cache=f"{cache}_val" if isinstance(cache, str) else cache)
        panel_images, panel_masks = fixed_images(
            data["val_index"], data["val_indices"], (height, width), channels,
            config["heatmap_images"])

        # Only now, with data and model ready, is a previous run removed.
        if overwrite:
            clear_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if chief:
            (run_dir / "checkpoints").mkdir(exist_ok=True)
        run_config.save_config(config, run_dir)
        bounds = set_foreground_bounds(
            isnet, config, run_dir, train_data,
            lambda: folder_dataset(
                data["train_index"], data["train_indices"], (height, width),
                channels, config["batch_size"], cache=False))
        divergence = StopOnDivergence()
        fit = isnet.fit(
            train_data, validation_data=val_data, epochs=config["epochs"],
            verbose=config["verbose"], shuffle=False,  # shuffled above
            callbacks=_callbacks(config, run_dir, train_data, panel_images,
                                 panel_masks,
                                 list(callbacks), divergence, chief))
        if divergence.diverged is not None:
            # Nothing is saved from non-finite weights: no model.keras, no
            # report (its metrics would be NaN).
            raise _diverged_error(divergence.diverged, config, run_dir)

        best = run_dir / "checkpoints" / "best.weights.h5"
        if best.is_file():
            isnet.load_weights(best)
        model_path = run_dir / "model.keras"
        if not chief:
            return {"run_dir": os.fspath(run_dir), "model": None,
                    "history": fit.history, "evaluation": None,
                    "class_names": list(class_names)}
        isnet.save(model_path)
        if config["strategy"] == "multiworker":
            # The model's predict and evaluate run through the strategy,
            # whose collective ops need the other workers, which have
            # finished: the report uses the saved model, outside it.
            isnet = load_keras_file(model_path)
        val_images, val_labels, val_masks = dataset_arrays(val_data)
        evaluation = write_report(isnet, val_images, val_labels, val_masks,
                                  class_names, run_dir / "report",
                                  config["max_heatmaps"], config["seed"])
        audit_report = write_audit_report(
            isnet, val_images, val_labels, val_masks, class_names,
            run_dir / "report", config["seed"])
    val_files = [os.fspath(data["val_index"].image_paths[i])
                 for i in data["val_indices"]]
    write_json(run_dir / "run.json", {
        "class_names": list(class_names),
        "num_train": int(len(data["train_indices"])),
        # Training images with a mask (file or boxes); the others trained
        # on cross-entropy only (--partial-masks).
        "num_train_annotated": int(data["num_train_annotated"]),
        "num_val": int(len(data["val_indices"])),
        "input_shape": [height, width, channels],
        # Over all workers: the global batch is split among them.
        "replicas": int(strategy.num_replicas_in_sync),
        "val_files": val_files,
        "accuracy": evaluation["accuracy"],
        "background_attention": evaluation["background_attention"],
        "foreground_bounds": bounds,
        "audit": audit_report,
    })
    return {"run_dir": os.fspath(run_dir), "model": os.fspath(model_path),
            "history": fit.history, "evaluation": evaluation,
            "class_names": list(class_names)}
