"""Shortcut audit: does a classifier change its answer with the background?

A low background-relevance fraction says little relevance lies in the
background; it does not prove that the classifier would answer the same on
another background. The audit asks the classifier directly, with
counterfactual images built from the user's own images and masks
(`isnet_keras.data.counterfactuals`):

* **swapped**: each image's object on the background of an image of another
  class (the donor), whose own object was erased first;
* **neutral**: each image's object on one flat colour, the mean background
  colour of the audited images.

A classifier that reads the background follows the donor: it predicts the
donor's class. One that ignores it keeps its answer.

Verdict rule. With `a` the accuracy on the original images, `K` the number
of classes among the audited labels and `b = (1 - a) / (K - 1)` the share of
swapped images a background-blind classifier would still assign to the
donor's class (its errors, spread evenly over the other classes), each
interval a 95 % Wilson interval over the N audited images:

* `"uses_background"` when the follows-background rate's lower bound is at
  least `b + 0.20`, or the swapped accuracy's upper bound is at most
  `a - 0.20` (another background costs at least 20 points of accuracy);
* `"ignores_background"` when the follows-background rate's upper bound is
  at most `b + 0.15`, the swapped accuracy's lower bound is at least
  `a - 0.05` (at most 5 points lost), and the original accuracy's lower
  bound is above chance, `1 / K` (a classifier that cannot tell the classes
  apart shows nothing by keeping its answer);
* `"inconclusive"` otherwise, typically when N is too small for the
  intervals to decide (with no image following the background, N >= 22 is
  needed for the upper bound to reach 0.15).

The neutral accuracy is reported, not used by the rule: a flat background
is new to most classifiers, so a drop there may come from the unfamiliar
input rather than from a shortcut.

Example:

```python
import isnet_keras as isn

result = isn.audit(isnet, val_images, val_labels, val_masks, seed=0)
print(result.verdict, result.follows_background_rate.value)
isn.write_audit(result, "runs/a/report")   # audit.json + audit.png
```

Printing and writing an audit: `isnet_keras.audit_report`.
"""

import dataclasses

import numpy as np

from isnet_keras.data.counterfactuals import make_counterfactuals
from isnet_keras.evaluate import checks
from isnet_keras.evaluate.plots import example_indices
from isnet_keras.evaluate.scores import NORMAL_QUANTILE_95, class_probabilities
from isnet_keras.export import classifier as classifier_lib
from isnet_keras.metrics import wilson_interval

# Subject of the error messages of the classifier's shape checks.
_PURPOSE = "Auditing"

VERDICT_USES = "uses_background"
VERDICT_IGNORES = "ignores_background"
VERDICT_INCONCLUSIVE = "inconclusive"

# Margins of the verdict rule (see the module docstring). 0.20 above the
# background-blind rate is a shortcut no sampling noise explains once the
# Wilson lower bound clears it; 0.15 and 5 points bound what a classifier
# that "ignores" the background may still do with it.
USES_FOLLOW_MARGIN = 0.20
USES_ACCURACY_DROP = 0.20
IGNORES_FOLLOW_MARGIN = 0.15
IGNORES_ACCURACY_DROP = 0.05

DEFAULT_EXAMPLES = 6


@dataclasses.dataclass(frozen=True)
class Proportion:
    """A share `successes / trials` with its 95 % Wilson interval.

    Attributes:
        successes: int.
        trials: int > 0.
    """

    successes: int
    trials: int

    @property
    def value(self):
        """float: `successes / trials`."""
        return self.successes / self.trials

    @property
    def wilson_ci95(self):
        """tuple `(low, high)`: the 95 % Wilson score interval."""
        return wilson_interval(self.successes, self.trials,
                               z=NORMAL_QUANTILE_95)

    def to_dict(self):
        """`{"value": float, "wilson_ci95": [low, high]}`."""
        return {"value": self.value, "wilson_ci95": list(self.wilson_ci95)}


@dataclasses.dataclass(frozen=True)
class AuditExamples:
    """A few audited images and their predictions, for the figure.

    Attributes:
        original, swapped, neutral: float32 arrays (M, H, W, C).
        masks: float32 array (M, H, W, 1).
        labels, donor_labels: int arrays (M,).
        predicted_original, predicted_swapped, predicted_neutral: int
            arrays (M,).
        class_names: tuple of K strings.
    """

    original: np.ndarray
    swapped: np.ndarray
    neutral: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    donor_labels: np.ndarray
    predicted_original: np.ndarray
    predicted_swapped: np.ndarray
    predicted_neutral: np.ndarray
    class_names: tuple


@dataclasses.dataclass(frozen=True)
class AuditResult:
    """Outcome of `audit`. `to_dict()` gives its JSON form.

    Attributes:
        original_accuracy, swapped_accuracy, neutral_accuracy: `Proportion`s
            of correct predictions on the three versions of the images.
        follows_background_rate: `Proportion` of swapped images predicted as
            their donor's class.
        num_images: int. Images audited.
        num_classes: int. Classes among the audited labels (`K`).
        excluded_empty_foreground: int. Images left out because their mask
            has no foreground pixel (no object to keep).
        excluded_no_background: int. Images left out because their mask
            covers the whole image (no background to swap).
        excluded_unannotated: int. Images left out because their mask is
            -1 everywhere (no annotation).
        num_annotated: int. Images with an annotation (a 0/1 mask), of
            which `num_images` were audited.
        chance_rate: float. `1 / K`.
        background_blind_follow_rate: float. `b = (1 - a) / (K - 1)`.
        verdict: `"uses_background"`, `"ignores_background"` or
            `"inconclusive"`.
        verdict_rule: str. The rule with this audit's numbers filled in.
        seed: int. Seed of the donor choice.
        examples: `AuditExamples` for `write_audit`'s figure, or None. Not
            part of `to_dict()`.
    """

    original_accuracy: Proportion
    swapped_accuracy: Proportion
    neutral_accuracy: Proportion
    follows_background_rate: Proportion
    num_images: int
    num_classes: int
    excluded_empty_foreground: int
    excluded_no_background: int
    chance_rate: float
    background_blind_follow_rate: float
    verdict: str
    verdict_rule: str
    seed: int
    excluded_unannotated: int = 0
    num_annotated: int = None
    examples: AuditExamples = dataclasses.field(
        default=None, compare=False, repr=False
    )

    def to_dict(self):
        """The JSON-ready dict written to `audit.json`.

        Returns:
            dict with `original_accuracy`, `swapped_accuracy`,
            `neutral_accuracy`, `follows_background_rate` (each
            `{"value", "wilson_ci95"}`), `num_images`, `verdict`,
            `verdict_rule`, `num_classes`, `chance_rate`,
            `background_blind_follow_rate`, `excluded_empty_foreground`,
            `excluded_no_background`, `excluded_unannotated`,
            `num_annotated`, `seed`.
        """
        return {
            "original_accuracy": self.original_accuracy.to_dict(),
            "swapped_accuracy": self.swapped_accuracy.to_dict(),
            "neutral_accuracy": self.neutral_accuracy.to_dict(),
            "follows_background_rate": self.follows_background_rate.to_dict(),
            "num_images": self.num_images,
            "verdict": self.verdict,
            "verdict_rule": self.verdict_rule,
            "num_classes": self.num_classes,
            "chance_rate": self.chance_rate,
            "background_blind_follow_rate": self.background_blind_follow_rate,
            "excluded_empty_foreground": self.excluded_empty_foreground,
            "excluded_no_background": self.excluded_no_background,
            "excluded_unannotated": self.excluded_unannotated,
            "num_annotated": (self.num_images + self.excluded_empty_foreground
                              + self.excluded_no_background
                              if self.num_annotated is None
                              else self.num_annotated),
            "seed": self.seed,
        }


def audit(model, images, labels, masks, seed=0, class_names=None,
          num_examples=DEFAULT_EXAMPLES):
    """Audits a classifier for background shortcuts with counterfactuals.

    Every image is predicted three times: as it is, on the object-erased
    background of a random image of another class (swapped), and on the
    mean background colour of the set (neutral). Images whose mask is empty
    or full are left out and counted. The verdict follows the rule of this
    module's docstring (also in `docs/evaluation.md`): `"uses_background"`
    when the follows-background rate's Wilson lower bound is at least
    `b + 0.20` or the swapped accuracy's upper bound at most `a - 0.20`;
    `"ignores_background"` when the rate's upper bound is at most
    `b + 0.15`, the swapped accuracy's lower bound at least `a - 0.05` and
    the original accuracy's lower bound above `1 / K`; else
    `"inconclusive"` (`a`: original accuracy, `b = (1 - a) / (K - 1)`).

    Args:
        model: keras.Model classifier (logits or softmax output), an object
            with a `deploy_model` attribute (an `ISNet`), or a `.keras` path.
        images: float array (N, H, W, C) in the model's input range.
        labels: int array (N,), values in [0, K) for a K-output classifier,
            with at least two classes among the images that are audited.
        masks: binary array (N, H, W) or (N, H, W, 1), 1 = foreground;
            a mask of -1 everywhere marks an image without annotation,
            which is left out.
        seed: int. Seed of the donor choice. Defaults to 0.
        class_names: sequence of K strings for the figure, or None for
            "0".."K-1". Defaults to None.
        num_examples: int >= 0. Images kept in `result.examples` for the
            figure (one per class first). Defaults to 6.

    Returns:
        An `AuditResult`.

    Raises:
        ValueError: images, labels or masks do not fit the model or each
            other, a mask is not binary, an image holds NaN or infinity,
            every mask is empty or full, or fewer than two classes remain.

    Example:

    ```python
    result = audit(isnet, images, labels, masks, seed=0)
    result.verdict                        # "ignores_background"
    result.to_dict()["follows_background_rate"]
    # {"value": 0.03, "wilson_ci95": [0.016, 0.056]}
    ```
    """
    classifier = classifier_lib.resolve_deploy_model(model)
    num_classes = checks.num_classes(classifier, purpose=_PURPOSE)
    class_names = checks.check_class_names(class_names, num_classes)
    images = checks.check_images(images, classifier_lib.image_input_shape(
        classifier, purpose=_PURPOSE))
    labels = checks.check_labels(labels, len(images), num_classes)
    masks = checks.check_masks(masks, images.shape)
    annotated = masks.reshape(len(masks), -1).max(axis=1, initial=-1.0) >= 0
    if not annotated.any():
        raise ValueError(
            f"No image can be audited: all {len(masks)} masks are -1 (no "
            "annotation); the audit needs images with 0/1 masks.")
    images, labels, masks = (images[annotated], labels[annotated],
                             masks[annotated])
    usable, empty, full = _usable_images(masks)
    images, labels, masks = images[usable], labels[usable], masks[usable]
    num_classes = _count_classes(labels)

    counterfactuals = make_counterfactuals(images, masks, labels, seed=seed)
    donor_labels = labels[counterfactuals.donors]
    predicted = {
        name: class_probabilities(classifier, batch).argmax(axis=1)
        for name, batch in (("original", images),
                            ("swapped", counterfactuals.swapped),
                            ("neutral", counterfactuals.neutral))
    }
    total = len(labels)
    original = Proportion(int(np.sum(predicted["original"] == labels)), total)
    swapped = Proportion(int(np.sum(predicted["swapped"] == labels)), total)
    follows = Proportion(int(np.sum(predicted["swapped"] == donor_labels)),
                         total)
    blind_rate = (1.0 - original.value) / (num_classes - 1)
    verdict, rule = decide_verdict(original, swapped, follows, num_classes)
    names = tuple(class_names)
    return AuditResult(
        original_accuracy=original,
        swapped_accuracy=swapped,
        neutral_accuracy=Proportion(
            int(np.sum(predicted["neutral"] == labels)), total),
        follows_background_rate=follows,
        num_images=total,
        num_classes=num_classes,
        excluded_empty_foreground=empty,
        excluded_no_background=full,
        chance_rate=1.0 / num_classes,
        background_blind_follow_rate=blind_rate,
        verdict=verdict,
        verdict_rule=rule,
        seed=int(seed),
        excluded_unannotated=int(np.sum(~annotated)),
        num_annotated=int(np.sum(annotated)),
        examples=_examples(images, masks, labels, counterfactuals,
                           donor_labels, predicted, names, num_examples),
    )


def decide_verdict(original, swapped, follows, num_classes):
    """Applies the verdict rule to the three audit proportions.

    Args:
        original: `Proportion` correct on the original images (`a`).
        swapped: `Proportion` correct on the swapped images.
        follows: `Proportion` of swapped images predicted as the donor's
            class.
        num_classes: int K >= 2, classes among the audited labels.

    Returns:
        `(verdict, rule)`: the verdict string and the rule, as text, with
        this audit's thresholds.

    Example:

    >>> decide_verdict(Proportion(95, 100), Proportion(20, 100),
    ...                Proportion(75, 100), 10)[0]
    'uses_background'
    """
    accuracy = original.value
    blind_rate = (1.0 - accuracy) / (num_classes - 1)
    chance = 1.0 / num_classes
    follows_low, follows_high = follows.wilson_ci95
    swapped_low, swapped_high = swapped.wilson_ci95
    rule = (
        f"uses_background if follows_background_rate's Wilson lower bound >= "
        f"b + {USES_FOLLOW_MARGIN:.2f} = {blind_rate + USES_FOLLOW_MARGIN:.4f} "
        f"or swapped_accuracy's upper bound <= a - {USES_ACCURACY_DROP:.2f} = "
        f"{accuracy - USES_ACCURACY_DROP:.4f}; ignores_background if "
        f"follows_background_rate's upper bound <= b + "
        f"{IGNORES_FOLLOW_MARGIN:.2f} = "
        f"{blind_rate + IGNORES_FOLLOW_MARGIN:.4f}, swapped_accuracy's lower "
        f"bound >= a - {IGNORES_ACCURACY_DROP:.2f} = "
        f"{accuracy - IGNORES_ACCURACY_DROP:.4f} and original_accuracy's "
        f"lower bound > 1/K = {chance:.4f}; otherwise inconclusive. "
        f"a = original accuracy = {accuracy:.4f}, K = {num_classes} classes, "
        f"b = (1 - a)/(K - 1) = {blind_rate:.4f} (the donor-class rate of a "
        "background-blind classifier); 95% Wilson intervals."
    )
    if (follows_low >= blind_rate + USES_FOLLOW_MARGIN
            or swapped_high <= accuracy - USES_ACCURACY_DROP):
        return VERDICT_USES, rule
    if (follows_high <= blind_rate + IGNORES_FOLLOW_MARGIN
            and swapped_low >= accuracy - IGNORES_ACCURACY_DROP
            and original.wilson_ci95[0] > chance):
        return VERDICT_IGNORES, rule
    return VERDICT_INCONCLUSIVE, rule


def _usable_images(masks):
    """Which images have both foreground and background pixels.

    Returns:
        `(usable, num_empty, num_full)`: a boolean array (N,) and the counts
        of masks without foreground and without background.

    Raises:
        ValueError: no mask has both.
    """
    flat = masks.reshape(len(masks), -1)
    has_foreground = flat.any(axis=1)
    has_background = (flat == 0).any(axis=1)
    usable = has_foreground & has_background
    num_empty = int(np.sum(~has_foreground))
    num_full = int(np.sum(has_foreground & ~has_background))
    if not usable.any():
        raise ValueError(
            f"No image can be audited: {num_empty} of {len(masks)} masks have "
            f"no foreground pixel and {num_full} cover the whole image; the "
            "audit needs an object (mask 1) on a background (mask 0)."
        )
    return usable, num_empty, num_full


def _count_classes(labels):
    """The number of classes present; the audit needs two to swap between."""
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(
            "The audit swaps backgrounds between classes and needs images "
            f"of at least 2 classes; the audited images are all of class "
            f"{present.tolist()}."
        )
    return int(len(present))


def _examples(images, masks, labels, counterfactuals, donor_labels,
              predicted, class_names, count):
    """The first image of each class, then the next ones, up to `count`."""
    if count <= 0:
        return None
    picks = example_indices(labels, count)
    return AuditExamples(
        original=images[picks],
        swapped=counterfactuals.swapped[picks],
        neutral=counterfactuals.neutral[picks],
        masks=masks[picks],
        labels=labels[picks],
        donor_labels=donor_labels[picks],
        predicted_original=predicted["original"][picks],
        predicted_swapped=predicted["swapped"][picks],
        predicted_neutral=predicted["neutral"][picks],
        class_names=class_names,
    )
