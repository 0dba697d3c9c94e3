"""A flat, re-traced view of a Keras classifier's graph.

This is the only module that touches private Keras graph internals
(`Functional._nodes_by_depth`, `Node.arguments`). Everything else in the
LRP package sees `LayerCall` records.

The classifier is *re-traced*: every layer is called again, in topological
order, on fresh symbolic tensors that start from a new `keras.Input`. The
layer objects are the classifier's own, so the weights are shared, while
every intermediate tensor (including those inside nested backbones such as a
`keras.applications` model inside a Sequential head) becomes reachable from a
single input. A nested Functional or Sequential model is inlined. A `Conv2D`
or `Dense` layer with a fused ReLU is called as its pre-activation plus a
separate ReLU (see `pre_activation.py`), and a `MultiHeadAttention` as its
parts and its output projection (see `attention_parts.py`), so the LRP block
can reuse `z`.
"""

import dataclasses
import inspect

import keras

from isnet_keras.errors import UnsupportedLayerError
from isnet_keras.lrp import attention_parts as attention_parts_lib
from isnet_keras.lrp import pre_activation as pre_activation_lib


@dataclasses.dataclass(frozen=True)
class LayerCall:
    """One call of a layer in the re-traced graph.

    Attributes:
        layer: The classifier's layer object (shared, never copied).
        inputs: Tuple of the symbolic input tensors, in call order.
        output: The symbolic output tensor.
        kwargs: Non-tensor keyword arguments of the call (e.g. `training`,
            `use_causal_mask`, a constant `attention_mask` array).
        pre_activation: Forward tensors of the layer that its mirror can
            reuse: the symbolic pre-activation `L(x; W) + b` of a layer
            whose fused ReLU was split off, the dict of an attention
            layer's `AttentionParts`, else None.
        input_names: The argument name each of `inputs` was passed as
            (e.g. `("query", "value", "attention_mask")`), or `()` when
            they cannot be matched up.
    """

    layer: keras.layers.Layer
    inputs: tuple
    output: object
    kwargs: dict
    pre_activation: object = None
    input_names: tuple = ()


@dataclasses.dataclass(frozen=True)
class TracedGraph:
    """The classifier re-traced from a fresh input.

    Attributes:
        input: The new `keras.Input`.
        output: The re-traced classifier output.
        calls: `LayerCall`s in topological order (inputs before consumers).
    """

    input: object
    output: object
    calls: tuple

    def consumers(self, tensor):
        """Returns the calls that take `tensor` as an input."""
        return [c for c in self.calls if any(t is tensor for t in c.inputs)]

    def producer(self, tensor):
        """Returns the call whose output is `tensor`, or None for the input."""
        for call in self.calls:
            if call.output is tensor:
                return call
        return None


def _is_functional(model):
    return hasattr(model, "_nodes_by_depth") and not isinstance(
        model, keras.Sequential
    )


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Expected a keras.Model classifier, received {type(model).__name__}."
        )
    if not model.built:
        raise ValueError(
            f"The model '{model.name}' is not built: call it on data or give "
            "its first layer an input shape."
        )
    if isinstance(model, keras.Sequential):
        return
    if not _is_functional(model):
        raise UnsupportedLayerError(
            f"{model.name} ({type(model).__name__}): subclassed models have no "
            "inspectable graph; build the classifier with the functional or "
            "Sequential API."
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedLayerError(
            f"{model.name} ({type(model).__name__}): the classifier must have "
            f"one input and one output, it has {len(model.inputs)} and "
            f"{len(model.outputs)}."
        )


def _trace_sequential(model, tensor, calls):
    for layer in model.layers:
        tensor = _trace_layer(layer, (tensor,), {}, calls)
    return tensor


def _trace_functional(model, tensor, calls):
    _check_model(model)
    tensor_map = {id(model.inputs[0]): tensor}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input or node.operation is None:
                continue
            if any(id(t) not in tensor_map for t in node.input_tensors):
                continue  # not connected to the input
            args, kwargs = node.arguments.fill_in(tensor_map)
            inputs = tuple(tensor_map[id(t)] for t in node.input_tensors)
            # Everything but graph tensors: a constant (say, an attention
            # mask array) is part of the layer's computation too.
            static_kwargs = {k: v for k, v in kwargs.items()
                             if not _holds_tensors(v)}
            outputs = keras.tree.flatten(node.outputs)
            if len(outputs) != 1:
                raise UnsupportedLayerError(
                    f"{node.operation.name} ({type(node.operation).__name__}): "
                    "layers with several outputs are not supported."
                )
            out = _trace_layer(node.operation, inputs, static_kwargs, calls,
                               args=args, kwargs=kwargs)
            tensor_map[id(outputs[0])] = out
    return tensor_map[id(model.outputs[0])]


def _holds_tensors(value):
    return any(isinstance(t, keras.KerasTensor)
               for t in keras.tree.flatten(value))


def _input_names(layer, args, kwargs, count):
    """The argument name of each of a call's `count` tensor inputs.

    The inputs come in the order of `keras.tree.flatten((args, kwargs))`
    (Keras's `node.input_tensors`): the positional arguments, then the
    keyword arguments by sorted name. `()` when that does not add up.
    """
    try:
        parameters = list(inspect.signature(layer.call).parameters)
    except (TypeError, ValueError):
        parameters = []
    named = [(parameters[i] if i < len(parameters) else f"arg{i}", value)
             for i, value in enumerate(args)]
    named += sorted(kwargs.items())
    names = []
    for name, value in named:
        names += [name] * sum(isinstance(t, keras.KerasTensor)
                              for t in keras.tree.flatten(value))
    return tuple(names) if len(names) == count else ()


def _arguments_by_name(layer, args, kwargs):
    """The call's arguments by parameter name, or None when they do not
    bind to `layer.call`'s signature."""
    try:
        bound = inspect.signature(layer.call).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return None
    return dict(bound.arguments)


def _split_attention(layer, args, kwargs):
    """`(parts, output)` of an attention layer called as `AttentionParts`
    and `AttentionOutput`, or None when it is not split."""
    arguments = _arguments_by_name(layer, args, kwargs)
    if arguments is None or not attention_parts_lib.splits_attention(
            layer, arguments):
        return None
    query = arguments.pop("query")
    for name in ("query_mask", "return_attention_scores"):
        arguments.pop(name, None)  # none and False: `splits_attention`
    parts = attention_parts_lib.AttentionParts(layer)(query, **arguments)
    return parts, attention_parts_lib.AttentionOutput(layer)(parts["mixed"])


def _trace_layer(layer, inputs, static_kwargs, calls, args=None, kwargs=None):
    if isinstance(layer, keras.layers.InputLayer):
        return inputs[0]
    if isinstance(layer, keras.Sequential):
        return _trace_sequential(layer, inputs[0], calls)
    if isinstance(layer, keras.Model):
        _check_model(layer)
        return _trace_functional(layer, inputs[0], calls)
    if args is None:
        args, kwargs = inputs, {}
    pre_activation = None
    split = _split_attention(layer, args, kwargs)
    if split is not None:
        pre_activation, output = split
    elif pre_activation_lib.splits_activation(layer) and len(inputs) == 1:
        pre_activation = pre_activation_lib.PreActivation(layer)(inputs[0])
        output = keras.layers.Activation(
            layer.activation, dtype=layer.dtype_policy,
            name=f"{layer.name}_activation")(pre_activation)
    else:
        output = layer(*args, **kwargs)
    if isinstance(output, (list, tuple, dict)):
        raise UnsupportedLayerError(
            f"{layer.name} ({type(layer).__name__}): layers with several "
            "outputs are not supported."
        )
    calls.append(LayerCall(layer, tuple(inputs), output, dict(static_kwargs),
                           pre_activation,
                           _input_names(layer, args, kwargs, len(inputs))))
    return output


def trace(model):
    """Re-traces `model` from a fresh input with shared layer objects.

    Args:
        model: A built single-input, single-output Functional or Sequential
            `keras.Model`, possibly with nested models.

    Returns:
        A `TracedGraph`.

    Example:

    >>> graph = trace(classifier)
    >>> [c.layer.name for c in graph.calls][:2]
    ['conv2d', 'batch_normalization']
    """
    _check_model(model)
    input_shape = tuple(model.inputs[0].shape[1:])
    new_input = keras.Input(shape=input_shape, dtype=model.inputs[0].dtype,
                            name="images")
    calls = []
    if isinstance(model, keras.Sequential):
        output = _trace_sequential(model, new_input, calls)
    else:
        output = _trace_functional(model, new_input, calls)
    return TracedGraph(new_input, output, tuple(calls))
