"""Keras masks: carried on tensors as `_keras_mask`, filled into `mask=` call arguments and recomputed by
each layer's `compute_mask`, as Keras 3 does (`layers/layer.py`, steps 6 and 7 of `Layer.__call__`)."""
import inspect
import warnings

import numpy as np

from kerasckpt.autograd import Tensor, record, value_of
from kerasckpt.variables import Variable


def get_keras_mask(x):
    """The mask a layer attached to tensor `x` (a boolean array of its leading axes), or None."""
    return getattr(x, "_keras_mask", None)


def set_keras_mask(x, mask):
    """Attach `mask` to tensor `x` (None removes it); NumPy arrays cannot carry a mask and are left alone."""
    try:
        x._keras_mask = mask
    except AttributeError:
        pass


def without_mask(x):
    """`x` as a tensor without a Keras mask (same values; gradients pass through), for calls that must not
    see the mask (MultiHeadAttention's projections)."""
    if get_keras_mask(x) is None:
        return x
    return record(value_of(x), (x,), lambda g: (g,))


def value_of_mask(mask):
    """A mask's boolean array."""
    return mask.value if isinstance(mask, Tensor) else np.asarray(mask)


def with_mask(x, mask):
    """`x` as a tensor carrying `mask` (a NumPy array is wrapped; float64 data becomes float32)."""
    if mask is None:
        return x
    if not isinstance(x, Tensor):
        x = np.asarray(x)
        x = Tensor(x.astype(np.float32) if x.dtype == np.float64 else x)
    set_keras_mask(x, mask)
    return x


def _leaves(structure):
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in _leaves(item)]
    if isinstance(structure, dict):
        return [leaf for key in structure for leaf in _leaves(structure[key])]
    return [structure]


def _map(fn, structure):
    if isinstance(structure, list):
        return [_map(fn, s) for s in structure]
    if isinstance(structure, tuple):
        return tuple(_map(fn, s) for s in structure)
    if isinstance(structure, dict):
        return {k: _map(fn, v) for k, v in structure.items()}
    return fn(structure)


def masks_of(structure):
    """The masks of the tensors in `structure` (same nesting), or None when none of them has one."""
    cls = structure.__class__
    if cls is Tensor:  # the common cases: one tensor, or one array (which cannot carry a mask)
        return getattr(structure, "_keras_mask", None)
    if cls is np.ndarray:
        return None
    masks = _map(get_keras_mask, structure)
    return masks if any(m is not None for m in _leaves(masks)) else None


def is_tensor(x, symbolic_type):
    return isinstance(x, (Tensor, Variable, np.ndarray, symbolic_type))


def _is_tensor_argument(value, symbolic_type):
    """A tensor, or a non-empty list/tuple/dict of only tensors (Keras's "tensor arguments")."""
    if isinstance(value, (list, tuple, dict)):
        leaves = _leaves(value)
        return bool(leaves) and all(is_tensor(v, symbolic_type) for v in leaves)
    return is_tensor(value, symbolic_type)


class MaskArguments:
    """The mask parameters of a layer's `call()`: `mask`, and `<argument>_mask` for other tensor arguments."""

    def __init__(self, signature):
        self.signature = signature
        self.names = frozenset(n for n in signature.parameters if n == "mask" or n.endswith("_mask"))

    @classmethod
    def of(cls, call):
        """None when `call` takes no mask argument (then nothing is filled in)."""
        signature = inspect.signature(call)
        found = cls(signature)
        return found if found.names else None

    def fill(self, args, kwargs, symbolic_type):
        """Set `mask=` (one tensor argument) or `<arg>_mask=` (several) in `kwargs` from the tensors'
        masks where the caller passed none. Returns the names filled in."""
        if len(args) == 1 and masks_of(args[0]) is None and not any(
                k not in self.names and _is_tensor_argument(v, symbolic_type) for k, v in kwargs.items()):
            return ()  # one tensor argument, without a mask: nothing to fill (the common call, made fast)
        try:
            bound = self.signature.bind_partial(*args, **kwargs).arguments
        except TypeError:
            return ()  # call() raises its own error for a wrong call
        tensors = {k: v for k, v in bound.items() if k not in self.names and _is_tensor_argument(v, symbolic_type)}
        if len(tensors) == 1:
            targets = {"mask": next(iter(tensors.values()))}
        else:
            targets = {f"{k}_mask": v for k, v in tensors.items()}
        filled = []
        for name, value in targets.items():
            if name in self.names and (name not in bound or (name in kwargs and kwargs[name] is None)):
                mask = masks_of(value)
                if mask is not None:
                    kwargs[name] = mask
                    filled.append(name)
        return filled


def previous_mask(first_input, kwargs):
    """The mask a layer's output masks derive from: the `mask` argument, else the first input's masks."""
    mask = kwargs.get("mask")
    return mask if mask is not None else masks_of(first_input)


def attach_output_masks(layer, inputs, outputs, prior):
    """Set `layer.compute_mask(inputs, prior)` on outputs that carry no mask yet; a layer that does not
    support masking drops a mask it received, with Keras's warning."""
    if not layer.supports_masking:
        if prior is not None:
            warnings.warn(
                f"Layer '{layer.name}' (of type {type(layer).__name__}) was passed an input with a mask attached "
                "to it. However, this layer does not support masking and will therefore destroy the mask "
                "information. Downstream layers will not see the mask.", stacklevel=4)
        return
    flat = _leaves(outputs)
    if all(get_keras_mask(t) is not None for t in flat):
        return
    masks = layer.compute_mask(inputs, prior)
    if masks is None:
        return
    for tensor, mask in zip(flat, _leaves(masks)):
        if mask is not None and get_keras_mask(tensor) is None:
            set_keras_mask(tensor, mask)
