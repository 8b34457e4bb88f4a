"""Dense, Activation, Dropout and Flatten."""

import numpy as np

from kerasckpt import activations, initializers, ops
from kerasckpt._registry import builtin
from kerasckpt.autograd import record, value_of
from kerasckpt.layers.arguments import refuse_unsupported, take_lora
from kerasckpt.layers.base import Layer
from kerasckpt.random import SeedGenerator


@builtin()
class Dense(Layer):
    """`activation(inputs @ kernel + bias)` over the last axis.

    Args:
        units: the size of the last axis of the output.
        activation: a name (`"relu"`) or function; linear when None.
        use_bias: whether to add a bias vector.
        kernel_initializer: glorot_uniform by default, as in Keras.
        bias_initializer: zeros by default.

    Integer and bool inputs are cast to the layer's dtype (float32), so the output is float32 as in Keras.
    """

    _autocast_integers = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        refuse_unsupported("Dense", kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                           activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                           bias_constraint=bias_constraint)
        quantization = kwargs.pop("quantization_config", None)
        if quantization is not None:
            raise ValueError(f"Dense does not support quantized layers in kerasckpt. Received: quantization_config="
                             f"{quantization!r}. Save the model unquantized in Keras, then load it here.")
        take_lora("Dense", kwargs)
        super().__init__(**kwargs)
        self.supports_masking = True
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense needs a positive integer `units`. Received: units={units!r}")
        self.units, self.use_bias = int(units), bool(use_bias)
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(
                f"Dense layer '{self.name}' needs the last axis of its input to be known. "
                f"Received input_shape={tuple(input_shape)}.")
        self.kernel = self.add_weight((input_shape[-1], self.units), self.kernel_initializer, name="kernel")
        self.bias = self.add_weight((self.units,), self.bias_initializer, name="bias") if self.use_bias else None

    def call(self, inputs):
        xv = value_of(inputs)
        if (xv.shape if xv.__class__ is np.ndarray else np.shape(xv))[-1] != self.kernel._value.shape[0]:
            raise ValueError(
                f"Dense layer '{self.name}' expects inputs whose last axis is {self.kernel.shape[0]}, "
                f"but received input of shape {np.shape(value_of(inputs))}. Check the model's input shape.")
        x = ops.matmul(inputs, self.kernel)
        return self.activation(x if self.bias is None else ops.add(x, self.bias))

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": None, "bias_regularizer": None, "kernel_constraint": None,
                "bias_constraint": None, "quantization_config": None}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("quantization_config", None)
        return super().from_config(config)


@builtin()
class Activation(Layer):
    """Apply an activation function (by name or callable) elementwise."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.activation = activations.get(activation)

    def call(self, inputs):
        return self.activation(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


@builtin()
class Dropout(Layer):
    """Zero a random fraction `rate` of the inputs during training, scaling the rest by `1/(1-rate)`.

    Args:
        rate: fraction of the inputs to drop, in [0, 1).
        noise_shape: shape of the keep/drop mask, broadcast over the inputs (None: inputs' shape).
        seed: seed of this layer's random stream; drawn from the global generator when None.

    Note: the mask stream is counter-based (`kerasckpt.random.SeedGenerator`), and its state is
    saved with the training loop, so a resumed run drops exactly the units the uninterrupted run would.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout needs 0 <= rate < 1. Received: rate={rate!r}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed
        self.seed_generator = SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        xv = np.asarray(value_of(inputs))
        if xv.dtype.kind in "biu":  # the scaled values are fractions: integers become the layer's dtype
            xv = xv.astype(self.dtype)
        shape = xv.shape if self.noise_shape is None else tuple(
            s if n is None else n for s, n in zip(xv.shape, self.noise_shape))
        keep = self.seed_generator.next().random(shape, dtype=np.float32) >= self.rate
        mask = keep.astype(xv.dtype) * np.asarray(1.0 / (1.0 - self.rate), dtype=xv.dtype)
        def backward(g):
            return (g * mask,)
        return record(xv * mask, (inputs,), backward)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape}


@builtin()
class Flatten(Layer):
    """Flatten every axis but the batch axis."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format or "channels_last"

    def call(self, inputs):
        shape = np.shape(value_of(inputs))
        return ops.reshape(inputs, (shape[0], -1) if shape else (1,))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
