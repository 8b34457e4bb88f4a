"""Argument checks shared by the convolution, pooling and reshaping layers, with Keras's rules and messages."""
import warnings

import numpy as np


def standardize_tuple(value, n, name, allow_zero=False):
    """`value` (an int or `n` ints) as a tuple of `n` ints, each positive (or zero when `allow_zero`)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise ValueError(f"The `{name}` argument must be an int or a tuple of {n} ints. "
                             f"Received: {name}={value!r}") from None
        if len(values) != n or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in values):
            raise ValueError(f"The `{name}` argument must be an int or a tuple of {n} ints. "
                             f"Received: {name}={value!r}")
        values = tuple(int(v) for v in values)
    smallest = 0 if allow_zero else 1
    if any(v < smallest for v in values):
        raise ValueError(f"The `{name}` argument must be {'non-negative' if allow_zero else 'positive'}. "
                         f"Received: {name}={value!r}")
    return values


def standardize_data_format(data_format):
    """`data_format` checked: "channels_last" (the default) or "channels_first"."""
    data_format = "channels_last" if data_format is None else str(data_format).lower()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"The `data_format` argument must be one of 'channels_first', 'channels_last'. "
                         f"Received: data_format={data_format!r}")
    return data_format


def standardize_padding(padding, allowed=("valid", "same")):
    """`padding` lower-cased and checked against `allowed`."""
    value = padding.lower() if isinstance(padding, str) else padding
    if value not in allowed:
        raise ValueError(f"The `padding` argument must be one of {list(allowed)}. Received: padding={padding!r}")
    return value


def refuse_unsupported(layer_class, **arguments):
    """Raise for regularizers and constraints, which kerasckpt would not apply (never drop them silently)."""
    for name, value in arguments.items():
        if value is not None:
            raise ValueError(f"{layer_class} does not support `{name}` in kerasckpt. Received: {name}={value!r}. "
                             "Remove the argument (add a penalty to the loss in a custom training loop instead).")


def take_lora(layer_class, kwargs):
    """Pop Keras's LoRA arguments: saved files hold the merged kernel, so a warning says training differs."""
    rank, _ = kwargs.pop("lora_rank", None), kwargs.pop("lora_alpha", None)
    if rank:
        warnings.warn(f"{layer_class}: LoRA (lora_rank={rank!r}) is not implemented in kerasckpt. Keras saves the "
                      "kernel with the LoRA update merged in, so predictions are the same, but training here "
                      "updates the whole kernel.", stacklevel=3)
