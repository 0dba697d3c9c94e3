"""keras-hub's vision transformer as an ISNet classifier (optional extra).

`keras_hub.models.ViTBackbone` computes its patch embedding, class token,
position embedding and encoder blocks inside two layers of its own
(`ViTPatchingAndEmbedding`, `ViTEncoder`), which have no LRP mirror.
`vit_classifier` rebuilds the same network as a functional model of layers
that have one (`Conv2D`, `Reshape`, `ClassToken`, `AddPositionEmbedding`,
`LayerNormalization`, `MultiHeadAttention`, `Dense` with a GELU gate,
`Add`) and copies the backbone's weights into it, so that `build_isnet`,
`explain` and `Explainer` take it like any functional classifier.

keras-hub is the optional extra `hub` (`pip install "isnet-keras[hub]"`);
this module imports it only when `vit_classifier` runs, so the two layers
defined here (`ClassToken`, `ClassTokenPooling`) and their mirrors load
without it, as a saved classifier needs.
"""

import keras
import tensorflow as tf

from isnet_keras.lrp import relevance as relevance_lib
from isnet_keras.lrp.mirror_base import Mirror
from isnet_keras.lrp.mirrors import register_mirror
from isnet_keras.lrp.transformer_mirrors import AddPositionEmbedding

__all__ = ["ClassToken", "ClassTokenMirror", "ClassTokenPooling",
           "ClassTokenPoolingMirror", "vit_classifier"]

HUB_EXTRA = 'pip install "isnet-keras[hub]"'
"""The install command of the optional extra that brings keras-hub."""


def _keras_hub():
    """Imports keras-hub, or says which extra installs it."""
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(
            "isnet_keras.hub needs keras-hub, which is an optional extra of "
            f"isnet-keras: install it with `{HUB_EXTRA}`.") from error
    return keras_hub


@keras.saving.register_keras_serializable(package="isnet_keras")
class ClassToken(keras.layers.Layer):
    """Prepends one learned token to a `(batch, tokens, dim)` tensor.

    `y = concat([c, x], axis=1)` with a learned `c` of shape `(1, 1, dim)`,
    the class token of a vision transformer. Its LRP mirror is
    `ClassTokenMirror`.

    Args:
        initializer: Initializer of the token. Defaults to
            `RandomNormal(stddev=0.02)`.
        **kwargs: Base layer arguments.

    Example:

    >>> tokens = keras.layers.Reshape((16, 32))(patches)
    >>> tokens = ClassToken()(tokens)  # (None, 17, 32)
    """

    def __init__(self, initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(
            initializer or keras.initializers.RandomNormal(stddev=0.02))

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]),
                                     initializer=self.initializer,
                                     name="token")

    def call(self, inputs):
        token = keras.ops.cast(self.token, inputs.dtype)
        shape = keras.ops.shape(inputs)
        token = keras.ops.broadcast_to(token, (shape[0], 1, shape[2]))
        return keras.ops.concatenate([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        tokens = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], tokens, input_shape[2])

    def get_config(self):
        config = super().get_config()
        config["initializer"] = keras.initializers.serialize(self.initializer)
        return config


@keras.saving.register_keras_serializable(package="isnet_keras")
class ClassTokenPooling(keras.layers.Layer):
    """The first token of a `(batch, tokens, dim)` tensor: `y = x[:, 0]`.

    The "token" pooling of a vision transformer's head, which reads the
    class token only. Its LRP mirror is `ClassTokenPoolingMirror`.

    Example:

    >>> features = ClassTokenPooling()(tokens)  # (None, dim)
    """

    def call(self, inputs):
        return inputs[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


def _map_parts(relevance, function):
    """`function` applied to a relevance, part by part when `Factored`.

    Both parts of a `Factored` relevance keep the token axis at the same
    place counted from the end, so a slice or pad of the token axis
    applies to each alike.
    """
    if isinstance(relevance, relevance_lib.Factored):
        return relevance_lib.Factored(*(function(t) for t in relevance))
    return function(relevance)


@register_mirror(ClassToken)
@keras.saving.register_keras_serializable(package="isnet_keras")
class ClassTokenMirror(Mirror):
    """Mirror of `ClassToken`: the patch tokens keep their relevance.

    The prepended token is a constant of the network, like a bias: its
    relevance is absorbed, and each other token's passes to the input
    token it copies (LRP-0 and gradient x input agree on this layer).
    """

    rules = ()
    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        # The token axis is the third-to-last of every part.
        return [_map_parts(relevance, lambda t: t[..., 1:, :])]


@register_mirror(ClassTokenPooling)
@keras.saving.register_keras_serializable(package="isnet_keras")
class ClassTokenPoolingMirror(Mirror):
    """Mirror of `ClassTokenPooling`: all relevance goes to the first token.

    The layer copies the first token and drops the others, so they get
    none (zeros).
    """

    rules = ()
    relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)

    def propagate(self, relevance, inputs, outputs, training=None):
        others = tf.shape(inputs[0])[1] - 1

        def first_token(tensor):
            tensor = tf.expand_dims(tensor, -2)
            rank = len(tensor.shape)
            paddings = [[0, 0]] * (rank - 2) + [[0, others], [0, 0]]
            return tf.pad(tensor, paddings)

        return [_map_parts(relevance, first_token)]


def _check_backbone(backbone, keras_hub, num_classes, pooling):
    if not isinstance(backbone, keras_hub.models.ViTBackbone):
        raise TypeError("vit_classifier needs a keras_hub.models.ViTBackbone, "
                        f"received {type(backbone).__name__}.")
    if int(num_classes) < 2:
        raise ValueError(f"A classifier needs at least 2 classes; received "
                         f"{num_classes}.")
    if pooling not in ("token", "gap"):
        raise ValueError(f"pooling must be 'token' or 'gap', received "
                         f"{pooling!r}.")
    if pooling == "token" and not backbone.use_class_token:
        raise ValueError("pooling='token' needs a backbone with a class "
                         "token (use_class_token=True); use pooling='gap'.")
    if backbone.data_format != "channels_last":
        # The LRP mirrors take channels-last images only.
        raise ValueError(f"vit_classifier needs a channels_last backbone, "
                         f"received data_format={backbone.data_format!r}.")


def vit_classifier(backbone, num_classes, pooling="token", name=None):
    """A keras-hub ViT backbone as a functional classifier `build_isnet` takes.

    Rebuilds `backbone` from layers with LRP mirrors and copies its weights:
    the patch embedding `Conv2D`, a `Reshape` to tokens, the class token
    (`ClassToken`), the position embedding (`AddPositionEmbedding`), the
    pre-norm encoder blocks (`x + MHA(LN(x))`, then
    `x + Dense(Dense(LN(x), gelu))`, block `i`'s output the `Add` layer
    `block{i}_out`) and the final LayerNorm give the backbone's output
    (the same values, up to float rounding). A new head follows: the class
    token (`pooling="token"`, `ClassTokenPooling`, as keras-hub's
    `ViTImageClassifier` does) or the mean of the tokens (`"gap"`), then a
    `Dense` logits layer.

    The classifier has its own copy of the weights: training it leaves
    `backbone` unchanged. Dropout rates are kept (`Dropout` layers);
    an `attention_dropout` above 0 is refused by the attention layer's
    LRP mirror when `build_isnet` builds the graph.

    keras-hub is the optional extra `hub`; without it this raises an
    `ImportError` that names it.

    Args:
        backbone: A built `keras_hub.models.ViTBackbone`, channels last.
        num_classes: int >= 2.
        pooling: `"token"` (the class token, the default) or `"gap"` (the
            mean over all tokens).
        name: Optional model name. Defaults to `"hub_vit_classifier"`.

    Returns:
        A functional `keras.Model` from `backbone`'s image shape to logits.

    Raises:
        ImportError: keras-hub is not installed.
        TypeError: `backbone` is not a `ViTBackbone`.
        ValueError: fewer than 2 classes, an unknown `pooling`,
            `"token"` pooling without a class token, or channels-first
            images.

    Example:

    >>> backbone = keras_hub.models.ViTBackbone(
    ...     image_shape=(32, 32, 3), patch_size=8, num_layers=2,
    ...     num_heads=2, hidden_dim=32, mlp_dim=64)
    >>> classifier = vit_classifier(backbone, num_classes=10)
    >>> isnet = build_isnet(classifier)
    """
    keras_hub = _keras_hub()
    _check_backbone(backbone, keras_hub, num_classes, pooling)
    layers = keras.layers
    policy = backbone.dtype_policy
    embed = backbone.get_layer("vit_patching_and_embedding")
    encoder = backbone.get_layer("vit_encoder")
    height, width, channels = backbone.image_shape
    patch_h, patch_w = backbone.patch_size
    dim = backbone.hidden_dim
    copies = []  # (new layer, the backbone layer whose weights it takes)

    inputs = keras.Input((height, width, channels), name="images")
    conv = layers.Conv2D(dim, (patch_h, patch_w), strides=(patch_h, patch_w),
                         use_bias=backbone.use_patch_bias, dtype=policy,
                         name="patch_embedding")
    copies.append((conv, embed.patch_embedding))
    x = conv(inputs)
    x = layers.Reshape(((height // patch_h) * (width // patch_w), dim),
                       dtype=policy, name="tokens")(x)
    if backbone.use_class_token:
        token = ClassToken(dtype=policy, name="class_token")
        x = token(x)
    position = AddPositionEmbedding(dtype=policy, name="position_embedding")
    x = position(x)

    def dropout(tensor, label):
        # Identity at inference; kept so that training matches keras-hub.
        if not backbone.dropout_rate:
            return tensor
        return layers.Dropout(backbone.dropout_rate, dtype=policy,
                              name=label)(tensor)

    x = dropout(x, "embedding_dropout")
    epsilon = backbone.layer_norm_epsilon
    for i, block in enumerate(encoder.encoder_layers, start=1):
        norm1 = layers.LayerNormalization(epsilon=epsilon, dtype=policy,
                                          name=f"block{i}_norm1")
        attention = layers.MultiHeadAttention(
            backbone.num_heads, block.key_dim,
            use_bias=backbone.use_mha_bias,
            dropout=backbone.attention_dropout, dtype=policy,
            name=f"block{i}_attention")
        norm2 = layers.LayerNormalization(epsilon=epsilon, dtype=policy,
                                          name=f"block{i}_norm2")
        # keras-hub's MLP: a bare "gelu" activation, i.e. the exact GELU.
        mlp1 = layers.Dense(backbone.mlp_dim, activation="gelu",
                            use_bias=backbone.use_mlp_bias, dtype=policy,
                            name=f"block{i}_mlp1")
        mlp2 = layers.Dense(dim, use_bias=backbone.use_mlp_bias,
                            dtype=policy, name=f"block{i}_mlp2")
        copies += [(norm1, block.layer_norm_1), (attention, block.mha),
                   (norm2, block.layer_norm_2), (mlp1, block.mlp.dense_1),
                   (mlp2, block.mlp.dense_2)]
        y = norm1(x)
        y = dropout(attention(y, y), f"block{i}_attention_dropout")
        x = layers.Add(dtype=policy, name=f"block{i}_attention_add")([x, y])
        y = dropout(mlp1(norm2(x)), f"block{i}_mlp_dropout1")
        y = dropout(mlp2(y), f"block{i}_mlp_dropout2")
        x = layers.Add(dtype=policy, name=f"block{i}_out")([x, y])
    final_norm = layers.LayerNormalization(epsilon=epsilon, dtype=policy,
                                           name="final_norm")
    copies.append((final_norm, encoder.layer_norm))
    x = final_norm(x)
    if pooling == "token":
        x = ClassTokenPooling(dtype=policy, name="class_token_pool")(x)
    else:
        x = layers.GlobalAveragePooling1D(dtype=policy, name="token_pool")(x)
    logits = layers.Dense(int(num_classes), dtype=policy, name="logits")(x)
    model = keras.Model(inputs, logits, name=name or "hub_vit_classifier")

    for layer, source in copies:
        # Same classes, so the same variables in the same order.
        layer.set_weights(source.get_weights())
    if backbone.use_class_token:
        token.token.assign(embed.class_token)
    # keras-hub's position table is (positions, dim), one row per token.
    position.embedding.assign(embed.position_embedding.embeddings)
    return model
