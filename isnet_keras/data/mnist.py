"""MNIST loaders: IDX files, the Keras download or cache, and source resolution.

Nothing here imports TensorFlow or Keras unless the Keras download is asked
for explicitly (`load_mnist_keras`, or `load_mnist(source="keras")`).
"""

import gzip
import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

logger = logging.getLogger(__name__)

IDX_IMAGES_MAGIC = 2051  # bytes 00 00 08 03: unsigned bytes, 3 dimensions.
IDX_LABELS_MAGIC = 2049  # bytes 00 00 08 01: unsigned bytes, 1 dimension.

# File prefixes of the two official splits, in the order they are concatenated.
IDX_SPLIT_PREFIXES = ("train", "t10k")

# Folder of the offline MNIST test split, relative to the parent of the
# repository root.
SHARED_MNIST_SUBDIR = Path("shared", "data", "mnist")

# Set to 1 (any value but "" or "0"), this environment variable turns the
# lookup of SHARED_MNIST_SUBDIR off for the whole process: MNIST is then
# found as on a machine without that folder (CI runs the tests so).
NO_SHARED_DATA_ENV = "ISNET_KERAS_NO_SHARED_DATA"

KERAS_MNIST_FILE = Path("datasets", "mnist.npz")

MNIST_SOURCES = ("auto", "idx", "keras")

_GZIP_SIGNATURE = b"\x1f\x8b"


class MnistNotFoundError(FileNotFoundError):
    """No MNIST data where it was looked for; the message lists the options."""


class LoadedDigits(NamedTuple):
    """Digit images with their labels and where they came from.

    Attributes:
        images: uint8 array (N, 28, 28), 0 = background.
        labels: uint8 array (N,), values 0-9.
        source: str. `"idx"`, `"keras-cache"`, `"keras"` or `"digits"`.
        location: str. The folder or file read, or the loader used.
    """

    images: np.ndarray
    labels: np.ndarray
    source: str
    location: str


def _read_bytes(path):
    """Returns the file's bytes, decompressing gzip (detected by signature)."""
    path = Path(path)
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_SIGNATURE):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as error:
        # BadGzipFile is an OSError; a cut-off stream raises EOFError.
        raise ValueError(
            f"{path}: corrupt or truncated gzip file ({error})"
        ) from error


def read_idx(path, expected_magic, expected_ndim):
    """Reads one unsigned-byte IDX file (plain or gzip) into a NumPy array.

    The IDX header is a big-endian int32 magic number (0x0000 08 D: unsigned
    bytes, D dimensions), then D big-endian int32 sizes, then the data.

    Args:
        path: str or Path. The file; gzip is detected from its first bytes,
            whatever its name.
        expected_magic: int. 2051 for MNIST images, 2049 for labels.
        expected_ndim: int. 3 for images, 1 for labels.

    Returns:
        A uint8 array of the shape the header declares.

    Raises:
        ValueError: naming the file, when the magic number, the header or
            the data length does not match.

    Example:

    >>> path = "t10k-labels-idx1-ubyte.gz"
    >>> read_idx(path, 2049, 1).shape  # doctest: +SKIP
    (10000,)
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(
            f"{path}: too short for an IDX header ({len(data)} bytes)"
        )
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise ValueError(
            f"{path}: IDX magic number is {magic}, expected {expected_magic} "
            "(wrong file type, or not an IDX file)"
        )
    header_size = 4 + 4 * expected_ndim
    if len(data) < header_size:
        raise ValueError(
            f"{path}: truncated IDX header ({len(data)} bytes, "
            f"{header_size} needed)"
        )
    shape = tuple(
        int.from_bytes(data[4 + 4 * axis : 8 + 4 * axis], "big")
        for axis in range(expected_ndim)
    )
    if any(size == 0 for size in shape):
        raise ValueError(f"{path}: IDX header declares an empty shape {shape}")
    expected_length = header_size + int(np.prod(shape))
    if len(data) != expected_length:
        if len(data) < expected_length:
            problem = "truncated"
        else:
            problem = "trailing bytes"
        raise ValueError(
            f"{path}: {problem}: header declares shape {shape} "
            f"({expected_length} bytes with the header), file has {len(data)}"
        )
    values = np.frombuffer(data, dtype=np.uint8, offset=header_size)
    return values.reshape(shape)


def _find_idx_file(directory, prefix, kind):
    """Returns the plain or gzip IDX file for a split, or None."""
    # The two kinds differ in their dimension count, hence in the name.
    if kind == "images":
        stem = f"{prefix}-images-idx3-ubyte"
    else:
        stem = f"{prefix}-labels-idx1-ubyte"
    for name in (stem, stem + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def load_mnist_idx(directory):
    """Loads MNIST from a folder of IDX files (train and/or t10k, gzip or not).

    Looks for `train-images-idx3-ubyte[.gz]` with `train-labels-idx1-ubyte[.gz]`
    and for `t10k-images-idx3-ubyte[.gz]` with `t10k-labels-idx1-ubyte[.gz]`.
    Every split found is read and validated; they are concatenated in the
    order train, t10k.

    Args:
        directory: str or Path. The folder holding the IDX files.

    Returns:
        `(images, labels)`: uint8 arrays of shapes (N, H, W) and (N,)
        (H = W = 28 for MNIST).

    Raises:
        FileNotFoundError: naming the folder and the file names looked for,
            when no split is there or a split lacks its labels or images.
        ValueError: naming the file, when a file is corrupt or truncated,
            when image and label counts differ, or when a label exceeds 9.

    Example:

    >>> folder = "../shared/data/mnist"
    >>> images, labels = load_mnist_idx(folder)  # doctest: +SKIP
    >>> images.shape, labels.shape  # doctest: +SKIP
    ((10000, 28, 28), (10000,))
    """
    directory = Path(directory)
    image_parts, label_parts = [], []
    for prefix in IDX_SPLIT_PREFIXES:
        images_path = _find_idx_file(directory, prefix, "images")
        labels_path = _find_idx_file(directory, prefix, "labels")
        if images_path is None and labels_path is None:
            continue
        if images_path is None or labels_path is None:
            present, missing = (
                (labels_path, f"{prefix}-images-idx3-ubyte[.gz]")
                if images_path is None
                else (images_path, f"{prefix}-labels-idx1-ubyte[.gz]")
            )
            raise FileNotFoundError(
                f"{directory}: found {present.name} but not its partner "
                f"{missing}"
            )
        images = read_idx(images_path, IDX_IMAGES_MAGIC, expected_ndim=3)
        labels = read_idx(labels_path, IDX_LABELS_MAGIC, expected_ndim=1)
        if len(images) != len(labels):
            raise ValueError(
                f"{images_path} holds {len(images)} images but {labels_path} "
                f"holds {len(labels)} labels"
            )
        if labels.max() > 9:
            raise ValueError(
                f"{labels_path}: label {labels.max()} outside 0-9"
            )
        if image_parts and images.shape[1:] != image_parts[0].shape[1:]:
            raise ValueError(
                f"{images_path}: images are {images.shape[1:]}, the other "
                f"split's are {image_parts[0].shape[1:]}"
            )
        image_parts.append(images)
        label_parts.append(labels)
    if not image_parts:
        looked_for = ", ".join(
            f"{prefix}-images-idx3-ubyte[.gz] + {prefix}-labels-idx1-ubyte[.gz]"
            for prefix in IDX_SPLIT_PREFIXES
        )
        raise FileNotFoundError(
            f"no MNIST IDX files in {directory} (looked for {looked_for})"
        )
    return np.concatenate(image_parts), np.concatenate(label_parts)


def load_mnist_npz(path):
    """Reads the `mnist.npz` file that `keras.datasets.mnist` caches.

    Args:
        path: str or Path. The `.npz` file with `x_train`, `y_train`,
            `x_test`, `y_test`.

    Returns:
        `(images, labels)`: train then test, uint8 (70000, 28, 28) and (70000,).

    Example:

    >>> path = "~/.keras/datasets/mnist.npz"
    >>> images, labels = load_mnist_npz(path)  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    try:
        with np.load(path, allow_pickle=False) as arrays:
            images = np.concatenate([arrays["x_train"], arrays["x_test"]])
            labels = np.concatenate([arrays["y_train"], arrays["y_test"]])
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(
            f"{path}: not a readable Keras MNIST file ({error})"
        ) from error
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(
            f"{path}: unexpected shapes {images.shape} and {labels.shape}"
        )
    return (
        images.astype(np.uint8, copy=False),
        labels.astype(np.uint8, copy=False),
    )


def load_mnist_keras():
    """Returns the full MNIST (train + test) via `keras.datasets.mnist`.

    Downloads the file on first use (internet needed), then reads the cache.
    Imports Keras, hence TensorFlow (a few seconds).

    Returns:
        `(images, labels)`: uint8 (70000, 28, 28) and (70000,), train first.

    Example:

    >>> images, labels = load_mnist_keras()  # doctest: +SKIP
    """
    import keras  # Imported here: loading TensorFlow costs seconds.

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    images = np.concatenate([x_train, x_test]).astype(np.uint8, copy=False)
    labels = np.concatenate([y_train, y_test]).astype(np.uint8, copy=False)
    return images, labels


def _repository_root():
    """The folder that holds the `isnet_keras` package."""
    return Path(__file__).resolve().parents[2]


def _main_checkout(repository_root):
    """For a git worktree, the main checkout's folder; otherwise None.

    A worktree's `.git` is a file `gitdir: <main>/.git/worktrees/<name>`;
    data kept beside the main checkout is then found too.
    """
    git_file = repository_root / ".git"
    if not git_file.is_file():
        return None
    try:
        line = git_file.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not line.startswith("gitdir:"):
        return None
    git_dir = Path(line[len("gitdir:") :].strip())
    if not git_dir.is_absolute():
        git_dir = (repository_root / git_dir).resolve()
    if git_dir.parent.name != "worktrees":
        return None
    return git_dir.parent.parent.parent


def shared_data_disabled():
    """Whether `ISNET_KERAS_NO_SHARED_DATA` turns the `../shared` lookup off.

    Any value but unset, `""` or `"0"` turns it off (read at each call).

    Example:

    >>> os.environ["ISNET_KERAS_NO_SHARED_DATA"] = "1"  # doctest: +SKIP
    >>> shared_data_disabled(), default_mnist_dirs()  # doctest: +SKIP
    (True, [])
    """
    return os.environ.get(NO_SHARED_DATA_ENV, "") not in ("", "0")


def default_mnist_dirs():
    """Folders searched for MNIST IDX files when none is given.

    Setting the environment variable `ISNET_KERAS_NO_SHARED_DATA=1` turns
    this lookup off for the whole process (the list is then empty), so that
    MNIST is found as on a machine without `../shared`: an explicit
    `mnist_dir`, else the Keras cache, else the scikit-learn digits where
    the caller falls back to them. CI sets it.

    Returns:
        A list of Paths: `../shared/data/mnist` beside the repository and,
        when the repository is a git worktree, beside its main checkout.
        They need not exist. Empty when `ISNET_KERAS_NO_SHARED_DATA` is set.

    Example:

    >>> all(path.name == "mnist" for path in default_mnist_dirs())
    True
    """
    if shared_data_disabled():
        return []
    root = _repository_root()
    candidates = [root.parent / SHARED_MNIST_SUBDIR]
    main_checkout = _main_checkout(root)
    if main_checkout is not None:
        candidate = main_checkout.parent / SHARED_MNIST_SUBDIR
        if candidate not in candidates:
            candidates.append(candidate)
    return candidates


def keras_cache_files():
    """Where `keras.datasets.mnist` would have cached `mnist.npz`.

    Mirrors Keras: `$KERAS_HOME` when set, else `~/.keras`, else `/tmp/.keras`.

    Returns:
        A list of candidate Paths (they need not exist).

    Example:

    >>> keras_cache_files()[-1].name
    'mnist.npz'
    """
    homes = []
    if os.environ.get("KERAS_HOME"):
        homes.append(Path(os.environ["KERAS_HOME"]).expanduser())
    homes.append(Path("~", ".keras").expanduser())
    homes.append(Path("/tmp", ".keras"))
    return [home / KERAS_MNIST_FILE for home in homes]


def _has_idx_files(directory):
    """True when any MNIST IDX file is there (a lone one then fails loudly)."""
    return directory.is_dir() and any(
        _find_idx_file(directory, prefix, kind) is not None
        for prefix in IDX_SPLIT_PREFIXES
        for kind in ("images", "labels")
    )


def _not_found_message(searched):
    lines = "\n".join(f"  - {place}" for place in searched)
    return (
        "No MNIST data found. Looked in:\n"
        f"{lines}\n"
        "Choose one of:\n"
        "  --mnist-dir DIR   a folder with t10k-images-idx3-ubyte[.gz] and "
        "t10k-labels-idx1-ubyte[.gz] (and/or the train-* pair); "
        "Python: load_mnist(mnist_dir=DIR)\n"
        "  --data digits     scikit-learn's 8x8 digits, offline, upscaled "
        "to 28x28 (a smaller, easier substitute)\n"
        "  download the full MNIST with keras.datasets.mnist "
        "(internet needed); Python: load_mnist(source='keras')"
    )


def load_mnist(source="auto", mnist_dir=None):
    """Loads MNIST from the first place that has it, and says which one.

    Resolution for `source="auto"`:
    1. `mnist_dir` when given: its IDX files, and nothing else (an explicit
       folder without them is an error, never silently replaced);
    2. `../shared/data/mnist` beside the repository (the offline 10,000-image
       test split), unless the environment variable
       `ISNET_KERAS_NO_SHARED_DATA` is set to 1 (see `default_mnist_dirs`);
    3. the Keras cache `~/.keras/datasets/mnist.npz` if it is already there
       (full 70,000 images; never downloads).
    When a later step is used, a warning on the `isnet_keras.data.mnist`
    logger says so. `source="idx"` allows steps 1-2 only, `source="keras"`
    uses the cache or downloads.

    Args:
        source: str. `"auto"`, `"idx"` or `"keras"`. Defaults to `"auto"`.
        mnist_dir: str, Path or None. A folder of IDX files. Defaults to None.

    Returns:
        A `LoadedDigits(images, labels, source, location)`; `source` is
        `"idx"`, `"keras-cache"` or `"keras"`.

    Raises:
        MnistNotFoundError: (a `FileNotFoundError`) when nothing is found;
            its message lists the places searched (and says when
            `ISNET_KERAS_NO_SHARED_DATA` kept `../shared` out of them) and
            the options `--mnist-dir DIR` and `--data digits`.
        ValueError: when a file found is corrupt.

    Example:

    >>> data = load_mnist()  # doctest: +SKIP
    >>> data.source, data.images.shape  # doctest: +SKIP
    ('idx', (10000, 28, 28))
    """
    if source not in MNIST_SOURCES:
        raise ValueError(
            f"source must be one of {MNIST_SOURCES}; received {source!r} "
            "(for scikit-learn's digits use load_digits_28())"
        )
    if source == "keras":
        if mnist_dir is not None:
            raise ValueError(
                "source='keras' downloads MNIST; it cannot be combined with "
                f"mnist_dir={str(mnist_dir)!r} (use source='idx' for a folder)"
            )
        images, labels = load_mnist_keras()
        return LoadedDigits(images, labels, "keras", "keras.datasets.mnist")

    if mnist_dir is not None:
        directory = Path(mnist_dir).expanduser()
        if not _has_idx_files(directory):
            raise MnistNotFoundError(
                _not_found_message([f"{directory} (given explicitly)"])
            )
        images, labels = load_mnist_idx(directory)
        return LoadedDigits(images, labels, "idx", str(directory))

    searched = []
    if shared_data_disabled():
        shared = _repository_root().parent / SHARED_MNIST_SUBDIR
        searched.append(
            f"{shared}: not searched, {NO_SHARED_DATA_ENV}="
            f"{os.environ[NO_SHARED_DATA_ENV]} is set"
        )
    for directory in default_mnist_dirs():
        searched.append(f"{directory} (IDX files)")
        if _has_idx_files(directory):
            images, labels = load_mnist_idx(directory)
            return LoadedDigits(images, labels, "idx", str(directory))

    if source == "auto":
        for cache_file in keras_cache_files():
            searched.append(f"{cache_file} (Keras cache)")
            if cache_file.is_file():
                logger.warning(
                    "MNIST IDX files not found beside the repository; using "
                    "the Keras cache %s",
                    cache_file,
                )
                images, labels = load_mnist_npz(cache_file)
                return LoadedDigits(
                    images, labels, "keras-cache", str(cache_file)
                )

    raise MnistNotFoundError(_not_found_message(searched))
