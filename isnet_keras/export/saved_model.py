"""Versioned SavedModel publishing for TF Serving.

`export_serving` writes the deploy classifier into `base_dir/<version>/`,
the layout TF Serving watches, atomically: a hidden partial directory is
renamed into place, and an existing version is never touched.
`latest_version_dir` finds the version a server would serve.

Example:

```python
from isnet_keras.export import export_serving

version_dir = export_serving(isnet_model, "saved_models/digits")
# -> "saved_models/digits/1"; TF Serving watches "saved_models/digits".
```
"""

import os
import re
import shutil
import uuid

import tensorflow as tf

from isnet_keras.export import classifier as classifier_lib
from isnet_keras.export import signatures

# TF Serving loads every all-digit sub-directory of the model base path as a
# version; partial exports use a hidden, non-numeric name so the server never
# sees them.
_VERSION_DIR_PATTERN = re.compile(r"^[0-9]+$")
_PARTIAL_PREFIX = ".partial-"


def export_serving(
    model,
    base_dir,
    version=None,
    input_range=(0.0, 1.0),
    classifier_output="auto",
):
    """Exports the deploy classifier as a versioned SavedModel for TF Serving.

    Writes `base_dir/<version>/` (the layout TF Serving watches). Two
    signatures are saved:

    - `serving_default`: input `images`, float32 `(None, H, W, C)` in the
      model's own input range; outputs `probabilities` float32 `(None, K)`
      and `class_id` int64 `(None,)`.
    - `serving_uint8`: input `images`, uint8 `(None, H, W, C)` with values
      0..255, mapped linearly onto `input_range` (by default `images / 255`)
      before the same computation; same outputs.

    The export is atomic: it is written into a hidden sibling directory and
    renamed into place at the end, so a failure leaves no version behind.
    An existing version directory is never modified.

    Args:
        model: `keras.Model`, object with a `deploy_model`, or path to a
            `.keras` file (see `resolve_deploy_model`).
        base_dir: `str` or path. The model base path; created if missing.
        version: Optional positive `int`. Defaults to `None`: one more than
            the highest existing version (TF Serving serves the highest
            version, so gaps are never filled), or 1 in an empty directory.
        input_range: Pair of floats `(low, high)`. The range of the model's
            float inputs, onto which `serving_uint8` maps 0..255. Defaults
            to `(0.0, 1.0)`.
        classifier_output: `"auto"`, `"logits"` or `"probabilities"`. What
            the classifier returns; `"auto"` looks for a final softmax.
            Defaults to `"auto"`.

    Returns:
        `str`, the path of the new version directory.

    Raises:
        FileExistsError: the version directory already exists.
        NotADirectoryError: `base_dir` exists and is not a directory.

    Example:

    ```python
    path = export_serving(classifier, "saved_models/digits")  # ".../1"
    serve = tf.saved_model.load(path).signatures["serving_default"]
    serve(images=tf.zeros((2, 8, 8, 1)))["class_id"]
    ```
    """
    classifier = classifier_lib.resolve_deploy_model(model)
    image_shape = classifier_lib.image_input_shape(classifier)
    classifier_lib.output_classes(classifier)
    input_range = signatures.check_input_range(input_range)
    outputs_probabilities = classifier_lib.outputs_probabilities(
        classifier, classifier_output)
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise ValueError(
            f"`version` must be a positive integer or None; received {version!r}."
        )

    base_dir = os.fspath(base_dir)
    if os.path.exists(base_dir) and not os.path.isdir(base_dir):
        raise NotADirectoryError(
            f"The SavedModel base directory '{base_dir}' exists and is not a "
            "directory."
        )
    os.makedirs(base_dir, exist_ok=True)
    if version is not None:
        _refuse_existing_version(os.path.join(base_dir, str(version)))

    serve_float, serve_uint8, _ = signatures.serving_functions(
        classifier, outputs_probabilities, input_range
    )
    archive = signatures.new_archive(classifier)
    archive.add_endpoint(
        signatures.SERVING_SIGNATURE,
        serve_float,
        input_signature=[signatures.image_spec(image_shape, tf.float32)],
    )
    archive.add_endpoint(
        signatures.UINT8_SIGNATURE,
        serve_uint8,
        input_signature=[signatures.image_spec(image_shape, tf.uint8)],
    )

    partial_dir = os.path.join(base_dir, _PARTIAL_PREFIX + uuid.uuid4().hex)
    # os.mkdir (unlike tempfile.mkdtemp's 0700) honours the umask, so the
    # renamed version stays readable by a server running as another user.
    os.mkdir(partial_dir)
    try:
        archive.write_out(partial_dir, verbose=False)
        return _publish_version(partial_dir, base_dir, version)
    finally:
        if os.path.exists(partial_dir):
            shutil.rmtree(partial_dir, ignore_errors=True)


def _existing_versions(base_dir):
    """The version numbers under `base_dir`, ascending."""
    return sorted(
        int(name)
        for name in os.listdir(base_dir)
        if _VERSION_DIR_PATTERN.match(name)
    )


def _refuse_existing_version(version_dir):
    """Raises `FileExistsError` if `version_dir` exists in any form."""
    if os.path.lexists(version_dir):
        raise FileExistsError(
            f"SavedModel version directory '{version_dir}' already exists; "
            "existing versions are never overwritten. Pass another `version` "
            "or leave it as None to use the next free one."
        )


def _publish_version(partial_dir, base_dir, version):
    """Renames the finished export into its version directory."""
    if version is not None:
        return _rename_into_version(
            partial_dir, os.path.join(base_dir, str(version))
        )
    # With an automatic version, a concurrent exporter may take the number
    # first; then the next one is tried.
    for _ in range(100):
        next_version = max(_existing_versions(base_dir), default=0) + 1
        try:
            return _rename_into_version(
                partial_dir, os.path.join(base_dir, str(next_version))
            )
        except FileExistsError:
            continue
    raise FileExistsError(
        f"Could not claim a free version directory in '{base_dir}'."
    )


def _rename_into_version(partial_dir, version_dir):
    """Renames the partial export to `version_dir`; never replaces anything."""
    _refuse_existing_version(version_dir)
    try:
        # rename refuses a non-empty target and the check above refuses an
        # empty one, so nothing that exists is ever replaced.
        os.rename(partial_dir, version_dir)
    except OSError:
        _refuse_existing_version(version_dir)
        raise
    return version_dir


def latest_version_dir(base_dir):
    """Returns the highest-numbered version directory under `base_dir`.

    Args:
        base_dir: `str` or path. A TF Serving model base path.

    Returns:
        `str`, the path of the highest version (the one TF Serving serves).

    Raises:
        FileNotFoundError: there is no version directory.

    Example:

    ```python
    latest_version_dir("saved_models/digits")  # "saved_models/digits/2"
    ```
    """
    base_dir = os.fspath(base_dir)
    versions = _existing_versions(base_dir)
    if not versions:
        raise FileNotFoundError(
            f"No SavedModel version directory (1/, 2/, ...) in '{base_dir}'."
        )
    return os.path.join(base_dir, str(versions[-1]))
