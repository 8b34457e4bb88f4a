"""EinsumDense: a dense layer whose product is an einsum equation (the projections inside attention)."""
import re
import warnings

from kerasckpt import activations, initializers, ops
from kerasckpt._registry import builtin
from kerasckpt.layers.base import Layer


@builtin()
class EinsumDense(Layer):
    """`activation(einsum(equation, inputs, kernel) + bias)`, the kernel's shape read from the equation.

    Args:
        equation: `"<input>,<kernel>-><output>"`, e.g. `"abc,cde->abde"`; `...` may stand for leading or
            trailing input axes, as in Keras.
        output_shape: the output's shape without the batch axis (None for axes taken from the input).
        activation: a name or function; linear when None.
        bias_axes: the output axes (letters) that get a bias; no bias when None.
        kernel_initializer: glorot_uniform by default; fans are counted over the kernel's input and output
            axes, as Keras does for every variance-scaling initializer.
        bias_initializer: zeros by default.
    """

    def __init__(self, equation, output_shape, activation=None, bias_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, lora_rank=None, lora_alpha=None, gptq_unpacked_column_size=None,
                 quantization_config=None, **kwargs):
        for arg, value in (("kernel_regularizer", kernel_regularizer), ("bias_regularizer", bias_regularizer),
                           ("kernel_constraint", kernel_constraint), ("bias_constraint", bias_constraint)):
            if value is not None:
                raise ValueError(f"EinsumDense does not support `{arg}` in kerasckpt. Received: {arg}={value!r}. "
                                 "Remove the argument.")
        if quantization_config is not None:
            raise ValueError("EinsumDense does not support quantized layers in kerasckpt. Received: quantization_"
                             f"config={quantization_config!r}. Save the model unquantized in Keras, then load it here.")
        if lora_rank:
            warnings.warn(f"EinsumDense: LoRA (lora_rank={lora_rank!r}) is not implemented in kerasckpt. Keras saves "
                          "the kernel with the LoRA update merged in, so outputs are the same, but training here "
                          "updates the whole kernel.", stacklevel=2)
        super().__init__(**kwargs)
        self.equation = equation
        self.partial_output_shape = (output_shape,) if isinstance(output_shape, int) else tuple(output_shape)
        self.bias_axes = bias_axes
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape):
        kernel_shape, bias_shape, _, input_axes, output_axes = analyze_einsum_string(
            self.equation, self.bias_axes, tuple(input_shape), self.partial_output_shape)
        init = self.kernel_initializer
        if hasattr(init, "input_axes") and (init.input_axes is None or init.output_axes is None):
            init = type(init).from_config({**init.get_config(), "input_axes": input_axes, "output_axes": output_axes})
        self.kernel = self.add_weight(tuple(kernel_shape), init, name="kernel")
        self.bias = self.add_weight(tuple(bias_shape), self.bias_initializer, name="bias") \
            if bias_shape is not None else None

    def compute_output_shape(self, input_shape):
        return tuple(analyze_einsum_string(self.equation, self.bias_axes, tuple(input_shape),
                                           self.partial_output_shape)[2])

    def call(self, inputs, training=None):
        x = ops.einsum(self.equation, inputs, self.kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "output_shape": self.partial_output_shape, "equation": self.equation,
                "activation": activations.serialize(self.activation), "bias_axes": self.bias_axes,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer), "kernel_regularizer": None,
                "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                "bias_constraint": None, "quantization_config": None}


def analyze_einsum_string(equation, bias_axes, input_shape, output_shape):
    """`(kernel_shape, bias_shape, full_output_shape, input_axes, output_axes)` for an EinsumDense equation,
    following Keras's rules for `...` on the left or the right of the input spec."""
    dotted = re.sub(r"\.\.\.", "0", equation)
    for pattern, left in (("([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)$", False),
                          ("0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)$", True),
                          ("([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0$", False)):
        match = re.match(pattern, dotted)
        if match:
            return _analyze_split(match.group(1), match.group(2), match.group(3), bias_axes, input_shape,
                                  output_shape, left)
    raise ValueError(f"Invalid einsum equation '{equation}'. Equations must be in the form [X],[Y]->[Z], "
                     "...[X],[Y]->...[Z], or [X]...,[Y]->[Z]....")


def _analyze_split(input_spec, weight_spec, output_spec, bias_axes, input_shape, output_shape, left_elided):
    elided = len(input_shape) - len(input_spec)
    output_shape = [input_shape[0]] + list(output_shape)
    if elided > 0 and left_elided:
        for i in range(1, elided):
            output_shape.insert(1, input_shape[i])
    elif elided > 0:
        output_shape.extend(input_shape[len(input_shape) - elided:])
    if left_elided:
        input_dim = {dim: (i + elided) - len(input_shape) for i, dim in enumerate(input_spec)}
        output_dim = {dim: i + elided for i, dim in enumerate(output_spec)}
    else:
        input_dim = {dim: i for i, dim in enumerate(input_spec)}
        output_dim = {dim: i for i, dim in enumerate(output_spec)}
    for dim in input_spec:
        if dim in output_dim:
            at_output = output_shape[output_dim[dim]]
            if at_output is not None and at_output != input_shape[input_dim[dim]]:
                raise ValueError(f"Input shape and output shape do not match at shared dimension '{dim}'. Input shape "
                                 f"is {input_shape[input_dim[dim]]}, and output shape is {at_output}.")
    for dim in output_spec:
        if dim not in input_spec and dim not in weight_spec:
            raise ValueError(f"Dimension '{dim}' was specified in the output '{output_spec}' but has no corresponding "
                             f"dim in the input spec '{input_spec}' or weight spec '{output_spec}'")
    weight_shape, input_axes, output_axes = [], [], []
    for i, dim in enumerate(weight_spec):
        if dim in output_dim:
            weight_shape.append(output_shape[output_dim[dim]])
            output_axes.append(i)
        elif dim in input_dim:
            weight_shape.append(input_shape[input_dim[dim]])
            input_axes.append(i)
        else:
            raise ValueError(f"Weight dimension '{dim}' did not have a match in either the input spec '{input_spec}' "
                             f"or the output spec '{output_spec}'. For this layer, the weight must be fully specified.")
    bias_shape = None
    if bias_axes is not None:
        offset = elided if left_elided else 0
        sizes = {char: output_shape[i + offset] for i, char in enumerate(output_spec)}
        for char in bias_axes:
            if char not in output_spec:
                raise ValueError(f"Bias dimension '{char}' was requested, but is not part of the output spec "
                                 f"'{output_spec}'")
        first = min(output_spec.find(char) for char in bias_axes)
        bias_shape = [sizes[char] if char in bias_axes else 1 for char in output_spec[first:]]
        if not left_elided:
            bias_shape.extend([1] * elided)
    return weight_shape, bias_shape, output_shape, input_axes, output_axes
