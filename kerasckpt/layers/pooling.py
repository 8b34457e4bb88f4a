"""Pooling layers: MaxPooling1D/2D, AveragePooling1D/2D and their global forms."""
import numpy as np

from kerasckpt import ops
from kerasckpt._registry import builtin
from kerasckpt.autograd import value_of
from kerasckpt.layers.arguments import standardize_data_format, standardize_padding, standardize_tuple
from kerasckpt.layers.base import Layer


class BasePooling(Layer):
    """Max or average over windows of `pool_size`, moved by `strides` (`pool_size` when None)."""

    rank, mode = None, None

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.pool_size = standardize_tuple(pool_size, self.rank, "pool_size")
        self.strides = standardize_tuple(self.pool_size if strides is None else strides, self.rank, "strides")
        self.padding = standardize_padding(padding)
        self.data_format = standardize_data_format(data_format)
        self.built = True  # no weights: built at construction, as in Keras (no build_config in files)

    def call(self, inputs):
        ndim = np.ndim(value_of(inputs))
        if ndim != self.rank + 2:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' expects inputs of rank {self.rank + 2} "
                             f"(batch, {self.rank} spatial axes, channels). Received input of shape "
                             f"{np.shape(value_of(inputs))}.")
        pool = ops.max_pool if self.mode == "max" else ops.average_pool
        return pool(inputs, self.pool_size, self.strides, self.padding, self.data_format)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "padding": self.padding, "strides": self.strides,
                "data_format": self.data_format}


@builtin()
class MaxPooling1D(BasePooling):
    """The largest value of each window along the steps axis.

    Args:
        pool_size: the window length (2 by default).
        strides: how far windows move; `pool_size` when None.
        padding: "valid" (only whole windows) or "same" (pad so that the output has `ceil(steps / strides)`).
        data_format: "channels_last" (batch, steps, features) or "channels_first".
    """

    rank, mode = 1, "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)


@builtin()
class MaxPooling2D(BasePooling):
    """The largest value of each window over height and width.

    Args:
        pool_size: the window size, an int or `(height, width)`; `(2, 2)` by default.
        strides: how far windows move; `pool_size` when None.
        padding: "valid" or "same".
        data_format: "channels_last" (batch, height, width, channels) or "channels_first".
    """

    rank, mode = 2, "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)


@builtin()
class AveragePooling1D(BasePooling):
    """The mean of each window along the steps axis (padding is not counted with "same").

    Args:
        pool_size: the window length.
        strides: how far windows move; `pool_size` when None.
        padding: "valid" or "same".
        data_format: "channels_last" or "channels_first".
    """

    rank, mode = 1, "average"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)


@builtin()
class AveragePooling2D(BasePooling):
    """The mean of each window over height and width (padding is not counted with "same").

    Args:
        pool_size: the window size, an int or `(height, width)`.
        strides: how far windows move; `pool_size` when None.
        padding: "valid" or "same".
        data_format: "channels_last" or "channels_first".
    """

    rank, mode = 2, "average"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)


class BaseGlobalPooling(Layer):
    """Max or mean over every spatial axis."""

    rank, mode = None, None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.keepdims = bool(keepdims)
        self.built = True

    def _spatial_axes(self, inputs):
        shape = np.shape(value_of(inputs))
        if len(shape) != self.rank + 2:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' expects inputs of rank {self.rank + 2}. "
                             f"Received input of shape {shape}.")
        first = 1 if self.data_format == "channels_last" else 2
        return tuple(range(first, first + self.rank))

    def call(self, inputs):
        reduce = ops.max if self.mode == "max" else ops.mean
        return reduce(inputs, axis=self._spatial_axes(inputs), keepdims=self.keepdims)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


@builtin()
class GlobalAveragePooling1D(BaseGlobalPooling):
    """The mean over the steps axis; with a `mask` (batch, steps), the mean of the unmasked steps only.

    Args:
        data_format: "channels_last" (batch, steps, features) or "channels_first".
        keepdims: keep the steps axis with length 1.
    """

    rank, mode = 1, "average"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format, keepdims, **kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        axes = self._spatial_axes(inputs)
        if mask is None:
            return ops.mean(inputs, axis=axes, keepdims=self.keepdims)
        keep = np.expand_dims(np.asarray(value_of(mask)).astype(bool), 2 if self.data_format == "channels_last" else 1)
        total = ops.sum(ops.where(keep, inputs, 0.0), axis=axes, keepdims=self.keepdims)
        dtype = np.asarray(value_of(total)).dtype
        return ops.divide(total, np.sum(keep, axis=axes, keepdims=self.keepdims).astype(dtype))

    def compute_mask(self, inputs, mask=None):
        """None: the steps axis is gone."""
        return None


@builtin()
class GlobalAveragePooling2D(BaseGlobalPooling):
    """The mean over height and width.

    Args:
        data_format: "channels_last" or "channels_first".
        keepdims: keep the spatial axes with length 1.
    """

    rank, mode = 2, "average"


@builtin()
class GlobalMaxPooling1D(BaseGlobalPooling):
    """The largest value over the steps axis (Keras's layer takes no mask).

    Args:
        data_format: "channels_last" or "channels_first".
        keepdims: keep the steps axis with length 1.
    """

    rank, mode = 1, "max"


@builtin()
class GlobalMaxPooling2D(BaseGlobalPooling):
    """The largest value over height and width.

    Args:
        data_format: "channels_last" or "channels_first".
        keepdims: keep the spatial axes with length 1.
    """

    rank, mode = 2, "max"
