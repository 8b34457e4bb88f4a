"""InputLayer and Input: the entry points of functional models."""
from kerasckpt._registry import builtin
from kerasckpt.layers.base import KerasTensor, Layer, Node


@builtin()
class InputLayer(Layer):
    """The layer behind `Input()`: holds a symbolic tensor of the given shape.

    Args:
        shape: the shape of one sample (no batch axis).
        batch_size: optional fixed batch size.
        dtype: float32 by default.
        batch_shape: the full shape including the batch axis, instead of `shape`.
        name: unique default `input_layer`, `input_layer_1`, ...
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None,
                 input_tensor=None, optional=False, ragged=None, **kwargs):
        if "input_shape" in kwargs:
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs:
            batch_shape = kwargs.pop("batch_input_shape")
        super().__init__(name=name, dtype=dtype, **kwargs)
        if shape is None and batch_shape is None:
            raise ValueError("InputLayer needs `shape` (one sample's shape) or `batch_shape`. Received neither.")
        if batch_shape is None:
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
            batch_shape = (batch_size,) + shape
        self.batch_shape = tuple(batch_shape)
        self._output_shape = self.batch_shape
        self.optional = optional
        self.built = True
        self.output = KerasTensor(self.batch_shape, self.dtype, (self, 0, 0), name=self.name)
        self._inbound_nodes.append(Node(self, (), {}, [self.output]))

    def call(self, inputs):
        return inputs

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype, "sparse": False, "ragged": False,
                "name": self.name, "optional": self.optional}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("sparse", "ragged", "trainable"):
            config.pop(key, None)
        return cls(**config)


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None,
          optional=False):
    """A symbolic input for functional models: `x = Input(shape=(784,))`.

    Args:
        shape: the shape of one sample (no batch axis).
        batch_size: optional fixed batch size.
        dtype: float32 by default.
        batch_shape: the full shape including the batch axis, instead of `shape`.
        name: the input's name (and its InputLayer's).
    """
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name,
                       optional=optional)
    return layer.output
