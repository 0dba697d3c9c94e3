"""Composites: which LRP rule each classifier layer gets.

A composite maps Keras layer types to rule names (`rules.RULE_NAMES`) and
names a rule for the *first* layers, the linear layers fed by the model
input through value-preserving layers only, where the input's range is
known. The graph builder asks it once per layer and hands the answer to the
layer's mirror, so mirrors implement rules but never choose them.

`default_composite()` is the papers' choice and the default everywhere:
LRP-epsilon at every layer, Z^B at the first layers, AttnLRP's full
treatment of attention. Pass another to `Explainer(model, composite=...)`,
`explain(..., composite=...)` or `build_isnet(..., composite=...)`.

A composite also says how multi-head attention is treated
(`attention_relevance`): that is a choice among rules like the others, and
the composite is what `ISNet.get_config` saves, so the choice travels
with a saved ISNet. The graph builder hands it to the mirrors that declare
it (`Mirror.composite_options`).

Example:

>>> # LRP-0 everywhere, and z+ at the convolutions:
>>> composite = Composite({keras.layers.Conv2D: "zplus"}, default="zero",
...                       first_layer=None)
>>> heatmaps = explain(classifier, images, composite=composite)
"""

import keras

from isnet_keras.lrp import rules


def _check_rule(rule, what):
    if rule not in rules.RULE_NAMES:
        raise ValueError(f"{what} must be one of {rules.RULE_NAMES}, "
                         f"received {rule!r}.")


def check_bias_relevance(value):
    """Raises `ValueError` unless `value` is one of
    `rules.BIAS_RELEVANCE`."""
    if value not in rules.BIAS_RELEVANCE:
        raise ValueError("bias_relevance must be one of "
                         f"{rules.BIAS_RELEVANCE}, received {value!r}.")


def default_bias_relevance(layers):
    """How a network's default composite treats constant summands.

    `"ignore"` when the network has attention layers, else `"absorb"` (the
    papers' rules). An ISNet ViT trained with the absorbing rules learned
    background shortcuts while its input heatmaps put about 1 % of their
    relevance on the background: the biases, LayerNorm shifts and learned
    position embedding took the cue's relevance. Leaving them out of the
    rules makes the heatmaps account for the whole decision
    (docs/results.md, "A ViT on the bias zoo"). On the CNNs of the bias
    zoo the absorbing rules remove the shortcuts.

    Args:
        layers: Iterable of the network's layers.

    Returns:
        `"ignore"` or `"absorb"`.

    Example:

    >>> default_bias_relevance([keras.layers.Dense(4)])
    'absorb'
    >>> default_bias_relevance([keras.layers.MultiHeadAttention(2, 8)])
    'ignore'
    """
    return "ignore" if has_attention(layers) else "absorb"


def has_attention(layers):
    """Whether any of `layers` is a `MultiHeadAttention` (or a subclass,
    such as `ReLUAttention`): the test behind the defaults that differ for
    attention networks."""
    return any(isinstance(layer, keras.layers.MultiHeadAttention)
               for layer in layers)


def check_attention_relevance(value):
    """Raises `ValueError` unless `value` is one of
    `rules.ATTENTION_RELEVANCE`."""
    if value not in rules.ATTENTION_RELEVANCE:
        raise ValueError("attention_relevance must be one of "
                         f"{rules.ATTENTION_RELEVANCE}, received {value!r}.")


@keras.saving.register_keras_serializable(package="isnet_keras")
class Composite:
    """Maps classifier layers to LRP rules.

    A layer gets, in this order: `first_layer` if it is a first layer (a
    linear layer fed by the model input, with `input_bounds` set) and
    `first_layer` is not None; the rule of the most specific class of its
    type in `layer_rules` (which its mirror must support); else `default`
    where its mirror supports it, and `"epsilon"` where not. Layers whose
    mirror has no rule to choose (reshapes, pass-through activations) get
    none.

    Args:
        layer_rules: Optional mapping of Keras layer classes to rule names
            (`"epsilon"`, `"zero"`, `"zplus"`, `"zb"`). A class also
            matches its subclasses.
        default: Rule name of every other layer. Defaults to `"epsilon"`.
        first_layer: Rule name of the first linear layers, or None to give
            them their rule like any other layer. Defaults to `"zb"`.
        attention_relevance: How `MultiHeadAttention` layers pass
            relevance: `"full"` (default), AttnLRP's rules through the
            value path and, via the softmax, the query and key; or
            `"value"`, the value path alone with the attention
            probabilities held constant (query and key get none), the
            rule of earlier versions. Their epsilon rule is the one the
            composite gives the layer like any other.
        bias_relevance: How the rules treat constant summands (biases,
            batch-norm and LayerNorm shifts, a learned position
            embedding): `"absorb"` (default), each keeps its share of the
            relevance, as in the papers; or `"ignore"`, no rule's `z`
            includes them, so every layer passes on all of the relevance
            it receives (conservation from the logit to the input, up to
            epsilon and the softmax of attention). A constant that
            absorbs relevance is a path by which an input can change the
            output without relevance on it; transformer ISNets need
            `"ignore"` (docs/algorithm.md, "Constant summands").

    Example:

    >>> composite = Composite({keras.layers.Dense: "zero"},
    ...                       first_layer="epsilon")
    >>> composite.rule_for(keras.layers.Dense(3))
    'zero'
    """

    def __init__(self, layer_rules=None, default="epsilon", first_layer="zb",
                 attention_relevance="full", bias_relevance="absorb"):
        layer_rules = dict(layer_rules or {})
        for layer_class, rule in layer_rules.items():
            if not (isinstance(layer_class, type) and
                    issubclass(layer_class, keras.layers.Layer)):
                raise ValueError("layer_rules keys must be Keras layer "
                                 f"classes, received {layer_class!r}.")
            _check_rule(rule, f"The rule of {layer_class.__name__}")
        _check_rule(default, "default")
        if first_layer is not None:
            _check_rule(first_layer, "first_layer")
        check_attention_relevance(attention_relevance)
        check_bias_relevance(bias_relevance)
        self.layer_rules = layer_rules
        self.default = default
        self.first_layer = first_layer
        self.attention_relevance = attention_relevance
        self.bias_relevance = bias_relevance

    def rule_for(self, layer, first_layer=False, supported=None):
        """The rule name of `layer`.

        Args:
            layer: A classifier layer.
            first_layer: Whether `layer` is a first linear layer.
            supported: The rule names its mirror supports, or None for
                all of them.

        Returns:
            A rule name.

        Raises:
            ValueError: `layer_rules` or `first_layer` give the layer a
                rule its mirror does not support.
        """
        supported = rules.RULE_NAMES if supported is None else supported
        rule, chosen = None, None
        if first_layer and self.first_layer is not None:
            rule, chosen = self.first_layer, "first_layer"
        else:
            for cls in type(layer).__mro__:
                if cls in self.layer_rules:
                    rule = self.layer_rules[cls]
                    chosen = f"layer_rules[{cls.__name__}]"
                    break
        if rule is None:
            return self.default if self.default in supported else "epsilon"
        if rule not in supported:
            why = "its mirror does not implement it"
            if rule == "zb":
                why = ("Z^B needs the input's bounds, which only the first "
                       "linear layers (fed by the model input) have")
            raise ValueError(
                f"{layer.name} ({type(layer).__name__}): {chosen} gives it "
                f"the rule {rule!r}, but {why}; it can take "
                f"{tuple(supported)}.")
        return rule

    def key(self):
        """A hashable key: composites with equal keys assign equal rules."""
        return (type(self), tuple(sorted(
            ((f"{c.__module__}.{c.__qualname__}", id(c), r)
             for c, r in self.layer_rules.items()))), self.default,
            self.first_layer, self.attention_relevance, self.bias_relevance)

    def __eq__(self, other):
        return isinstance(other, Composite) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):
        rules_repr = {c.__name__: r for c, r in self.layer_rules.items()}
        return (f"Composite({rules_repr}, default={self.default!r}, "
                f"first_layer={self.first_layer!r}, "
                f"attention_relevance={self.attention_relevance!r}, "
                f"bias_relevance={self.bias_relevance!r})")

    def get_config(self):
        """Layer classes by their registered Keras names (see `from_config`)."""
        return {
            "layer_rules": [
                [keras.saving.get_registered_name(c), r]
                for c, r in self.layer_rules.items()],
            "default": self.default,
            "first_layer": self.first_layer,
            "attention_relevance": self.attention_relevance,
            "bias_relevance": self.bias_relevance,
        }

    @classmethod
    def from_config(cls, config):
        """The inverse of `get_config`; a config saved before
        `attention_relevance` or `bias_relevance` existed gets its
        default."""
        config = dict(config)
        layer_rules = {}
        for name, rule in config.pop("layer_rules", []):
            layer_class = keras.saving.get_registered_object(name) or \
                getattr(keras.layers, name, None)
            if layer_class is None:
                raise ValueError(f"Unknown layer class {name!r} in a "
                                 "composite's config; register it with "
                                 "keras.saving.register_keras_serializable.")
            layer_rules[layer_class] = rule
        return cls(layer_rules, **config)


def default_composite(first_layer_rule="zb", attention_relevance="full",
                      bias_relevance="absorb"):
    """The papers' composite: LRP-epsilon everywhere, Z^B at the first layers.

    Args:
        first_layer_rule: `"zb"` (default) or `"epsilon"`, the rule of the
            first linear layers (`"epsilon"`: no special first layer).
        attention_relevance: `"full"` (default, AttnLRP) or `"value"` (the
            value path alone), see `Composite`.
        bias_relevance: `"absorb"` (default) or `"ignore"`, see
            `Composite`.

    Returns:
        A `Composite`.

    Example:

    >>> default_composite().rule_for(keras.layers.Conv2D(4, 3),
    ...                              first_layer=True)
    'zb'
    >>> value_only = default_composite(attention_relevance="value")
    """
    if first_layer_rule not in rules.FIRST_LAYER_RULES:
        raise ValueError(f"first_layer_rule must be one of "
                         f"{rules.FIRST_LAYER_RULES}, received "
                         f"{first_layer_rule!r}.")
    return Composite(default="epsilon",
                     first_layer="zb" if first_layer_rule == "zb" else None,
                     attention_relevance=attention_relevance,
                     bias_relevance=bias_relevance)
