"""Differentiable NumPy-like ops for `call()`, losses and custom loops.

Each op computes its result with NumPy and records one `backward(grad)` closure that returns a
gradient per input, reduced to that input's shape. Inputs may be Tensors, Variables, NumPy arrays
or Python numbers; results are Tensors (`.numpy()`, `float()`, and NumPy functions work on them).
"""
import math

import numpy as np

from kerasckpt.autograd import Tensor, needs_grad, record, unbroadcast, value_of
from kerasckpt.variables import Variable


def _v(x):
    """The array behind `x`; lists become float32 arrays, Python scalars stay weakly typed."""
    if isinstance(x, Tensor):
        return x.value
    if isinstance(x, Variable):
        return x._value
    if isinstance(x, (np.ndarray, np.generic, int, float, bool)):
        return x
    arr = np.asarray(x)
    return arr.astype("float32") if arr.dtype == np.float64 else arr


def _shape(x):
    return np.shape(x)


def convert_to_tensor(x, dtype=None):
    """`x` as a Tensor (float64 data becomes float32 unless `dtype` says otherwise)."""
    if isinstance(x, Tensor) and dtype is None:
        return x
    arr = np.asarray(_v(x))
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif arr.dtype == np.float64:
        arr = arr.astype("float32")
    return Tensor(arr)


def stop_gradient(x):
    """`x` with no gradient flowing back through it."""
    return Tensor(np.asarray(_v(x)))


def cast(x, dtype):
    """`x` converted to `dtype`; gradients pass through between floating dtypes."""
    xv = np.asarray(_v(x))
    out = xv.astype(dtype)
    def backward(g):
        return (g.astype(xv.dtype) if xv.dtype.kind == "f" else None,)
    return record(out, (x,), backward)


# ---------------------------------------------------------------- elementwise arithmetic

def add(x, y):
    """Elementwise `x + y` with NumPy broadcasting."""
    xv, yv = _v(x), _v(y)
    sx, sy = _shape(xv), _shape(yv)
    def backward(g):
        return unbroadcast(g, sx), unbroadcast(g, sy)
    return record(xv + yv, (x, y), backward)


def subtract(x, y):
    """Elementwise `x - y` with NumPy broadcasting."""
    xv, yv = _v(x), _v(y)
    sx, sy = _shape(xv), _shape(yv)
    def backward(g):
        return unbroadcast(g, sx), unbroadcast(-g, sy)
    return record(xv - yv, (x, y), backward)


def multiply(x, y):
    """Elementwise `x * y` with NumPy broadcasting."""
    xv, yv = _v(x), _v(y)
    def backward(g):
        return unbroadcast(g * yv, _shape(xv)), unbroadcast(g * xv, _shape(yv))
    return record(xv * yv, (x, y), backward)


def divide(x, y):
    """Elementwise `x / y` with NumPy broadcasting."""
    xv, yv = _v(x), _v(y)
    out = xv / yv
    def backward(g):
        gx = g / yv
        return unbroadcast(gx, _shape(xv)), unbroadcast(-gx * out, _shape(yv))
    return record(out, (x, y), backward)


true_divide = divide


def negative(x):
    """Elementwise `-x`."""
    def backward(g):
        return (-g,)
    return record(-_v(x), (x,), backward)


def power(x, y):
    """Elementwise `x ** y`; the gradient for `y` uses `log(x)` and is taken only where needed."""
    xv, yv = _v(x), _v(y)
    out = np.power(xv, yv)
    y_needs = needs_grad(y)
    def backward(g):
        gx = unbroadcast(g * yv * np.power(xv, yv - 1), _shape(xv))
        gy = None
        if y_needs:
            with np.errstate(divide="ignore", invalid="ignore"):
                gy = unbroadcast(np.where(xv > 0, g * out * np.log(np.where(xv > 0, xv, 1)), 0), _shape(yv))
        return gx, gy
    return record(out, (x, y), backward)


def square(x):
    """Elementwise `x ** 2`."""
    xv = _v(x)
    def backward(g):
        return (2 * g * xv,)
    return record(np.square(xv), (x,), backward)


def sqrt(x):
    """Elementwise square root."""
    out = np.sqrt(_v(x))
    def backward(g):
        return (g / (2 * out),)
    return record(out, (x,), backward)


def exp(x):
    """Elementwise `e ** x`."""
    out = np.exp(_v(x))
    def backward(g):
        return (g * out,)
    return record(out, (x,), backward)


def log(x):
    """Elementwise natural logarithm."""
    xv = _v(x)
    def backward(g):
        return (g / xv,)
    return record(np.log(xv), (x,), backward)


def abs(x):  # noqa: A001 - the NumPy name
    """Elementwise absolute value (gradient 0 at 0)."""
    xv = _v(x)
    def backward(g):
        return (g * np.sign(xv),)
    return record(np.abs(xv), (x,), backward)


absolute = abs


def maximum(x, y):
    """Elementwise larger of `x` and `y`; ties send the gradient to `x`."""
    xv, yv = _v(x), _v(y)
    def backward(g):
        pick_x = xv >= yv
        return unbroadcast(np.where(pick_x, g, 0).astype(g.dtype), _shape(xv)), \
            unbroadcast(np.where(pick_x, 0, g).astype(g.dtype), _shape(yv))
    return record(np.maximum(xv, yv), (x, y), backward)


def minimum(x, y):
    """Elementwise smaller of `x` and `y`; ties send the gradient to `x`."""
    xv, yv = _v(x), _v(y)
    def backward(g):
        pick_x = xv <= yv
        return unbroadcast(np.where(pick_x, g, 0).astype(g.dtype), _shape(xv)), \
            unbroadcast(np.where(pick_x, 0, g).astype(g.dtype), _shape(yv))
    return record(np.minimum(xv, yv), (x, y), backward)


def where(condition, x, y):
    """`x` where `condition` holds, else `y` (broadcast); no gradient flows to `condition`."""
    cv, xv, yv = np.asarray(_v(condition)).astype(bool), _v(x), _v(y)
    def backward(g):
        zero = np.zeros((), dtype=g.dtype)
        return None, unbroadcast(np.where(cv, g, zero), _shape(xv)), unbroadcast(np.where(cv, zero, g), _shape(yv))
    return record(np.where(cv, xv, yv), (condition, x, y), backward)


def clip(x, x_min, x_max):
    """`x` limited to `[x_min, x_max]`; the gradient passes only where `x` is inside."""
    xv = _v(x)
    def backward(g):
        return (g * ((xv >= x_min) & (xv <= x_max)),)
    return record(np.clip(xv, x_min, x_max), (x,), backward)


def add_n(xs):
    """The sum of a list of same-shaped tensors."""
    out = xs[0]
    for x in xs[1:]:
        out = add(out, x)
    return out


# ---------------------------------------------------------------- linear algebra and shapes

def matmul(x, y):
    """Matrix product with NumPy's `@` rules (1-D operands, batch broadcasting)."""
    xv, yv = _v(x), _v(y)
    out = np.matmul(xv, yv)
    x_needs, y_needs = needs_grad(x), needs_grad(y)  # skip the costly product nobody uses
    def backward(g):
        if xv.ndim == 2 and yv.ndim == 2:
            return (g @ yv.T if x_needs else None), (xv.T @ g if y_needs else None)
        a = xv if xv.ndim > 1 else xv[None, :]
        b = yv if yv.ndim > 1 else yv[:, None]
        g2 = g[..., None] if yv.ndim == 1 else g
        g2 = np.expand_dims(g2, -2) if xv.ndim == 1 else g2
        gx = unbroadcast(g2 @ np.swapaxes(b, -1, -2), a.shape).reshape(xv.shape) if x_needs else None
        gy = unbroadcast(np.swapaxes(a, -1, -2) @ g2, b.shape).reshape(yv.shape) if y_needs else None
        return gx, gy
    return record(out, (x, y), backward)


def reshape(x, new_shape):
    """`x` with the same values in `new_shape` (one entry may be -1)."""
    xv = np.asarray(_v(x))
    def backward(g):
        return (g.reshape(xv.shape),)
    return record(xv.reshape(new_shape), (x,), backward)


def transpose(x, axes=None):
    """`x` with its axes permuted (reversed when `axes` is None)."""
    xv = np.asarray(_v(x))
    def backward(g):
        return (g.transpose(None if axes is None else np.argsort(axes)),)
    return record(xv.transpose(axes), (x,), backward)


def expand_dims(x, axis):
    """`x` with a new axis of length 1 at `axis`."""
    xv = np.asarray(_v(x))
    return reshape(x, np.expand_dims(xv, axis).shape)


def squeeze(x, axis=None):
    """`x` without its length-1 axes (or only `axis`)."""
    xv = np.asarray(_v(x))
    return reshape(x, np.squeeze(xv, axis).shape)


def concatenate(xs, axis=0):
    """The tensors in `xs` joined along `axis`."""
    values = [np.asarray(_v(x)) for x in xs]
    ax = axis % values[0].ndim
    bounds = np.cumsum([v.shape[ax] for v in values])[:-1]
    def backward(g):
        return tuple(np.split(g, bounds, axis=ax))
    return record(np.concatenate(values, axis=ax), tuple(xs), backward)


def stack(xs, axis=0):
    """The same-shaped tensors in `xs` stacked along a new `axis`."""
    values = [np.asarray(_v(x)) for x in xs]
    def backward(g):
        return tuple(np.take(g, i, axis=axis) for i in range(len(values)))
    return record(np.stack(values, axis=axis), tuple(xs), backward)


def take_index(x, key):
    """`x[key]` for any NumPy index (slices, integers, arrays, masks, tuples of these)."""
    xv = np.asarray(_v(x))
    key = _index_value(key)
    def backward(g):
        out = np.zeros_like(xv, dtype=g.dtype)
        np.add.at(out, key, g)
        return (out,)
    return record(xv[key], (x,), backward)


def _index_value(key):
    if isinstance(key, tuple):
        return tuple(_index_value(k) for k in key)
    if isinstance(key, (Tensor, Variable)):
        return value_of(key)
    return key


def take(x, indices, axis=None):
    """Elements of `x` at integer `indices` along `axis` (the flattened `x` when None)."""
    xv = np.asarray(_v(x))
    idx = np.asarray(_v(indices))
    def backward(g):
        out = np.zeros_like(xv, dtype=g.dtype)
        if axis is None:
            np.add.at(out.reshape(-1), idx.reshape(-1), g.reshape(-1))
        else:
            moved = np.moveaxis(out, axis, 0)
            gm = np.moveaxis(g, list(range(axis, axis + idx.ndim)), list(range(idx.ndim)))
            np.add.at(moved, idx, gm)
        return (out,)
    return record(np.take(xv, idx, axis=axis), (x,), backward)


def take_along_axis(x, indices, axis):
    """`np.take_along_axis`: pick one element per position along `axis`."""
    xv = np.asarray(_v(x))
    idx = np.asarray(_v(indices))
    def backward(g):
        full = np.zeros_like(xv, dtype=g.dtype)
        grid = list(np.indices(idx.shape, sparse=True))
        grid[axis % xv.ndim] = idx
        np.add.at(full, tuple(grid), g)
        return (full,)
    return record(np.take_along_axis(xv, idx, axis), (x,), backward)


# ---------------------------------------------------------------- reductions

def _reduced_grad(g, shape, axis, keepdims):
    """Broadcast a reduction's gradient back to the input `shape`."""
    if axis is None:
        return np.broadcast_to(g, shape)
    if not keepdims:
        axes = (axis,) if np.isscalar(axis) else tuple(axis)
        g = np.expand_dims(g, tuple(a % len(shape) for a in axes))
    return np.broadcast_to(g, shape)


def _count(shape, axis):
    if axis is None:
        return int(np.prod(shape))
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    return int(np.prod([shape[a] for a in axes]))


def sum(x, axis=None, keepdims=False):  # noqa: A001 - the NumPy name
    """Sum over `axis` (all axes when None)."""
    xv = np.asarray(_v(x))
    axis = tuple(axis) if isinstance(axis, list) else axis
    def backward(g):
        return (_reduced_grad(g, xv.shape, axis, keepdims),)
    return record(np.sum(xv, axis=axis, keepdims=keepdims), (x,), backward)


def mean(x, axis=None, keepdims=False):
    """Mean over `axis` (all axes when None)."""
    xv = np.asarray(_v(x))
    axis = tuple(axis) if isinstance(axis, list) else axis
    n = _count(xv.shape, axis)
    out = np.mean(xv, axis=axis, keepdims=keepdims)
    out = out.astype(xv.dtype) if xv.dtype.kind == "f" else out
    def backward(g):
        return (_reduced_grad(g / np.asarray(n, g.dtype), xv.shape, axis, keepdims),)
    return record(out, (x,), backward)


def _extreme(x, axis, keepdims, fn):
    xv = np.asarray(_v(x))
    axis = tuple(axis) if isinstance(axis, list) else axis
    out = fn(xv, axis=axis, keepdims=keepdims)
    def backward(g):
        kept = fn(xv, axis=axis, keepdims=True)
        mask = (xv == kept).astype(g.dtype)
        mask /= mask.sum(axis=axis, keepdims=True)  # ties share the gradient equally
        return (mask * _reduced_grad(g, xv.shape, axis, keepdims),)
    return record(out, (x,), backward)


def max(x, axis=None, keepdims=False):  # noqa: A001 - the NumPy name
    """Largest value over `axis`; tied maxima share the gradient."""
    return _extreme(x, axis, keepdims, np.max)


def min(x, axis=None, keepdims=False):  # noqa: A001 - the NumPy name
    """Smallest value over `axis`; tied minima share the gradient."""
    return _extreme(x, axis, keepdims, np.min)


def logsumexp(x, axis=None, keepdims=False):
    """`log(sum(exp(x)))` over `axis`, computed stably."""
    xv = np.asarray(_v(x))
    m = np.max(xv, axis=axis, keepdims=True)
    lse = np.log(np.sum(np.exp(xv - m), axis=axis, keepdims=True)) + m
    def backward(g):
        gk = g if keepdims or axis is None else np.expand_dims(g, axis)
        return (gk * np.exp(xv - lse),)
    out = lse if keepdims else (np.squeeze(lse, axis) if axis is not None else lse.reshape(()))
    return record(out, (x,), backward)


# ---------------------------------------------------------------- activations

def relu(x):
    """`max(x, 0)` elementwise."""
    xv = _v(x)
    out = np.maximum(xv, 0)
    def backward(g):
        return (g * (xv > 0),)
    return record(out, (x,), backward)


def sigmoid(x):
    """`1 / (1 + exp(-x))` elementwise, computed without overflow."""
    xv = np.asarray(_v(x))
    e = np.exp(-np.abs(xv))
    out = np.where(xv >= 0, 1 / (1 + e), e / (1 + e)).astype(xv.dtype)
    def backward(g):
        return (g * out * (1 - out),)
    return record(out, (x,), backward)


def tanh(x):
    """Hyperbolic tangent elementwise."""
    out = np.tanh(_v(x))
    def backward(g):
        return (g * (1 - out * out),)
    return record(out, (x,), backward)


def softmax(x, axis=-1):
    """`exp(x) / sum(exp(x))` along `axis`."""
    xv = np.asarray(_v(x))
    e = np.exp(xv - np.max(xv, axis=axis, keepdims=True))
    out = e / np.sum(e, axis=axis, keepdims=True)
    def backward(g):
        return (out * (g - np.sum(g * out, axis=axis, keepdims=True)),)
    return record(out, (x,), backward)


def log_softmax(x, axis=-1):
    """`x - logsumexp(x)` along `axis`."""
    xv = np.asarray(_v(x))
    shifted = xv - np.max(xv, axis=axis, keepdims=True)
    out = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    def backward(g):
        return (g - np.exp(out) * np.sum(g, axis=axis, keepdims=True),)
    return record(out, (x,), backward)


def softplus(x):
    """`log(1 + exp(x))` elementwise, computed stably."""
    xv = np.asarray(_v(x))
    out = np.logaddexp(0, xv).astype(xv.dtype) if xv.dtype.kind == "f" else np.logaddexp(0, xv)
    def backward(g):
        return (g / (1 + np.exp(-xv)),)
    return record(out, (x,), backward)


def silu(x):
    """`x * sigmoid(x)` elementwise."""
    return multiply(x, sigmoid(x))


def erf(x):
    """The error function, elementwise (max. absolute error about 1e-7)."""
    xv = np.asarray(_v(x))
    out = _erf(xv)
    def backward(g):
        return (g * (2 / math.sqrt(math.pi)) * np.exp(-xv * xv),)
    return record(out, (x,), backward)


def _erf(x):
    # Abramowitz & Stegun 7.1.26 in float64; |error| < 1.5e-7, below float32 resolution near 1
    z = np.abs(np.asarray(x, dtype=np.float64))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    y = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    return y.astype(x.dtype) if np.asarray(x).dtype.kind == "f" else y


def gelu(x, approximate=False):
    """Gaussian error linear unit: `x * Phi(x)`, or its tanh approximation."""
    xv = np.asarray(_v(x))
    if approximate:
        c = math.sqrt(2 / math.pi)
        inner = c * (xv + 0.044715 * xv ** 3)
        th = np.tanh(inner)
        out = 0.5 * xv * (1 + th)
        def backward(g):
            d_inner = c * (1 + 3 * 0.044715 * xv * xv)
            return (g * (0.5 * (1 + th) + 0.5 * xv * (1 - th * th) * d_inner),)
    else:
        cdf = 0.5 * (1 + _erf(xv / math.sqrt(2)))
        out = xv * cdf
        def backward(g):
            pdf = np.exp(-0.5 * xv * xv) / math.sqrt(2 * math.pi)
            return (g * (cdf + xv * pdf),)
    out = out.astype(xv.dtype) if xv.dtype.kind == "f" else out
    return record(out, (x,), backward)


# ---------------------------------------------------------------- not differentiable

def _plain(fn):
    def op(*args, **kwargs):
        return Tensor(np.asarray(fn(*[_v(a) for a in args], **kwargs)))
    op.__name__ = fn.__name__
    op.__doc__ = f"`np.{fn.__name__}` on tensors (not differentiable)."
    return op


equal = _plain(np.equal)
not_equal = _plain(np.not_equal)
less = _plain(np.less)
less_equal = _plain(np.less_equal)
greater = _plain(np.greater)
greater_equal = _plain(np.greater_equal)
argmax = _plain(np.argmax)
argmin = _plain(np.argmin)
sign = _plain(np.sign)
round = _plain(np.round)  # noqa: A001 - the NumPy name
isnan = _plain(np.isnan)
isfinite = _plain(np.isfinite)


def zeros(shape, dtype="float32"):
    """A Tensor of zeros."""
    return Tensor(np.zeros(shape, dtype=dtype))


def ones(shape, dtype="float32"):
    """A Tensor of ones."""
    return Tensor(np.ones(shape, dtype=dtype))


def zeros_like(x, dtype=None):
    """Zeros with the shape (and dtype) of `x`."""
    return Tensor(np.zeros_like(np.asarray(_v(x)), dtype=dtype))


def ones_like(x, dtype=None):
    """Ones with the shape (and dtype) of `x`."""
    return Tensor(np.ones_like(np.asarray(_v(x)), dtype=dtype))


def one_hot(x, num_classes, dtype="float32"):
    """Integer labels `x` as one-hot rows of length `num_classes`."""
    labels = np.asarray(_v(x)).astype(np.int64)
    return Tensor(np.eye(num_classes, dtype=dtype)[labels])


def shape(x):
    """The shape of `x` as a tuple."""
    return np.shape(_v(x))


# NumPy ufuncs that dispatch to the differentiable ops above (see `TensorOperators.__array_ufunc__`).
UFUNC_OPS = {
    np.add: add, np.subtract: subtract, np.multiply: multiply, np.true_divide: divide,
    np.negative: negative, np.power: power, np.square: square, np.sqrt: sqrt, np.exp: exp,
    np.log: log, np.absolute: abs, np.maximum: maximum, np.minimum: minimum, np.tanh: tanh,
    np.matmul: matmul,
}
