"""ISNET_KERAS_NO_SHARED_DATA=1: MNIST is looked for as on a user's machine,
which has no ../shared/data/mnist beside the repository (CI sets it)."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from isnet_keras.data import mnist
from isnet_keras.data.mnist import MnistNotFoundError, load_mnist
from tests import support

ROOT = pathlib.Path(__file__).resolve().parents[2]
VARIABLE = "ISNET_KERAS_NO_SHARED_DATA"


@pytest.fixture
def repository_with_shared_mnist(tmp_path, monkeypatch):
    """A repository at tmp/repo with IDX files in tmp/shared/data/mnist,
    no Keras cache, and the variable unset.

    Returns:
        `(shared folder, LoadedDigits written there)`.
    """
    monkeypatch.setattr(mnist, "_repository_root", lambda: tmp_path / "repo")
    support.without_mnist_on_this_machine(monkeypatch, tmp_path)
    monkeypatch.delenv(VARIABLE)
    shared = tmp_path / "shared" / "data" / "mnist"
    return shared, support.write_digits_as_mnist(shared)


def test_the_variable_name_is_the_documented_one():
    assert mnist.NO_SHARED_DATA_ENV == VARIABLE


@pytest.mark.parametrize("value, searched", [
    (None, True), ("", True), ("0", True), ("1", False), ("yes", False)])
def test_the_variable_turns_the_shared_folder_lookup_off(
        repository_with_shared_mnist, monkeypatch, value, searched):
    shared, digits = repository_with_shared_mnist
    if value is not None:
        monkeypatch.setenv(VARIABLE, value)
    assert mnist.shared_data_disabled() is not searched
    assert mnist.default_mnist_dirs() == ([shared] if searched else [])
    if searched:
        loaded = load_mnist()
        assert (loaded.source, loaded.location) == ("idx", str(shared))
        np.testing.assert_array_equal(loaded.labels, digits.labels)
        return
    # Nothing else here: the error lists the folder it did not search and
    # names the variable, for `auto` and for `idx`.
    for source in ("auto", "idx"):
        with pytest.raises(MnistNotFoundError) as caught:
            load_mnist(source=source)
        message = str(caught.value)
        assert f"{shared}: not searched, {VARIABLE}={value} is set" in message
        assert "--mnist-dir DIR" in message and "--data digits" in message


def test_with_the_variable_the_keras_cache_comes_next(
        repository_with_shared_mnist, tmp_path, monkeypatch):
    monkeypatch.setenv(VARIABLE, "1")
    cache = tmp_path / "empty_home" / ".keras" / "datasets" / "mnist.npz"
    cache.parent.mkdir(parents=True)
    images = np.full((3, 28, 28), 7, np.uint8)
    labels = np.array([1, 2, 3], np.uint8)
    np.savez(cache, x_train=images[:2], y_train=labels[:2],
             x_test=images[2:], y_test=labels[2:])
    loaded = load_mnist()
    assert (loaded.source, loaded.location) == ("keras-cache", str(cache))
    np.testing.assert_array_equal(loaded.labels, labels)


def test_with_the_variable_an_explicit_folder_is_still_read(
        repository_with_shared_mnist, monkeypatch):
    shared, digits = repository_with_shared_mnist
    monkeypatch.setenv(VARIABLE, "1")
    loaded = load_mnist(mnist_dir=shared)
    assert (loaded.source, len(loaded.labels)) == ("idx", len(digits.labels))


def test_the_variable_holds_for_a_whole_process():
    # This repository's own lookup, in a fresh interpreter.
    code = ("from isnet_keras.data.mnist import default_mnist_dirs; "
            "print(len(default_mnist_dirs()))")
    env = {"PATH": "/usr/bin:/bin", VARIABLE: "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
    del env[VARIABLE]
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert int(done.stdout.strip()) >= 1


def test_ci_runs_the_readme_test_command_without_the_shared_folder():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    exported = lines.index(f"export {VARIABLE}=1")
    assert exported < lines.index("make test")
