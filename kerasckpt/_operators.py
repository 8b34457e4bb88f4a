"""Python operators (`a + b`, `a @ b`, `a[i]`, ...) for Tensors and Variables, routed to `ops`.

The import of `ops` is deferred to call time because `ops` itself sits above the classes that
inherit these operators.
"""
import numpy as np


_modules = {}


def _ops():
    ops = _modules.get("ops")
    if ops is None:  # first use: `ops` is importable only once the package has loaded
        from kerasckpt import ops
        _modules["ops"] = ops
    return ops


class TensorOperators:
    """Arithmetic, comparison, indexing and NumPy interop shared by Tensor and Variable."""

    __slots__ = ()  # keeps Tensor a slotted class; Variable (no __slots__) still has a __dict__
    __array_priority__ = 100  # ndarray <op> tensor defers to our reflected operators

    def __add__(self, other): return _ops().add(self, other)
    def __radd__(self, other): return _ops().add(other, self)
    def __sub__(self, other): return _ops().subtract(self, other)
    def __rsub__(self, other): return _ops().subtract(other, self)
    def __mul__(self, other): return _ops().multiply(self, other)
    def __rmul__(self, other): return _ops().multiply(other, self)
    def __truediv__(self, other): return _ops().divide(self, other)
    def __rtruediv__(self, other): return _ops().divide(other, self)
    def __matmul__(self, other): return _ops().matmul(self, other)
    def __rmatmul__(self, other): return _ops().matmul(other, self)
    def __pow__(self, other): return _ops().power(self, other)
    def __rpow__(self, other): return _ops().power(other, self)
    def __neg__(self): return _ops().negative(self)
    def __pos__(self): return self
    def __abs__(self): return _ops().abs(self)
    def __getitem__(self, key): return _ops().take_index(self, key)
    def __lt__(self, other): return _ops().less(self, other)
    def __le__(self, other): return _ops().less_equal(self, other)
    def __gt__(self, other): return _ops().greater(self, other)
    def __ge__(self, other): return _ops().greater_equal(self, other)

    def __array__(self, dtype=None, copy=None):
        value = np.asarray(self._array())
        if dtype is not None and value.dtype != dtype:
            if copy is False:
                raise ValueError(f"Cannot convert a {value.dtype} tensor to {np.dtype(dtype)} without a copy.")
            return value.astype(dtype)
        return value.copy() if copy else value

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NumPy ufuncs on tensors: differentiable where `ops` has the ufunc, plain NumPy otherwise."""
        diff = _ops().UFUNC_OPS.get(ufunc) if method == "__call__" and not kwargs else None
        if diff is not None:
            return diff(*inputs)
        arrays = [np.asarray(x) if isinstance(x, TensorOperators) else x for x in inputs]
        return getattr(ufunc, method)(*arrays, **kwargs)

    def __float__(self): return float(self._array())
    def __int__(self): return int(self._array())
    def __bool__(self): return bool(self._array())
    def __len__(self): return len(self._array())
    def __iter__(self): return (self[i] for i in range(len(self)))
    def __format__(self, spec):
        value = np.asarray(self._array())
        return format(value.item() if value.ndim == 0 else value, spec)

    @property
    def shape(self): return self._array().shape
    @property
    def dtype(self): return self._array().dtype
    @property
    def ndim(self): return self._array().ndim
    @property
    def size(self): return self._array().size
    @property
    def T(self): return _ops().transpose(self)

    def item(self): return self._array().item()
    def tolist(self): return self._array().tolist()
