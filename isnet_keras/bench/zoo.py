"""The bias-zoo benchmark: does the default ISNet remove shortcuts it was
never tuned for?

For every bias family of `isnet_keras.data.zoo` and every seed, three models
with the same CNN, epochs and data order are trained:

* `plain`: the classifier on the biased training set (it learns the cue);
* `plain_unbiased`: the classifier on the same images without the cue (the
  reference a debiased model should match);
* `isnet`: `build_isnet(classifier)` with every default, compiled with its
  default optimizer, on the biased training set.

Each is tested on the biased, clean and confounding test sets.
`run_zoo_benchmark(ZooBenchConfig(...))` prints a table (accuracies with
Wilson 95% intervals, background relevance fraction) and writes
`results.json`; `isnet bench zoo` is its command line.
"""

import dataclasses
import inspect
import json
import pathlib
import time

import keras
import numpy as np

from isnet_keras.backbones import vit_small
from isnet_keras.baselines import PlainClassifier
from isnet_keras.bench.bias import _relative_source, bench_classifier
from isnet_keras.bench.seeds import accuracy_cells
from isnet_keras.callbacks import CosineLearningRate
from isnet_keras.data.zoo import ZOO_FAMILIES, ZOO_TEST_SETS, make_zoo_benchmark
from isnet_keras.isnet import build_isnet, default_optimizer
from isnet_keras.lrp.explain import Explainer
from isnet_keras.metrics import background_relevance_fraction, wilson_interval
from isnet_keras.run_config import DEFAULTS as TRAIN_DEFAULTS, LR_SCHEDULES

ZOO_MODELS = ("plain", "plain_unbiased", "isnet")
ZOO_CLASSIFIERS = ("bench_cnn", "vit_small")


@dataclasses.dataclass(frozen=True)
class ZooBenchConfig:
    """Settings of one bias-zoo run.

    Attributes:
        families: Bias families to run (names of `ZOO_FAMILIES`).
        seeds: Seeds; each sets the split, the cue draws, the initial
            weights and the data order.
        out: Output folder for `results.json`.
        fast: A run of a minute or two: few images, one epoch.
        data: `"mnist"` (IDX files or the keras.datasets cache) or
            `"digits"` (scikit-learn's digits, offline).
        mnist_dir: Folder of MNIST IDX files (None: search).
        limit_per_class: Digits kept per class before the 70/10/20 split
            (None with `fast`: 30).
        test_per_class: Digits per class in each test set: the split's
            40 topped up with digits the limit left out, so that a
            difference of two accuracies is not mostly test-set noise
            (None, or `fast`: the split's own).
        epochs: Epochs of every model (None: 1 with `fast`, else 12).
        classifier: The network every model trains: `"bench_cnn"` (the
            bias benchmark's CNN) or `"vit_small"` (the small ViT of
            `isnet_keras.backbones`).
        batch_size: Training batch size of every model: 32, what
            `isnet train` and Keras' `fit` use when given none. (At 64,
            half the steps, the ISNet's confounding accuracy after 12
            epochs was 1.9 points lower on average over 17 zoo pairs.)
        lr_schedule: `"cosine"` (the rate falls from the optimizer's to 0
            over the run, `callbacks.CosineLearningRate`) or `"constant"`,
            for every model; the default is `isnet train`'s.
        verbose: Keras progress-bar mode for `fit`.
        overwrite: Replace an existing `out/results.json`.
    """

    families: tuple = None
    seeds: tuple = (0,)
    out: str = "runs/zoo"
    fast: bool = False
    data: str = "mnist"
    mnist_dir: str = None
    limit_per_class: int = 200
    test_per_class: int = 200
    epochs: int = None
    classifier: str = "bench_cnn"
    batch_size: int = 32
    lr_schedule: str = TRAIN_DEFAULTS["lr_schedule"]
    verbose: object = 0
    overwrite: bool = False

    def resolved_epochs(self):
        return self.epochs or (1 if self.fast else 12)

    def resolved_limit(self):
        return 30 if self.fast else self.limit_per_class

    def resolved_test_per_class(self):
        return None if self.fast else self.test_per_class


def default_recipe():
    """The ISNet settings every zoo row uses: `build_isnet`'s and
    `ISNet.compile`'s defaults, read from the code, not restated."""


    parameters = inspect.signature(build_isnet).parameters
    recipe = {name: parameter.default for name, parameter in
              parameters.items() if name != "classifier"
              and parameter.kind is not parameter.VAR_KEYWORD}
    optimizer = default_optimizer()
    recipe["optimizer"] = {
        "class": type(optimizer).__name__,
        "learning_rate": float(np.asarray(optimizer.learning_rate)),
        "global_clipnorm": optimizer.global_clipnorm}
    return {key: value if isinstance(value, (int, float, str, dict,
                                             type(None))) else repr(value)
            for key, value in recipe.items()}


def _check_classifier_kind(kind):
    if kind not in ZOO_CLASSIFIERS:
        raise ValueError(f"Unknown zoo classifier {kind!r}; choose from "
                         f"{', '.join(ZOO_CLASSIFIERS)}.")


def make_zoo_classifier(kind, input_shape, num_classes):
    """A fresh classifier of kind `kind` (one of `ZOO_CLASSIFIERS`) for
    images of `input_shape` (square, channels last)."""
    _check_classifier_kind(kind)
    if kind == "vit_small":
        return vit_small(num_classes, input_shape[0],
                         channels=input_shape[-1])
    return bench_classifier(input_shape, num_classes)


def _make_model(name, classifier):

    if name == "isnet":
        model = build_isnet(classifier)
        model.compile()
    else:
        model = PlainClassifier(classifier)
        model.compile(optimizer=default_optimizer())
    return model


def _test_row(classifier, explainer, bench, max_heatmaps):

    row = {}
    for set_name, test in bench.test.items():
        predicted = classifier.predict(test.images, batch_size=256,
                                       verbose=0).argmax(-1)
        correct = int(np.sum(predicted == test.labels))
        row[set_name] = correct / len(test.labels)
        row[f"{set_name}_ci95"] = list(wilson_interval(correct,
                                                       len(test.labels)))
    biased = bench.test["biased"]
    heatmaps = explainer(biased.images[:max_heatmaps], "predicted")[:, 0]
    row["background_fraction"] = float(np.mean(np.asarray(
        background_relevance_fraction(heatmaps,
                                      biased.masks[:max_heatmaps]))))
    return row


def train_and_test(name, bench, seed, config):
    """Trains zoo model `name` on `bench` and returns its result row."""


    train = bench.train_clean if name == "plain_unbiased" else bench.train
    keras.utils.set_random_seed(seed)
    num_classes = int(train.labels.max()) + 1
    classifier = make_zoo_classifier(config.classifier,
                                     train.images.shape[1:], num_classes)
    model = _make_model(name, classifier)
    epochs = config.resolved_epochs()
    start = time.perf_counter()
    schedule = [CosineLearningRate(float(np.asarray(
        model.optimizer.learning_rate)))] \
        if config.lr_schedule == "cosine" else []
    history = model.fit(train.images, {"label": train.labels,
                                       "mask": train.masks},
                        epochs=epochs, batch_size=config.batch_size,
                        verbose=config.verbose, callbacks=schedule)
    seconds = time.perf_counter() - start
    row = {"family": bench.family, "seed": seed, "model": name,
           "classifier": config.classifier,
           **_test_row(classifier, Explainer(classifier), bench,
                       max_heatmaps=100 if config.fast else 500),
           "train_accuracy": float(history.history["accuracy"][-1]),
           "epochs": epochs, "seconds": seconds}
    return row


def summarize(rows):
    """Mean and range over seeds per (family, model) and test set.

    Returns:
        A list of dicts `{"family", "model", "seeds", "<set>": {"mean",
        "min", "max"}}` in the order the rows first name them.
    """

    groups = {}
    for row in rows:
        groups.setdefault((row["family"], row["model"]), []).append(row)
    summary = []
    for (family, model), group in groups.items():
        entry = {"family": family, "model": model, "seeds": len(group)}
        for set_name in (*ZOO_TEST_SETS, "background_fraction"):
            values = [row[set_name] for row in group]
            entry[set_name] = {"mean": float(np.mean(values)),
                               "min": float(np.min(values)),
                               "max": float(np.max(values))}
        summary.append(entry)
    return summary


def format_table(rows):
    """The printed per-row table: accuracy [Wilson 95%] per test set."""

    header = (f"{'family':<11}{'seed':>5} {'model':<15}"
              + "".join(f"{name:>22}" for name in ZOO_TEST_SETS)
              + f"{'bg fraction':>13}{'s':>6}")
    lines = [header, "-" * len(header)]
    for row in rows:
        cells = accuracy_cells(row, ZOO_TEST_SETS)
        lines.append(f"{row['family']:<11}{row['seed']:>5} "
                     f"{row['model']:<15}{cells}"
                     f"{row['background_fraction']:>13.3f}"
                     f"{row['seconds']:>6.0f}")
    return "\n".join(lines)


def format_summary(summary):
    """Mean (min-max over seeds) per family and model."""

    header = (f"{'family':<11}{'model':<15}{'seeds':>6}"
              + "".join(f"{name:>22}" for name in ZOO_TEST_SETS))
    lines = [header, "-" * len(header)]
    for entry in summary:
        cells = "".join(
            f"{entry[name]['mean']:>8.3f} ({entry[name]['min']:.3f}-"
            f"{entry[name]['max']:.3f})" for name in ZOO_TEST_SETS)
        lines.append(f"{entry['family']:<11}{entry['model']:<15}"
                     f"{entry['seeds']:>6}{cells}")
    return "\n".join(lines)


def markdown_table(summary):
    """The summary as a Markdown table: per family, each model's mean
    accuracy (min-max over seeds) on each test set.

    The last column is the mean background relevance fraction on the
    biased test images.
    """

    lines = ["| family | model | " + " | ".join(ZOO_TEST_SETS)
             + " | background fraction |",
             "|---|---|" + "---:|" * (len(ZOO_TEST_SETS) + 1)]
    for entry in summary:
        cells = [f"{entry[name]['mean']:.3f} ({entry[name]['min']:.3f}–"
                 f"{entry[name]['max']:.3f})" for name in ZOO_TEST_SETS]
        cells.append(f"{entry['background_fraction']['mean']:.3f}")
        lines.append(f"| {entry['family']} | {entry['model']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_gaps(rows, tolerance=0.05):
    """Per family and seed, the default ISNet against the two targets.

    Returns:
        A list of dicts with `family`, `seed`, `biased_minus_confounding`
        (the ISNet's own accuracies) and `reference_minus_confounding`
        (`plain_unbiased`'s clean accuracy minus the ISNet's confounding
        accuracy), and `met`: both at most `tolerance`.
    """
    by_key = {(r["family"], r["seed"], r["model"]): r for r in rows}
    gaps = []
    for (family, seed, model), row in by_key.items():
        reference = by_key.get((family, seed, "plain_unbiased"))
        if model != "isnet" or reference is None:
            continue
        own = row["biased"] - row["confounding"]
        versus_reference = reference["clean"] - row["confounding"]
        gaps.append({"family": family, "seed": seed,
                     "biased_minus_confounding": own,
                     "reference_minus_confounding": versus_reference,
                     "met": own <= tolerance and versus_reference <= tolerance})
    return gaps


def run_zoo_benchmark(config=ZooBenchConfig()):
    """Trains and tests every (family, seed, model) of `config`.

    Args:
        config: A `ZooBenchConfig`.

    Returns:
        The dict also written to `config.out/results.json`: `"recipe"`
        (the ISNet defaults used), `"wall_seconds"`, `"rows"` (one per
        family, seed and model, with `family`, `seed`, `model`, `biased`,
        `clean`, `confounding`, their `_ci95` Wilson intervals,
        `background_fraction`, ...) and `"summary"` (mean and range over
        seeds).

    Example:

    >>> results = run_zoo_benchmark(ZooBenchConfig(
    ...     families=("marker",), fast=True, data="digits"))  # doctest: +SKIP
    """

    families = tuple(config.families or ZOO_FAMILIES)
    unknown = sorted(set(families) - set(ZOO_FAMILIES))
    if unknown:
        raise ValueError(f"Unknown bias families {unknown}; choose from "
                         f"{', '.join(ZOO_FAMILIES)}.")
    if not config.seeds:
        raise ValueError("Give at least one seed.")
    _check_classifier_kind(config.classifier)
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"Unknown learning-rate schedule "
                         f"{config.lr_schedule!r}; choose from "
                         f"{', '.join(LR_SCHEDULES)}.")
    out = pathlib.Path(config.out)
    if (out / "results.json").exists() and not config.overwrite:
        raise FileExistsError(
            f"{out / 'results.json'} exists; choose another output folder "
            "or pass overwrite (--overwrite) to replace it.")
    out.mkdir(parents=True, exist_ok=True)
    source = "digits" if config.data == "digits" else "auto"
    results = {"recipe": {**default_recipe(),
                          "lr_schedule": config.lr_schedule},
               "families": list(families),
               "seeds": list(config.seeds),
               "classifier": config.classifier,
               "epochs": config.resolved_epochs(),
               "batch_size": config.batch_size,
               "limit_per_class": config.resolved_limit(),
               "test_per_class": config.resolved_test_per_class(),
               "wall_seconds": 0.0, "rows": []}
    start = time.perf_counter()
    for family in families:
        for seed in config.seeds:
            bench = make_zoo_benchmark(
                family, source=source, seed=seed,
                limit_per_class=config.resolved_limit(),
                mnist_dir=config.mnist_dir,
                test_per_class=config.resolved_test_per_class())
            results["data"] = _relative_source(bench.source)
            for name in ZOO_MODELS:
                row = train_and_test(name, bench, seed, config)
                results["rows"].append(row)
                print(format_table([row]).splitlines()[-1], flush=True)
                results["wall_seconds"] = time.perf_counter() - start
                results["summary"] = summarize(results["rows"])
                # After every model, so an interrupted run keeps its rows.
                (out / "results.json").write_text(json.dumps(results,
                                                             indent=2))
    print("\n" + format_table(results["rows"]))
    print("\nMean (min-max) over seeds:\n"
          + format_summary(results["summary"]))
    results["targets"] = target_gaps(results["rows"])
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "summary.md").write_text(markdown_table(results["summary"])
                                    + "\n")
    met = sum(gap["met"] for gap in results["targets"])
    print(f"\nDefault ISNet within 5 points of its biased accuracy and of "
          f"plain_unbiased's clean accuracy on {met} of "
          f"{len(results['targets'])} (family, seed) pairs.")
    print(f"\nWall time {results['wall_seconds']:.0f} s. "
          f"Wrote {out / 'results.json'} and {out / 'summary.md'}.")
    return results
