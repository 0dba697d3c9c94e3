"""The bias zoo: every family's cue stays in the background and encodes the
class, on scikit-learn's digits (offline, small, fast)."""

import functools
import warnings

import numpy as np
import pytest
from scipy import ndimage

from isnet_keras.data import (
    ZOO_FAMILIES,
    ZOO_TEST_SETS,
    decoy_mnist,
    load_digits_28,
    load_folder_dataset,
    make_zoo_benchmark,
    shapes_mnist,
    zoo_candidate_regions,
    zoo_images,
)
from isnet_keras.data import zoo
from isnet_keras.data.example_folders import main as example_folders_main

PER_CLASS = 10


@functools.lru_cache(maxsize=None)
def few_digits(per_class=PER_CLASS):
    """`per_class` digits of each class, labels sorted, read-only arrays."""
    loaded = load_digits_28()
    keep = np.concatenate([
        np.flatnonzero(loaded.labels == k)[:per_class] for k in range(10)
    ])
    images, labels = loaded.images[keep], loaded.labels[keep]
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def render_all(family, seed=5, classes=None, image_size=None, per_class=None):
    images, labels = few_digits(per_class or PER_CLASS)
    if classes is not None:
        keep = labels < classes
        images, labels = images[keep], labels[keep]
    return {
        mode: zoo_images(family, images, labels, mode, seed=seed,
                         classes=classes, image_size=image_size)
        for mode in ZOO_TEST_SETS
    }, labels


def canvas_size(family):
    return 28 if family == "decoy" else 40


def pasted_digits(family):
    """The clean digits on the family's canvas, as in `shapes_mnist`."""
    images, _ = few_digits()
    if family == "decoy":
        return images.astype(np.float32) / 255.0
    canvas = np.zeros((len(images), 40, 40), np.float32)
    canvas[:, 6:34, 6:34] = images / 255.0
    return canvas


def background_features(image_set):
    """Background pixels only (image * (1 - mask)), 2x2 average-pooled."""
    background = (image_set.images * (1.0 - image_set.masks))[..., 0]
    count, height, width = background.shape
    pooled = background.reshape(count, height // 2, 2, width // 2, 2)
    return pooled.mean(axis=(2, 4)).reshape(count, -1)


# ------------------------------------------------------ format and masks


@pytest.mark.parametrize("family", ZOO_FAMILIES)
def test_arrays_have_the_documented_format(family):
    rendered, labels = render_all(family)
    size = canvas_size(family)
    for mode, out in rendered.items():
        assert out.images.shape == (len(labels), size, size, 1)
        assert out.masks.shape == out.images.shape
        assert out.images.dtype == out.masks.dtype == np.float32
        assert out.images.min() >= 0.0 and out.images.max() <= 1.0
        assert set(np.unique(out.masks).tolist()) == {0.0, 1.0}
        if mode == "clean":
            assert (out.bias_class == -1).all()
            assert (out.bias_origin == -1).all()


@pytest.mark.parametrize("family", ZOO_FAMILIES)
def test_masks_follow_the_digit_rule_and_never_cover_a_cue(family):
    rendered, _ = render_all(family)
    clean = rendered["clean"]
    digits = pasted_digits(family)
    # Independent restatement: ink > 0, one 3x3 dilation, regions cleared.
    regions = zoo_candidate_regions(family)
    expected = np.array([
        ndimage.binary_dilation(digit > 0, structure=np.ones((3, 3)))
        & ~regions
        for digit in digits
    ], np.float32)
    for mode in ZOO_TEST_SETS:
        np.testing.assert_array_equal(rendered[mode].masks[..., 0], expected)
    np.testing.assert_array_equal(clean.images[..., 0], digits)
    for mode in ("biased", "confounding"):
        changed = rendered[mode].images != clean.images
        assert changed.any(), "the cue must change some pixels"
        assert not (changed & (rendered[mode].masks == 1)).any()


@pytest.mark.parametrize("family", ZOO_FAMILIES)
def test_confounding_carries_the_cue_of_the_next_class(family):
    images, labels = few_digits()
    confounding = zoo_images(family, images, labels, "confounding", seed=3)
    next_class = (labels + 1) % 10
    biased_as_next = zoo_images(family, images, next_class, "biased", seed=3)
    np.testing.assert_array_equal(confounding.bias_class, next_class)
    np.testing.assert_array_equal(confounding.images, biased_as_next.images)
    np.testing.assert_array_equal(
        confounding.bias_origin, biased_as_next.bias_origin
    )


# --------------------------------------------------- the cue is the class


def cue_signature(family, out, index):
    """What the cue of image `index` looks like, independent of its place.

    For the families with a fixed pattern this is the whole biased image,
    compared only where both masks are 0 (see `assert_same_cue`); for the
    randomly placed ones it is the cue cropped at its origin.
    """
    image = out.images[index, ..., 0]
    top, left = out.bias_origin[index]
    if family == "decoy":
        return image[top : top + 4, left : left + 4]
    if family == "marker":
        # The class digit is the last 3 columns; the side letter varies.
        return image[top : top + 5, left + 4 : left + 7]
    return image


def cues_agree(family, out, first, second):
    one = cue_signature(family, out, first)
    two = cue_signature(family, out, second)
    if family in ("decoy", "marker"):
        return np.array_equal(one, two)
    both_background = (out.masks[first] == 0) & (out.masks[second] == 0)
    return np.array_equal(one[both_background[..., 0]],
                          two[both_background[..., 0]])


@pytest.mark.parametrize(
    "family", [family for family in ZOO_FAMILIES if family != "noise"]
)
def test_same_class_same_cue_and_other_classes_differ(family):
    images, labels = few_digits()
    out = zoo_images(family, images, labels, "biased", seed=1)
    firsts = [np.flatnonzero(labels == k)[0] for k in range(10)]
    seconds = [np.flatnonzero(labels == k)[1] for k in range(10)]
    for k in range(10):
        assert cues_agree(family, out, firsts[k], seconds[k]), k
        for other in range(k + 1, 10):
            assert not cues_agree(family, out, firsts[k], firsts[other])


def test_noise_level_encodes_the_class():
    images, labels = few_digits()
    rendered = {
        mode: zoo_images("noise", images, labels, mode, seed=2)
        for mode in ("biased", "confounding")
    }

    def estimated_std(out):
        # Noise is clipped at 0, so mean(x^2) over the background is s^2/2.
        background = out.masks[..., 0] == 0
        squares = np.where(background, out.images[..., 0] ** 2, 0.0)
        mean_square = squares.sum(axis=(1, 2)) / background.sum(axis=(1, 2))
        return np.sqrt(2.0 * mean_square)

    stds = np.asarray(zoo.NOISE_STDS)
    for mode, cue_classes in (("biased", labels),
                              ("confounding", (labels + 1) % 10)):
        estimated = estimated_std(rendered[mode])
        np.testing.assert_allclose(estimated, stds[cue_classes], rtol=0.15)
        # The class is the nearest level for the class mean of the estimate.
        per_class = [estimated[cue_classes == k].mean() for k in range(10)]
        nearest = np.abs(np.subtract.outer(per_class, stds)).argmin(axis=1)
        np.testing.assert_array_equal(nearest, np.arange(10))


@pytest.mark.parametrize("family", ZOO_FAMILIES)
def test_a_linear_model_reads_the_class_from_the_background(family):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bench = make_zoo_benchmark(family, source="digits", limit_per_class=20)
    model = make_pipeline(StandardScaler(),
                          LogisticRegression(max_iter=100))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Convergence, at 100 iterations.
        model.fit(background_features(bench.train), bench.train.labels)
    test = bench.test["biased"]
    accuracy = model.score(background_features(test), test.labels)
    # Chance is 0.1; the clean test set holds no cue at all.
    assert accuracy >= 0.3, accuracy
    clean = bench.test["clean"]
    assert not background_features(clean).any()


# ---------------------------------------------------- agreement with bias.py


def test_shapes_family_is_the_shapes_generator():
    images, labels = few_digits()
    for zoo_mode, shapes_mode in (("biased", "biased"),
                                  ("clean", "unbiased"),
                                  ("confounding", "confounding")):
        ours = zoo_images("shapes", images, labels, zoo_mode)
        theirs = shapes_mnist(images, labels, shapes_mode)
        for ours_array, theirs_array in zip(ours, theirs):
            np.testing.assert_array_equal(ours_array, theirs_array)


def test_decoy_family_is_decoy_mnist_with_the_same_corners():
    images, labels = few_digits()
    ours = zoo_images("decoy", images, labels, "biased", seed=7)
    theirs = decoy_mnist(images, labels, "biased", seed=7)
    for ours_array, theirs_array in zip(ours, theirs):
        np.testing.assert_array_equal(ours_array, theirs_array)


# --------------------------------------------------- classes and resizing


@pytest.mark.parametrize("family", ["marker", "texture", "watermark"])
def test_four_classes_and_64_pixels(family):
    bench = make_zoo_benchmark(family, source="digits", limit_per_class=10,
                               classes=4, image_size=64)
    sets = [bench.train, bench.val, bench.train_clean, bench.val_clean,
            *bench.test.values()]
    for image_set in sets:
        assert image_set.images.shape[1:] == (64, 64, 1)
        assert image_set.masks.shape == image_set.images.shape
        assert image_set.images.dtype == np.float32
        assert set(np.unique(image_set.masks).tolist()) == {0.0, 1.0}
        assert set(image_set.labels.tolist()) <= {0, 1, 2, 3}
    clean = bench.test["clean"]
    for mode in ("biased", "confounding"):
        changed = bench.test[mode].images != clean.images
        assert changed.any()
        assert not (changed & (bench.test[mode].masks == 1)).any()


def test_confounding_wraps_around_the_class_count():
    rendered, labels = render_all("brightness", classes=4)
    assert set(labels.tolist()) == {0, 1, 2, 3}
    np.testing.assert_array_equal(rendered["confounding"].bias_class,
                                  (labels + 1) % 4)
    corner = rendered["confounding"].images[:, 0, 0, 0]
    levels = np.float32(zoo.BRIGHTNESS_LEVELS)[(labels + 1) % 4]
    np.testing.assert_array_equal(corner, levels)


def test_resized_masks_keep_their_shape():
    rendered, _ = render_all("frame", image_size=64)
    native, _ = render_all("frame")
    big = rendered["clean"].masks.mean()
    small = native["clean"].masks.mean()
    # Near the same area; a thin rim is dropped where the cue could blend.
    assert 0.7 * small < big <= small


# --------------------------------------------------------------- benchmark


def test_benchmark_clean_training_set_is_the_same_images_without_cue():
    bench = make_zoo_benchmark("watermark", source="digits",
                               limit_per_class=PER_CLASS, seed=1)
    np.testing.assert_array_equal(bench.train_clean.labels,
                                  bench.train.labels)
    np.testing.assert_array_equal(bench.val_clean.labels, bench.val.labels)
    loaded = load_digits_28()
    digits = loaded.images[bench.split_indices["train"]] / 255.0
    np.testing.assert_allclose(
        bench.train_clean.images[:, 6:34, 6:34, 0], digits, atol=1e-7
    )
    outside = np.ones((40, 40), bool)
    outside[6:34, 6:34] = False
    assert not bench.train_clean.images[:, outside].any()
    assert bench.train.images[:, outside].any()
    for mode in ZOO_TEST_SETS:
        np.testing.assert_array_equal(bench.test[mode].labels,
                                      bench.test["biased"].labels)


def test_benchmark_is_seeded_and_test_sets_share_random_choices():
    first = make_zoo_benchmark("marker", source="digits", limit_per_class=10)
    again = make_zoo_benchmark("marker", source="digits", limit_per_class=10)
    np.testing.assert_array_equal(first.train.images, again.train.images)
    np.testing.assert_array_equal(first.test["biased"].images,
                                  again.test["biased"].images)
    # The biased and confounding test sets put each image's marker on the
    # same side (seed [0, 2] for both); the sides are mixed.
    left_lit = first.test["biased"].images[:, 1:6, 1:8].any(axis=(1, 2, 3))
    confounding = first.test["confounding"].images
    left_lit_conf = confounding[:, 1:6, 1:8].any(axis=(1, 2, 3))
    np.testing.assert_array_equal(left_lit, left_lit_conf)
    assert 0 < left_lit.sum() < len(left_lit)


def test_test_sets_top_up_with_unused_digits_and_leave_training_alone():
    plain = make_zoo_benchmark("frame", source="digits", limit_per_class=20,
                               seed=3)
    larger = make_zoo_benchmark("frame", source="digits", limit_per_class=20,
                                seed=3, test_per_class=50)
    np.testing.assert_array_equal(plain.train.images, larger.train.images)
    np.testing.assert_array_equal(plain.val.images, larger.val.images)
    indices = larger.split_indices
    # The split's own test digits stay, each class reaches 50, and no test
    # digit is a training or validation digit.
    assert set(plain.split_indices["test"]) <= set(indices["test"])
    assert np.bincount(larger.test["clean"].labels).tolist() == [50] * 10
    assert len(set(indices["test"])) == len(indices["test"])
    assert not set(indices["test"]) & (set(indices["train"])
                                       | set(indices["val"]))
    with pytest.raises(ValueError, match="test_per_class"):
        make_zoo_benchmark("frame", source="digits", limit_per_class=20,
                           test_per_class=0)


# ------------------------------------------------------------------ errors


def test_bad_names_raise_and_list_the_choices():
    images, labels = few_digits()
    with pytest.raises(ValueError, match="family must be one of .*texture"):
        zoo_images("stripes", images, labels)
    with pytest.raises(ValueError, match="mode must be one of .*confounding"):
        zoo_images("frame", images, labels, mode="randomized")
    with pytest.raises(ValueError, match="family must be one of .*marker"):
        make_zoo_benchmark("stripes", source="digits")
    with pytest.raises(ValueError, match="labels must lie in 0-3"):
        zoo_images("frame", images, labels, classes=4)
    with pytest.raises(ValueError, match="classes must be"):
        make_zoo_benchmark("frame", source="digits", classes=11)


# ---------------------------------------------------------- folder writer


def test_example_folders_write_a_zoo_family(tmp_path, capsys):
    out = tmp_path / "zoo"
    status = example_folders_main([
        "--out", str(out), "--benchmark", "texture", "--source", "digits",
        "--limit-per-class", "5", "--classes", "4", "--image-size", "64",
    ])
    assert status == 0
    folders = sorted(path.name for path in out.iterdir())
    assert folders == ["test_biased", "test_clean", "test_confounding",
                       "train", "train_clean"]
    loaded = load_folder_dataset(out / "train" / "images",
                                 out / "train" / "masks",
                                 out / "train" / "labels.csv")
    assert loaded.images.shape[1:] == (64, 64, 1)
    assert set(loaded.labels.tolist()) <= {0, 1, 2, 3}


def test_example_folders_keep_the_original_decoy(tmp_path):
    out = tmp_path / "decoy"
    status = example_folders_main([
        "--out", str(out), "--benchmark", "decoy", "--source", "digits",
        "--limit-per-class", "3",
    ])
    assert status == 0
    folders = sorted(path.name for path in out.iterdir())
    assert folders == ["test_biased", "test_clean", "test_randomized",
                       "train"]
