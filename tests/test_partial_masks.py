"""Partial masks: a mask of -1 everywhere marks an image without annotation,
which trains on cross-entropy only."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from isnet_keras import data_checks, errors
from isnet_keras.isnet import build_isnet
from isnet_keras.losses import GWRPHeatmapLoss
from isnet_keras.metrics.attention import BackgroundRelevanceFraction


def _isnet(P=0.8):
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="conv"),
        keras.layers.Flatten(), keras.layers.Dense(2, name="logits")])
    isnet = build_isnet(classifier, deep_supervision=(), P=P)
    isnet.compile()
    return isnet


def _data(count=4):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (count, 8, 8, 1)).astype(np.float32)
    masks = np.zeros((count, 8, 8, 1), np.float32)
    masks[:, 2:6, 2:6] = 1.0
    labels = np.arange(count) % 2
    return images, labels, masks


def _gradients(isnet, images, labels, masks):
    with tf.GradientTape() as tape:
        terms = isnet._loss_terms(tf.constant(images), tf.constant(labels),
                                  tf.constant(masks), training=True)
    grads = tape.gradient(terms.total, isnet.trainable_variables)
    return terms, [g.numpy() for g in grads]


def test_all_unannotated_batch_trains_on_cross_entropy_only():
    images, labels, masks = _data()
    isnet = _isnet(P=0.8)
    terms, grads = _gradients(isnet, images, labels, -np.ones_like(masks))
    assert float(terms.heatmap) == 0.0
    isnet.P = 0.0
    plain, ce_grads = _gradients(isnet, images, labels, masks)
    assert np.isclose(float(terms.classification),
                      float(plain.classification))
    for grad, ce_grad in zip(grads, ce_grads):
        assert np.all(np.isfinite(grad))
        np.testing.assert_allclose(grad, 0.2 * ce_grad, rtol=1e-5,
                                   atol=1e-7)
    # One fitted step logs a heatmap loss of 0 and no background fraction.
    isnet.P = 0.8
    logs = isnet.train_on_batch(
        images, {"label": labels, "mask": -np.ones_like(masks)},
        return_dict=True)
    assert logs["heatmap_loss"] == 0.0
    assert np.isfinite(logs["loss"])
    assert logs["background_fraction"] == 0.0


def test_half_unannotated_batch_has_the_annotated_halfs_loss():
    rng = np.random.default_rng(1)
    heatmaps = rng.normal(size=(4, 1, 8, 8, 1)).astype(np.float32)
    _, _, masks = _data()
    masks[1, :4] = 0.0
    partial = masks.copy()
    partial[2:] = -1.0
    loss = GWRPHeatmapLoss()
    np.testing.assert_allclose(float(loss(partial, heatmaps)),
                               float(loss(masks[:2], heatmaps[:2])),
                               rtol=1e-6)
    # The same through the ISNet: the heatmap loss of the annotated half.
    images, labels, masks = _data()
    isnet = _isnet()
    half = masks.copy()
    half[1::2] = -1.0
    terms = isnet._loss_terms(images, labels, half, training=False)
    annotated = isnet._loss_terms(images[::2], labels[::2], masks[::2],
                                  training=False)
    np.testing.assert_allclose(float(terms.heatmap),
                               float(annotated.heatmap), rtol=1e-5)


def test_background_fraction_metric_skips_unannotated_images():
    heatmaps = np.ones((2, 2, 2, 1), np.float32)
    masks = np.stack([np.zeros((2, 2)), -np.ones((2, 2))])
    masks[0, 0, 0] = 1.0
    metric = BackgroundRelevanceFraction()
    metric.update_state(heatmaps, masks)
    assert float(metric.result()) == pytest.approx(0.75)


@pytest.mark.parametrize("bad", [
    np.array([[-1.0, 0.0], [1.0, -1.0]]), np.array([[-1.0, 0.5], [-1, -1]])])
def test_mixed_masks_are_refused(bad):
    with pytest.raises(ValueError, match="non-binary mask"):
        data_checks.check_partial_masks(bad[None])
    images, labels, masks = _data()
    masks[0, :2, :2, 0] = bad
    isnet = _isnet()
    with pytest.raises(errors.InvalidDataError) as caught:
        isnet.fit(images, {"label": labels, "mask": masks}, epochs=1,
                  batch_size=4, verbose=0)
    expected = (data_checks.MIXED_UNANNOTATED_MASK if 0.5 not in bad
                else data_checks.PARTIAL_NON_BINARY_MASK)
    assert str(caught.value).startswith(expected)
    assert "-1" in str(caught.value)


def test_check_partial_masks_counts_annotated_images():
    masks = np.zeros((3, 4, 4, 1))
    masks[1] = -1.0
    np.testing.assert_array_equal(data_checks.check_partial_masks(masks),
                                  [True, False, True])
    with pytest.raises(ValueError, match="index 2"):
        masks[2, 0, 0] = -1.0
        data_checks.check_partial_masks(masks)


def _classifier():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="conv"),
        keras.layers.Flatten(), keras.layers.Dense(2, name="logits")])


def test_evaluation_and_audit_use_annotated_images_only():
    from isnet_keras import audit
    from isnet_keras.evaluate import evaluate_classifier, format_summary

    images, labels, masks = _data(8)
    masks[4:] = -1.0
    classifier = _classifier()
    result = evaluate_classifier(classifier, images, labels, masks=masks,
                                 num_samples=100)
    attention = result["background_attention"]
    assert (attention["num_images"], attention["num_annotated"]) == (4, 4)
    assert result["num_images"] == 8
    assert "4 of 8 annotated" in format_summary(result)
    annotated = evaluate_classifier(classifier, images[:4], labels[:4],
                                    masks=masks[:4], num_samples=100)
    assert attention["brf"] == annotated["background_attention"]["brf"]
    checked = audit(classifier, images, labels, masks, num_examples=0)
    summary = checked.to_dict()
    assert summary["num_images"] == 4
    assert summary["num_annotated"] == 4
    assert summary["excluded_unannotated"] == 4
    with pytest.raises(ValueError, match="all 8 masks are -1"):
        audit(classifier, images, labels, -np.ones_like(masks))


def test_missing_mask_files_need_partial_masks(tmp_path):
    from isnet_keras import run_config, train_data
    from isnet_keras.data import FolderDatasetError, scan_folder_dataset
    from isnet_keras.data.augment import JointAugmentation
    from isnet_keras.data.folders import load_folder_dataset
    from isnet_keras.data.pipeline import dataset_arrays, folder_dataset
    from tests import support

    data = support.tiny_folder_set(tmp_path / "data", [0, 1] * 4,
                                   ["bar", "square"])
    for number in (1, 2, 5):
        (data / "masks" / f"image_{number}.png").unlink()
    folders = train_data.data_folders(data)
    with pytest.raises(FolderDatasetError, match="image_1.png: no mask in"):
        scan_folder_dataset(*folders)
    index = scan_folder_dataset(*folders, partial_masks=True)
    assert index.annotated.tolist() == [True, False, False, True, True,
                                        False, True, True]
    assert index.mask_paths[1] is None
    loaded = load_folder_dataset(*folders, partial_masks=True, image_size=4)
    assert (loaded.masks[[1, 2, 5]] == -1).all()
    assert set(np.unique(loaded.masks[[0, 3]])) == {0.0, 1.0}
    flip = JointAugmentation(flip="horizontal_and_vertical", rotation=0.25,
                             seed=0)
    _, _, masks = dataset_arrays(folder_dataset(
        index, np.arange(8), 8, 1, 8, augmentation=flip))
    np.testing.assert_array_equal(
        data_checks.check_partial_masks(masks), index.annotated)
    config = run_config.effective_config(None, {
        "data_dir": str(data), "out": str(tmp_path / "run"),
        "val_split": 0.25, "partial_masks": True})
    scanned = train_data.scan_data(config)
    assert scanned["num_train_annotated"] == int(
        index.annotated[scanned["train_indices"]].sum())
    config["partial_masks"] = False
    with pytest.raises(FolderDatasetError, match="no mask in"):
        train_data.scan_data(config)


def test_train_flags_reach_the_configuration():
    import argparse

    from isnet_keras.cli import train as train_cli

    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    args = parser.parse_args(["train", "--data-dir", "d", "--out", "r",
                              "--partial-masks", "--boxes", "b.csv",
                              "--box-margin", "3"])
    config = train_cli.effective_config(args)
    assert (config["partial_masks"], config["boxes"],
            config["box_margin"]) == (True, "b.csv", 3)
    plain = train_cli.effective_config(parser.parse_args(
        ["train", "--data-dir", "d", "--out", "r"]))
    assert (plain["partial_masks"], plain["boxes"],
            plain["box_margin"]) == (False, None, 0)
