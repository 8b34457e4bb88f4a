"""Model: a Layer that trains. `Model(inputs, outputs)` builds a functional model."""
import numpy as np

from kerasckpt._registry import builtin
from kerasckpt.layers.base import Layer
from kerasckpt.models.summary import print_summary
from kerasckpt.models.trainer import Trainer
from kerasckpt.utils import snake_case


def layers_by_class_name(layers):
    """`{dense: ..., dense_1: ..., batch_normalization: ...}`: a layer's key counts earlier layers of its
    class in this model, as in Keras's `.weights.h5`, so keys do not depend on global default names."""
    counts, out = {}, {}
    for layer in layers:
        base = snake_case(type(layer).__name__)
        n = counts.get(base, 0)
        counts[base] = n + 1
        out[base if n == 0 else f"{base}_{n}"] = layer
    return out


@builtin()
class Model(Trainer, Layer):
    """A trainable model, built one of three ways.

    `Model(inputs, outputs)` builds a functional model from `Input` tensors; subclassing `Model`,
    setting layers as attributes in `__init__` and writing `call(inputs, training=False)` builds a
    subclassed model; `Sequential([...])` builds a stack.

    Args:
        inputs: for functional models, the `Input` tensor(s).
        outputs: for functional models, the output tensor(s).
        name: unique default from the class name.
        trainable: whether training updates the weights.
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from kerasckpt.models.functional import Functional
            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        kwargs.pop("inputs", None), kwargs.pop("outputs", None)
        super().__init__(**kwargs)
        self._init_trainer()

    def build(self, input_shape):
        """Create every weight by calling the model once on zeros of `input_shape` (None -> 1)."""
        if type(self).call is Model.call:
            raise NotImplementedError(f"Model '{self.name}' has no call() method. Subclasses of Model must define call().")
        zeros = np.zeros(tuple(1 if d is None else d for d in input_shape), dtype="float32")
        self.call(zeros, training=False) if self._call_has_training else self.call(zeros)

    def call(self, inputs, training=False):
        raise NotImplementedError(f"Model '{self.name}' has no call() method. Subclasses of Model must define call().")

    @property
    def layers(self):
        """The direct sub-layers, in the order they were set."""
        return list(self._layers)

    def get_layer(self, name=None, index=None):
        """A sub-layer by `name` or by `index` into `layers`."""
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer(index={index}) is out of range: model '{self.name}' has "
                                 f"{len(self.layers)} layers.")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Existing layers are: {[l.name for l in self.layers]}.")

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False):
        """Print a table of the layers, their output shapes and parameter counts, like Keras."""
        print_summary(self, print_fn=print_fn)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable}

    # ------------------------------------------------------------------ saving (kerasckpt.saving does the work)

    def save(self, filepath, overwrite=True, **kwargs):
        """Save architecture, weights, compile arguments and optimizer state (`.keras` or legacy `.h5`)."""
        from kerasckpt.saving import api
        api.save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights (and the optimizer state when compiled); the file ending picks the format."""
        from kerasckpt.saving import api
        api.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        """Load weights (and optimizer state) saved by `save_weights` or by Keras."""
        from kerasckpt.saving import api
        api.load_weights(self, filepath, skip_mismatch=skip_mismatch)
