"""Reshaping layers: Reshape, Permute, RepeatVector, ZeroPadding2D and UpSampling2D."""
import math

import numpy as np

from kerasckpt import ops
from kerasckpt._registry import builtin
from kerasckpt.autograd import value_of
from kerasckpt.layers.arguments import standardize_data_format, standardize_tuple
from kerasckpt.layers.base import Layer


def _resolve_shape(sizes, target, layer_name):
    """`target` (one entry may be -1) for a sample of `sizes`, as Keras computes Reshape's output shape."""
    total = math.prod(sizes)
    known = math.prod(d for d in target if d != -1)
    if -1 in target:
        if known == 0 or total % known:
            raise ValueError(f"Reshape layer '{layer_name}': the total size of the target shape {tuple(target)} must "
                             f"divide the size {total} of input shape {tuple(sizes)}.")
        return tuple(total // known if d == -1 else d for d in target)
    if known != total:
        raise ValueError(f"Reshape layer '{layer_name}': the total size of the target shape {tuple(target)} must equal "
                         f"the size {total} of input shape {tuple(sizes)}.")
    return tuple(target)


@builtin()
class Reshape(Layer):
    """Reshape each sample to `target_shape` (the batch axis is kept).

    Args:
        target_shape: the new shape of one sample; one entry may be -1, computed from the others.
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target_shape = tuple(target_shape)
        if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or (d < 1 and d != -1)
               for d in target_shape) or target_shape.count(-1) > 1:
            raise ValueError(f"The `target_shape` argument must be a tuple of positive integers and at most one -1. "
                             f"Received: target_shape={target_shape!r}")
        self.target_shape = tuple(int(d) for d in target_shape)
        self.built = True

    def call(self, inputs):
        shape = np.shape(value_of(inputs))
        return ops.reshape(inputs, shape[:1] + _resolve_shape(shape[1:], self.target_shape, self.name))

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


@builtin()
class Permute(Layer):
    """Reorder the axes of each sample.

    Args:
        dims: a permutation of `1..rank-1` (the batch axis 0 stays first), e.g. `(2, 1)` swaps two axes.
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"Invalid permutation argument `dims` for Permute Layer. The set of indices in `dims` must "
                             f"be consecutive and start from 1. Received dims={dims!r}")

    def call(self, inputs):
        shape = np.shape(value_of(inputs))
        if len(shape) != len(self.dims) + 1:
            raise ValueError(f"Permute layer '{self.name}' with dims={self.dims} expects inputs of rank "
                             f"{len(self.dims) + 1}. Received input of shape {shape}.")
        return ops.transpose(inputs, (0,) + self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}


@builtin()
class RepeatVector(Layer):
    """Repeat each sample `n` times: (batch, features) becomes (batch, n, features).

    Args:
        n: the number of repetitions.
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            raise TypeError(f"Expected an integer value for `n`, got {type(n)}.")
        if n <= 0:
            raise ValueError(f"Argument `n` should be a positive integer. Received: n={n}")
        self.n = int(n)

    def call(self, inputs):
        shape = np.shape(value_of(inputs))
        if len(shape) != 2:
            raise ValueError(f"RepeatVector layer '{self.name}' expects inputs of rank 2 (batch, features). Received "
                             f"input of shape {shape}.")
        return ops.broadcast_to(ops.expand_dims(inputs, 1), (shape[0], self.n, shape[1]))

    def get_config(self):
        return {**super().get_config(), "n": self.n}


@builtin()
class ZeroPadding2D(Layer):
    """Add rows and columns of zeros around each image.

    Args:
        padding: an int (all four sides), `(rows, columns)` (each on both sides), or
            `((top, bottom), (left, right))`.
        data_format: "channels_last" (batch, height, width, channels) or "channels_first".
    """

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
            self.padding = ((int(padding),) * 2,) * 2
        elif hasattr(padding, "__len__") and len(padding) == 2:
            self.padding = (standardize_tuple(padding[0], 2, "1st entry of padding", allow_zero=True),
                            standardize_tuple(padding[1], 2, "2nd entry of padding", allow_zero=True))
        else:
            raise ValueError(f"`padding` should be either an int, a tuple of 2 ints (symmetric_height_pad, "
                             f"symmetric_width_pad), or a tuple of 2 tuples of 2 ints ((top_pad, bottom_pad), "
                             f"(left_pad, right_pad)). Received: padding={padding!r}.")

    def call(self, inputs):
        if np.ndim(value_of(inputs)) != 4:
            raise ValueError(f"ZeroPadding2D layer '{self.name}' expects inputs of rank 4. Received input of shape "
                             f"{np.shape(value_of(inputs))}.")
        if self.data_format == "channels_first":
            return ops.pad(inputs, ((0, 0), (0, 0)) + self.padding)
        return ops.pad(inputs, ((0, 0),) + self.padding + ((0, 0),))

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


@builtin()
class UpSampling2D(Layer):
    """Repeat each row `size[0]` times and each column `size[1]` times (nearest-neighbour upsampling).

    Args:
        size: the factors, an int or `(rows, columns)`.
        data_format: "channels_last" or "channels_first".
        interpolation: "nearest" only; Keras's "bilinear" and others raise a ValueError here.
    """

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.size = standardize_tuple(size, 2, "size")
        self.interpolation = str(interpolation).lower()
        if self.interpolation != "nearest":
            raise ValueError(f"UpSampling2D supports interpolation='nearest' only in kerasckpt. Received: "
                             f"interpolation={interpolation!r}. Use 'nearest', or resize the images before the model.")

    def call(self, inputs):
        if np.ndim(value_of(inputs)) != 4:
            raise ValueError(f"UpSampling2D layer '{self.name}' expects inputs of rank 4. Received input of shape "
                             f"{np.shape(value_of(inputs))}.")
        first = 1 if self.data_format == "channels_last" else 2
        return ops.repeat(ops.repeat(inputs, self.size[0], axis=first), self.size[1], axis=first + 1)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format,
                "interpolation": self.interpolation}
