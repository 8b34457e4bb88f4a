"""Sequential: a plain stack of layers, each feeding the next."""
from kerasckpt._registry import builtin
from kerasckpt.layers.base import KerasTensor, Layer
from kerasckpt.layers.input_layer import InputLayer
from kerasckpt.layers.masking import with_mask
from kerasckpt.models.model import Model, layers_by_class_name, model_config, rebuild_from_config, tf_keras_layer_edges
from kerasckpt.tracking import AliasView


@builtin()
class Sequential(Model):
    """A stack of layers where each layer has one input and one output.

    The model is built as soon as its input shape is known: from an `Input`/`InputLayer` first
    entry, an `input_shape=` on the first layer, `build(input_shape)`, or the first call on data.

    Args:
        layers: the layers, in order.
        trainable: whether training updates the weights.
        name: unique default `sequential`, `sequential_1`, ...

    Example:
        model = Sequential([Input(shape=(784,)), Dense(64, activation="relu"), Dense(10)])
    """

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(trainable=trainable, name=name)
        self._input_layer = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        """Append a layer (an `Input` tensor or InputLayer is accepted as the first entry)."""
        if isinstance(layer, KerasTensor):
            layer = layer._keras_history[0]
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer. Received: {layer!r} of type {type(layer).__name__}.")
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self._layers:
                raise ValueError(f"An InputLayer can only be the first entry of Sequential '{self.name}'. "
                                 "Remove the extra Input or put it first.")
            self._input_layer = layer
            self._maybe_build(layer.batch_shape)
            return
        if self.built:
            self.built = False  # rebuild below with the new layer appended
        self._layers.append(layer)
        shape = self._input_layer.batch_shape if self._input_layer is not None else (
            self._layers[0]._input_shape_arg if self._layers else None)
        if shape is not None:
            self._maybe_build(shape)

    def pop(self):
        """Remove the last layer."""
        if not self._layers:
            raise TypeError(f"There are no layers in Sequential '{self.name}' to pop.")
        return self._layers.pop()

    @property
    def input_shape(self):
        return None if self._build_shapes is None else tuple(self._build_shapes)

    def build(self, input_shape=None):
        if input_shape is None:
            raise ValueError(f"Sequential '{self.name}' cannot be built without an input shape. "
                             "Pass build(input_shape=(None, features)) or start the model with Input(shape=...).")
        shape = tuple(input_shape)
        if self._input_layer is None:
            self._input_layer = InputLayer(batch_shape=shape)
        for layer in self._layers:  # in this model's name scope: build() is scoped like every layer's
            layer._maybe_build(shape)
            shape = layer.compute_output_shape(shape)
            layer._output_shape = shape
        self._build_shapes = tuple(input_shape)

    def call(self, inputs, training=None, mask=None):
        x = inputs if mask is None else with_mask(inputs, mask)
        for layer in self._layers:
            x = layer(x, training=training) if training is not None else layer(x)
        return x

    def get_config(self):
        """Keras's Sequential config: `name`, `trainable`, `dtype`, `layers` (the first an `InputLayer`
        when the input shape is known) and `build_input_shape` once built."""
        return model_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new, built (when the config has an input shape) Sequential model from `get_config()`'s output.

        Args:
            config: the dict from `get_config()` (kerasckpt's or Keras's), or a list of layer configs.
            custom_objects: `{name: class}` for layers that are neither built in nor registered.
        """
        config = {"layers": config} if isinstance(config, list) else config  # Keras 2's form
        model = rebuild_from_config("Sequential", config, custom_objects, f"{cls.__name__}.from_config()")
        if cls is Sequential:
            return model
        twin = cls(name=model.name, trainable=model.trainable)  # a subclass: same layers, the caller's class
        for layer in ([model._input_layer] if model._input_layer is not None else []) + model.layers:
            twin.add(layer)
        return twin

    def _trackable_children(self):
        return layers_by_class_name(self._layers)

    def _checkpoint_aliases(self):
        aliases = super()._checkpoint_aliases()
        aliases.update(tf_keras_layer_edges(self._layers))
        # Keras 3 keeps a Sequential's layers in its inner functional model, the InputLayer first.
        aliases["_functional"] = AliasView({"_operations": [self._input_layer] + self._layers})
        return aliases
