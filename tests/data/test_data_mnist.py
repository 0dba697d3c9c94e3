"""MNIST loaders: IDX parsing and validation, real files, source resolution."""

import gzip
import hashlib
import logging

import numpy as np
import pytest

from isnet_keras.data import mnist
from isnet_keras.data.mnist import (
    MnistNotFoundError,
    load_mnist,
    load_mnist_idx,
    load_mnist_npz,
    read_idx,
)

def idx_bytes(array, magic):
    """Encodes a uint8 array as IDX, written independently of the loader."""
    header = magic.to_bytes(4, "big") + b"".join(
        size.to_bytes(4, "big") for size in array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_split(directory, prefix, images, labels, compress):
    suffix = ".gz" if compress else ""
    write = gzip.compress if compress else (lambda data: data)
    (directory / f"{prefix}-images-idx3-ubyte{suffix}").write_bytes(
        write(idx_bytes(images, 2051))
    )
    (directory / f"{prefix}-labels-idx1-ubyte{suffix}").write_bytes(
        write(idx_bytes(labels, 2049))
    )


def small_digits(count, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    return images, labels


def mnist_folder(directory):
    """An MNIST folder as ../shared/data/mnist holds it (gzip IDX files of
    the t10k split), written from scikit-learn's digits: a user's machine
    has no ../shared, and the tests do not need it.

    Returns:
        `(directory, count, class_counts, images_md5)`.
    """
    from isnet_keras.data import load_digits_28

    digits = load_digits_28()
    directory.mkdir(parents=True, exist_ok=True)
    write_split(directory, "t10k", digits.images, digits.labels, True)
    counts = np.bincount(digits.labels, minlength=10).tolist()
    md5 = hashlib.md5(idx_bytes(digits.images, 2051)).hexdigest()
    return directory, len(digits.labels), counts, md5


def test_gzip_test_split_loads_with_its_counts_and_bytes(tmp_path):
    directory, count, class_counts, md5 = mnist_folder(tmp_path)
    images, labels = load_mnist_idx(directory)
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == class_counts
    # The md5 covers the raw bytes: header plus pixels.
    raw = idx_bytes(images, 2051)
    assert hashlib.md5(raw).hexdigest() == md5


def test_load_mnist_auto_finds_the_folder_beside_the_repository(
        tmp_path, monkeypatch):
    # A repository at tmp/repo with tmp/shared/data/mnist beside it.
    monkeypatch.setattr(mnist, "_repository_root", lambda: tmp_path / "repo")
    monkeypatch.delenv(mnist.NO_SHARED_DATA_ENV, raising=False)
    shared = tmp_path / "shared" / "data" / "mnist"
    directory, count, _, _ = mnist_folder(shared)
    assert mnist.default_mnist_dirs() == [shared]
    loaded = load_mnist()
    assert loaded.source == "idx"
    assert loaded.location == str(directory)
    assert len(loaded.images) == count


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_of_small_files(tmp_path, compress):
    images, labels = small_digits(7)
    write_split(tmp_path, "t10k", images, labels, compress)
    loaded_images, loaded_labels = load_mnist_idx(tmp_path)
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_train_and_test_splits_are_concatenated_train_first(tmp_path):
    train_images, train_labels = small_digits(5, seed=1)
    test_images, test_labels = small_digits(3, seed=2)
    write_split(tmp_path, "train", train_images, train_labels, compress=True)
    write_split(tmp_path, "t10k", test_images, test_labels, compress=False)
    images, labels = load_mnist_idx(tmp_path)
    np.testing.assert_array_equal(
        images, np.concatenate([train_images, test_images])
    )
    np.testing.assert_array_equal(
        labels, np.concatenate([train_labels, test_labels])
    )


def test_wrong_magic_names_the_file(tmp_path):
    images, labels = small_digits(4)
    write_split(tmp_path, "t10k", images, labels, compress=False)
    # An images file where the labels file should be: magic 2051, not 2049.
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(images, 2051))
    with pytest.raises(
        ValueError, match=r"t10k-labels-idx1-ubyte.*magic number is 2051"
    ):
        load_mnist_idx(tmp_path)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_data_names_the_file(tmp_path, compress):
    images, labels = small_digits(4)
    data = idx_bytes(images, 2051)[:-10]
    name = "t10k-images-idx3-ubyte" + (".gz" if compress else "")
    (tmp_path / name).write_bytes(gzip.compress(data) if compress else data)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 2049))
    with pytest.raises(ValueError, match=rf"{name}: truncated"):
        load_mnist_idx(tmp_path)


def test_cut_gzip_stream_names_the_file(tmp_path):
    images, labels = small_digits(4)
    compressed = gzip.compress(idx_bytes(images, 2051))
    half = compressed[: len(compressed) // 2]
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(half)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 2049))
    with pytest.raises(
        ValueError, match=r"idx3-ubyte\.gz: corrupt or truncated gzip"
    ):
        load_mnist_idx(tmp_path)


def test_truncated_header_and_trailing_bytes(tmp_path):
    path = tmp_path / "x-idx1"
    path.write_bytes((2049).to_bytes(4, "big") + b"\x00\x00")
    with pytest.raises(ValueError, match="x-idx1: truncated IDX header"):
        read_idx(path, 2049, 1)
    path.write_bytes(idx_bytes(np.zeros(3, np.uint8), 2049) + b"\x07")
    with pytest.raises(ValueError, match="x-idx1: trailing bytes"):
        read_idx(path, 2049, 1)


def test_count_mismatch_names_both_files(tmp_path):
    images, labels = small_digits(4)
    write_split(tmp_path, "t10k", images, labels[:3], compress=False)
    with pytest.raises(
        ValueError, match=r"4 images.*t10k-labels-idx1-ubyte.*3 labels"
    ):
        load_mnist_idx(tmp_path)


def test_label_above_nine_is_rejected(tmp_path):
    images, _ = small_digits(2)
    labels = np.array([3, 12], np.uint8)
    write_split(tmp_path, "t10k", images, labels, compress=False)
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: label 12"):
        load_mnist_idx(tmp_path)


def test_missing_partner_file(tmp_path):
    images, labels = small_digits(2)
    write_split(tmp_path, "t10k", images, labels, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"t10k-labels-idx1-ubyte\[\.gz\]"
    ):
        load_mnist_idx(tmp_path)


def test_lone_file_in_an_explicit_folder_names_its_partner(tmp_path):
    images, labels = small_digits(2)
    write_split(tmp_path, "t10k", images, labels, compress=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="not its partner"):
        load_mnist(mnist_dir=tmp_path)


def test_empty_folder_names_folder_and_patterns(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        load_mnist_idx(tmp_path)
    assert str(tmp_path) in str(caught.value)
    assert "t10k-images-idx3-ubyte[.gz]" in str(caught.value)


def test_explicit_empty_folder_points_to_the_cli_options(tmp_path):
    with pytest.raises(MnistNotFoundError) as caught:
        load_mnist(mnist_dir=tmp_path)
    message = str(caught.value)
    assert "--data digits" in message
    assert "--mnist-dir DIR" in message
    assert str(tmp_path) in message
    assert isinstance(caught.value, FileNotFoundError)


def test_explicit_folder_is_used(tmp_path):
    images, labels = small_digits(3)
    write_split(tmp_path, "t10k", images, labels, compress=True)
    loaded = load_mnist(mnist_dir=tmp_path)
    assert (loaded.source, loaded.location) == ("idx", str(tmp_path))
    np.testing.assert_array_equal(loaded.labels, labels)


def write_keras_npz(path, seed=3):
    train_images, train_labels = small_digits(4, seed)
    test_images, test_labels = small_digits(2, seed + 1)
    np.savez(path, x_train=train_images, y_train=train_labels,
             x_test=test_images, y_test=test_labels)
    return (
        np.concatenate([train_images, test_images]),
        np.concatenate([train_labels, test_labels]),
    )


def test_keras_cache_fallback_is_announced(tmp_path, monkeypatch, caplog):
    cache_file = tmp_path / "mnist.npz"
    images, labels = write_keras_npz(cache_file)
    absent = [tmp_path / "absent"]
    monkeypatch.setattr(mnist, "default_mnist_dirs", lambda: absent)
    monkeypatch.setattr(mnist, "keras_cache_files", lambda: [cache_file])
    with caplog.at_level(logging.WARNING, logger="isnet_keras.data.mnist"):
        loaded = load_mnist()
    assert loaded.source == "keras-cache"
    np.testing.assert_array_equal(loaded.images, images)
    np.testing.assert_array_equal(loaded.labels, labels)
    assert "Keras cache" in caplog.text and str(cache_file) in caplog.text


def test_nothing_found_lists_every_place(tmp_path, monkeypatch):
    absent = [tmp_path / "absent"]
    no_cache = [tmp_path / "none.npz"]
    monkeypatch.setattr(mnist, "default_mnist_dirs", lambda: absent)
    monkeypatch.setattr(mnist, "keras_cache_files", lambda: no_cache)
    with pytest.raises(MnistNotFoundError) as caught:
        load_mnist()
    message = str(caught.value)
    for expected in ("absent", "none.npz", "--data digits", "--mnist-dir DIR"):
        assert expected in message
    # source="idx" never looks at the Keras cache.
    with pytest.raises(MnistNotFoundError) as caught:
        load_mnist(source="idx")
    assert "none.npz" not in str(caught.value)


def test_corrupt_npz_names_the_file(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="mnist.npz"):
        load_mnist_npz(path)


def test_bad_source_arguments(tmp_path):
    with pytest.raises(ValueError, match="source must be one of"):
        load_mnist(source="digits")
    with pytest.raises(ValueError, match="cannot be combined"):
        load_mnist(source="keras", mnist_dir=tmp_path)


def test_worktree_main_checkout_is_found(tmp_path):
    main = tmp_path / "main"
    worktree = tmp_path / "trees" / "feature"
    (main / ".git" / "worktrees" / "feature").mkdir(parents=True)
    worktree.mkdir(parents=True)
    git_dir = main / ".git" / "worktrees" / "feature"
    (worktree / ".git").write_text(f"gitdir: {git_dir}\n")
    assert mnist._main_checkout(worktree) == main
    assert mnist._main_checkout(main) is None
