"""Activation layers with arguments: ReLU, LeakyReLU and Softmax."""
import warnings

import numpy as np

from kerasckpt import ops
from kerasckpt._registry import builtin
from kerasckpt.autograd import value_of
from kerasckpt.layers.base import Layer


def _number(value, name, layer_class, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or value < 0:
        raise ValueError(f"{name} of a {layer_class} layer cannot be None or a negative value. Received: "
                         f"{name}={value!r}")
    return float(value)


@builtin()
class ReLU(Layer):
    """`max(x, 0)`, optionally capped at `max_value`, with `negative_slope * (x - threshold)` below `threshold`.

    Args:
        max_value: the largest output (None: no cap).
        negative_slope: the slope below `threshold`.
        threshold: inputs up to this value are damped (to 0 with the default slope).
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None:
            max_value = _number(max_value, "max_value", "ReLU")
        self.max_value = max_value
        self.negative_slope = _number(negative_slope, "negative_slope", "ReLU")
        self.threshold = _number(threshold, "threshold", "ReLU")
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        slope, cap, threshold = self.negative_slope, self.max_value, self.threshold
        if slope and cap is None and not threshold:
            return ops.leaky_relu(inputs, slope)
        x = inputs
        negative = ops.relu(ops.add(ops.negative(x), threshold) if threshold else ops.negative(x)) if slope else None
        if threshold:
            x = ops.where(ops.greater(x, threshold), x, 0.0)
        else:
            x = ops.relu(x)
        if cap is not None:
            x = ops.clip(x, 0.0, cap)
        return ops.subtract(x, ops.multiply(negative, slope)) if slope else x

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


@builtin()
class LeakyReLU(Layer):
    """`x` where positive, else `negative_slope * x`.

    Args:
        negative_slope: the slope for negative inputs, 0.3 by default (Keras's `alpha`, deprecated, is accepted).
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.", stacklevel=2)
        super().__init__(**kwargs)
        self.negative_slope = _number(negative_slope, "negative_slope", "LeakyReLU")
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        return ops.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@builtin()
class Softmax(Layer):
    """Softmax over `axis` (an int or a list of axes); positions where `mask` is False get 0.

    Args:
        axis: the axis, or axes, to normalize over.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis
        self.supports_masking = True
        self.built = True

    def call(self, inputs, mask=None):
        if mask is not None:
            mask_v, shape = np.asarray(value_of(mask)), np.shape(value_of(inputs))
            if mask_v.ndim > len(shape) or any(m not in (1, i) for m, i in zip(mask_v.shape[::-1], shape[::-1])):
                raise ValueError(f"Softmax layer '{self.name}': the `mask` must be broadcastable to `inputs`. Received: "
                                 f"inputs.shape={shape}, mask.shape={mask_v.shape}")
            mask = mask_v if mask_v.dtype == bool else mask_v > 0.5
            dtype = np.asarray(value_of(inputs)).dtype
            inputs = ops.where(mask, inputs, -3e4 if dtype == np.float16 else -1e9)
        if isinstance(self.axis, list) and len(self.axis) > 1:
            out = ops.exp(ops.subtract(inputs, ops.logsumexp(inputs, axis=self.axis, keepdims=True)))
        else:
            out = ops.softmax(inputs, axis=self.axis[0] if isinstance(self.axis, list) else self.axis)
        return out if mask is None else ops.where(mask, out, 0.0)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
