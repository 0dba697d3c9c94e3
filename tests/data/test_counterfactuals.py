"""Counterfactual images: swapped and neutral backgrounds, donors."""

import numpy as np
import pytest

from isnet_keras.data.counterfactuals import (
    choose_donors,
    fill_foreground,
    make_counterfactuals,
    mean_background_colour,
    neutral_background,
    swap_background,
)

SIZE = 12
OBJECT_VALUE = 0.9
MARKER_VALUE = 1.0


def textured_set(num_images=8, channels=1, seed=0):
    """Images with a textured background, a bright square object whose
    place differs per class, and a white background marker per class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(num_images) % 3
    images = rng.uniform(0.1, 0.4, (num_images, SIZE, SIZE, channels))
    masks = np.zeros((num_images, SIZE, SIZE, 1), np.float32)
    for index, label in enumerate(labels):
        top = 3 + label
        masks[index, top:top + 4, 3:7] = 1
        images[index, top:top + 4, 3:7] = OBJECT_VALUE
        images[index, 0, 2 * label] = MARKER_VALUE  # the class's marker
    return images.astype(np.float32), labels, masks


def test_fill_foreground_leaves_no_object_pixel_and_keeps_the_background():
    images, _, masks = textured_set()
    filled = fill_foreground(images[0], masks[0])
    inside = masks[0, ..., 0] == 1
    np.testing.assert_array_equal(filled[~inside], images[0][~inside])
    # Every filled value comes from (a blur of) background values, all of
    # them below the object's brightness.
    background = images[0][~inside]
    assert filled[inside].max() <= background.max()
    assert filled[inside].min() >= background.min()
    assert not np.any(np.isclose(filled[inside], OBJECT_VALUE))


def test_fill_foreground_takes_the_nearest_background_value_without_blur():
    image = np.zeros((5, 5, 1), np.float32)
    image[:, 0] = 0.2   # left background
    image[:, 3:] = 0.6  # right background
    image[:, 1:3] = 1.0  # the object, columns 1 and 2
    mask = np.zeros((5, 5))
    mask[:, 1:3] = 1
    filled = fill_foreground(image, mask, blur_sigma=0)
    np.testing.assert_allclose(filled[:, 1, 0], 0.2)  # column 0 is nearest
    np.testing.assert_allclose(filled[:, 2, 0], 0.6)  # column 3 is nearest


def test_fill_foreground_refuses_a_mask_without_background():
    with pytest.raises(ValueError, match="no background"):
        fill_foreground(np.zeros((4, 4, 1)), np.ones((4, 4)))


def test_swapped_image_keeps_the_foreground_exactly_and_erases_the_donor():
    images, _, masks = textured_set(channels=3)
    recipient, donor = 0, 1
    swapped = swap_background(images[recipient], masks[recipient],
                              images[donor], masks[donor])
    inside = masks[recipient, ..., 0] == 1
    np.testing.assert_array_equal(swapped[inside], images[recipient][inside])
    # The donor's own object (rows 4-7) is gone wherever the recipient's
    # object (rows 3-6) does not cover it.
    donor_only = (masks[donor, ..., 0] == 1) & ~inside
    assert donor_only.any()
    assert not np.any(np.isclose(swapped[donor_only], OBJECT_VALUE))
    # Away from the donor's object, its background is copied unchanged,
    # its marker included.
    elsewhere = (masks[donor, ..., 0] == 0) & ~inside
    np.testing.assert_array_equal(swapped[elsewhere], images[donor][elsewhere])
    assert swapped[0, 2, 0] == MARKER_VALUE


def test_donors_are_of_another_class_and_follow_the_seed():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 5])
    donors = choose_donors(labels, seed=3)
    assert np.all(labels[donors] != labels)
    np.testing.assert_array_equal(donors, choose_donors(labels, seed=3))
    assert not np.array_equal(
        choose_donors(np.repeat([0, 1], 50), seed=0),
        choose_donors(np.repeat([0, 1], 50), seed=1),
    )


def test_donors_need_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        choose_donors(np.array([4, 4, 4]))


def test_neutral_background_is_flat_and_holds_no_marker():
    images, labels, masks = textured_set()
    result = make_counterfactuals(images, masks, labels, seed=0)
    outside = masks[..., 0] == 0
    inside = ~outside
    np.testing.assert_array_equal(result.neutral[inside], images[inside])
    for index in range(len(images)):
        background = result.neutral[index][outside[index]]
        # One value everywhere: no marker, patch or texture left to read.
        assert np.ptp(background) == 0.0
        assert not np.any(background == MARKER_VALUE)
    # The same colour for every image, so it says nothing about any one.
    assert np.unique(result.neutral[outside]).size == 1
    np.testing.assert_allclose(result.neutral_colour,
                               images[outside].mean(axis=0), rtol=1e-6)


def test_counterfactual_set_swaps_every_image_onto_another_class():
    images, labels, masks = textured_set(num_images=9, channels=3)
    result = make_counterfactuals(images, masks, labels, seed=1)
    assert result.swapped.shape == images.shape
    assert result.swapped.dtype == np.float32
    assert np.all(labels[result.donors] != labels)
    inside = masks[..., 0] == 1
    np.testing.assert_array_equal(result.swapped[inside], images[inside])
    for index, donor in enumerate(result.donors):
        expected = swap_background(images[index], masks[index],
                                   images[donor], masks[donor])
        np.testing.assert_array_equal(result.swapped[index], expected)


def test_neutral_background_and_mean_colour_of_rgb_images():
    image = np.zeros((2, 2, 3), np.float32)
    mask = np.array([[1, 0], [0, 0]])
    out = neutral_background(image, mask, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(out[1, 1], [0.1, 0.2, 0.3])
    images = np.stack([np.full((2, 2, 3), 0.2), np.full((2, 2, 3), 0.6)])
    masks = np.stack([mask, np.zeros((2, 2))])
    # Background pixels: 3 of 0.2 and 4 of 0.6.
    np.testing.assert_allclose(mean_background_colour(images, masks),
                               [(3 * 0.2 + 4 * 0.6) / 7] * 3, rtol=1e-6)


def test_masks_must_fit_the_images():
    images, labels, masks = textured_set()
    with pytest.raises(ValueError, match="masks have shape"):
        make_counterfactuals(images, masks[:, :-1], labels)
    with pytest.raises(ValueError, match="mask has shape"):
        swap_background(images[0], masks[0, :-1], images[1], masks[1])
