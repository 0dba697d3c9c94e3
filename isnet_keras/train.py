"""Training an ISNet on a folder dataset, in a run directory that survives
interruptions.

Run directory layout (`RUN_DIR`):

    config.yaml            effective configuration (repeat or resume a run)
    run.json               classes, split sizes, validation files, results
    history.csv            one row of logged values per epoch
    checkpoints/last.keras ISNet after the latest epoch (every epoch)
    checkpoints/best.weights.h5  weights with the lowest validation loss
    backup/                BackupAndRestore state: weights, optimizer, epoch
    logs/                  TensorBoard: train/, validation/, heatmaps/
    foreground_bounds.json bands (C1, C2) chosen by --tune-bounds
    model.keras            final ISNet (best validation loss)
    report/                evaluation.json, confusion_matrix.png, heatmaps.png,
                           audit.json, audit.png (shortcut audit)

In a multi-worker run only the chief writes all of these; every other worker
writes only what resuming it needs (config.yaml, backup/ and
foreground_bounds.json) in its own `RUN_DIR`.

`train(config)` runs it all; `isnet train` is its command line.
"""

import contextlib
import csv
import json
import os
import pathlib

import numpy as np

from isnet_keras import run_config

# The files and folders a run writes; `overwrite` removes only these.
BOUNDS_FILE = "foreground_bounds.json"
RUN_ARTIFACTS = ("config.yaml", "run.json", "history.csv", "checkpoints",
                 "backup", "logs", BOUNDS_FILE, "model.keras", "report")


class RunDirectoryError(ValueError):
    """The run directory cannot be used as asked (exists, or nothing to
    resume)."""


def prepare_run_dir(run_dir, resume=False, overwrite=False):
    """Checks that a run directory may be used as asked; changes nothing.

    Args:
        run_dir: str or Path.
        resume: bool. The directory must hold a previous run's config.
        overwrite: bool. A previous run may be replaced (see
            `clear_run_dir`).

    Returns:
        The saved configuration dict when resuming, else None.

    Raises:
        RunDirectoryError: the directory holds files and neither flag is
            given, or `resume` finds no run to continue, or both flags.

    Example:

    >>> prepare_run_dir("runs/new")  # doctest: +SKIP
    """
    run_dir = pathlib.Path(run_dir)
    if resume and overwrite:
        raise RunDirectoryError("--resume and --overwrite exclude each other.")
    if resume:
        saved = run_dir / run_config.CONFIG_FILE
        if not saved.is_file():
            raise RunDirectoryError(
                f"--resume: {run_dir} holds no run to continue (no "
                f"{run_config.CONFIG_FILE}).")
        return run_config.read_config_file(saved)
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise RunDirectoryError(
            f"{run_dir} already exists and is not empty; pass --resume "
            "to continue that run, --overwrite to replace it, or choose "
            "another --out.")
    return None


def clear_run_dir(run_dir):
    """Removes a previous run's files (`RUN_ARTIFACTS` only; anything else
    in the folder is kept)."""
    import shutil

    for name in RUN_ARTIFACTS:
        path = pathlib.Path(run_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def data_folders(data_dir):
    """`(images_dir, masks_dir, labels_csv)` of a dataset folder."""
    data_dir = pathlib.Path(data_dir)
    return data_dir / "images", data_dir / "masks", data_dir / "labels.csv"


# The report's heatmap panel and background attention need this many
# validation images.
MIN_VAL_IMAGES = 2
# Empty training masks listed by name in the warning.
LISTED_EMPTY_MASKS = 5


def _check_classes(index, labels_csv, split):
    """Refuses training data that cannot make a classifier and its report.

    Args:
        index: The training `FolderIndex`.
        labels_csv: Path of its labels CSV (named in the messages).
        split: bool. The validation set is split off this data.

    Raises:
        FolderDatasetError: fewer than 2 classes with images, a class with
            no image, or (with `split`) a class of a single image.
    """
    from isnet_keras.data import FolderDatasetError

    counts = np.bincount(index.labels, minlength=len(index.class_names))
    present = [name for name, count in zip(index.class_names, counts)
               if count]
    if len(present) < 2:
        raise FolderDatasetError([
            f"{labels_csv}: the images hold {len(present)} class "
            f"({', '.join(map(repr, present))}); a classifier needs images "
            "of at least 2 classes"])
    problems = []
    for name, count in zip(index.class_names, counts):
        if count == 0:
            # Only integer labels leave a class without images.
            problems.append(
                f"{labels_csv}: class {name!r} has no image (integer labels "
                "are class indices from 0, each class needs images)")
        elif count == 1 and split:
            # A stratified split puts a class's only image in one part.
            problems.append(
                f"{labels_csv}: class {name!r} has 1 image; splitting off "
                f"the validation set needs at least 2 per class (or pass "
                "--val-dir)")
    if problems:
        raise FolderDatasetError(problems)


def _check_masks(index, indices, masks_dir):
    """Refuses training masks that are all empty; warns about some empty.

    An empty mask (no foreground pixel) leaves its image out of the heatmap
    loss; with every mask empty that loss is 0 and ISNet trains as a plain
    classifier.

    Raises:
        FolderDatasetError: every mask of `indices` is empty.
    """
    import warnings

    from isnet_keras.data import FolderDatasetError

    empty = [i for i in indices if not index.mask_has_foreground[i]]
    if not empty:
        return
    if len(empty) == len(indices):
        raise FolderDatasetError([
            f"{masks_dir}: all {len(empty)} training masks are empty (no "
            "foreground pixel): the heatmap loss would be 0, so the ISNet "
            "penalty would be off; masks mark the object with 1 or 255"])
    names = ", ".join(index.mask_paths[i].name
                      for i in empty[:LISTED_EMPTY_MASKS])
    more = " ..." if len(empty) > LISTED_EMPTY_MASKS else ""
    warnings.warn(
        f"{len(empty)} of {len(indices)} training masks in {masks_dir} are "
        f"empty (no foreground pixel): {names}{more}. The heatmap loss "
        "leaves those images out.", UserWarning, stacklevel=3)


def scan_data(config):
    """Validates every file and splits the data, before any training.

    Returns:
        dict with `train_index`, `train_indices`, `val_index`,
        `val_indices` and `class_names`.

    Raises:
        FolderDatasetError: every problem of the folders, each naming its
            file; fewer than 2 classes, a class without images (or, when
            the validation set is split off, with one image), or only empty
            training masks.
        ValueError: a validation set of fewer than `MIN_VAL_IMAGES`
            images, or no training image left.

    Warns:
        UserWarning: some training masks are empty (named, up to
            `LISTED_EMPTY_MASKS`).
    """
    from isnet_keras.data import scan_folder_dataset, stratified_split

    images_dir, masks_dir, labels_csv = data_folders(config["data_dir"])
    index = scan_folder_dataset(images_dir, masks_dir, labels_csv)
    _check_classes(index, labels_csv, split=not config["val_dir"])
    if config["val_dir"]:
        val_index = scan_folder_dataset(*data_folders(config["val_dir"]),
                                        class_names=index.class_names)
        train_indices = np.arange(len(index.labels))
        val_indices = np.arange(len(val_index.labels))
        if len(val_indices) < MIN_VAL_IMAGES:
            raise ValueError(
                f"--val-dir {config['val_dir']} holds {len(val_indices)} "
                f"image(s); the validation report needs at least "
                f"{MIN_VAL_IMAGES}.")
    else:
        fraction = config["val_split"]
        train_indices, val_indices = stratified_split(
            index.labels, (1.0 - fraction, fraction), seed=config["seed"])
        val_index = index
        if len(val_indices) < MIN_VAL_IMAGES or len(train_indices) == 0:
            raise ValueError(
                f"val_split {fraction} leaves {len(train_indices)} training "
                f"and {len(val_indices)} validation images of the "
                f"{len(index.labels)}; training needs at least 1 and the "
                f"validation report at least {MIN_VAL_IMAGES}: change "
                "--val-split or pass --val-dir.")
    _check_masks(index, train_indices, masks_dir)
    return {"train_index": index, "train_indices": train_indices,
            "val_index": val_index, "val_indices": val_indices,
            "class_names": index.class_names}


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy inside the block."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(config, num_classes):
    """The compiled ISNet of a configuration (call inside the strategy)."""
    import keras

    from isnet_keras.backbones import make_classifier
    from isnet_keras.isnet import build_isnet

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
    `tuning_data()` and restart from the initial weights; the result goes
    to `run_dir/foreground_bounds.json`, which a resumed run reads instead
    of tuning again. A run stopped during the warm-up repeats it.

    Args:
        isnet: The compiled ISNet, before training.
        config: The run configuration.
        run_dir: Path of the run directory.
        train_data: The training dataset (for the warm-up).
        tuning_data: Callable returning the unaugmented training images.

    Returns:
        The bands as `AutoTuneForegroundBounds.result` holds them, or None
        for the loss defaults.
    """
    from isnet_keras.callbacks import (AutoTuneForegroundBounds,
                                       apply_foreground_bounds)

    saved = run_dir / BOUNDS_FILE
    if config["foreground_bounds"] is not None:
        c1, c2 = config["foreground_bounds"]
        bounds = {"C1": c1, "C2": c2, "hidden": {
            name: {"C1": c1, "C2": c2} for name in isnet.deep_supervision}}
    elif not config["tune_bounds"]:
        return None
    elif saved.is_file():
        bounds = _read_bounds(saved)
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
        _write_json(saved, bounds)
        if config["verbose"]:
            print(f"Foreground bands: C1 = {bounds['C1']}, C2 = "
                  f"{bounds['C2']} (written to {saved}); training restarts "
                  "from the initial weights.")
    apply_foreground_bounds(isnet, bounds)
    return bounds


def _read_bounds(path):
    try:
        bounds = json.loads(path.read_text(encoding="utf-8"))
        if not {"C1", "C2"} <= set(bounds):
            raise ValueError("no C1 and C2")
    except (ValueError, TypeError) as error:  # JSONDecodeError included
        raise ValueError(f"{path}: unreadable foreground bands ({error}); "
                         "delete it to tune them again.") from error
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
    import keras

    from isnet_keras.callbacks import (BackupUnlessDiverged,
                                       BestCheckpointFromEpoch,
                                       CheckpointUnlessDiverged,
                                       HeatmapWeightSchedule,
                                       PreciseBatchNorm, StopOnDivergence,
                                       TensorBoardHeatmaps)

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
    from isnet_keras.errors import TrainingDivergedError

    epoch = diverged["epoch"] + 1
    loss = diverged["loss"]
    rate = config["learning_rate"]
    kept = ("the checkpoints keep the last finite epoch"
            if (run_dir / "checkpoints" / "last.keras").is_file()
            else "no checkpoint was written")
    if config["clipnorm"] is None:
        clipping = ("; gradient clipping is off here: set clipnorm (e.g. "
                    "1.0) in a --config file")
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


def _fixed_images(index, indices, image_size, channels, count):
    """The first `count` validation images and masks (for the panel)."""
    from isnet_keras.data.pipeline import dataset_arrays, folder_dataset

    if count == 0:
        return None, None
    images, _, masks = dataset_arrays(folder_dataset(
        index, indices[:count], image_size, channels, count, cache=False))
    return images, masks


def write_report(isnet, val_images, val_labels, val_masks, class_names,
                 report_dir, max_heatmaps, seed):
    """Evaluates the deploy classifier on the validation set as
    `isnet evaluate` does; writes `report_dir/evaluation.json` and figures.

    Returns:
        The `evaluate_classifier` result dict.
    """
    from isnet_keras import evaluate
    from isnet_keras.cli.evaluate import write_evaluation

    result = evaluate.evaluate_classifier(
        isnet.deploy_model, val_images, val_labels, masks=val_masks,
        seed=seed, class_names=list(class_names),
        max_heatmaps=min(max_heatmaps, len(val_images))
        if len(val_images) >= 2 else None)
    write_evaluation(report_dir, {"data": "validation set", **result},
                     isnet.deploy_model, val_images, val_labels, val_masks,
                     title="validation set")
    return result


def write_audit_report(isnet, val_images, val_labels, val_masks, class_names,
                       report_dir, seed):
    """Runs the shortcut audit (`isnet_keras.audit()`) on the validation set;
    writes `report_dir/audit.json` and `audit.png`.

    Returns:
        The audit's `to_dict()`, or `{"skipped": reason}` when the
        validation set cannot be audited (e.g. a single class, or no mask
        with both object and background).
    """
    from isnet_keras.shortcut_audit import audit, write_audit

    try:
        result = audit(isnet.deploy_model, val_images, val_labels, val_masks,
                       seed=seed, class_names=list(class_names))
    except ValueError as error:
        # A small validation split may hold one class only; the run itself
        # is still good, so the report says why the audit is missing.
        return {"skipped": str(error)}
    # The run owns its report folder: a resumed run replaces its audit.
    write_audit(result, report_dir, overwrite=True)
    return result.to_dict()


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

    import keras

    from isnet_keras.callbacks import StopOnDivergence
    from isnet_keras.data.augment import JointAugmentation
    from isnet_keras.data.pipeline import dataset_arrays, folder_dataset
    from isnet_keras.distribute import make_strategy
    from isnet_keras.export import image_input_shape

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
        height, width, channels = image_input_shape(isnet.deploy_model)
        if channels not in (1, 3):
            raise ValueError(f"The classifier takes {channels} channels; "
                             "folder images feed 1 (grey) or 3 (RGB).")
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
        panel_images, panel_masks = _fixed_images(
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
            from isnet_keras.export import load_keras_file

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
    _write_json(run_dir / "run.json", {
        "class_names": list(class_names),
        "num_train": int(len(data["train_indices"])),
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


def _write_json(path, content):
    # Written beside and then renamed: a stop while writing leaves the
    # previous file (or none), never a truncated one.
    path = pathlib.Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(content, indent=2, allow_nan=False) + "\n",
                       encoding="utf-8")
    os.replace(partial, path)
