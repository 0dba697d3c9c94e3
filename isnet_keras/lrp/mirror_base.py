"""The base class of the mirror layers.

A mirror propagates relevance backwards through one classifier layer (or a
linear layer and the batch norm folded into it). It holds a *reference* to
the classifier's layer objects and reads their variables at call time, so
the weights are tied and the mirror owns no variables. It consumes the
classifier's own tensors of the same forward pass (`inputs`, `outputs`).

A subclass implements one thing, `propagate`: the rule of its layer type.
It declares the relevance forms it takes (`relevance_forms`, see
`relevance.py`; a plain tensor by default) and the rules it implements
(`rules`, of `rules.RULE_NAMES`); the base class casts and converts the
incoming relevance, and the graph builder picks the rule (see
`composites.py`).

Call convention: `mirror(relevance, inputs, outputs)` where `relevance` is
`(B, K, *output_shape)`, `inputs` the list of the (first) layer's input
tensors and `outputs` the list of each mirrored layer's output tensor.
Linear mirrors also take `pre_activation=`, the layer's own forward output
`L(x; W) + b` (before a fused ReLU or folded batch norm) that `forward_z`
names, for z reuse. It returns a list of relevances, one per input.
"""

import keras
import numpy as np
import tensorflow as tf

from isnet_keras.errors import UnsupportedLayerError
from isnet_keras.lrp import folding
from isnet_keras.lrp import relevance as relevance_lib
from isnet_keras.lrp import composites


def activation_name(layer):
    """The name of a layer's activation function, `"linear"` for none."""
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


GATE_ACTIVATIONS = ("gelu", "silu", "hard_silu", "mish")
"""Activations `y = x * g(x)` that take the identity rule (relevance passes
element-wise unchanged, as through a ReLU), fused into a linear layer or
standalone (docs/algorithm.md, "Transformer layers")."""


def unsupported(layer, reason):
    """An `UnsupportedLayerError` naming the layer and its class."""
    return UnsupportedLayerError(f"{layer.name} ({type(layer).__name__}): "
                                 f"{reason}")


def check_channels_last(layer):
    """Raises `UnsupportedLayerError` unless `layer` is channels-last."""
    data_format = getattr(layer, "data_format", "channels_last")
    if data_format != "channels_last":
        raise unsupported(layer, f"data_format='{data_format}' is not "
                          "supported; use channels_last.")


def _bounds_config(input_bounds):
    if input_bounds is None:
        return None
    return [np.asarray(b).tolist() for b in input_bounds]


def _plain(call_kwargs):
    """`call_kwargs` with arrays as nested lists, for `get_config`."""
    return {k: np.asarray(v).tolist() if hasattr(v, "shape") else v
            for k, v in call_kwargs.items()}


@keras.saving.register_keras_serializable(package="isnet_keras")
class Mirror(keras.layers.Layer):
    """Base class of the mirror layers.

    Subclasses implement `propagate` and may set the class attributes
    `relevance_forms`, `rules`, `composite_options`, `absorbs_batch_norm`
    and `is_linear`.

    Args:
        layers: Tuple of the classifier layers mirrored (one layer, or a
            linear layer followed by the batch norm folded into it).
        rule: The rule name (one of the class's `rules`), as the
            composite assigned it; LRP-0 comes as `"epsilon"` with
            `epsilon=0`. Ignored by mirrors without `rules`.
        epsilon: float. The stabiliser of the rule.
        input_bounds: `(lower, upper)` arrays broadcastable to the layer
            input (without batch axis) when the layer is fed by the model
            input through value-preserving layers only, else None.
        training: The `training` value the classifier layer was explicitly
            called with, or None to follow the enclosing model's call.
        is_logits: Whether the (last) mirrored layer produces the logits;
            only then may it carry a softmax or sigmoid activation.
        lrp_dtype: dtype of the LRP arithmetic (float32, or float64 for
            float64 classifiers).
        call_kwargs: Optional dict of the non-tensor keyword arguments
            the classifier layer was called with (e.g.
            `use_causal_mask=True`), for rules that depend on them.
        input_names: Optional tuple of the argument name of each input
            tensor (e.g. `("query", "value", "attention_mask")`), for
            layers whose inputs play different parts.
        bias_relevance: `"absorb"` (default) or `"ignore"`: whether the
            layer's constant summands (bias, shift) keep a share of the
            relevance (`Composite(bias_relevance=...)`); mirrors apply it
            with `_absorbing`.

    Example:

    >>> class DoubleMirror(Mirror):  # for a layer computing `2 * x`
    ...     rules = ()
    ...     relevance_forms = (relevance_lib.TENSOR, relevance_lib.FACTORED)
    ...     def propagate(self, relevance, inputs, outputs, training=None):
    ...         return [relevance]  # one-to-one: relevance passes unchanged
    """

    relevance_forms = (relevance_lib.TENSOR,)
    """The relevance forms `propagate` takes (a plain tensor always)."""
    rules = ("epsilon",)
    """The rule names `propagate` implements; `()` for none to choose."""
    composite_options = ("bias_relevance",)
    """Attributes of the composite that the graph builder passes to the
    constructor as keyword arguments of the same name (e.g.
    `("attention_relevance", "bias_relevance")`)."""
    absorbs_batch_norm = False
    is_linear = False

    def __init__(self, layers, rule="epsilon", epsilon=1e-2,
                 input_bounds=None, training=None, is_logits=False,
                 lrp_dtype="float32", call_kwargs=None, input_names=None,
                 bias_relevance="absorb", **kwargs):
        layers = tuple(layers)
        kwargs.setdefault("name", "lrp_" + layers[-1].name)
        super().__init__(dtype=lrp_dtype, **kwargs)
        if self.rules and rule not in self.rules:
            raise ValueError(f"{type(self).__name__} rule must be one of "
                             f"{self.rules}, received {rule!r}.")
        # Plain attributes, deliberately bypassing Keras tracking: the
        # classifier owns these layers and their variables.
        object.__setattr__(self, "_sources", layers)
        self.rule = rule
        self.epsilon = float(epsilon)
        if input_bounds is not None:
            input_bounds = tuple(np.asarray(b) for b in input_bounds)
        self.input_bounds = input_bounds
        self.fixed_training = training
        self.is_logits = is_logits
        self.lrp_dtype = lrp_dtype
        self.call_kwargs = dict(call_kwargs or {})
        self.input_names = tuple(input_names or ())
        composites.check_bias_relevance(bias_relevance)
        self.bias_relevance = bias_relevance
        self.check_layers()

    @property
    def source(self):
        """The (first) mirrored classifier layer."""
        return self._sources[0]

    @property
    def batch_norm(self):
        """The batch norm folded into this mirror, or None."""
        return self._sources[1] if len(self._sources) > 1 else None

    @classmethod
    def can_absorb(cls, layer):
        """Whether a batch norm right after `layer` can be folded into it."""
        return cls.absorbs_batch_norm

    def check_layers(self):
        """Raises `UnsupportedLayerError` for unsupported configurations.

        The base check: channels-last layers, and a folded batch norm on the
        last axis of a 4-D tensor. Subclasses extend it.
        """
        check_channels_last(self.source)
        if self.batch_norm is not None:
            folding.check_batch_norm(self.batch_norm, 4)

    def output_bounds(self):
        """Input-range bounds of the output, for value-preserving layers.

        Returns:
            `(lower, upper)` or None when the output is not a bounded copy
            of the model input (the default: relevance rules downstream use
            no bounds).
        """
        return None

    def accepted_forms(self):
        """The relevance forms `propagate` takes (`relevance_forms`)."""
        return self.relevance_forms

    def forward_z(self, outputs, split_pre_activation):
        """The forward-pass tensor this mirror could reuse as its `z`.

        Args:
            outputs: The mirrored layers' re-traced output tensors.
            split_pre_activation: The pre-activation tensor of a layer whose
                fused ReLU the re-trace split off, or None.

        Returns:
            A tensor to pass to `call` as `pre_activation=`, or None (the
            default: the mirror takes no `pre_activation`).
        """
        return None

    def _cast(self, tensor):
        return tf.cast(tensor, self.lrp_dtype)

    def _layer_input(self, tensor):
        """`tensor` as the layer saw it (Keras casts inputs to the layer's
        compute dtype), in the LRP dtype. Max pooling compares its input
        with its output: a float64 input of a float32 layer, uncast, equals
        no rounded maximum."""
        return self._cast(tf.cast(tensor, self.source.compute_dtype))

    def _absorbing(self, constant):
        """`constant` (a bias or shift, or None) where it absorbs relevance
        (`bias_relevance="absorb"`), else None: rules then leave it out of
        their `z`."""
        return constant if self.bias_relevance == "absorb" else None

    def _training(self, training):
        return training if self.fixed_training is None else self.fixed_training

    def _folded_affine(self, bn_input, training):
        """`(gain, shift)` of the folded batch norm, or `(None, None)`."""
        if self.batch_norm is None:
            return None, None
        return folding.batch_norm_affine(
            self.batch_norm, bn_input, self._training(training), self.lrp_dtype
        )

    def call(self, relevance, inputs, outputs, pre_activation=None,
             training=None):
        """Casts and converts `relevance`, then runs `propagate`.

        A `WindowRelevance` that `propagate` returns is handed on as
        `Factored` when the layer's output is below the LRP precision: its
        peaks, rounded, are not the `z` of a linear layer below.
        """
        relevance = relevance_lib.convert(
            relevance_lib.cast(relevance, self.lrp_dtype),
            self.accepted_forms())
        extra = {} if pre_activation is None else {
            "pre_activation": pre_activation}
        results = self.propagate(relevance, inputs, outputs,
                                 training=training, **extra)
        # The layer's compute dtype, not `outputs[0].dtype`: Keras casts a
        # mirror's tensor arguments to the mirror's (LRP) dtype on the way
        # in, so a float16 output arrives here as float32, still rounded.
        if self.source.compute_dtype != self.lrp_dtype:
            results = [relevance_lib.as_factored(r) for r in results]
        return results

    def propagate(self, relevance, inputs, outputs, training=None):
        """The layer's rule: relevance at its output to its inputs.

        Args:
            relevance: `(B, K, *out)` relevance in the LRP dtype, in one of
                `accepted_forms()`.
            inputs: The layer's input tensors of the same forward pass.
            outputs: Each mirrored layer's output tensor.
            training: The call's training flag (see `_training`).

        Returns:
            A list of relevances, one per input, each `(B, K, *in)` in any
            form of `relevance.py`.
        """
        raise NotImplementedError

    def get_config(self):
        # `sources` holds layer names: see `from_config`.
        config = super().get_config()
        config.update({
            "sources": [layer.name for layer in self._sources],
            "rule": self.rule,
            "epsilon": self.epsilon,
            "input_bounds": _bounds_config(self.input_bounds),
            "training": self.fixed_training,
            "is_logits": self.is_logits,
            "lrp_dtype": self.lrp_dtype,
            "call_kwargs": _plain(self.call_kwargs),
            "input_names": list(self.input_names),
            "bias_relevance": self.bias_relevance,
        })
        return config

    @classmethod
    def from_config(cls, config, classifier=None):
        """Rebuilds a mirror from `get_config()` and its classifier.

        Args:
            config: A dict from `get_config`.
            classifier: The model holding the mirrored layers (looked up by
                name, also in nested models). Keras's own deserialisation
                passes none: LRP graphs are rebuilt from the classifier, so
                save and load the ISNet model (or the classifier) instead.

        Returns:
            A mirror of the named layers.
        """
        if classifier is None:
            raise NotImplementedError(
                "LRP mirror layers hold references to a classifier's layers "
                "and are rebuilt from the classifier: save and load the "
                "ISNet model (or the classifier) instead of a bare LRP "
                "graph, or pass `classifier=` to `from_config`.")
        config = dict(config)
        by_name = {layer.name: layer for layer in
                   classifier._flatten_layers(include_self=False,
                                              recursive=True)}
        layers = [by_name[name] for name in config.pop("sources")]
        config.pop("dtype", None)  # set by `lrp_dtype`
        return cls(layers, **config)
