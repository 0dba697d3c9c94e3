"""Deployment artifacts for the classifier: SavedModel for TF Serving, TFLite.

Only the deploy graph is ever exported. An ISNet model carries its plain
classifier as `deploy_model` (the same layer objects and weights, without the
LRP block), so what reaches a server or a phone is exactly the classifier:
same parameters, same ops, same latency.

Every exporter accepts the same three kinds of `model`:

- a `keras.Model` classifier,
- any object whose `deploy_model` attribute is a `keras.Model` (an ISNet),
- a path to a `.keras` file (loaded without compiling; if the loaded object
  has a `deploy_model`, that is what gets exported).

The classifier may end in logits or in a softmax. Exported artifacts always
return probabilities: a softmax is added only when the classifier does not
already end in one (see `classifier_outputs_probabilities`).

Example:

```python
from isnet_keras.export import export_serving, export_tflite

version_dir = export_serving(isnet_model, "saved_models/digits")
# -> "saved_models/digits/1"; TF Serving watches "saved_models/digits".
export_tflite(isnet_model, "digits.tflite", quantize="int8",
              representative_data=x_train[:200])
```

The package is split by target, each module with one job:

- `classifier`: what a model argument resolves to, its image input shape,
  its number of classes, and whether it outputs probabilities or logits;
- `signatures`: the serving functions and signature names every artifact
  shares;
- `saved_model`: versioned SavedModel directories for TF Serving;
- `litert`: TFLite conversion and op listing;
- `runners`: running any of these (and `.keras` files) on images.
"""

from isnet_keras.export.classifier import (
    CLASSIFIER_OUTPUT_KINDS,
    check_image_file_channels,
    classifier_outputs_probabilities,
    image_input_shape,
    load_keras_file,
    output_classes,
    outputs_probabilities,
    resolve_deploy_model,
)
from isnet_keras.export.litert import QUANTIZE_MODES, export_tflite, tflite_ops
from isnet_keras.export.runners import (
    KerasClassifier,
    SavedModelClassifier,
    TFLiteClassifier,
    load_classifier,
    run_tflite,
)
from isnet_keras.export.saved_model import export_serving, latest_version_dir
from isnet_keras.export.signatures import (
    CLASS_ID,
    INPUT_NAME,
    PROBABILITIES,
    SERVING_SIGNATURE,
    UINT8_SIGNATURE,
)

__all__ = [
    "CLASSIFIER_OUTPUT_KINDS",
    "CLASS_ID",
    "INPUT_NAME",
    "KerasClassifier",
    "PROBABILITIES",
    "QUANTIZE_MODES",
    "SERVING_SIGNATURE",
    "SavedModelClassifier",
    "TFLiteClassifier",
    "UINT8_SIGNATURE",
    "check_image_file_channels",
    "classifier_outputs_probabilities",
    "export_serving",
    "export_tflite",
    "image_input_shape",
    "latest_version_dir",
    "load_classifier",
    "load_keras_file",
    "output_classes",
    "outputs_probabilities",
    "resolve_deploy_model",
    "run_tflite",
    "tflite_ops",
]
