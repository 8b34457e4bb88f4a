"""Preprocessing layers: Rescaling."""
import numpy as np

from kerasckpt import ops
from kerasckpt._registry import builtin
from kerasckpt.layers.base import Layer


def _to_config(value):
    """A scale or offset as Keras writes it: a number, a list, or a `__numpy__` object for an array."""
    if isinstance(value, np.ndarray):
        return {"class_name": "__numpy__", "config": {"value": value.tolist(), "dtype": str(value.dtype)}}
    return value.item() if isinstance(value, np.generic) else value


def _from_config(value):
    if isinstance(value, dict) and value.get("class_name") == "__numpy__":
        config = value.get("config") or {}
        return np.asarray(config.get("value"), dtype=np.dtype(config.get("dtype", "float32")))
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        return tuple((value.get("config") or {}).get("value", ()))
    return value


@builtin()
class Rescaling(Layer):
    """`inputs * scale + offset`, in the layer's dtype (integer images become float32).

    Args:
        scale: a number, or one per channel (a list or array broadcast over the last axis).
        offset: a number, or one per channel.

    Example:
        layers.Rescaling(1.0 / 255)  # uint8 images to [0, 1]
    """

    _autocast_integers = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset
        self.supports_masking = True

    def call(self, inputs):
        x = ops.cast(inputs, self.dtype)
        return ops.add(ops.multiply(x, np.asarray(self.scale, self.dtype)), np.asarray(self.offset, self.dtype))

    def get_config(self):
        return {**super().get_config(), "scale": _to_config(self.scale), "offset": _to_config(self.offset)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["scale"], config["offset"] = _from_config(config["scale"]), _from_config(config.get("offset", 0.0))
        return super().from_config(config)
