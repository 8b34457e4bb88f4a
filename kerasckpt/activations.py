"""Activation functions by name, as in `keras.activations`."""
from kerasckpt import ops


def relu(x):
    """`max(x, 0)`."""
    return ops.relu(x)


def sigmoid(x):
    """`1 / (1 + exp(-x))`."""
    return ops.sigmoid(x)


def tanh(x):
    """Hyperbolic tangent."""
    return ops.tanh(x)


def softmax(x, axis=-1):
    """Softmax over `axis`."""
    return ops.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    """Log of the softmax over `axis`."""
    return ops.log_softmax(x, axis=axis)


def gelu(x, approximate=False):
    """Gaussian error linear unit (exact unless `approximate`)."""
    return ops.gelu(x, approximate=approximate)


def softplus(x):
    """`log(1 + exp(x))`."""
    return ops.softplus(x)


def silu(x):
    """`x * sigmoid(x)`."""
    return ops.silu(x)


def linear(x):
    """The identity."""
    return x


_BY_NAME = {f.__name__: f for f in (relu, sigmoid, tanh, softmax, log_softmax, gelu, softplus, silu, linear)}
_BY_NAME["swish"] = silu


def get(identifier):
    """The activation function for a name, None (linear) or a callable."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(f"Unknown activation: {identifier!r}. Use one of: {', '.join(sorted(_BY_NAME))}.")
        return _BY_NAME[identifier]
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret activation: {identifier!r}. Pass a name such as 'relu' or a function.")


def serialize(fn):
    """The name Keras writes in configs for an activation function."""
    name = getattr(fn, "__name__", None)
    if _BY_NAME.get(name) is fn:
        return name
    raise ValueError(
        f"Activation {fn!r} is not one of kerasckpt's named activations and cannot be saved in a config. "
        f"Use one of: {', '.join(sorted(_BY_NAME))}.")
