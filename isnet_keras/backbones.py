"""Classifiers to train as ISNets: `keras.applications` backbones with a new
head, or the user's own `.keras` classifier.

Every classifier built here takes images in [0, 1] (the ISNet's default
`input_bounds`) and outputs logits. The backbone's own input scaling is a
`Rescaling` layer inside the model, so the pipeline, `isnet evaluate`, the
exported model and the LRP Z^B rule all see the same [0, 1] range.
"""

import os

import keras
import numpy as np

# name -> (keras.applications constructor, input scaling of its weights).
BACKBONES = {
    "densenet121": ("DenseNet121", "torch"),
    "resnet50": ("ResNet50", "caffe"),
    "vgg16": ("VGG16", "caffe"),
    "mobilenetv2": ("MobileNetV2", "tf"),
}
# A compact CNN for small images (digits, thumbnails), built here.
SMALL_CNN = "smallcnn"
# A small vision transformer, built here from layers the LRP block explains.
VIT_SMALL = "vit_small"
# ImageNet statistics of the two per-channel scalings, RGB order.
_TORCH_MEAN = np.array([0.485, 0.456, 0.406])
_TORCH_STD = np.array([0.229, 0.224, 0.225])
_CAFFE_MEAN = np.array([123.68, 116.779, 103.939])


def input_scaling(mode):
    """A `Rescaling` layer mapping [0, 1] RGB images to a backbone's range.

    Args:
        mode: `"tf"` ([-1, 1]), `"torch"` (ImageNet mean/std per channel)
            or `"caffe"` (0-255 minus the ImageNet mean per channel). The
            caffe mode keeps RGB channel order (Keras' `preprocess_input`
            also swaps to BGR); ImageNet weights adapt to it in fine-tuning.

    Returns:
        A `keras.layers.Rescaling` (`x * scale + offset`), which the LRP
        block maps the Z^B bounds through.

    Example:

    >>> layer = input_scaling("tf")
    >>> float(layer(np.ones((1, 1, 1, 3)))[0, 0, 0, 0])
    1.0
    """
    if mode == "tf":
        return keras.layers.Rescaling(2.0, offset=-1.0, name="input_scaling")
    if mode == "torch":
        return keras.layers.Rescaling(
            (1.0 / _TORCH_STD).tolist(),
            offset=(-_TORCH_MEAN / _TORCH_STD).tolist(),
            name="input_scaling")
    if mode == "caffe":
        return keras.layers.Rescaling(255.0, offset=(-_CAFFE_MEAN).tolist(),
                                      name="input_scaling")
    raise ValueError(f"Unknown input scaling {mode!r}; expected 'tf', "
                     "'torch' or 'caffe'.")


def is_backbone_name(backbone):
    """True when `backbone` names a backbone built here."""
    return str(backbone).lower() in (*BACKBONES, SMALL_CNN, VIT_SMALL)


def small_cnn(num_classes, image_size, channels=3):
    """A compact CNN for small images, logits output.

    Three Conv-ReLU blocks (16, 32, 64 filters, the last two after 2x2 max
    pooling; the ReLUs are `block1_relu` to `block3_relu`), more 2x2 max
    pooling until the map is at most 16x16, then `Flatten` and a Dense
    layer: a fast classifier for digits or thumbnails, where the
    `keras.applications` networks are far larger than the task.

    Built for ISNet training, where two common choices hold it back
    (measured in docs/results.md, "Small folder sets"): a global-average-
    pooling head spreads the output relevance over every position of the
    last map, so relevance leaves the background only if every feature is
    silent there; and batch normalisation in training mode lets the
    heatmaps depend on the batch. The flattening head weighs each position
    on its own, and the convolutions carry biases instead of batch norm.

    Args:
        num_classes: int >= 2.
        image_size: int >= 4.
        channels: int. Input channels. Defaults to 3.

    Returns:
        A `keras.Sequential` of `(image_size, image_size, channels)` in
        [0, 1] -> logits.

    Raises:
        ValueError: `image_size` below 4, or fewer than 2 classes.

    Example:

    >>> small_cnn(10, 28).count_params() < 60_000
    True
    """
    size = int(image_size)
    # Its two 2x2 poolings need a 4x4 input to leave a 1x1 map.
    if size < 4:
        raise ValueError(f"{SMALL_CNN} needs images of at least 4x4 pixels; "
                         f"received image size {image_size}.")
    if int(num_classes) < 2:
        raise ValueError(f"A classifier needs at least 2 classes; received "
                         f"{num_classes}.")
    layers = [keras.Input((size, size, int(channels)), name="image")]
    for block, filters in enumerate((16, 32, 64)):
        if block:
            layers.append(keras.layers.MaxPooling2D(2))
            size //= 2
        layers += [keras.layers.Conv2D(filters, 3, padding="same"),
                   keras.layers.ReLU(name=f"block{block + 1}_relu")]
    # Bounds the head's width on larger images (64 px: none; 224 px: two).
    while size > 16:
        layers.append(keras.layers.MaxPooling2D(2))
        size //= 2
    layers += [keras.layers.Flatten(),
               keras.layers.Dense(int(num_classes), name="logits")]
    return keras.Sequential(layers, name=f"{SMALL_CNN}_classifier")


def vit_patch_size(image_size):
    """The patch size of `vit_small`: 8 from 64-px images on, else 4.

    A 32-px and a 64-px image both become 8x8 = 64 tokens.

    Example:

    >>> vit_patch_size(32), vit_patch_size(64)
    (4, 8)
    """
    return 8 if int(image_size) >= 64 else 4


def vit_small(num_classes, image_size, channels=3, width=64, depth=4,
              num_heads=4, pooling="class_token", mlp_activation="relu",
              attention="relu"):
    """A small vision transformer, logits output.

    Patch embedding `Conv2D(width, patch, strides=patch)` (`patch` from
    `vit_patch_size`: 4 below 64 px, 8 from 64 px on; pixels past the last
    whole patch at the right and bottom edges are not seen and get no
    relevance), a `Reshape` to tokens, a learned class token
    (`hub.ClassToken`), a learned position embedding
    (`AddPositionEmbedding`), `depth` pre-norm encoder blocks, a final
    LayerNorm, the class token's output (`hub.ClassTokenPooling`) and a
    Dense logits layer. Each block is `x + MHA(LN(x))` (`num_heads` heads
    of `width // num_heads` dimensions, self-attention) then
    `x + Dense(width)(Dense(2 * width, relu)(LN(x)))`; block `i`'s output
    is the `Add` layer `block{i}_out`.

    The defaults make a ViT whose LRP rules pass on all of the relevance
    they receive when biases are left out of them (the default composite
    of attention networks, `composites.default_bias_relevance`):
    attention probabilities `relu(l) / T_k` (`ReLUAttention`) instead of
    the softmax, a ReLU MLP instead of GELU, and a class token. ISNets of
    the softmax/GELU/token-mean ViT kept every background shortcut tried,
    with heatmaps that hid it (docs/results.md, "A ViT on the bias zoo").

    Args:
        num_classes: int >= 2.
        image_size: int >= the patch size (4 below 64 px).
        channels: int. Input channels. Defaults to 3.
        width: int. Token dimension, a multiple of `num_heads`. Defaults
            to 64.
        depth: int. Encoder blocks. Defaults to 4.
        num_heads: int. Attention heads. Defaults to 4.
        pooling: `"class_token"` (the default: a learned token prepended
            before the position embedding and read by the head) or
            `"mean"` (the token mean, `GlobalAveragePooling1D`).
        mlp_activation: Activation of each block's first MLP layer.
            Defaults to `"relu"`.
        attention: `"relu"` (the default,
            `lrp.relu_attention.ReLUAttention`, probabilities
            `relu(l) / T_k`, whose LRP rule conserves relevance) or
            `"softmax"` (`keras.layers.MultiHeadAttention`).

    Returns:
        A functional `keras.Model` of `(image_size, image_size, channels)`
        in [0, 1] -> logits.

    Raises:
        ValueError: image smaller than one patch, fewer than 2 classes,
            `width` not a multiple of `num_heads`, or an unknown
            `pooling` or `attention`.

    Example:

    >>> vit_small(10, 32).output.shape
    (None, 10)
    """
    from isnet_keras.hub import ClassToken, ClassTokenPooling
    from isnet_keras.lrp.relu_attention import ReLUAttention
    from isnet_keras.lrp.transformer_mirrors import AddPositionEmbedding

    if pooling not in ("mean", "class_token"):
        raise ValueError(f"pooling must be 'mean' or 'class_token', "
                         f"received {pooling!r}.")
    attention_layers = {"softmax": keras.layers.MultiHeadAttention,
                        "relu": ReLUAttention}
    if attention not in attention_layers:
        raise ValueError(f"attention must be 'softmax' or 'relu', received "
                         f"{attention!r}.")
    size, width = int(image_size), int(width)
    patch = vit_patch_size(size)
    if size < patch:
        raise ValueError(f"{VIT_SMALL} needs images of at least {patch}x"
                         f"{patch} pixels; received image size "
                         f"{image_size}.")
    if int(num_classes) < 2:
        raise ValueError(f"A classifier needs at least 2 classes; received "
                         f"{num_classes}.")
    if width % int(num_heads):
        raise ValueError(f"width {width} is not a multiple of num_heads "
                         f"{num_heads}.")
    layers = keras.layers
    grid = size // patch
    inputs = keras.Input((size, size, int(channels)), name="image")
    x = layers.Conv2D(width, patch, strides=patch,
                      name="patch_embedding")(inputs)
    x = layers.Reshape((grid * grid, width), name="tokens")(x)
    if pooling == "class_token":
        x = ClassToken(name="class_token")(x)
    x = AddPositionEmbedding(name="position_embedding")(x)
    for block in range(1, int(depth) + 1):
        y = layers.LayerNormalization(name=f"block{block}_norm1")(x)
        y = attention_layers[attention](
            int(num_heads), width // int(num_heads),
            name=f"block{block}_attention")(y, y)
        x = layers.Add(name=f"block{block}_attention_add")([x, y])
        y = layers.LayerNormalization(name=f"block{block}_norm2")(x)
        y = layers.Dense(2 * width, activation=mlp_activation,
                         name=f"block{block}_mlp1")(y)
        y = layers.Dense(width, name=f"block{block}_mlp2")(y)
        x = layers.Add(name=f"block{block}_out")([x, y])
    x = layers.LayerNormalization(name="final_norm")(x)
    if pooling == "class_token":
        x = ClassTokenPooling(name="token_pool")(x)
    else:
        x = layers.GlobalAveragePooling1D(name="token_pool")(x)
    logits = layers.Dense(int(num_classes), name="logits")(x)
    return keras.Model(inputs, logits, name=f"{VIT_SMALL}_classifier")


def build_classifier(backbone, num_classes, image_size, weights=None):
    """A `keras.applications` backbone with a new logits head.

    Args:
        backbone: One of `BACKBONES` (`"densenet121"`, `"resnet50"`,
            `"vgg16"`, `"mobilenetv2"`), `"smallcnn"` (`small_cnn`) or
            `"vit_small"` (`vit_small`).
        num_classes: int >= 2. Width of the logits layer.
        image_size: int >= 32. Height and width of the RGB input.
        weights: None (random initialisation, the default), a path to a
            backbone weights file (`include_top=False`), or `"imagenet"`
            (downloads them).

    Returns:
        A functional `keras.Model` `(image_size, image_size, 3)` in [0, 1]
        -> logits `(num_classes,)`: input scaling, backbone (global average
        pooling), `Dense(num_classes)`.

    Raises:
        ValueError: unknown backbone, image size below 32, fewer than two
            classes.
        FileNotFoundError: `weights` is a path that does not exist.

    Example:

    >>> classifier = build_classifier("mobilenetv2", 3, 32)
    >>> classifier.output.shape
    (None, 3)
    """
    key = str(backbone).lower()
    if key == SMALL_CNN:
        if weights is not None:
            raise ValueError(f"'{SMALL_CNN}' has no pretrained weights; "
                             "leave weights unset.")
        return small_cnn(num_classes, image_size)
    if key == VIT_SMALL:
        if weights is not None:
            raise ValueError(f"'{VIT_SMALL}' has no pretrained weights; "
                             "leave weights unset.")
        return vit_small(num_classes, image_size)
    if key not in BACKBONES:
        raise ValueError(f"Unknown backbone {backbone!r}; use one of "
                         f"{', '.join(BACKBONES)}, {SMALL_CNN}, {VIT_SMALL} "
                         "or a path to a .keras classifier.")
    if int(image_size) < 32:
        raise ValueError(f"{backbone} needs images of at least 32x32 pixels; "
                         f"received image size {image_size}.")
    if int(num_classes) < 2:
        raise ValueError(f"A classifier needs at least 2 classes; the data "
                         f"has {num_classes}.")
    if weights not in (None, "imagenet") and not os.path.isfile(weights):
        raise FileNotFoundError(f"Backbone weights file not found: "
                                f"'{weights}'.")
    constructor, mode = BACKBONES[key]
    size = int(image_size)
    inputs = keras.Input((size, size, 3), name="image")
    scaled = input_scaling(mode)(inputs)
    features = getattr(keras.applications, constructor)(
        include_top=False, weights=weights, input_shape=(size, size, 3),
        pooling="avg")(scaled)
    logits = keras.layers.Dense(int(num_classes), name="logits")(features)
    return keras.Model(inputs, logits, name=f"{key}_classifier")


def load_classifier(path, num_classes):
    """Loads the user's own `.keras` classifier to train as an ISNet.

    Args:
        path: str or Path of a `.keras` file holding a single-input
            classifier of images `(H, W, C)` with a logits (or softmax)
            output.
        num_classes: int. Number of classes in the data; the classifier's
            output must have exactly this width.

    Returns:
        The loaded `keras.Model`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable Keras model, not an image classifier, or
            its output width differs from `num_classes`.

    Example:

    >>> classifier = load_classifier("my_cnn.keras", 2)  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Classifier file not found: '{path}'.")
    from isnet_keras.export import load_keras_file

    model = load_keras_file(path)
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ValueError(
            f"'{path}' must take one image input (batch, height, width, "
            f"channels); its inputs are {[i.shape for i in model.inputs]}.")
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
        raise ValueError(
            f"'{path}' must have one (batch, classes) output; its outputs "
            f"are {[o.shape for o in model.outputs]}.")
    width = model.outputs[0].shape[-1]
    if width != int(num_classes):
        raise ValueError(
            f"'{path}' outputs {width} classes but the data has "
            f"{num_classes}; give it a head with {num_classes} outputs.")
    return model


def make_classifier(backbone, num_classes, image_size, weights=None):
    """A backbone name or a `.keras` path -> the classifier to train.

    Args:
        backbone: A `BACKBONES` name, or a path ending in `.keras`.
        num_classes: int. Classes in the data.
        image_size: int. Input size for named backbones; ignored for a
            `.keras` file, which keeps its own input shape.
        weights: See `build_classifier` (named backbones only).

    Returns:
        A `keras.Model` with logits output.

    Example:

    >>> make_classifier("vgg16", 2, 32).input_shape
    (None, 32, 32, 3)
    """
    if is_backbone_name(backbone):
        return build_classifier(backbone, num_classes, image_size, weights)
    if str(backbone).endswith(".keras"):
        if weights is not None:
            raise ValueError("--weights applies to named backbones; a .keras "
                             "classifier carries its own weights.")
        return load_classifier(backbone, num_classes)
    raise ValueError(f"Unknown backbone {backbone!r}; use one of "
                     f"{', '.join(BACKBONES)}, {SMALL_CNN}, {VIT_SMALL} or a "
                     "path to a .keras classifier.")


def _last_block_outputs(names, pattern, stages):
    """`pattern.format(stage, block)` of each stage's last block."""
    found = []
    for stage in stages:
        blocks = [block for block in range(1, 100)
                  if pattern.format(stage, block) in names]
        if blocks:
            found.append(pattern.format(stage, max(blocks)))
    return found


def deep_supervision_layers(classifier):
    """Default hidden layers for LRP deep supervision of a classifier.

    Recognises, by layer names, the `keras.applications` families (also
    nested in a head, as `build_classifier` makes them) and `small_cnn`,
    and supervises the layers the ISNet papers' code does:

    - DenseNet: each transition block's ReLU and the last ReLU;
    - ResNet (v1 and v2): each stage's output;
    - VGG: each block's max pooling;
    - MobileNetV2: the last residual sum of each resolution, and the last
      ReLU;
    - `small_cnn`: its three ReLUs;
    - `vit_small`: none. Deep supervision penalises 4-D feature maps
      `(B, H, W, C)` against the resized mask; the encoder blocks output
      tokens `(B, T, D)`, and the one 4-D map, the patch embedding, is a
      single linear step above the input, whose heatmap is penalised
      already. The ViT trains on its input heatmap alone.

    Any other classifier gets one layer per feature-map resolution (see
    `last_map_per_resolution`): the end of each stage, where a shortcut
    feature computed at that resolution must show itself.

    Args:
        classifier: A `keras.Model`.

    Returns:
        A tuple of layer names, shallowest first; empty when the classifier
        has no 4-D feature map after a convolution (e.g. an MLP).

    Example:

    >>> deep_supervision_layers(small_cnn(10, 28))
    ('block1_relu', 'block2_relu', 'block3_relu')
    """
    names = {layer.name for layer in classifier._flatten_layers()}
    if {"patch_embedding", "tokens", "position_embedding",
            "block1_out"} <= names:
        return ()
    candidates = [
        ["pool2_relu", "pool3_relu", "pool4_relu", "relu"],
        _last_block_outputs(names, "conv{}_block{}_out", range(2, 6)),
        [f"block{block}_pool" for block in range(1, 6)],
        ["block_2_add", "block_5_add", "block_12_add", "out_relu"],
        [f"block{block}_relu" for block in range(1, 4)],
    ]
    for layers in candidates:
        if len(layers) > 2 and names.issuperset(layers):
            return tuple(layers)
    return last_map_per_resolution(classifier)


_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                 keras.layers.SeparableConv2D)
# Layers that only move or copy pixels: their outputs are no new features.
_GEOMETRY_LAYERS = ("ZeroPadding2D", "Cropping2D", "Rescaling",
                    "Normalization", "InputLayer")


def last_map_per_resolution(classifier):
    """The last feature map computed at each spatial resolution.

    Walks the classifier's layer calls in topological order (nested models
    inlined) from its first convolution on, groups the calls with a 4-D
    output by their `(height, width)`, and keeps the last call of each
    group: in a chain of conv/ReLU/pool blocks that is each block's output
    before it is pooled, and in a residual network each stage's output. A
    layer called more than once is skipped (its output is ambiguous), and so
    are layers that only pad, crop or rescale.

    Args:
        classifier: A Functional or Sequential `keras.Model`.

    Returns:
        A tuple of layer names, shallowest first.

    Example:

    >>> cnn = keras.Sequential([
    ...     keras.Input((28, 28, 1)),
    ...     keras.layers.Conv2D(8, 3, activation="relu", name="c1"),
    ...     keras.layers.MaxPooling2D(2, name="p1"),
    ...     keras.layers.Conv2D(8, 3, activation="relu", name="c2"),
    ...     keras.layers.Flatten(), keras.layers.Dense(10)])
    >>> last_map_per_resolution(cnn)
    ('c1', 'c2')
    """
    from isnet_keras.lrp.keras_graph import trace

    calls = trace(classifier).calls
    counts = {}
    for call in calls:
        counts[call.layer.name] = counts.get(call.layer.name, 0) + 1
    last_by_size = {}
    seen_convolution = False
    for call in calls:
        layer = call.layer
        seen_convolution |= isinstance(layer, _CONVOLUTIONS)
        shape = call.output.shape
        if (not seen_convolution or len(shape) != 4
                or counts[layer.name] > 1
                or type(layer).__name__ in _GEOMETRY_LAYERS):
            continue
        size = tuple(shape[1:3])
        # Re-inserting moves the resolution to the end: dicts keep order.
        last_by_size.pop(size, None)
        last_by_size[size] = layer.name
    return tuple(last_by_size.values())
