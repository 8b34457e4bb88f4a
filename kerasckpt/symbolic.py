"""The functional API's symbolic side: KerasTensor, Node, and Operation (a `kerasckpt.ops` function as a node).

A `kerasckpt.ops` function or Python operator given a KerasTensor records an Operation node instead of
computing, as Keras 3's ops do. Files store the node under Keras's own op class (`keras.src.ops.numpy`
`Add`, `keras.src.ops.core` `Cast`, ...), so models with op nodes go both ways between the two libraries.
"""
import functools
import inspect

import numpy as np

from kerasckpt._operators import _ops
from kerasckpt._registry import register_serializable
from kerasckpt.utils import get_uid, snake_case


class KerasTensor:
    """A symbolic tensor of the functional API: a shape (None where unknown), a dtype, and where it came from.

    Operators (`x + y`, `x[:, 0]`, `-x`, `x @ w`, comparisons) and `kerasckpt.ops` functions applied to it
    record op nodes of the functional graph, as in Keras 3.
    """

    __array_ufunc__ = None  # `ndarray + KerasTensor` defers to __radd__ instead of converting

    def __init__(self, shape, dtype="float32", history=None, name=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self._keras_history = history  # (layer or operation, node_index, tensor_index)
        self.name = name
        self._keras_mask = None  # a KerasTensor (or None): the mask the layer that made this one attached

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __add__(self, other): return _ops().add(self, other)
    def __radd__(self, other): return _ops().add(other, self)
    def __sub__(self, other): return _ops().subtract(self, other)
    def __rsub__(self, other): return _ops().subtract(other, self)
    def __mul__(self, other): return _ops().multiply(self, other)
    def __rmul__(self, other): return _ops().multiply(other, self)
    def __truediv__(self, other): return _ops().true_divide(self, other)
    def __rtruediv__(self, other): return _ops().true_divide(other, self)
    def __matmul__(self, other): return _ops().matmul(self, other)
    def __rmatmul__(self, other): return _ops().matmul(other, self)
    def __pow__(self, other): return _ops().power(self, other)
    def __rpow__(self, other): return _ops().power(other, self)
    def __neg__(self): return _ops().negative(self)
    def __abs__(self): return _ops().abs(self)
    def __getitem__(self, key): return _ops().take_index(self, key)
    def __lt__(self, other): return _ops().less(self, other)
    def __le__(self, other): return _ops().less_equal(self, other)
    def __gt__(self, other): return _ops().greater(self, other)
    def __ge__(self, other): return _ops().greater_equal(self, other)
    def __ne__(self, other): return _ops().not_equal(self, other)  # `==` stays identity, as in Keras
    def __and__(self, other): return _ops().logical_and(self, other)
    def __rand__(self, other): return _ops().logical_and(other, self)
    def __or__(self, other): return _ops().logical_or(self, other)
    def __ror__(self, other): return _ops().logical_or(other, self)
    def __invert__(self): return _ops().logical_not(self)

    __hash__ = object.__hash__

    def __array__(self, *args, **kwargs):
        raise TypeError(
            f"A symbolic tensor of the functional API ({self!r}) has no values: NumPy cannot use it. Use "
            "kerasckpt.ops functions or operators on it (they record op nodes), or wrap the NumPy code in a layer.")

    def __bool__(self):
        raise TypeError(f"A symbolic tensor ({self!r}) cannot be used as a boolean: it has no values yet. Use "
                        "kerasckpt.ops.where(...) for a choice inside the model.")

    def __iter__(self):
        raise TypeError(f"Iterating over a symbolic tensor ({self!r}) is not supported. Index it (x[:, i]) instead.")


class Node:
    """One call of a layer or operation on symbolic tensors: its arguments and the tensors it produced."""

    def __init__(self, layer, call_args, call_kwargs, outputs):
        self.layer = layer
        self.call_args = call_args
        self.call_kwargs = call_kwargs
        self.outputs = outputs  # list of KerasTensors

    @property
    def input_tensors(self):
        return [t for t in flatten((self.call_args, self.call_kwargs)) if isinstance(t, KerasTensor)]


def flatten(structure):
    """The leaves of nested lists, tuples and dicts, in order."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for key in structure for leaf in flatten(structure[key])]
    return [structure]


def is_symbolic(structure):
    """Whether `structure` (a value, or nested lists, tuples and dicts) holds a KerasTensor."""
    return any(isinstance(t, KerasTensor) for t in flatten(structure))


class Operation:
    """A `kerasckpt.ops` function applied in a functional graph: Keras 3's op node (`Add`, `Mean`, ...).

    Each op call on a KerasTensor makes one Operation, named like Keras's (`add`, `add_1`, ...), whose
    config holds the op's non-tensor arguments under Keras's names; a functional model runs it on values.
    Op nodes are not layers: they have no weights and are not in `model.layers`.
    """

    keras_module = None  # e.g. "keras.src.ops.numpy"
    function = None  # the kerasckpt.ops function, unwrapped
    config_keys = ()  # Keras's names of the arguments kept in the config, in Keras's order
    defaults = {}  # Keras's name -> default value
    renames = {}  # Keras's name -> the ops function's, where they differ
    fixed = ()  # Keras-only arguments kerasckpt supports at their default value only

    def __init__(self, name=None, **config):
        unknown = sorted(set(config) - set(self.config_keys))
        if unknown:
            raise TypeError(f"Op node {type(self).__name__} got unexpected arguments {unknown}. It takes: "
                            f"{list(self.config_keys)}.")
        missing = [k for k in self.config_keys if k not in config and k not in self.defaults]
        if missing:
            raise TypeError(f"Op node {type(self).__name__} needs the arguments {missing}.")
        for key in self.fixed:
            if config.get(key, self.defaults[key]) != self.defaults[key]:
                raise ValueError(f"Op node {type(self).__name__}: kerasckpt supports only {key}="
                                 f"{self.defaults[key]!r}. Received: {key}={config[key]!r}.")
        self.name = name or get_uid(snake_case(type(self).__name__))
        self.config = {k: config.get(k, self.defaults.get(k)) for k in self.config_keys}
        self._inbound_nodes = []

    def __call__(self, *args, **kwargs):
        kwargs.pop("training", None)  # a functional model passes it to every node; ops take none
        if is_symbolic((args, kwargs)):
            return self._symbolic_call(args, kwargs)
        return self.call(*args, **kwargs)

    def call(self, *args, **kwargs):
        """The op on values: the tensor arguments given here, the others from the config."""
        own = {self.renames.get(k, k): v for k, v in self.config.items() if k not in self.fixed}
        return type(self).function(*args, **kwargs, **own)

    def _symbolic_call(self, args, kwargs):
        """Record a node: the output shape comes from running the op on zeros, unknown sizes filled twice (the
        batch axis with 1 and 2, other axes with 64 and 96); output axes that change are unknown."""
        first = self._run_on_zeros(args, kwargs, (1, 64))
        shape = first.shape
        if any(d is None for t in flatten((args, kwargs)) if isinstance(t, KerasTensor) for d in t.shape):
            try:
                second = self._run_on_zeros(args, kwargs, (2, 96)).shape
            except (ValueError, IndexError, TypeError):
                second = None  # the op needs the sizes it got: they are fixed
            if second is not None and len(second) == len(shape):
                shape = tuple(a if a == b else None for a, b in zip(shape, second))
        node_index = len(self._inbound_nodes)
        out = KerasTensor(shape, str(first.dtype), (self, node_index, 0))
        self._inbound_nodes.append(Node(self, args, kwargs, [out]))
        return out

    def _run_on_zeros(self, args, kwargs, sizes):
        def zeros(t):
            if isinstance(t, KerasTensor):
                return np.zeros(tuple(sizes[i > 0] if d is None else d for i, d in enumerate(t.shape)), dtype=t.dtype)
            if isinstance(t, (list, tuple)):
                return type(t)(zeros(v) for v in t)
            if isinstance(t, dict):
                return {k: zeros(v) for k, v in t.items()}
            return t
        return np.asarray(self.call(*zeros(args), **zeros(kwargs)))

    def get_config(self):
        """`name` and the op's non-tensor arguments under Keras's names."""
        return {"name": self.name, **self.config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} op name={self.name}>"


class GetItem(Operation):
    def call(self, x, key):
        if isinstance(key, list):  # a file stores the index tuple as a JSON list
            key = tuple(key)
        return type(self).function(x, key)


# ops function -> (Keras module under keras.src.ops, Keras class, config keys; renames {Keras: ours}; fixed)
OP_NODES = {
    **{name: ("numpy", cls, ()) for name, cls in (
        ("add", "Add"), ("subtract", "Subtract"), ("multiply", "Multiply"), ("divide", "Divide"),
        ("true_divide", "TrueDivide"), ("power", "Power"), ("maximum", "Maximum"), ("minimum", "Minimum"),
        ("matmul", "Matmul"), ("negative", "Negative"), ("square", "Square"), ("sqrt", "Sqrt"), ("exp", "Exp"),
        ("log", "Log"), ("abs", "Absolute"), ("absolute", "Absolute"), ("tanh", "Tanh"), ("where", "Where"),
        ("equal", "Equal"), ("not_equal", "NotEqual"), ("less", "Less"), ("less_equal", "LessEqual"),
        ("greater", "Greater"), ("greater_equal", "GreaterEqual"), ("sign", "Sign"), ("isnan", "Isnan"),
        ("isfinite", "Isfinite"), ("logical_and", "LogicalAnd"), ("logical_or", "LogicalOr"),
        ("logical_not", "LogicalNot"), ("take_index", "GetItem"))},
    "clip": ("numpy", "Clip", ("x_min", "x_max")),
    "reshape": ("numpy", "Reshape", ("newshape",), {"newshape": "new_shape"}),
    "transpose": ("numpy", "Transpose", ("axes",)),
    "expand_dims": ("numpy", "ExpandDims", ("axis",)),
    "squeeze": ("numpy", "Squeeze", ("axis",)),
    "concatenate": ("numpy", "Concatenate", ("axis",)),
    "stack": ("numpy", "Stack", ("axis",)),
    "take": ("numpy", "Take", ("axis",)),
    "take_along_axis": ("numpy", "TakeAlongAxis", ("axis",)),
    "sum": ("numpy", "Sum", ("axis", "keepdims")),
    "mean": ("numpy", "Mean", ("axis", "keepdims")),
    "max": ("numpy", "Max", ("axis", "keepdims", "initial"), {}, ("initial",)),
    "min": ("numpy", "Min", ("axis", "keepdims", "initial"), {}, ("initial",)),
    "any": ("numpy", "Any", ("axis", "keepdims")),
    "all": ("numpy", "All", ("axis", "keepdims")),
    "argmax": ("numpy", "Argmax", ("axis", "keepdims")),
    "argmin": ("numpy", "Argmin", ("axis", "keepdims")),
    "round": ("numpy", "Round", ("decimals",)),
    "repeat": ("numpy", "Repeat", ("repeats", "axis")),
    "pad": ("numpy", "Pad", ("pad_width", "mode")),
    "broadcast_to": ("numpy", "BroadcastTo", ("shape",)),
    "zeros_like": ("numpy", "ZerosLike", ("dtype",)),
    "ones_like": ("numpy", "OnesLike", ("dtype",)),
    **{name: ("nn", cls, ()) for name, cls in (
        ("relu", "Relu"), ("sigmoid", "Sigmoid"), ("softplus", "Softplus"), ("silu", "Silu"))},
    "softmax": ("nn", "Softmax", ("axis",)),
    "log_softmax": ("nn", "LogSoftmax", ("axis",)),
    "gelu": ("nn", "Gelu", ("approximate",)),
    "leaky_relu": ("nn", "LeakyRelu", ("negative_slope",)),
    "cast": ("core", "Cast", ("dtype",)),
    "stop_gradient": ("core", "StopGradient", ()),
    "logsumexp": ("math", "Logsumexp", ("axis", "keepdims")),
    "erf": ("math", "Erf", ()),
}
_OP_DEFAULTS = {"initial": None}  # defaults of Keras-only arguments
OP_CLASSES = {}  # Keras class name -> Operation subclass


def dispatching(name, fn):
    """`fn` (the ops function `name`) that records an op node when given a KerasTensor, as Keras 3's ops do."""
    module, class_name, keys, renames, fixed = (OP_NODES[name] + ({}, ()))[:5]
    signature = inspect.signature(fn)
    ours = {renames.get(k, k) for k in keys}
    params = list(signature.parameters)
    first_config = min([params.index(p) for p in ours if p in params], default=len(params))
    op_class = OP_CLASSES.get(class_name)
    if op_class is None:
        defaults = {k: _OP_DEFAULTS[k] if k in _OP_DEFAULTS else signature.parameters[renames.get(k, k)].default
                    for k in keys}
        defaults = {k: v for k, v in defaults.items() if v is not inspect.Parameter.empty}
        base = GetItem if class_name == "GetItem" else Operation
        op_class = type(class_name, (base,), {
            "__doc__": f"The op node of `kerasckpt.ops.{name}` (Keras's `keras.src.ops.{module}.{class_name}`).",
            "__module__": __name__, "keras_module": f"keras.src.ops.{module}", "function": staticmethod(fn),
            "config_keys": keys, "defaults": defaults, "renames": renames, "fixed": fixed})
        OP_CLASSES[class_name] = register_serializable("kerasckpt.ops", class_name)(op_class)

    def record(args, kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        config, call_args, call_kwargs = {}, [], {}
        for i, (param, value) in enumerate(bound.arguments.items()):
            if param in ours:
                config[next(k for k in keys if renames.get(k, k) == param)] = value
            elif i < first_config:
                call_args.append(value)
            else:
                call_kwargs[param] = value
        return op_class(**config)(*call_args, **call_kwargs)

    @functools.wraps(fn)
    def op(*args, **kwargs):
        for i, a in enumerate(args):
            cls = a.__class__
            if cls is KerasTensor or (i == 0 and (cls is list or cls is tuple) and is_symbolic(a)):
                return record(args, kwargs)
        return fn(*args, **kwargs)

    return op
