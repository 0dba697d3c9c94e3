"""The graph walker: wires mirror layers onto a re-traced classifier.

`LRPGraph` re-traces the classifier (shared layers), finds its logits layer,
decides which batch norms fold into the layer before them, finds the layers
fed by the model input (the first layers, with the input bounds mapped
through value-preserving layers such as `Rescaling`), asks its composite
for each layer's rule and creates one mirror per classifier layer call.
`propagate` then runs the mirrors in reverse topological order on symbolic
tensors, summing the relevance of tensors that fan out. The walker knows no
LRP maths: that is in the mirrors and rules.
"""

import dataclasses

import keras
import numpy as np

from isnet_keras.errors import UnsupportedLayerError
from isnet_keras.lrp import composites as composites_lib
from isnet_keras.lrp import keras_graph
from isnet_keras.lrp import mirrors as mirrors_lib
from isnet_keras.lrp import relevance as relevance_lib
from isnet_keras.lrp import rules

_LOGIT_ACTIVATIONS = ("softmax", "sigmoid")


@dataclasses.dataclass(frozen=True)
class _Step:
    mirror: mirrors_lib.Mirror
    inputs: tuple
    outputs: tuple
    pre_activation: object = None

    @property
    def output(self):
        return self.outputs[-1]


def _is_output_activation(layer):
    if isinstance(layer, keras.layers.Softmax):
        return True
    if isinstance(layer, keras.layers.Activation):
        return mirrors_lib.activation_name(layer) in _LOGIT_ACTIVATIONS
    return False


def _broadcast_bounds(input_bounds, shape):
    """`(lower, upper)` as arrays of the input's shape (without batch)."""
    if input_bounds is None:
        return None
    try:
        lower, upper = input_bounds
    except (TypeError, ValueError):
        raise ValueError(
            "input_bounds must be a pair (lower, upper) of scalars or "
            f"per-channel sequences, received {input_bounds!r}."
        ) from None
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    if np.any(lower > upper):
        raise ValueError(f"input_bounds lower {lower} exceeds upper {upper}.")
    if any(d is None for d in shape):
        target = (1,) * (len(shape) - 1) + (shape[-1],)
    else:
        target = tuple(shape)
    try:
        return np.broadcast_to(lower, target), np.broadcast_to(upper, target)
    except ValueError:
        raise ValueError(
            f"input_bounds {lower.shape}/{upper.shape} do not broadcast to "
            f"the model input shape {tuple(shape)}."
        ) from None


class LRPGraph:
    """The classifier re-traced, with its mirror layers.

    Args:
        classifier: A built Functional or Sequential `keras.Model` with one
            image input and one logits (or softmax) output.
        epsilon: The stabiliser of the LRP-epsilon (and z+, Z^B) steps.
        first_layer_rule: `"zb"` (Z^B with `input_bounds`) or `"epsilon"`:
            shorthand for `composites.default_composite(first_layer_rule)`
            when `composite` is None.
        input_bounds: `(lower, upper)` range of the model input, scalars or
            per channel, mapped through `Rescaling`/`Normalization`.
        mirrors: Optional mapping of extra layer classes to mirror classes.
        composite: Optional `composites.Composite`, the rule of each layer;
            defaults to the papers' (`default_composite`), with constant
            summands left out of the rules in networks with attention
            layers (`composites.default_bias_relevance`).

    Raises:
        UnsupportedLayerError: at construction, naming the first layer
            without a mirror (or used in an unsupported way).

    Example:

    >>> graph = LRPGraph(classifier)
    >>> start, relevance = ...  # a seed from `isnet_keras.lrp.outputs`
    >>> heatmaps = graph.propagate(start, relevance)[graph.input]
    """

    def __init__(self, classifier, epsilon=1e-2, first_layer_rule="zb",
                 input_bounds=(0.0, 1.0), mirrors=None, composite=None):
        if first_layer_rule not in rules.FIRST_LAYER_RULES:
            raise ValueError(
                "first_layer_rule must be one of "
                f"{rules.FIRST_LAYER_RULES}, received "
                f"{first_layer_rule!r}."
            )
        if epsilon < 0:
            raise ValueError(f"epsilon must be >= 0, received {epsilon}.")
        if composite is not None and not isinstance(
                composite, composites_lib.Composite):
            raise ValueError("composite must be a `Composite`, received "
                             f"{composite!r}.")
        self.classifier = classifier
        self.epsilon = float(epsilon)
        self.first_layer_rule = first_layer_rule
        self.mirrors = dict(mirrors or {})
        self.traced = keras_graph.trace(classifier)
        if composite is None:
            composite = composites_lib.default_composite(
                first_layer_rule,
                bias_relevance=composites_lib.default_bias_relevance(
                    call.layer for call in self.traced.calls))
        self.composite = composite
        self.input = self.traced.input
        self.logits_call = self._find_logits_call()
        variable_dtypes = {v.dtype for v in classifier.weights}
        self.lrp_dtype = "float64" if "float64" in variable_dtypes else "float32"
        self.input_bounds = _broadcast_bounds(
            input_bounds, tuple(self.input.shape[1:])
        )
        self._plans = {}
        self._plan("epsilon", ())  # fail early on unsupported layers

    # Introspection -------------------------------------------------------

    @property
    def logits_layer(self):
        """The classifier layer whose (pre-activation) output is the logits."""
        return self.logits_call.layer

    @property
    def num_classes(self):
        return int(self.logits_call.output.shape[-1])

    def tensor_of(self, layer_name):
        """The re-traced output tensor of the named classifier layer."""
        matches = [c.output for c in self.traced.calls
                   if c.layer.name == layer_name]
        if not matches:
            raise ValueError(
                f"No layer named '{layer_name}' in '{self.classifier.name}'."
            )
        if len(matches) > 1:
            raise ValueError(f"Layer '{layer_name}' is called more than once; "
                             "its output is ambiguous.")
        return matches[0]

    def _find_logits_call(self):
        call = self.traced.producer(self.traced.output)
        if call is None:
            raise UnsupportedLayerError(
                f"{self.classifier.name} ({type(self.classifier).__name__}): "
                "the model output is its input; there is no layer to explain."
            )
        if _is_output_activation(call.layer):
            producer = self.traced.producer(call.inputs[0])
            if producer is not None:
                return producer
        return call

    # Planning ------------------------------------------------------------

    def _plan(self, rule, targets):
        key = (rule, tuple(id(t) for t in targets))
        if key not in self._plans:
            self._plans[key] = self._make_plan(rule, {id(t) for t in targets})
        return self._plans[key]

    def _fused_batch_norm(self, call, mirror_cls, protected):
        """The batch-norm call to fold into `call`, or None."""
        if call is self.logits_call or id(call.output) in protected:
            return None
        if not mirror_cls.can_absorb(call.layer):
            return None
        consumers = self.traced.consumers(call.output)
        if len(consumers) != 1:
            return None
        (consumer,) = consumers
        if type(consumer.layer) is not keras.layers.BatchNormalization:
            return None
        return consumer

    def _rule_of(self, layer, mirror_cls, input_bounds, pass_rule):
        """`(rule, epsilon)` of a layer's mirror, from the composite.

        LRP-0 (`"zero"`) is the epsilon rule with epsilon 0. In a z+ pass
        (`pass_rule="zplus"`), z+ replaces LRP-epsilon wherever the mirror
        has it.
        """
        supported = tuple(mirror_cls.rules)
        if not supported:
            return None, self.epsilon  # nothing to choose
        if "epsilon" in supported:
            supported += ("zero",)
        if input_bounds is None:
            supported = tuple(r for r in supported if r != "zb")
        first = input_bounds is not None and mirror_cls.is_linear
        rule = self.composite.rule_for(layer, first_layer=first,
                                       supported=supported)
        if pass_rule == "zplus" and rule == "epsilon" and "zplus" in supported:
            rule = "zplus"
        if rule == "zero":
            return "epsilon", 0.0
        return rule, self.epsilon

    def _make_plan(self, rule, protected):
        logits_index = self.traced.calls.index(self.logits_call)
        calls = self.traced.calls[: logits_index + 1]
        # Bounds also mark the layers fed by the input through
        # value-preserving layers, whatever the first-layer rule.
        bounds = {id(self.input): self.input_bounds}
        absorbed = set()
        steps = []
        for call in calls:
            if id(call) in absorbed:
                continue
            mirror_cls = mirrors_lib.mirror_class(call.layer, self.mirrors)
            batch_norm_call = self._fused_batch_norm(call, mirror_cls,
                                                     protected)
            layers = (call.layer,)
            outputs = (call.output,)
            training = call.kwargs.get("training")
            if batch_norm_call is not None:
                absorbed.add(id(batch_norm_call))
                layers += (batch_norm_call.layer,)
                outputs += (batch_norm_call.output,)
                training = batch_norm_call.kwargs.get("training")
            input_bounds = None
            if len(call.inputs) == 1:
                input_bounds = bounds.get(id(call.inputs[0]))
            layer_rule, epsilon = self._rule_of(call.layer, mirror_cls,
                                                input_bounds, rule)
            # Choices of the composite beyond the rule name (e.g. how
            # attention passes relevance), for the mirrors that take them.
            options = {name: getattr(self.composite, name)
                       for name in mirror_cls.composite_options}
            mirror = mirror_cls(
                layers,
                rule=layer_rule,
                epsilon=epsilon,
                input_bounds=input_bounds,
                training=training,
                is_logits=call is self.logits_call,
                lrp_dtype=self.lrp_dtype,
                call_kwargs=call.kwargs,
                input_names=call.input_names,
                name=f"lrp_{rule}_{layers[-1].name}",
                **options,
            )
            out_bounds = mirror.output_bounds()
            if out_bounds is not None:
                bounds[id(outputs[-1])] = out_bounds
            steps.append(_Step(mirror, call.inputs, outputs,
                               mirror.forward_z(outputs,
                                                call.pre_activation)))
        return tuple(steps)

    # Propagation ---------------------------------------------------------

    def propagate(self, start, relevance, rule="epsilon", targets=(),
                  values=None):
        """Propagates `relevance` at tensor `start` back to the input.

        Args:
            start: A re-traced classifier tensor (e.g. the logits, or the
                logits layer's input for the Selective seed).
            relevance: Symbolic `(B, K, *start.shape[1:])` relevance.
            rule: `"epsilon"` (the composite's rules) or `"zplus"` (z+
                wherever the composite gives LRP-epsilon to a layer with
                a z+ rule; the Dual ISNet's first map).
            targets: Re-traced hidden tensors whose relevance is also
                returned (LRP deep supervision); never folded away.
            values: Optional dict mapping `id(tensor)` of re-traced tensors
                to concrete tensors: the mirrors then run eagerly on these
                activations (e.g. held fixed) instead of symbolically;
                pre-activations are then recomputed, never reused.

        Returns:
            A dict mapping `self.input` and each target tensor (by identity,
            via `id`) to its `(B, K, ...)` relevance.
        """
        plan = self._plan(rule, tuple(targets))
        wanted = {id(t) for t in targets} | {id(self.input)}
        pending = {id(start): [relevance]}
        found = {}
        for step in reversed(plan):
            parts = pending.pop(id(step.output), None)
            if parts is None:
                continue  # downstream of `start`, or carries no relevance
            total = _sum(parts, self.lrp_dtype)
            if id(step.output) in wanted:
                # The mirror still takes the relevance in parts.
                found[id(step.output)] = _materialize(total, self.lrp_dtype)
            step_inputs, step_outputs = step.inputs, step.outputs
            extra = {}
            if values is not None:
                step_inputs = [values[id(t)] for t in step_inputs]
                step_outputs = [values[id(t)] for t in step_outputs]
            elif step.pre_activation is not None:
                # z reuse needs the live forward tensor; with `values`
                # (activations possibly held fixed) z is recomputed.
                extra["pre_activation"] = step.pre_activation
            results = step.mirror(total, list(step_inputs), list(step_outputs),
                                  **extra)
            for tensor, part in zip(step.inputs, results):
                pending.setdefault(id(tensor), []).append(part)
        if id(self.input) in pending:
            found[id(self.input)] = _materialize(
                _sum(pending.pop(id(self.input)), self.lrp_dtype),
                self.lrp_dtype)
        missing = [t for t in targets if id(t) not in found]
        if missing:
            raise ValueError(
                "No relevance reaches the requested hidden tensors "
                f"{[t.name for t in missing]}."
            )
        return found


def _sum(parts, dtype):
    """The relevance of a tensor that fans out: the sum of its parts.

    A single part is passed on as it is (possibly in parts, see
    `relevance.py`).
    """
    if len(parts) == 1:
        return parts[0]
    total = _materialize(parts[0], dtype)
    for part in parts[1:]:
        total = keras.ops.add(total, _materialize(part, dtype))
    return total


class _Materialize(keras.layers.Layer):
    """`relevance.materialize` as a layer, for symbolic relevances in parts."""

    def call(self, relevance):
        return relevance_lib.materialize(relevance)


def _materialize(relevance, dtype):
    """The `(B, K, ...)` tensor of a relevance, symbolic or concrete.

    The layer computes in `dtype` (the LRP precision): under a mixed
    precision policy a default layer would round the relevance to float16
    or bfloat16.
    """
    if isinstance(relevance, tuple):
        return _Materialize(dtype=dtype)(relevance)
    return relevance
