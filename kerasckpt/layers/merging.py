"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum and Concatenate, each called on a list."""
import functools

import numpy as np

from kerasckpt import ops
from kerasckpt._registry import builtin
from kerasckpt.autograd import value_of
from kerasckpt.layers import masking
from kerasckpt.layers.base import Layer


def _full_mask(x):
    """The mask attached to `x` (over its leading axes) broadcast to `x`'s shape, or None."""
    mask = masking.get_keras_mask(x)
    if mask is None:
        return None
    return np.broadcast_to(masking.value_of_mask(mask).astype(bool)[..., None], np.shape(value_of(x)))


def _or_masks(op, inputs):
    """`op` applied pairwise where the masks allow, as Keras's Maximum and Minimum do: a masked value is
    replaced by the other operand, and the output is masked where every input is."""
    output = output_mask = None
    for i, x in enumerate(inputs):
        mask = _full_mask(x)
        if i == 0:
            output, output_mask = x, mask
            continue
        if mask is not None:
            x = ops.where(mask, x, output)
        if output_mask is not None:
            output = ops.where(output_mask, output, x)
        output_mask = None if mask is None or output_mask is None else output_mask | mask
        output = op(output, x)
    if output_mask is not None:
        masking.set_keras_mask(output, ops.any(output_mask, axis=-1))
    return output


def _broadcast_shape(shape1, shape2):
    """The shape of an elementwise op on `shape1` and `shape2` (without the batch axis), or None if unknown."""
    if shape1 is None or shape2 is None:
        return None
    if len(shape1) < len(shape2):
        shape1, shape2 = shape2, shape1
    if not shape2:
        return tuple(shape1)
    out = list(shape1[:len(shape1) - len(shape2)])
    for i, j in zip(shape1[len(shape1) - len(shape2):], shape2):
        if i is None or j is None:
            out.append(None)
        elif i == 1 or j == 1:
            out.append(j if i == 1 else i)
        elif i != j:
            raise ValueError(f"Inputs have incompatible shapes. Received shapes {tuple(shape1)} and {tuple(shape2)}")
        else:
            out.append(i)
    return tuple(out)


class Merge(Layer):
    """The base of the elementwise merge layers: inputs of lower rank get axes of length 1 after the batch axis."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or \
                not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"A merge layer should be called on a list of inputs. Received: input_shape="
                             f"{input_shape} (not a list of shapes)")
        batch_sizes = {s[0] for s in input_shape if s} - {None}
        if len(batch_sizes) > 1:
            raise ValueError(f"Cannot merge tensors with different batch sizes. Received tensors with shapes "
                             f"{[tuple(s) for s in input_shape]}")
        functools.reduce(_broadcast_shape, [tuple(s[1:]) for s in input_shape])  # checks the shapes agree
        self._reshape_required = len({len(s) for s in input_shape}) != 1

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"A merge layer should be called on a list of inputs. Received: inputs={inputs!r} "
                             "(not a list of tensors)")
        inputs = list(inputs)
        ranks = [np.ndim(value_of(x)) for x in inputs]
        if len(set(ranks)) > 1:
            most = max(ranks)
            inputs = [ops.reshape(x, np.shape(value_of(x))[:1] + (1,) * (most - r) + np.shape(value_of(x))[1:])
                      for x, r in zip(inputs, ranks)]
        return self._merge_function(inputs)

    def _merge_function(self, inputs):
        raise NotImplementedError

    def compute_mask(self, inputs, mask=None):
        """The elementwise OR of the inputs' masks (None unless every input has one)."""
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)) or len(mask) != len(inputs):
            raise ValueError(f"`mask` should be a list with one entry per input. Received: mask={mask!r}")
        if any(m is None for m in mask):
            return None
        return functools.reduce(ops.logical_or, mask)


@builtin()
class Add(Merge):
    """The elementwise sum of a list of inputs of the same shape (or broadcastable)."""

    def _merge_function(self, inputs):
        return functools.reduce(ops.add, inputs)


@builtin()
class Subtract(Merge):
    """`inputs[0] - inputs[1]`, for exactly two inputs."""

    def build(self, input_shape):
        super().build(input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. Received: input_shape="
                             f"{input_shape}")

    def _merge_function(self, inputs):
        if len(inputs) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. Received {len(inputs)}.")
        return ops.subtract(inputs[0], inputs[1])


@builtin()
class Multiply(Merge):
    """The elementwise product of a list of inputs; masked values count as 1, and where every input is
    masked the output is 0 (Keras's rule)."""

    def _merge_function(self, inputs):
        masks = [_full_mask(x) for x in inputs]
        if all(m is None for m in masks):
            return functools.reduce(ops.multiply, inputs)
        every = all(m is not None for m in masks)
        output = output_mask = None
        for x, mask in zip(inputs, masks):
            if mask is not None:
                x = ops.where(mask, x, 1.0)
                if every:
                    output_mask = mask if output_mask is None else output_mask | mask
            output = x if output is None else ops.multiply(output, x)
        if every:
            output = ops.where(output_mask, output, 0.0)
            masking.set_keras_mask(output, ops.any(output_mask, axis=-1))
        return output


@builtin()
class Average(Merge):
    """The elementwise mean of a list of inputs."""

    def _merge_function(self, inputs):
        return ops.divide(functools.reduce(ops.add, inputs), len(inputs))


@builtin()
class Maximum(Merge):
    """The elementwise maximum of a list of inputs (masked values are left out)."""

    def _merge_function(self, inputs):
        return _or_masks(ops.maximum, inputs)


@builtin()
class Minimum(Merge):
    """The elementwise minimum of a list of inputs (masked values are left out)."""

    def _merge_function(self, inputs):
        return _or_masks(ops.minimum, inputs)


@builtin()
class Concatenate(Merge):
    """A list of inputs joined along `axis`; every other axis must agree.

    Args:
        axis: the axis to join along (the last by default).
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or \
                not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"A `Concatenate` layer should be called on a list of at least 1 input. Received: "
                             f"input_shape={input_shape}")
        ranks = {len(s) for s in input_shape}
        problem = len(ranks) != 1
        if not problem:
            rank = ranks.pop()
            axis = self.axis % rank
            for i in range(rank):
                sizes = {s[i] for s in input_shape} - {None}
                problem = problem or (i != axis and len(sizes) > 1)
        if problem:
            raise ValueError(f"A `Concatenate` layer requires inputs with matching shapes except for the "
                             f"concatenation axis. Received: input_shape={[tuple(s) for s in input_shape]}")

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"A `Concatenate` layer should be called on a list of inputs. Received: inputs={inputs!r}")
        return ops.concatenate(list(inputs), axis=self.axis)

    def compute_mask(self, inputs, mask=None):
        """The inputs' masks (all True for an input without one) joined along `axis`, then any() over the last axis."""
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)) or len(mask) != len(inputs):
            raise ValueError(f"`mask` should be a list with one entry per input. Received: mask={mask!r}")
        if all(m is None for m in mask):
            return None
        masks = []
        for x, m in zip(inputs, mask):
            shape = np.shape(value_of(x))
            if m is None:
                masks.append(np.ones(shape, dtype=bool))
            else:
                m = np.asarray(value_of(m), dtype=bool)
                masks.append(np.broadcast_to(m[..., None], shape) if m.ndim < len(shape) else m)
        return ops.any(np.concatenate(masks, axis=self.axis), axis=-1)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def add(inputs, **kwargs):
    """`Add(**kwargs)(inputs)`: the functional form, as `keras.layers.add`."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """`Subtract(**kwargs)(inputs)`, as `keras.layers.subtract`."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """`Multiply(**kwargs)(inputs)`, as `keras.layers.multiply`."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """`Average(**kwargs)(inputs)`, as `keras.layers.average`."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """`Maximum(**kwargs)(inputs)`, as `keras.layers.maximum`."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """`Minimum(**kwargs)(inputs)`, as `keras.layers.minimum`."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """`Concatenate(axis, **kwargs)(inputs)`, as `keras.layers.concatenate`."""
    return Concatenate(axis=axis, **kwargs)(inputs)
