"""Functional models: a graph of layer calls from `Input` tensors to outputs."""
from kerasckpt._registry import builtin
from kerasckpt.layers.base import KerasTensor, Layer, flatten, map_structure
from kerasckpt.layers.masking import with_mask
from kerasckpt.layers.input_layer import InputLayer
from kerasckpt.models.model import Model, layers_by_class_name, model_config, tf_keras_layer_edges


@builtin()
class Functional(Model):
    """A model defined by calling layers on `Input` tensors: `Model(inputs, outputs)`."""

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        for t in flatten(inputs) + flatten(outputs):
            if not isinstance(t, KerasTensor):
                raise TypeError(
                    "Model(inputs, outputs) needs symbolic tensors made from Input(...) and layer calls. "
                    f"Received an entry of type {type(t).__name__}: {t!r}.")
        self._inputs_struct, self._outputs_struct = inputs, outputs
        self.inputs, self.outputs = flatten(inputs), flatten(outputs)
        self._nodes, first_visits = _nodes_in_order(self.inputs, self.outputs)
        self._operations = _layers_by_depth(self.inputs, self._nodes, first_visits)
        for layer in self._operations:
            if isinstance(layer, Layer):  # op nodes (kerasckpt.ops on symbolic tensors) have no weights
                self._track(layer)
        self._build_shapes = map_structure(lambda t: t.shape, inputs)
        self.built = True

    @property
    def input_shape(self):
        return self._build_shapes

    @property
    def operations(self):
        """The layers and op nodes of the graph, in Keras's order (`layers` without the op nodes)."""
        return list(self._operations)

    @property
    def output_names(self):
        return [t._keras_history[0].name for t in self.outputs]

    def call(self, inputs, training=None, mask=None):
        values = {}
        given = flatten(inputs) if isinstance(inputs, (list, tuple)) else (
            [inputs[t.name] for t in self.inputs] if isinstance(inputs, dict) else [inputs])
        if len(given) != len(self.inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self.inputs)} input(s) but received {len(given)}. "
                             "Pass a list with one array per Input.")
        if mask is not None:  # masks for the inputs, as Keras's Functional.call takes them
            given = [with_mask(v, m) for v, m in zip(given, flatten(mask))]
        for tensor, value in zip(self.inputs, given):
            values[id(tensor)] = value
        lookup = lambda t: values[id(t)] if isinstance(t, KerasTensor) else t  # noqa: E731
        for node in self._nodes:
            if isinstance(node.layer, InputLayer):
                continue
            args = map_structure(lookup, node.call_args)
            kwargs = map_structure(lookup, node.call_kwargs)
            if training is not None and "training" not in kwargs:
                kwargs["training"] = training
            out = node.layer(*args, **kwargs)
            for tensor, value in zip(node.outputs, flatten(out)):
                values[id(tensor)] = value
        return map_structure(lambda t: values[id(t)], self._outputs_struct)

    def get_config(self):
        """Keras's functional config: `name`, `trainable`, `layers` (each with its `inbound_nodes`),
        `input_layers` and `output_layers`; `Model.from_config` rebuilds the same graph from it."""
        return model_config(self)

    def _trackable_children(self):
        return layers_by_class_name(self._layers)

    def _checkpoint_aliases(self):
        aliases = super()._checkpoint_aliases()
        aliases.update(tf_keras_layer_edges(self._layers))
        aliases["_operations"] = list(self._layers)  # Keras 3's name for the layers, in the same order
        return aliases


def _nodes_in_order(inputs, outputs):
    """The nodes between `inputs` and `outputs`, each after the nodes that feed it, and the index at
    which this depth-first walk from the outputs first reaches each layer (`{id(layer): index}`)."""
    order, seen, first_visits = [], set(), {}
    input_ids = {id(t) for t in inputs}

    def visit(tensor):
        layer, node_index, _ = tensor._keras_history
        node = layer._inbound_nodes[node_index]
        if id(node) in seen:
            return
        seen.add(id(node))
        first_visits.setdefault(id(layer), len(first_visits))
        if id(tensor) not in input_ids:
            if isinstance(layer, InputLayer):
                raise ValueError(f"Output depends on input '{layer.name}', which is not among the model's inputs. "
                                 "Add it to `inputs`.")
            for parent in node.input_tensors:
                visit(parent)
        order.append(node)

    for t in outputs:
        visit(t)
    return order, first_visits


def _layers_by_depth(inputs, nodes, first_visits):
    """The layers and op nodes in Keras's order: farthest from the outputs first, ties in first-visit order.

    `layers`, and so `weights`, `get_weights()` and the layer keys of saved files, follow this order,
    so it must be Keras's own for the files and weight lists of multi-branch models to agree.
    """
    producer = {id(t): node for node in nodes for t in node.outputs}
    node_depth, layer_depth = {}, {}
    for node in reversed(nodes):  # outputs first; a node is one deeper than the deepest node it feeds
        depth = max(node_depth.get(id(node), 0), layer_depth.get(id(node.layer), 0))
        node_depth[id(node)] = layer_depth[id(node.layer)] = depth
        for t in node.input_tensors:
            parent = producer.get(id(t))
            if parent is not None:
                node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    layers = {id(node.layer): node.layer for node in nodes}
    for t in inputs:  # an input no output depends on is still listed, first among the shallowest
        layer = t._keras_history[0]
        if id(layer) not in layers:
            layers[id(layer)], layer_depth[id(layer)], first_visits[id(layer)] = layer, 0, -1
    return sorted(layers.values(), key=lambda layer: (-layer_depth[id(layer)], first_visits[id(layer)]))
