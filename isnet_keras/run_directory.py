"""The run directory of `isnet train`: what it holds, checking and
clearing it, and the reports written into it.

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

`prepare_run_dir` and `clear_run_dir` decide whether a run may use the
directory; `write_report` and `write_audit_report` write `report/`.
"""

import json
import pathlib
import shutil

from isnet_keras import run_config
from isnet_keras.audit_report import write_audit
from isnet_keras.evaluate import evaluate_classifier, write_evaluation
from isnet_keras.shortcut_audit import audit

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
    """Removes a previous run's files.

    Only `RUN_ARTIFACTS` are removed; anything else in the folder is kept.

    Args:
        run_dir: str or Path.

    Example:

    >>> clear_run_dir("runs/old")  # doctest: +SKIP
    """
    for name in RUN_ARTIFACTS:
        path = pathlib.Path(run_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def read_bounds(path):
    """Reads the foreground bands a run's warm-up chose.

    Args:
        path: Path of `foreground_bounds.json`.

    Returns:
        The bands dict, with `"C1"` and `"C2"` at least.

    Raises:
        ValueError: the file is not JSON or lacks C1 and C2.

    Example:

    >>> read_bounds(run_dir / BOUNDS_FILE)["C1"]  # doctest: +SKIP
    0.1
    """
    try:
        bounds = json.loads(path.read_text(encoding="utf-8"))
        if not {"C1", "C2"} <= set(bounds):
            raise ValueError("no C1 and C2")
    except (ValueError, TypeError) as error:  # JSONDecodeError included
        raise ValueError(f"{path}: unreadable foreground bands ({error}); "
                         "delete it to tune them again.") from error
    return bounds


def write_report(isnet, val_images, val_labels, val_masks, class_names,
                 report_dir, max_heatmaps, seed):
    """Evaluates the deploy classifier on the validation set as
    `isnet evaluate` does; writes `report_dir/evaluation.json` and figures.

    Args:
        isnet: The trained ISNet (its `deploy_model` is evaluated).
        val_images: Validation images (N, H, W, C).
        val_labels: Their classes (N,).
        val_masks: Their masks (N, H, W, 1).
        class_names: The K class names.
        report_dir: Path of the report folder.
        max_heatmaps: int. Most images whose heatmaps are scored.
        seed: int. Seed of the evaluation.

    Returns:
        The `evaluate_classifier` result dict.

    Example:

    >>> write_report(isnet, x, y, m, ["cat", "dog"], run_dir / "report",
    ...              1000, 0)["accuracy"]["value"]  # doctest: +SKIP
    0.93
    """
    result = evaluate_classifier(
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

    Args:
        isnet: The trained ISNet (its `deploy_model` is audited).
        val_images: Validation images (N, H, W, C).
        val_labels: Their classes (N,).
        val_masks: Their masks (N, H, W, 1).
        class_names: The K class names.
        report_dir: Path of the report folder.
        seed: int. Seed of the background donors.

    Returns:
        The audit's `to_dict()`, or `{"skipped": reason}` when the
        validation set cannot be audited (e.g. a single class, or no mask
        with both object and background).

    Example:

    >>> write_audit_report(isnet, x, y, m, ["cat", "dog"],
    ...                    run_dir / "report", 0)["verdict"]  # doctest: +SKIP
    'ignores_background'
    """
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
