"""Tuning of the bias benchmark's baselines, on validation data only.

RRR (Ross et al., 2017) has one free weight, the lambda of its
input-gradient penalty, and its paper advises choosing it so that the
penalty term and the cross-entropy have the same order of magnitude. This
module applies that advice as a rule with measured inputs:

* `rrr_terms` measures, for a classifier, the two terms of RRR's loss on a
  data split: the mean cross-entropy and the mean raw penalty
  `sum_pixels ((1 - M) * d/dx sum_k log p_k)^2` (lambda = 1), averaged over
  batches, through `RRRClassifier.evaluate` (the penalty the trainer
  minimises, term for term).
* `balancing_lambda(ce, penalty)` is the power of ten closest to
  `ce / penalty` (the paper's advice is about orders of magnitude).
* `tune_rrr` searches lambda over powers of ten: from `RRR_START` (1000,
  the paper's MNIST value) it trains RRR with a lambda (the benchmark's
  recipe and epochs, on the training split), measures the two terms on
  the validation split and moves lambda one decade towards balance, until
  `lambda * penalty` is within half a decade of the cross-entropy, the
  balance changes side or four lambdas were trained; the balanced lambda
  is the trial closest to balance. A grid around it (lambda / 10, lambda,
  10 lambda) then picks the candidate with the lowest validation objective
  `CE + lambda_balanced * penalty`: the paper's loss, with the balanced
  weight, on held-out data. The selected candidate is the benchmark's RRR
  model (it is not trained again).

Why the terms of the RRR model trained with lambda, and not of another
model: on the Shapes benchmark the initial network's softmax is almost
uniform, and the gradient of `sum_k log p_k = sum_k (1 - K p_k) dz_k`
vanishes there (CE 2.31, penalty 3.4e-5: the rule says lambda = 1e5); a
plain classifier trained for one epoch has learned the shape shortcut,
which the biased validation split rewards (CE 2e-6, penalty 3e4: lambda =
1e-10). Neither is the model whose loss the advice is about. With RRR's
own model the ratio `lambda * penalty / CE` falls as lambda grows (a
larger lambda keeps the logits small: the penalty falls faster than
lambda rises, and the cross-entropy stays high), so the search walks
towards smaller lambdas; the direction is measured again from every two
trials. On both benchmarks the ratio flattens at small lambdas (its log10
between -0.2 and -0.75 from lambda = 10 down to 0.1), so "the same order
of magnitude" admits several lambdas and the grid decides among them.

What the selection can see: only validation data, which `isnet bench bias`
draws with the same bias as the training split (every validation image
carries its class's shape or decoy). Its accuracy and cross-entropy reward
the shortcut as much as the digit, so they cannot tell a model that
ignores the background from one that reads it; what the validation data
can show is the penalty itself, i.e. how much the input gradient lies
outside the mask. A model that uses the background while keeping its
input gradient there small (a flat or saturated response) passes
unnoticed, and no unbiased or confounding image takes part in the choice:
the test sets are read only after the choice, by the benchmark.

Masked input needs no tuning: `MaskedInputClassifier` multiplies each image
by its mask in its training and validation steps (`_inputs`), the
benchmark multiplies the test images by their masks before predicting
(`bias._evaluate`) and for its figure, and it has no weight of its own;
`masked_input_record` says so in `results.json`.
"""

import dataclasses
import math
import time

import keras

# `bias` imports this module too: the module object (not its names) is
# imported so that either may be imported first.
from isnet_keras.baselines import RRRClassifier
from isnet_keras.bench import bias

# First lambda of the search: the RRR paper's MNIST value (and the
# benchmark's default until this tuning chose 1).
RRR_START = 1000.0
# Factors of the grid around the balanced lambda.
RRR_GRID = (0.1, 1.0, 10.0)
# `lambda * penalty` within this many decades of the cross-entropy counts
# as balanced (the rounding of `balancing_lambda`).
BALANCED_DECADES = 0.5


def rrr_terms(classifier, images, labels, masks, batch_size=250,
              pixel_scale=1.0):
    """The two terms of RRR's loss for `classifier` on one data split.

    Args:
        classifier: A Keras classifier (logits or softmax output).
        images, labels, masks: The split (e.g. the validation set).
        batch_size: Images per batch; the terms are means over batches.
        pixel_scale: As `RRRClassifier`'s.

    Returns:
        dict: `"cross_entropy"` (mean per image), `"penalty"` (the mean raw
        input-gradient penalty per image, lambda = 1), `"accuracy"` and
        `"images"`.
    """
    model = RRRClassifier(classifier, penalty=0.0, pixel_scale=pixel_scale)
    # Eagerly: a few batches, measured once per model, cost less than
    # tracing a graph for each.
    model.compile(run_eagerly=True)
    logs = model.evaluate(images, {"label": labels, "mask": masks},
                          batch_size=batch_size, verbose=0,
                          return_dict=True)
    return {"cross_entropy": float(logs["classification_loss"]),
            "penalty": float(logs["input_gradient_loss"]),
            "accuracy": float(logs["accuracy"]),
            "images": int(len(labels))}


def balancing_lambda(cross_entropy, penalty):
    """The power of ten closest to `cross_entropy / penalty`.

    Example:

    >>> balancing_lambda(2.0, 0.004)  # 500 -> 10 ** round(2.7)
    1000.0
    """
    if not (math.isfinite(cross_entropy) and math.isfinite(penalty)
            and cross_entropy > 0 and penalty > 0):
        raise ValueError("The rule needs a finite, positive cross-entropy "
                         f"and penalty; measured {cross_entropy} and "
                         f"{penalty}.")
    return 10.0 ** round(math.log10(cross_entropy / penalty))


def balance_decades(lam, terms):
    """`log10(lam * penalty / cross_entropy)`: 0 at balance, negative when
    the weighted penalty is the smaller term."""
    weighted = lam * terms["penalty"]
    if not (weighted > 0 and terms["cross_entropy"] > 0):
        return -math.inf if weighted <= 0 else math.inf
    return math.log10(weighted / terms["cross_entropy"])


@dataclasses.dataclass
class TunedModel:
    """A trained candidate: its classifier, Keras history and seconds per
    epoch, as `bias.train_model` returns them."""

    classifier: object
    history: object
    seconds_per_epoch: float


def tune_rrr(bench, config, epochs, start=RRR_START, max_trials=4,
             grid=RRR_GRID, batch_size=250, train_model=None):
    """Chooses RRR's lambda on `bench.val` (see the module's docstring).

    Args:
        bench: A loaded `BiasBenchmark`; candidates train on `bench.train`
            and are measured on `bench.val`; `bench.test` is not read.
        config: The `BiasBenchConfig` of the run (recipe, seed).
        epochs: Epochs of every candidate (those of the benchmark's RRR).
        start: First lambda of the search, a power of ten (default
            `RRR_START`, not `config.rrr_penalty`: the search does not
            depend on the benchmark's default).
        max_trials: Most trainings of the search (the grid may add one).
        grid: Factors of the balanced lambda to choose from; `(1.0,)`
            keeps the balanced lambda without refining.
        batch_size: Batch size of the measurements.
        train_model: `(name, bench, config, epochs) -> (classifier,
            history, seconds_per_epoch)`; None: `bias.train_model`.

    Returns:
        `(record, model)`: `record` is a JSON-ready dict (every trial's
        lambda, terms and balance, the balanced and the selected lambda,
        the terms of the initial network for reference, the seconds
        spent); `model` is the selected candidate's `TunedModel`, which
        the benchmark reports without training it again.
    """
    train_model = train_model or bias.train_model

    began = time.perf_counter()
    val = bench.val

    def measure(classifier):
        return rrr_terms(classifier, val.images, val.labels, val.masks,
                         batch_size=batch_size)

    keras.utils.set_random_seed(config.seed)
    initial = measure(bias.bench_classifier(val.images.shape[1:],
                                            int(val.labels.max()) + 1))
    trials, models = {}, {}

    def train(lam):
        lam = float(f"{lam:.6g}")  # 100 * 0.1 and 10 are one lambda
        if lam not in trials:
            classifier, history, seconds = train_model(
                "rrr", bench, dataclasses.replace(config, rrr_penalty=lam),
                epochs)
            terms = measure(classifier)
            trials[lam] = {"lambda": lam, **terms,
                           "weighted_penalty": lam * terms["penalty"],
                           "balance_decades": balance_decades(lam, terms)}
            models[lam] = TunedModel(classifier, history, seconds)
            print(f"RRR lambda {lam:g}: validation CE "
                  f"{terms['cross_entropy']:.4g}, lambda * penalty "
                  f"{lam * terms['penalty']:.4g} "
                  f"({trials[lam]['balance_decades']:+.2f} decades), "
                  f"accuracy {terms['accuracy']:.3f}", flush=True)
        return trials[lam]

    lam = 10.0 ** round(math.log10(float(start)))
    previous = None
    for _ in range(max_trials):
        decades = train(lam)["balance_decades"]
        if abs(decades) <= BALANCED_DECADES or not math.isfinite(decades):
            break
        # Which way lambda moves the balance: measured from the last two
        # trials once there are two, else as observed on the benchmark
        # (the weighted penalty falls as lambda grows, see above).
        falls = True
        if previous is not None:
            slope = ((decades - trials[previous]["balance_decades"])
                     / math.log10(lam / previous))
            falls = slope < 0 if slope != 0 else falls
        # One decade on from the trial closest to balance so far.
        best = min(trials, key=lambda k: abs(trials[k]["balance_decades"]))
        towards_larger = (trials[best]["balance_decades"] > 0) == falls
        step = float(f"{best * 10.0 if towards_larger else best / 10.0:.6g}")
        if step in trials:  # the balance changed side between the two
            break
        previous, lam = lam, step
    balanced = min(trials, key=lambda k: abs(trials[k]["balance_decades"]))

    candidates = []
    for factor in grid:
        candidate = train(balanced * factor)
        candidate["objective"] = (candidate["cross_entropy"] + balanced
                                  * candidate["penalty"])
        candidates.append(candidate["lambda"])
    selected = min(candidates, key=lambda k: trials[k]["objective"])
    record = {
        "rule": "lambda: power of ten at which the validation terms of the "
                "RRR model trained with it balance (lambda * penalty within "
                f"{BALANCED_DECADES} decades of the cross-entropy, else the "
                "closest trial); then the lowest validation CE + "
                "lambda_balanced * penalty among lambda_balanced * "
                f"{list(grid)}",
        "split": "val", "validation_images": int(len(val.labels)),
        "epochs": int(epochs),
        "start": 10.0 ** round(math.log10(float(start))),
        "initial_network": {**initial,
                            "lambda": balancing_lambda(
                                initial["cross_entropy"],
                                initial["penalty"])
                            if initial["penalty"] > 0 else None},
        "trials": [trials[k] for k in trials],
        "balanced_lambda": balanced, "grid": [float(f) for f in grid],
        "lambda": selected, "selected": trials[selected],
        "seconds": time.perf_counter() - began}
    return record, models[selected]


def masked_input_record():
    """What `results.json` says of the masked-input baseline's tuning."""
    return {"tuned": False,
            "inputs": "image * mask at training, validation and test "
                      "(MaskedInputClassifier._inputs; bias._evaluate)",
            "weights": "none besides the classifier's"}


def tune_baselines(bench, config, epochs):
    """Tunes the baselines among `config.models` on `bench.val`.

    Args:
        bench: A loaded `BiasBenchmark`.
        config: The run's `BiasBenchConfig`.
        epochs: `{model name: epochs}` of the run.

    Returns:
        `(record, models)`: `record` maps each baseline to its tuning
        record (JSON-ready); `models` maps a tuned baseline to the
        `TunedModel` of its selected candidate.
    """
    record, models = {}, {}
    if "rrr" in config.models:
        record["rrr"], models["rrr"] = tune_rrr(bench, config,
                                                epochs["rrr"])
    if "masked_input" in config.models:
        record["masked_input"] = masked_input_record()
    return record, models


def summary_line(record):
    """One printed line of a `tune_rrr` record."""
    chosen = record["selected"]
    return (f"RRR lambda {record['lambda']:g} (balanced "
            f"{record['balanced_lambda']:g}; validation CE "
            f"{chosen['cross_entropy']:.4g}, penalty "
            f"{chosen['penalty']:.4g}, accuracy {chosen['accuracy']:.3f}; "
            f"{len(record['trials'])} trainings, "
            f"{record['seconds']:.0f} s)")

