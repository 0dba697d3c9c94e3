"""The DecoyMNIST protocol of "Right for the Right Reasons" (Ross, Hughes
and Doshi-Velez, IJCAI 2017), as `isnet bench bias --benchmark decoy
--protocol rrr`.

What the paper and its published code do, and what this module does:

* Data: every training digit gets a 4x4 patch in a random corner (rows 0-3
  or 24-27 and, independently, columns 0-3 or 24-27) of grey 255 - 25 y
  (y = the label); every test digit the grey of a random class. This is
  `isnet_keras.data.decoy_mnist` in its `"biased"` and `"randomized"`
  modes (the same corners and shades); the `"biased"` and `"clean"` test
  sets are reported too. The paper trains on MNIST's 60,000 training
  digits and tests on its 10,000 test digits; this module does the same
  when the loaded digits are the full 70,000 (train split first), and
  otherwise (the offline 10,000-image test split, or scikit-learn's
  digits) splits them 60/40, stratified by class with the seed.
* Model: a 784-50-30-10 ReLU MLP (`protocol_mlp`) on raw grey levels: the
  reference feeds pixels 0-255, so the model's first layer rescales the
  project's [0, 1] images by 255. Weights and biases start from N(0, 0.1),
  as in the reference code.
* Loss (`RRRClassifier(..., reduction="sum", pixel_scale=255, l2=1e-4)`):
  `sum_n CE_n + lambda * sum_n sum_d (A_nd d/dx_nd sum_k log p_k)^2 +
  l2 * sum(theta^2)`, summed over the batch (not averaged), the input
  gradient per grey level, A = the 16 patch pixels (the reference's
  annotation), lambda = 1000, and the L2 an explicit penalty on every
  parameter (kernels and biases), added once per batch. The plain MLP has
  lambda = 0.
* Training: Adam (learning rate 1e-3, epsilon 1e-8 as in the reference),
  batch 256, 64 epochs; the data are shuffled every epoch (the reference
  cycles through fixed batches).
* Models: `plain` and `rrr` on the decoy images; `plain_clean`, the plain
  MLP on the same training digits without patches (the paper's reference
  MLP trained on clean MNIST); `isnet`, the ISNet (`build_isnet`'s
  defaults: Selective, P = 0.95, GWRP heatmap loss, deep supervision
  "auto") on the same 784-50-30-10 MLP, its loss summed over the batch plus
  the same L2, with the project's foreground masks. The ISNet's MLP takes
  the [0, 1] images as they are and starts from Keras's initialisers
  (Glorot-uniform kernels, zero biases): on the reference's MLP (grey
  levels, N(0, 0.1)) logits and relevances start in the hundreds, the
  heatmap loss's foreground band (1 to 25) puts its loss near 1e6, and the
  model stayed at chance accuracy. That MLP is the optional model
  `isnet_grey_levels`. `rrr_background` (optional) is RRR with the
  project's annotation instead of the patch: every pixel outside the
  dilated digit.

On an MLP the ISNet explains the input pixels only: `Flatten` does not pass
the Z^B input bounds on, so the first `Dense` layer takes the LRP-epsilon
rule, under which a black pixel carries no relevance; the patch (grey
>= 30) does. Deep supervision `"auto"` finds no 4-D feature map and
supervises no hidden layer.
"""

import dataclasses
import json
import pathlib
import time
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from isnet_keras.baselines import PlainClassifier, RRRClassifier
from isnet_keras.bench.bias import _evaluate, _relative_source
from isnet_keras.bench.seeds import accuracy_cells, format_summary, summarize
from isnet_keras.data.bias import (ImageSet, _limit_per_class, _load_digits,
                                   decoy_mnist)
from isnet_keras.data.splits import stratified_split
from isnet_keras.isnet import ISNet
from isnet_keras.lrp.graph import LRPGraph

PROTOCOL_MODELS = ("plain", "rrr", "isnet", "plain_clean")
OPTIONAL_MODELS = ("rrr_background", "isnet_grey_levels")

# The MLP of `isnet` (see the module docstring): [0, 1] inputs, Keras's
# initialisers. Every other model uses the reference's (`RRRProtocolConfig`
# `pixel_scale` and `init_stddev`).
ISNET_MLP = {"pixel_scale": 1.0, "init_stddev": None}
PROTOCOL_TEST_SETS = ("biased", "clean", "randomized")

# Test accuracies the paper's code reports (experiments/Decoy MNIST.ipynb
# of the authors' repository): randomized decoy test set for the plain and
# RRR MLPs, clean test set for the MLP trained on clean MNIST.
PAPER_ACCURACY = {"plain": {"randomized": 0.5155},
                  "rrr": {"randomized": 0.9607},
                  "plain_clean": {"clean": 0.9611}}

# MNIST's official split sizes: with all 70,000 digits (train split first,
# as `load_mnist` concatenates them) the protocol uses them as the paper.
MNIST_TRAIN_SIZE = 60_000
MNIST_TOTAL_SIZE = 70_000


@dataclasses.dataclass(frozen=True)
class RRRProtocolConfig:
    """Settings of the RRR DecoyMNIST protocol (defaults: the paper's).

    Attributes:
        data: `"mnist"` or `"digits"` (scikit-learn's digits, offline).
        mnist_dir: Folder of MNIST IDX files (None: search).
        out: Output folder for `results.json`.
        fast: A run of well under a minute (30 digits per class, 1 epoch).
        seeds: Seeds; each sets the split, the patches, the initial weights
            and the data order.
        epochs: Epochs of every model (None: 64, or 1 with `fast`).
        models: Names from `PROTOCOL_MODELS` and `OPTIONAL_MODELS`.
        hidden_units: Widths of the MLP's hidden ReLU layers.
        learning_rate: Adam learning rate.
        batch_size: Training batch size.
        l2: Weight of `l2 * sum(theta^2)` per batch (every model).
        rrr_penalty: lambda of RRR's input-gradient penalty.
        pixel_scale: Grey levels per unit of the [0, 1] images: the MLP
            multiplies its input by it and RRR takes its gradients per
            grey level.
        init_stddev: Standard deviation of the initial weights and biases
            (None: Keras's initialisers).
        train_fraction: Training share of a stratified split (used unless
            all 70,000 MNIST digits are loaded).
        limit_per_class: Digits kept per class before the split (None:
            all; 30 with `fast`).
        verbose: Keras progress-bar mode for `fit`.
    """

    data: str = "mnist"
    mnist_dir: str = None
    out: str = "runs/rrr_decoy"
    fast: bool = False
    seeds: tuple = (0,)
    epochs: int = None
    models: tuple = PROTOCOL_MODELS
    hidden_units: tuple = (50, 30)
    learning_rate: float = 1e-3
    batch_size: int = 256
    l2: float = 1e-4
    rrr_penalty: float = 1000.0
    pixel_scale: float = 255.0
    init_stddev: float = 0.1
    train_fraction: float = 0.6
    limit_per_class: int = None
    verbose: object = 0

    def resolved_epochs(self):
        return self.epochs or (1 if self.fast else 64)

    def resolved_limit(self):
        return 30 if self.fast and self.limit_per_class is None \
            else self.limit_per_class


def protocol_mlp(num_classes=10, hidden_units=(50, 30), pixel_scale=255.0,
                 init_stddev=0.1, input_shape=(28, 28, 1)):
    """The paper's MLP: 784-50-30-10, ReLU, logits output.

    The [0, 1] images are multiplied by `pixel_scale` (grey levels, as the
    reference feeds them; no layer when it is 1) and flattened inside the
    model; every ReLU is its own layer (`relu_1`, `relu_2`), as LRP
    prefers. Weights and biases start from N(0, `init_stddev`), or from
    Keras's initialisers when it is None.

    Example:

    >>> [layer.units for layer in protocol_mlp().layers
    ...  if isinstance(layer, keras.layers.Dense)]
    [50, 30, 10]
    """
    layers = keras.layers
    init = {}
    if init_stddev is not None:
        normal = keras.initializers.RandomNormal(stddev=init_stddev)
        init = {"kernel_initializer": normal, "bias_initializer": normal}
    stack = [keras.Input(input_shape)]
    if pixel_scale != 1:
        stack.append(layers.Rescaling(pixel_scale, name="grey_levels"))
    stack.append(layers.Flatten())
    for index, units in enumerate(hidden_units, start=1):
        stack += [layers.Dense(units, name=f"dense_{index}", **init),
                  layers.ReLU(name=f"relu_{index}")]
    stack.append(layers.Dense(num_classes, name="logits", **init))
    return keras.Sequential(stack, name="rrr_mlp")


class ProtocolData(NamedTuple):
    """The protocol's images for one seed.

    Attributes:
        source: Where the digits came from.
        split: `"mnist-train-test"` (the official split) or
            `"stratified-<train %>/<test %>"`.
        train: `ImageSet` of patched training digits; `masks` are the
            project's foreground masks (dilated digit).
        train_clean: The same digits without patches.
        annotation: float32 (N, 28, 28, 1), 1 on each training image's
            patch: RRR's annotation A.
        test: `{"biased", "clean", "randomized"}` -> `ImageSet` (the same
            corners in the three).
    """

    source: str
    split: str
    train: object
    train_clean: object
    annotation: np.ndarray
    test: dict


def patch_annotation(bias_origin, size=28, patch=4):
    """float32 (N, size, size, 1): 1 on each image's patch, else 0.

    Example:

    >>> int(patch_annotation(np.array([[0, 24]])).sum())
    16
    """
    origins = np.asarray(bias_origin)
    annotation = np.zeros((len(origins), size, size, 1), np.float32)
    for index, (row, col) in enumerate(origins):
        if row >= 0:
            annotation[index, row:row + patch, col:col + patch] = 1.0
    return annotation


def split_indices(labels, seed, train_fraction=0.6):
    """`(train, test, name)`: MNIST's own split for all 70,000 digits, else
    a stratified `train_fraction` split with `seed`.

    Example:

    >>> train, test, name = split_indices(np.arange(100) % 10, seed=0)
    >>> len(train), len(test), name
    (60, 40, 'stratified-60/40')
    """

    labels = np.asarray(labels)
    if len(labels) == MNIST_TOTAL_SIZE:
        indices = np.arange(MNIST_TOTAL_SIZE)
        return (indices[:MNIST_TRAIN_SIZE], indices[MNIST_TRAIN_SIZE:],
                "mnist-train-test")
    train, test = stratified_split(labels, (train_fraction,
                                            1.0 - train_fraction), seed=seed)
    name = (f"stratified-{round(100 * train_fraction)}/"
            f"{round(100 * (1 - train_fraction))}")
    return train, test, name


def make_protocol_data(config, seed):
    """Loads digits and builds the protocol's sets for `seed`.

    Patches (corners and random shades) use the NumPy seeds `[seed, 0]`
    (training) and `[seed, 2]` (the three test sets), as
    `make_bias_benchmark` does.
    """

    source = "digits" if config.data == "digits" else "auto"
    loaded = _load_digits(source, config.mnist_dir)
    kept = np.arange(len(loaded.labels))
    limit = config.resolved_limit()
    if limit is not None:
        kept = _limit_per_class(loaded.labels, limit, seed)
    images, labels = loaded.images[kept], loaded.labels[kept]
    train, test, split = split_indices(labels, seed, config.train_fraction)

    def image_set(part, mode, part_seed):
        made = decoy_mnist(images[part], labels[part], mode,
                           seed=[seed, part_seed])
        return made, ImageSet(made.images, made.masks,
                              labels[part].astype(np.int32))

    made, train_set = image_set(train, "biased", 0)
    _, train_clean = image_set(train, "clean", 0)
    return ProtocolData(
        source=f"{loaded.source}: {loaded.location}", split=split,
        train=train_set, train_clean=train_clean,
        annotation=patch_annotation(made.bias_origin),
        test={mode: image_set(test, mode, 2)[1]
              for mode in PROTOCOL_TEST_SETS})


class SummedLossISNet(ISNet):
    """An ISNet whose loss takes the protocol's form: its per-image loss
    `(1 - P) CE + P L_H` summed over the batch, plus `l2 * sum(theta^2)`
    over the classifier's trainable variables, once per batch.

    Args:
        classifier: The classifier.
        l2: The weight of the L2 term.
        **kwargs: `ISNet` arguments (defaults: `build_isnet`'s).
    """

    def __init__(self, classifier, l2=0.0, **kwargs):
        super().__init__(classifier, **kwargs)
        self.l2 = float(l2)

    def _loss_terms(self, images, labels, masks, training):
        terms = super()._loss_terms(images, labels, masks, training)
        total = terms.total
        count = tf.cast(tf.shape(images)[0], total.dtype)
        squares = tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, total.dtype)))
                            for v in self.classifier.trainable_variables])
        return terms._replace(total=total * count + self.l2 * squares)


def make_protocol_trainer(name, classifier, config):
    """The compiled training model of protocol entry `name`."""

    if name in ("plain", "plain_clean"):
        model = PlainClassifier(classifier, reduction="sum", l2=config.l2)
    elif name in ("rrr", "rrr_background"):
        model = RRRClassifier(classifier, penalty=config.rrr_penalty,
                              pixel_scale=config.pixel_scale,
                              reduction="sum", l2=config.l2)
    elif name in ("isnet", "isnet_grey_levels"):
        model = SummedLossISNet(classifier, l2=config.l2)
    else:
        raise ValueError(f"Unknown model {name!r}; choose from "
                         f"{PROTOCOL_MODELS + OPTIONAL_MODELS}.")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate,
                                                  epsilon=1e-8))
    return model


def _training_set(name, data):
    """Images, labels and the masks each model trains with.

    RRR penalises the input gradient where the mask is 0, so its "mask" is
    1 - A (A = the patch); `rrr_background` and the ISNet get the project's
    foreground masks.
    """
    if name == "plain_clean":
        return data.train_clean
    if name == "rrr":
        return data.train._replace(masks=1.0 - data.annotation)
    return data.train


def train_and_test(name, data, seed, config):
    """Trains protocol model `name` on `data` and returns its result row."""

    keras.utils.set_random_seed(seed)
    num_classes = int(data.train.labels.max()) + 1
    scale = {"pixel_scale": config.pixel_scale,
             "init_stddev": config.init_stddev}
    if name == "isnet":
        scale = ISNET_MLP
    classifier = protocol_mlp(num_classes, tuple(config.hidden_units),
                              input_shape=data.train.images.shape[1:],
                              **scale)
    trainer = make_protocol_trainer(name, classifier, config)
    train = _training_set(name, data)
    epochs = config.resolved_epochs()
    start = time.perf_counter()
    history = trainer.fit(train.images, {"label": train.labels,
                                         "mask": train.masks},
                          epochs=epochs, batch_size=config.batch_size,
                          verbose=config.verbose)
    seconds = time.perf_counter() - start
    report, _ = _evaluate(name, classifier, data,
                          max_heatmaps=200 if config.fast else 1000)
    row = {"seed": seed, "model": name, **report,
           "train_set": "clean" if name == "plain_clean" else "decoy",
           "final_train_accuracy": float(history.history["accuracy"][-1]),
           "epochs": epochs, "seconds": seconds}
    row.update(scale)
    if name.startswith("isnet"):
        row["deep_supervision"] = list(trainer.deep_supervision)
        row["first_layer_rule"] = _first_dense_rule(trainer)
    return row


def _first_dense_rule(isnet):
    """The LRP rule the ISNet's graph gives the MLP's first Dense layer."""

    graph = LRPGraph(isnet.classifier, epsilon=isnet.epsilon,
                     first_layer_rule=isnet.first_layer_rule,
                     input_bounds=isnet.input_bounds)
    for step in graph._plan("epsilon", ()):
        if step.mirror.is_linear:
            return step.mirror.rule
    return None


def format_rows(rows, test_sets=PROTOCOL_TEST_SETS):
    """One printed line per row: accuracy [Wilson 95%] per test set."""
    header = (f"{'seed':>4} {'model':<15}"
              + "".join(f"{name:>22}" for name in test_sets)
              + f"{'bg fraction':>13}{'s':>7}")
    lines = [header, "-" * len(header)]
    for row in rows:
        cells = accuracy_cells(row, test_sets)
        lines.append(f"{row['seed']:>4} {row['model']:<15}{cells}"
                     f"{row['background_fraction']:>13.3f}"
                     f"{row['seconds']:>7.0f}")
    return "\n".join(lines)


def format_paper_comparison(summary):
    """Mean (min-max) beside the paper's figure, where it has one."""
    lines = []
    for entry in summary:
        for test_set, paper in PAPER_ACCURACY.get(entry["model"], {}).items():
            stats = entry[test_set]
            lines.append(
                f"{entry['model']:<15}{test_set:<12}{stats['mean']:.4f} "
                f"({stats['min']:.4f}-{stats['max']:.4f}) vs paper "
                f"{paper:.4f}")
    return "\n".join(lines)


def run_rrr_protocol(config=RRRProtocolConfig()):
    """Trains and tests every (seed, model) of `config`.

    Returns:
        The dict also written to `config.out/results.json`: `"protocol"`,
        `"settings"`, `"split"`, `"test_sets"`, `"seeds"`, `"paper"`,
        `"rows"` (one per seed and model: accuracy and Wilson interval per
        test set, background fraction, seconds), `"summary"` (mean, min and
        max over seeds per model) and `"wall_seconds"`.

    Example:

    >>> run_rrr_protocol(RRRProtocolConfig(fast=True, data="digits",
    ...                                    seeds=(0, 1)))  # doctest: +SKIP
    """

    known = PROTOCOL_MODELS + OPTIONAL_MODELS
    unknown = sorted(set(config.models) - set(known))
    if unknown:
        raise ValueError(f"Unknown models {unknown}; choose from "
                         f"{', '.join(known)}.")
    if not config.seeds:
        raise ValueError("Give at least one seed.")
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {key: value for key, value in dataclasses.asdict(config).items()
                if key not in ("out", "mnist_dir", "verbose", "seeds",
                               "models")}
    settings["epochs"] = config.resolved_epochs()
    settings["limit_per_class"] = config.resolved_limit()
    settings["optimizer"] = "Adam (epsilon 1e-8)"
    settings["loss"] = ("sum over the batch of CE (+ lambda * RRR penalty "
                        "per grey level on the patch), + l2 * sum(theta^2) "
                        "over kernels and biases, once per batch")
    values = [*PROTOCOL_TEST_SETS, "background_fraction"]
    results = {"protocol": "rrr", "benchmark": "decoy", "settings": settings,
               "seeds": list(config.seeds),
               "test_sets": list(PROTOCOL_TEST_SETS),
               "paper": PAPER_ACCURACY, "wall_seconds": 0.0, "rows": []}
    start = time.perf_counter()
    for seed in config.seeds:
        data = make_protocol_data(config, seed)
        results["data"] = _relative_source(data.source)
        results["split"] = {"name": data.split,
                            "train": len(data.train.labels),
                            "test": len(data.test["randomized"].labels)}
        print(f"Seed {seed}: {data.source}, split {data.split}: "
              f"{len(data.train.labels)} train, "
              f"{len(data.test['randomized'].labels)} test images.",
              flush=True)
        for name in config.models:
            row = train_and_test(name, data, seed, config)
            results["rows"].append(row)
            print(format_rows([row]).splitlines()[-1], flush=True)
            results["wall_seconds"] = time.perf_counter() - start
            results["summary"] = summarize(results["rows"], values)
            # After every model, so an interrupted run keeps its rows.
            (out / "results.json").write_text(json.dumps(results, indent=2))
    print("\n" + format_rows(results["rows"]))
    print("\nMean (min-max) over seeds:\n"
          + format_summary(results["summary"], values))
    comparison = format_paper_comparison(results["summary"])
    if comparison:
        print("\nAgainst the paper (60,000 training digits):\n" + comparison)
    print(f"\nWall time {results['wall_seconds']:.0f} s. "
          f"Wrote {out / 'results.json'}.")
    return results
