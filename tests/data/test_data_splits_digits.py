"""Stratified splits and the scikit-learn digits loader."""

import numpy as np
import pytest

from isnet_keras.data import load_digits_28, stratified_split


def uneven_labels():
    rng = np.random.default_rng(5)
    counts = [980, 1135, 7, 1, 2, 333, 0, 58, 974, 11]
    labels = np.concatenate(
        [np.full(count, label) for label, count in enumerate(counts)]
    )
    return rng.permutation(labels)


def test_parts_are_disjoint_and_complete():
    labels = uneven_labels()
    parts = stratified_split(labels)
    joined = np.concatenate(parts)
    assert len(joined) == len(labels)
    np.testing.assert_array_equal(np.sort(joined), np.arange(len(labels)))
    for part in parts:
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0)


def test_each_class_is_within_one_item_of_its_share():
    labels = uneven_labels()
    fractions = (0.7, 0.1, 0.2)
    parts = stratified_split(labels, fractions, seed=3)
    for label in np.unique(labels):
        class_size = np.sum(labels == label)
        for fraction, part in zip(fractions, parts):
            taken = np.sum(labels[part] == label)
            error = abs(taken - fraction * class_size)
            assert error <= 1, (label, fraction, taken)


def test_same_seed_same_parts_other_seed_other_parts():
    labels = uneven_labels()
    first = stratified_split(labels, seed=7)
    again = stratified_split(labels, seed=7)
    other = stratified_split(labels, seed=8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_any_number_of_parts_and_string_labels():
    labels = np.array(list("aabbbbcccccc"))
    halves = stratified_split(labels, (0.5, 0.5))
    assert [len(part) for part in halves] == [6, 6]
    assert sorted(labels[halves[0]].tolist()) == list("abbccc")


@pytest.mark.parametrize(
    "fractions, message",
    [((0.7, 0.2), "sum to 1"), ((1.2, -0.2), "positive"), ((), "non-empty")],
)
def test_bad_fractions(fractions, message):
    with pytest.raises(ValueError, match=message):
        stratified_split([0, 1, 2], fractions)


def test_digits_are_upscaled_into_an_mnist_layout():
    data = load_digits_28()
    assert data.source == "digits"
    assert data.images.shape == (1797, 28, 28) and data.images.dtype == np.uint8
    assert data.labels.shape == (1797,)
    assert set(data.labels.tolist()) == set(range(10))
    # The digit sits in the central 20x20 box; the 4-pixel border is empty.
    border = np.ones((28, 28), bool)
    border[4:24, 4:24] = False
    assert data.images[:, border].max() == 0
    assert data.images.max() == 255
    # Upscaling keeps the ink where it was: sampled near the centre of each
    # 8x8 cell (2.5 pixels wide), the 20x20 box follows the original grid.
    from sklearn.datasets import load_digits

    originals = load_digits().images * 255 / 16
    centres = np.rint((np.arange(8) + 0.5) * 2.5 - 0.5).astype(int) + 4
    sampled = data.images[:, centres][:, :, centres].astype(float)
    correlation = np.corrcoef(sampled.ravel(), originals.ravel())[0, 1]
    assert correlation > 0.9
