"""The configuration of an `isnet train` run: defaults, YAML files, checks.

Every option of `isnet train` has a key here (the flag's name with `_` for
`-`). A YAML file gives any subset of them; command-line flags override
the file; the effective configuration is saved in the run directory as
`config.yaml`, so a run can be repeated or resumed exactly.
"""

import pathlib

import yaml

from isnet_keras.distribute import STRATEGIES

# Kept in step with isnet.VARIANTS and data.augment.FLIP_MODES (a test
# checks); repeated so that building the CLI parser does not import Keras.
VARIANTS = ("original", "selective", "stochastic", "dual")
FLIP_MODES = ("none", "horizontal", "vertical", "horizontal_and_vertical")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
OPTIMIZERS = ("adam", "sgd")
# "cosine": callbacks.CosineLearningRate, from learning_rate to 0.
LR_SCHEDULES = ("constant", "cosine")

DEFAULTS = {
    # Data
    "data_dir": None,
    "val_split": 0.1,
    "val_dir": None,
    "image_size": 224,
    "cache": True,
    # Images without a mask (or a box) train on cross-entropy only; boxes:
    # a CSV of boxes (filename,x0,y0,x1,y1) made into the masks instead of
    # the mask files, each widened by box_margin pixels.
    "partial_masks": False,
    "boxes": None,
    "box_margin": 0,
    # Model
    "backbone": "mobilenetv2",
    "weights": None,
    "variant": "selective",
    # "auto": 0.95, or 0.8 for a classifier with attention layers.
    "P": "auto",
    # None, or {epoch: P}: P from each listed epoch on (earlier epochs: P).
    "P_schedule": None,
    # "auto": the backbone's stage outputs (any classifier: the last
    # feature map of each resolution); a list of layer names; None: off.
    "deep_supervision": "auto",
    # The heatmap losses' foreground band: None (the loss defaults, C1 = 1,
    # C2 = 25) or [C1, C2] for every loss; or tuned after this many
    # cross-entropy warm-up epochs (docs/algorithm.md, "Automatic C1 and C2";
    # 0: off).
    "foreground_bounds": None,
    "tune_bounds": 0,
    # Optimisation: isnet.default_optimizer() (Adam 3e-3, global norm
    # clipping 0.3); "sgd" with momentum as in the papers.
    "epochs": 10,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 3e-3,
    "lr_schedule": "constant",
    "momentum": 0.9,
    "clipnorm": 0.3,
    "seed": 0,
    # Augmentation (training only)
    "flip": "none",
    "rotation": 0.0,
    "translation": 0.0,
    "zoom": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    # Run
    "out": None,
    "strategy": "default",
    "cluster": None,
    "task_index": None,
    "precision": "float32",
    "heatmap_images": 4,
    "max_heatmaps": 1000,
    "verbose": 1,
}
CHOICES = {
    "variant": VARIANTS,
    "strategy": STRATEGIES,
    "precision": PRECISIONS,
    "flip": FLIP_MODES,
    "optimizer": OPTIMIZERS,
    "lr_schedule": LR_SCHEDULES,
}
# Keys a resumed run must share with the run it continues.
RESUME_KEYS = ("data_dir", "val_split", "val_dir", "image_size", "backbone",
               "weights", "variant", "seed", "precision", "foreground_bounds",
               "tune_bounds", "P_schedule", "partial_masks", "boxes",
               "box_margin")
# Options of one invocation only, never saved.
INVOCATION_KEYS = ("config", "resume", "overwrite")
CONFIG_FILE = "config.yaml"


class ConfigError(ValueError):
    """An invalid run configuration; the message names the key."""


def read_config_file(path):
    """Reads a YAML run configuration.

    Args:
        path: str or Path of a YAML mapping whose keys are in `DEFAULTS`.

    Returns:
        dict of the keys the file sets.

    Raises:
        ConfigError: unreadable file, not a mapping, or unknown keys.

    Example:

    >>> read_config_file("run.yaml")  # doctest: +SKIP
    {'data_dir': 'data/train', 'epochs': 20}
    """
    path = pathlib.Path(path)
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the config ({error})") \
            from error
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a mapping of options, found "
                          f"{type(content).__name__}.")
    content = {str(key).replace("-", "_"): value
               for key, value in content.items()}
    unknown = sorted(set(content) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"{path}: unknown option(s) {', '.join(unknown)}; "
                          f"known: {', '.join(DEFAULTS)}.")
    return content


def effective_config(file_config=None, overrides=None):
    """Defaults, then the file's values, then the set flags; checked.

    Args:
        file_config: dict from `read_config_file`, or None.
        overrides: dict of command-line values; None values mean "not
            given" and do not override.

    Returns:
        A complete, checked configuration dict (keys of `DEFAULTS`).

    Raises:
        ConfigError: a value of the wrong type or outside its range.

    Example:

    >>> effective_config({"epochs": 5}, {"epochs": 2, "data_dir": "d",
    ...                                  "out": "r"})["epochs"]
    2
    """
    config = dict(DEFAULTS)
    config.update(file_config or {})
    config.update({key: value for key, value in (overrides or {}).items()
                   if value is not None and key in DEFAULTS})
    return check_config(config)


def _number(config, key, kind, low=None, high=None, low_open=False):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            kind is int and not float(value).is_integer()):
        article = "an integer" if kind is int else "a number"
        raise ConfigError(f"{key} must be {article}; received {value!r}.")
    value = kind(value)
    if low is not None and (value <= low if low_open else value < low):
        raise ConfigError(f"{key} must be {'>' if low_open else '>='} {low}; "
                          f"received {value}.")
    if high is not None and value > high:
        raise ConfigError(f"{key} must be <= {high}; received {value}.")
    config[key] = value


def check_config(config):
    """Checks and normalises a configuration in place; returns it.

    Raises:
        ConfigError: naming the first bad key and its value.
    """
    for key in ("data_dir", "out"):
        if not config.get(key):
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{key} is required (flag {flag} or the "
                              "config file).")
    for key, choices in CHOICES.items():
        if config[key] not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}; "
                              f"received {config[key]!r}.")
    _number(config, "image_size", int, 1)
    _number(config, "epochs", int, 1)
    _number(config, "batch_size", int, 1)
    _number(config, "seed", int)
    _number(config, "heatmap_images", int, 0)
    _number(config, "max_heatmaps", int, 2)
    _number(config, "verbose", int, 0, 2)
    if config["P"] != "auto":
        _number(config, "P", float, 0.0, 1.0)
    _number(config, "val_split", float, 0.0, 1.0, low_open=True)
    if config["val_split"] >= 1.0:
        raise ConfigError(f"val_split must be < 1; received "
                          f"{config['val_split']}.")
    _number(config, "learning_rate", float, 0.0, low_open=True)
    _number(config, "momentum", float, 0.0, 1.0)
    if config["clipnorm"] is not None:
        _number(config, "clipnorm", float, 0.0, low_open=True)
    for key in ("rotation", "translation", "zoom", "brightness", "contrast"):
        _number(config, key, float, 0.0, 1.0)
    for key in ("data_dir", "val_dir", "out", "backbone", "weights"):
        if config[key] is not None:
            config[key] = str(config[key])
    layers = config["deep_supervision"]
    if isinstance(layers, (list, tuple)):
        if not all(isinstance(name, str) and name for name in layers):
            raise ConfigError("deep_supervision must be 'auto', null or a "
                              f"list of layer names; received {layers!r}.")
        # An empty list turns deep supervision off, as null does.
        config["deep_supervision"] = list(layers) or None
    elif layers not in (None, "auto"):
        raise ConfigError("deep_supervision must be 'auto', null or a list "
                          f"of layer names; received {layers!r}.")
    _check_schedule(config)
    _number(config, "tune_bounds", int, 0)
    _number(config, "box_margin", int, 0)
    if not isinstance(config["partial_masks"], bool):
        raise ConfigError("partial_masks must be true or false; received "
                          f"{config['partial_masks']!r}.")
    if config["boxes"] is not None:
        config["boxes"] = str(config["boxes"])
    _check_foreground_bounds(config)
    if not isinstance(config["cache"], (bool, str)):
        raise ConfigError(f"cache must be true, false or a file path; "
                          f"received {config['cache']!r}.")
    return config


def _check_schedule(config):
    schedule = config["P_schedule"]
    if schedule is None:
        return
    if not isinstance(schedule, dict) or not schedule:
        raise ConfigError("P_schedule must be a mapping {epoch: P}; "
                          f"received {schedule!r}.")
    checked = {}
    for epoch, value in schedule.items():
        if isinstance(epoch, bool) or not isinstance(epoch, int) or \
                epoch < 0 or isinstance(value, bool) or \
                not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError("P_schedule maps epochs (integers >= 0) to P "
                              f"in [0, 1]; received {epoch!r}: {value!r}.")
        checked[epoch] = float(value)
    config["P_schedule"] = dict(sorted(checked.items()))


def _check_foreground_bounds(config):
    bounds = config["foreground_bounds"]
    if bounds is None:
        return
    if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2 and all(
            isinstance(value, (int, float)) and not isinstance(value, bool)
            for value in bounds) and 0 < bounds[0] < bounds[1]):
        raise ConfigError("foreground_bounds must be two numbers [C1, C2] "
                          f"with 0 < C1 < C2; received {bounds!r}.")
    if config["tune_bounds"]:
        raise ConfigError("foreground_bounds and tune_bounds exclude each "
                          "other: give the band, or the warm-up epochs that "
                          "choose it.")
    config["foreground_bounds"] = [float(value) for value in bounds]


def save_config(config, run_dir):
    """Writes the configuration to `run_dir/config.yaml`; returns the path."""
    path = pathlib.Path(run_dir) / CONFIG_FILE
    saved = {key: config[key] for key in DEFAULTS}
    path.write_text(yaml.safe_dump(saved, sort_keys=False), encoding="utf-8")
    return path


def check_resume_matches(config, saved, run_dir):
    """Refuses to resume a run with different data or model settings.

    Raises:
        ConfigError: listing every differing key with both values.
    """
    # Keys that a run from an older version did not save had their defaults.
    different = [
        f"{key}: {saved.get(key, DEFAULTS[key])!r} in the run, "
        f"{config[key]!r} now" for key in RESUME_KEYS
        if saved.get(key, DEFAULTS[key]) != config[key]]
    if different:
        raise ConfigError(
            f"--resume: {run_dir} was trained with other settings "
            f"({'; '.join(different)}); use the same settings, or a new "
            "--out.")
