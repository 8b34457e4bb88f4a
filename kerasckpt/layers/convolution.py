"""Convolution layers: Conv1D, Conv2D and Conv2DTranspose."""
import numpy as np

from kerasckpt import activations, initializers, ops
from kerasckpt._registry import builtin
from kerasckpt.autograd import value_of
from kerasckpt.layers.arguments import (refuse_unsupported, standardize_data_format, standardize_padding,
                                        standardize_tuple, take_lora)
from kerasckpt.layers.base import Layer


def _positive_int(value, name, layer_class):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Invalid value for argument `{name}` of {layer_class}. Expected a strictly positive "
                         f"integer. Received {name}={value!r}.")
    return int(value)


class BaseConv(Layer):
    """`activation(conv(inputs, kernel) + bias)` over `rank` spatial axes; the kernel has shape
    `(*kernel_size, channels // groups, filters)`, as in Keras."""

    rank = None
    _autocast_integers = True

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1, groups=1,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        name = type(self).__name__
        refuse_unsupported(name, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                           activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                           bias_constraint=bias_constraint)
        take_lora(name, kwargs)
        super().__init__(**kwargs)
        self.filters = _positive_int(filters, "filters", name)
        self.groups = _positive_int(groups, "groups", name)
        if self.filters % self.groups:
            raise ValueError(f"The number of filters must be evenly divisible by the number of groups. Received: "
                             f"groups={self.groups}, filters={self.filters}.")
        self.kernel_size = standardize_tuple(kernel_size, self.rank, "kernel_size")
        self.strides = standardize_tuple(strides, self.rank, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, self.rank, "dilation_rate")
        self.padding = standardize_padding(padding, ("valid", "same", "causal") if self.rank == 1 else ("valid", "same"))
        self.data_format = standardize_data_format(data_format)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"`strides > 1` not supported in conjunction with `dilation_rate > 1`. Received: "
                             f"strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def _channels(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' expects inputs of rank {self.rank + 2} "
                             f"(batch, {self.rank} spatial axes, channels). Received input_shape={tuple(input_shape)}.")
        channels = input_shape[-1 if self.data_format == "channels_last" else 1]
        if channels is None:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' needs the channel axis of its input to be "
                             f"known. Received input_shape={tuple(input_shape)}.")
        return channels

    def build(self, input_shape):
        channels = self._channels(input_shape)
        if channels % self.groups:
            raise ValueError(f"The number of input channels must be evenly divisible by the number of groups. "
                             f"Received groups={self.groups}, but the input has {channels} channels (full input "
                             f"shape is {tuple(input_shape)}).")
        self.kernel = self.add_weight(self.kernel_size + (channels // self.groups, self.filters),
                                      self.kernel_initializer, name="kernel")
        self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias") if self.use_bias else None

    def _check_channels(self, inputs, expected):
        shape = np.shape(value_of(inputs))
        got = shape[-1 if self.data_format == "channels_last" else 1] if len(shape) == self.rank + 2 else None
        if got != expected:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' was built for inputs of rank {self.rank + 2} "
                             f"with {expected} channels, but received input of shape {shape}. Check the model's "
                             "input shape.")

    def _finish(self, outputs):
        if self.bias is not None:
            bias = self.bias if self.data_format == "channels_last" else \
                ops.reshape(self.bias, (self.filters,) + (1,) * self.rank)
            outputs = ops.add(outputs, bias)
        return self.activation(outputs)

    def call(self, inputs):
        self._check_channels(inputs, self.kernel.shape[-2] * self.groups)
        padding = self.padding
        if padding == "causal":  # Conv1D: pad the steps axis on the left only
            left = self.dilation_rate[0] * (self.kernel_size[0] - 1)
            widths = [(0, 0), (left, 0), (0, 0)] if self.data_format == "channels_last" else [(0, 0), (0, 0), (left, 0)]
            inputs, padding = ops.pad(inputs, widths), "valid"
        return self._finish(ops.conv(inputs, self.kernel, self.strides, padding, self.data_format, self.dilation_rate))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": self.dilation_rate, "groups": self.groups,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer), "kernel_regularizer": None,
                "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                "bias_constraint": None}


@builtin()
class Conv1D(BaseConv):
    """1-D convolution over the steps axis: `activation(conv(inputs, kernel) + bias)`.

    Args:
        filters: the number of output channels.
        kernel_size: the window length (an int or a 1-tuple).
        strides, dilation_rate: step between windows, and between the taps of a window (not both above 1).
        padding: "valid", "same" (output length `ceil(steps / strides)`) or "causal" (zeros on the left only,
            so an output step never sees later inputs).
        data_format: "channels_last" (batch, steps, channels) or "channels_first".
        groups: split the channels into this many groups, each convolved with `filters // groups` filters.
        activation, use_bias, kernel_initializer, bias_initializer: as for Dense.
    """

    rank = 1


@builtin()
class Conv2D(BaseConv):
    """2-D convolution over height and width: `activation(conv(inputs, kernel) + bias)`.

    Args:
        filters: the number of output channels.
        kernel_size: the window size, an int or `(height, width)`.
        strides, dilation_rate: step between windows, and between the taps of a window (not both above 1).
        padding: "valid" (whole windows only) or "same" (zeros around, TensorFlow's split: output size
            `ceil(size / strides)`).
        data_format: "channels_last" (batch, height, width, channels) or "channels_first".
        groups: split the channels into this many groups, each convolved with `filters // groups` filters.
        activation, use_bias, kernel_initializer, bias_initializer: as for Dense.
    """

    rank = 2


@builtin()
class Conv2DTranspose(BaseConv):
    """Transposed 2-D convolution (the gradient of Conv2D for its input), e.g. to upsample feature maps.

    The kernel has shape `(*kernel_size, filters, channels)`, as in Keras.

    Args:
        filters: the number of output channels.
        kernel_size: the window size, an int or `(height, width)`.
        strides: the upsampling factor; dilation_rate: between the taps of a window (not both above 1).
        padding: "valid" or "same" (output size `size * strides`).
        output_padding: None, or an int or 2-tuple below `strides`, added to the output size.
        data_format: "channels_last" or "channels_first".
        activation, use_bias, kernel_initializer, bias_initializer: as for Dense.
    """

    rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, 1, activation, use_bias,
                         kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, **kwargs)
        self.output_padding = None if output_padding is None else \
            standardize_tuple(output_padding, self.rank, "output_padding", allow_zero=True)
        for i, (pad, stride) in enumerate(zip(self.output_padding or (), self.strides)):
            if pad >= stride:
                raise ValueError(f"`output_padding` must be strictly less than `strides` for all dimensions. At "
                                 f"dimension {i}, `output_padding` is {pad} but `strides` is {stride}. Received: "
                                 f"output_padding={self.output_padding}, strides={self.strides}")

    def build(self, input_shape):
        channels = self._channels(input_shape)
        self.kernel = self.add_weight(self.kernel_size + (self.filters, channels), self.kernel_initializer,
                                      name="kernel")
        self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias") if self.use_bias else None

    def call(self, inputs):
        self._check_channels(inputs, self.kernel.shape[-1])
        return self._finish(ops.conv_transpose(inputs, self.kernel, self.strides, self.padding, self.output_padding,
                                               self.data_format, self.dilation_rate))

    def get_config(self):
        config = super().get_config()
        del config["groups"]
        order = list(config)
        order.insert(order.index("padding") + 1, "output_padding")
        config["output_padding"] = self.output_padding
        return {key: config[key] for key in order}
