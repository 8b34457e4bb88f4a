"""Variable: a named, mutable array with a stable `.path`, the unit of everything saved."""
import contextlib
import weakref

import numpy as np

from kerasckpt._operators import TensorOperators

_name_scopes = []
_live = weakref.WeakSet()  # every Variable alive: `init_from_checkpoint` finds variables by name, as TF1 does


def live_variables():
    """Every Variable that exists now (held weakly; dead ones may linger until garbage collection)."""
    return list(_live)


@contextlib.contextmanager
def name_scope(name):
    """Prefix the `.path` of variables created inside with `name/`."""
    _name_scopes.append(name)
    try:
        yield
    finally:
        _name_scopes.pop()


def current_path(name):
    return "/".join(_name_scopes + [name])


class Variable(TensorOperators):
    """A mutable array: the weights of layers, the slots of optimizers, counters.

    Args:
        initializer: an array-like initial value, or a callable `(shape, dtype) -> array`
            (an initializer) together with `shape`.
        shape: required when `initializer` is callable.
        dtype: defaults to float32 for floating values, to the value's own dtype otherwise.
        trainable: whether optimizers update it and `GradientTape` watches it.
        name: the last component of `.path`; `path` is the enclosing name scopes plus `name`.
    """

    def __init__(self, initializer, shape=None, dtype=None, trainable=True, name=None):
        self.name = name or "variable"
        self.path = current_path(self.name)
        self.trainable = bool(trainable)
        if callable(initializer):
            if shape is None:
                raise ValueError(f"Variable '{self.path}' has a callable initializer but no `shape`. Pass shape=(...).")
            value = initializer(tuple(shape), dtype or "float32")
        else:
            value = initializer
        value = np.asarray(value)
        if dtype is None:
            dtype = "float32" if value.dtype.kind in "fc" or value.dtype == object else value.dtype
        self._value = np.array(value, dtype=dtype, copy=True)
        if shape is not None and tuple(shape) != self._value.shape:
            raise ValueError(
                f"Variable '{self.path}' was given shape {tuple(shape)} but its initial value has shape "
                f"{self._value.shape}. Make them agree.")
        self._on_assign = None  # set by checkpoint machinery that needs to know about writes
        _live.add(self)

    def _array(self):
        return self._value

    @property
    def value(self):
        """The current value (the live array; treat it as read-only)."""
        return self._value

    def numpy(self):
        """A copy of the current value."""
        return self._value.copy()

    def assign(self, value):
        """Set the value in place; the shape must stay the same."""
        value = np.asarray(value)
        if value.shape != self._value.shape:
            raise ValueError(
                f"Cannot assign a value of shape {value.shape} to variable '{self.path}' of shape "
                f"{self._value.shape}. Reshape the value or rebuild the layer.")
        np.copyto(self._value, value, casting="unsafe")
        return self

    def assign_add(self, delta):
        self._value += np.asarray(delta, dtype=self._value.dtype)
        return self

    def assign_sub(self, delta):
        self._value -= np.asarray(delta, dtype=self._value.dtype)
        return self

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self._value.shape}, dtype={self._value.dtype}>"

    __hash__ = object.__hash__  # identity, like Keras variables

    def __eq__(self, other):
        return self is other
