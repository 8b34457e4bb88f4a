"""Differentiable NumPy-like ops for `call()`, losses and custom loops.

Each op computes its result with NumPy and records one `backward(grad)` closure that returns a
gradient per input, reduced to that input's shape. Inputs may be Tensors, Variables, NumPy arrays
or Python numbers; results are Tensors (`.numpy()`, `float()`, and NumPy functions work on them).
Given the symbolic tensors of the functional API, ops record op nodes instead (`kerasckpt.symbolic`).
"""
import builtins
import inspect
import math
import operator

import numpy as np

from kerasckpt import symbolic
from kerasckpt._convolution import average_pool, conv, conv_transpose, max_pool  # noqa: F401 - ops of the layers
from kerasckpt.autograd import Tensor, needs_grad, record, unbroadcast, value_of
from kerasckpt.symbolic import KerasTensor
from kerasckpt.variables import Variable


_AxisError = getattr(np, "exceptions", np).AxisError  # np.exceptions arrived in NumPy 1.25


def _v(x):
    """The array behind `x`; lists become float32 arrays, Python scalars stay weakly typed."""
    cls = x.__class__
    if cls is Tensor:
        return x.value
    if cls is np.ndarray:
        return x
    if cls is Variable:
        return x._value
    if isinstance(x, Tensor):
        return x.value
    if isinstance(x, Variable):
        return x._value
    if isinstance(x, (np.ndarray, np.generic, int, float, bool)):
        return x
    arr = np.asarray(x)
    return arr.astype("float32") if arr.dtype == np.float64 else arr


def _arr(x):
    """The array behind `x`, as an ndarray."""
    v = _v(x)
    return v if v.__class__ is np.ndarray else np.asarray(v)


def _snapshot(x):
    """The array behind `x`; a copy for Variables, whose arrays change in place on `assign`."""
    return x._value.copy() if isinstance(x, Variable) else _arr(x)


def _float(x):
    """The array behind `x`, with integer and boolean values as float32 (as Keras does)."""
    v = _arr(x)
    return v if v.dtype.kind in "fc" else v.astype(np.float32)


def _shape(v):
    return v.shape if v.__class__ is np.ndarray else np.shape(v)


def _axes(axis, ndim):
    """`axis` (None, an int or a sequence, negatives allowed) as a sorted tuple of non-negative axes."""
    if axis is None:
        return None
    if axis.__class__ is int and -ndim <= axis < ndim:
        return (axis % ndim,)
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    out = []
    for a in axes:
        a = operator.index(a)
        if not -ndim <= a < ndim:
            raise _AxisError(a, ndim)
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"Duplicate axes in axis={axis!r}. Name each axis once.")
    return tuple(sorted(out))


def _kept_shape(shape, axes):
    """`shape` with the reduced `axes` (all when None) set to 1."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _dropped_shape(shape, axes):
    """`shape` without the reduced `axes` (all when None)."""
    return tuple(n for i, n in enumerate(shape) if axes is not None and i not in axes)


def _spread(g, kept_shape, shape):
    """A reduction's gradient `g` broadcast back to the input `shape`, as a fresh array."""
    return np.full(shape, g.reshape(kept_shape), dtype=g.dtype)


def convert_to_tensor(x, dtype=None):
    """`x` as a Tensor: float64 data becomes float32 unless `dtype` says otherwise; a Variable keeps its dtype."""
    if (isinstance(x, Tensor) and dtype is None) or isinstance(x, KerasTensor):
        return x
    arr = _snapshot(x)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif arr.dtype == np.float64 and not isinstance(x, (Tensor, Variable)):
        arr = arr.astype("float32")
    return Tensor(arr)


def stop_gradient(x):
    """`x` with no gradient flowing back through it."""
    return Tensor(_snapshot(x))


def cast(x, dtype):
    """`x` converted to `dtype`; gradients pass through between floating dtypes."""
    xv = _arr(x)
    out, in_dtype = xv.astype(dtype), xv.dtype
    passes = in_dtype.kind in "fc" and out.dtype.kind in "fc"
    def backward(g):
        return (g.astype(in_dtype, copy=False) if passes else None,)
    return record(out, (x,), backward)


# ---------------------------------------------------------------- elementwise arithmetic
# Binary ops check `needs_grad` inside `backward`, so a constant operand costs no gradient work.

def add(x, y):
    """Elementwise `x + y` with NumPy broadcasting."""
    xv, yv = _v(x), _v(y)
    def backward(g):
        return (unbroadcast(g, _shape(xv)) if needs_grad(x) else None,
                unbroadcast(g, _shape(yv)) if needs_grad(y) else None)
    return record(xv + yv, (x, y), backward)


def subtract(x, y):
    """Elementwise `x - y` with NumPy broadcasting."""
    xv, yv = _v(x), _v(y)
    def backward(g):
        return (unbroadcast(g, _shape(xv)) if needs_grad(x) else None,
                unbroadcast(-g, _shape(yv)) if needs_grad(y) else None)
    return record(xv - yv, (x, y), backward)


def multiply(x, y):
    """Elementwise `x * y` with NumPy broadcasting."""
    xv, yv = _v(x), _v(y)
    def backward(g):
        return (unbroadcast(g * yv, _shape(xv)) if needs_grad(x) else None,
                unbroadcast(g * xv, _shape(yv)) if needs_grad(y) else None)
    return record(xv * yv, (x, y), backward)


def divide(x, y):
    """Elementwise `x / y` with NumPy broadcasting."""
    xv, yv = _v(x), _v(y)
    out = xv / yv
    def backward(g):
        gx = g / yv
        return (unbroadcast(gx, _shape(xv)) if needs_grad(x) else None,
                unbroadcast(-gx * out, _shape(yv)) if needs_grad(y) else None)
    return record(out, (x, y), backward)


true_divide = divide


def negative(x):
    """Elementwise `-x`."""
    def backward(g):
        return (-g,)
    return record(-_v(x), (x,), backward)


def power(x, y):
    """Elementwise `x ** y`; the gradient for `y` uses `log(x)` and is 0 where `x <= 0`."""
    xv, yv = _v(x), _v(y)
    out = np.power(xv, yv)
    def backward(g):
        gx = unbroadcast(g * yv * np.power(xv, yv - 1), _shape(xv)) if needs_grad(x) else None
        gy = None
        if needs_grad(y):
            base = np.asarray(xv, dtype=np.result_type(out, g))  # a Python-number base is weakly typed
            positive = base > 0
            log_base = np.log(np.where(positive, base, 1))
            gy = unbroadcast(np.where(positive, g * out * log_base, 0), _shape(yv))
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
    out = np.sqrt(_float(x))
    def backward(g):
        return (g / (2 * out),)
    return record(out, (x,), backward)


def exp(x):
    """Elementwise `e ** x`."""
    out = np.exp(_float(x))
    def backward(g):
        return (g * out,)
    return record(out, (x,), backward)


def log(x):
    """Elementwise natural logarithm."""
    xv = _float(x)
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
        pick_x, zero = xv >= yv, g.dtype.type(0)
        return (unbroadcast(np.where(pick_x, g, zero), _shape(xv)) if needs_grad(x) else None,
                unbroadcast(np.where(pick_x, zero, g), _shape(yv)) if needs_grad(y) else None)
    return record(np.maximum(xv, yv), (x, y), backward)


def minimum(x, y):
    """Elementwise smaller of `x` and `y`; ties send the gradient to `x`."""
    xv, yv = _v(x), _v(y)
    def backward(g):
        pick_x, zero = xv <= yv, g.dtype.type(0)
        return (unbroadcast(np.where(pick_x, g, zero), _shape(xv)) if needs_grad(x) else None,
                unbroadcast(np.where(pick_x, zero, g), _shape(yv)) if needs_grad(y) else None)
    return record(np.minimum(xv, yv), (x, y), backward)


def where(condition, x, y):
    """`x` where `condition` holds, else `y` (broadcast); no gradient flows to `condition`."""
    cv, xv, yv = _arr(condition), _v(x), _v(y)
    cv = cv if cv.dtype == bool else cv.astype(bool)
    def backward(g):
        zero = g.dtype.type(0)
        return (None, unbroadcast(np.where(cv, g, zero), _shape(xv)) if needs_grad(x) else None,
                unbroadcast(np.where(cv, zero, g), _shape(yv)) if needs_grad(y) else None)
    return record(np.where(cv, xv, yv), (condition, x, y), backward)


def clip(x, x_min, x_max):
    """`x` limited to `[x_min, x_max]` (either may be None); the gradient passes where `x` is inside."""
    xv, lo, hi = _v(x), _v(x_min), _v(x_max)
    def backward(g):
        inside = True
        if lo is not None:
            inside = xv >= lo
        if hi is not None:
            inside = inside & (xv <= hi)
        return (unbroadcast(np.where(inside, g, g.dtype.type(0)), _shape(xv)),)
    return record(np.clip(xv, lo, hi), (x,), backward)


def add_n(xs):
    """The sum of a list of tensors (broadcast like `+`)."""
    xs = list(xs)
    if not xs:
        raise ValueError("add_n needs at least one tensor. Received an empty list.")
    values = [_v(x) for x in xs]
    out = np.array(values[0])  # a copy: a single Variable's array must not leak out
    for v in values[1:]:
        out = out + v
    def backward(g):
        return tuple(unbroadcast(g, _shape(v)) if needs_grad(x) else None for x, v in zip(xs, values))
    return record(out, tuple(xs), backward)


# ---------------------------------------------------------------- linear algebra and shapes

def matmul(x, y):
    """Matrix product with NumPy's `@` rules (1-D operands, batch broadcasting)."""
    xv, yv = _arr(x), _arr(y)
    out = np.matmul(xv, yv)
    def backward(g):
        x_needs, y_needs = needs_grad(x), needs_grad(y)  # skip the costly product nobody uses
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
    xv = _snapshot(x)
    in_shape = xv.shape
    def backward(g):
        return (np.reshape(g, in_shape),)
    return record(xv.reshape(new_shape), (x,), backward)


def transpose(x, axes=None):
    """`x` with its axes permuted (reversed when `axes` is None; negative axes allowed)."""
    xv = _snapshot(x)
    if axes is not None:
        axes = tuple(_axes(a, xv.ndim)[0] for a in axes)
    inverse = None if axes is None else tuple(np.argsort(axes))
    def backward(g):
        return (np.transpose(g, inverse),)
    return record(xv.transpose(axes), (x,), backward)


def expand_dims(x, axis):
    """`x` with a new axis of length 1 at `axis`."""
    return reshape(x, np.expand_dims(_arr(x), axis).shape)


def squeeze(x, axis=None):
    """`x` without its length-1 axes (or only `axis`)."""
    return reshape(x, np.squeeze(_arr(x), axis).shape)


def concatenate(xs, axis=0):
    """The tensors in `xs` joined along `axis`."""
    xs = list(xs)
    values = [_arr(x) for x in xs]
    ax = _axes(axis, values[0].ndim)[0]
    bounds = np.cumsum([v.shape[ax] for v in values])[:-1]
    def backward(g):
        return tuple(np.split(g, bounds, axis=ax))
    return record(np.concatenate(values, axis=ax), tuple(xs), backward)


def stack(xs, axis=0):
    """The same-shaped tensors in `xs` stacked along a new `axis`."""
    xs = list(xs)
    values = [_arr(x) for x in xs]
    out = np.stack(values, axis=axis)
    def backward(g):
        moved = np.moveaxis(g, axis, 0)
        return tuple(moved[i] for i in range(len(values)))
    return record(out, tuple(xs), backward)


def take_index(x, key):
    """`x[key]` for any NumPy index (slices, integers, arrays, masks, tuples of these)."""
    xv = _arr(x)
    key = _index_value(key)
    out = xv[key]
    if isinstance(x, Variable) and isinstance(out, np.ndarray) and np.may_share_memory(out, xv):
        out = out.copy()  # a view would follow later `assign`s: snapshot just the selected part
    repeats, in_shape = _may_repeat(key), xv.shape
    def backward(g):
        full = np.zeros(in_shape, dtype=g.dtype)
        if repeats:
            np.add.at(full, key, g)  # repeated integer indices add up
        else:
            full[key] = g
        return (full,)
    return record(out, (x,), backward)


def _index_value(key):
    if isinstance(key, tuple):
        return tuple(_index_value(k) for k in key)
    if isinstance(key, (Tensor, Variable)):
        return value_of(key)
    return key


def _may_repeat(key):
    """Whether index `key` holds an integer array or list, whose entries may repeat."""
    if isinstance(key, tuple):
        return builtins.any(_may_repeat(k) for k in key)
    if isinstance(key, (list, np.ndarray)):
        return np.asarray(key).dtype.kind in "iu"
    return False


def take(x, indices, axis=None):
    """Elements of `x` at integer `indices` along `axis` (the flattened `x` when None)."""
    xv = _arr(x)
    idx = _arr(indices)
    ax = None if axis is None else _axes(axis, xv.ndim)[0]
    def backward(g):
        out = np.zeros(xv.shape, dtype=g.dtype)
        if ax is None:
            np.add.at(out.reshape(-1), idx.reshape(-1), np.reshape(g, -1))
        else:
            moved = np.moveaxis(out, ax, 0)  # a view: adding into it fills `out`
            gm = np.moveaxis(g, list(range(ax, ax + idx.ndim)), list(range(idx.ndim)))
            np.add.at(moved, idx, gm)
        return (out,)
    return record(np.take(xv, idx, axis=ax), (x,), backward)


def take_along_axis(x, indices, axis=None):
    """`np.take_along_axis`: pick elements along `axis` (of the flattened `x` when None)."""
    if axis is None:
        return take_along_axis(reshape(x, (-1,)), indices, 0)
    xv = _arr(x)
    idx = _arr(indices)
    ax = _axes(axis, xv.ndim)[0]
    out = np.take_along_axis(xv, idx, ax)
    def backward(g):
        full = np.zeros(xv.shape, dtype=g.dtype)
        index = tuple(idx if i == ax else np.arange(n).reshape([-1 if j == i else 1 for j in range(xv.ndim)])
                      for i, n in enumerate(xv.shape))
        if idx.shape[ax] == 1:
            full[index] = g  # one pick per position: nothing repeats
        else:
            np.add.at(full, index, g)
        return (full,)
    return record(out, (x,), backward)


# ---------------------------------------------------------------- reductions

def sum(x, axis=None, keepdims=False):  # noqa: A001 - the NumPy name
    """Sum over `axis` (all axes when None)."""
    xv = _arr(x)
    axes, in_shape = _axes(axis, xv.ndim), xv.shape
    if xv.dtype.kind == "f":
        out = np.add.reduce(xv, axis=axes, keepdims=keepdims)
    else:
        out = np.sum(xv, axis=axes, keepdims=keepdims)
    def backward(g):
        return (_spread(g, _kept_shape(in_shape, axes), in_shape),)
    return record(out, (x,), backward)


def mean(x, axis=None, keepdims=False):
    """Mean over `axis` (all axes when None); integer inputs give float32, as in Keras."""
    xv = _float(x)
    axes, in_shape = _axes(axis, xv.ndim), xv.shape
    n = math.prod(in_shape) if axes is None else math.prod(in_shape[a] for a in axes)
    if n and (xv.dtype == np.float32 or xv.dtype == np.float64):
        out = np.add.reduce(xv, axis=axes, keepdims=keepdims) / n  # what np.mean computes, minus its overhead
    else:
        out = np.mean(xv, axis=axes, keepdims=keepdims).astype(xv.dtype, copy=False)
    def backward(g):
        return (_spread(g / n if n else g, _kept_shape(in_shape, axes), in_shape),)
    return record(out, (x,), backward)


def _extreme(x, axis, keepdims, fn):
    xv = _arr(x)
    axes = _axes(axis, xv.ndim)
    kept = fn(xv, axis=axes, keepdims=True)
    def backward(g):
        mask = (xv == kept).astype(g.dtype)
        mask /= mask.sum(axis=axes, keepdims=True)  # ties share the gradient equally
        return (mask * np.reshape(g, kept.shape),)
    return record(kept if keepdims else kept.reshape(_dropped_shape(xv.shape, axes)), (x,), backward)


def max(x, axis=None, keepdims=False):  # noqa: A001 - the NumPy name
    """Largest value over `axis`; tied maxima share the gradient."""
    return _extreme(x, axis, keepdims, np.max)


def min(x, axis=None, keepdims=False):  # noqa: A001 - the NumPy name
    """Smallest value over `axis`; tied minima share the gradient."""
    return _extreme(x, axis, keepdims, np.min)


def logsumexp(x, axis=None, keepdims=False):
    """`log(sum(exp(x)))` over `axis`, computed stably (all `-inf` gives `-inf`)."""
    xv = _float(x)
    axes = _axes(axis, xv.ndim)
    kept_shape = _kept_shape(xv.shape, axes)
    m = xv.max(axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        lse = np.log(np.exp(xv - m).sum(axis=axes, keepdims=True)) + m
    def backward(g):
        return (np.reshape(g, kept_shape) * np.exp(xv - lse),)
    return record(lse.reshape(kept_shape if keepdims else _dropped_shape(xv.shape, axes)), (x,), backward)


# ---------------------------------------------------------------- activations

def relu(x):
    """`max(x, 0)` elementwise."""
    xv = _v(x)
    def backward(g):
        return (g * (xv > 0),)
    return record(np.maximum(xv, 0), (x,), backward)


def _sigmoid(xv):
    e = np.exp(-np.abs(xv))  # never overflows
    return np.where(xv >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid(x):
    """`1 / (1 + exp(-x))` elementwise, computed without overflow."""
    out = _sigmoid(_float(x))
    def backward(g):
        return (g * out * (1 - out),)
    return record(out, (x,), backward)


def tanh(x):
    """Hyperbolic tangent elementwise."""
    out = np.tanh(_float(x))
    def backward(g):
        return (g * (1 - out * out),)
    return record(out, (x,), backward)


def softmax(x, axis=-1):
    """`exp(x) / sum(exp(x))` along `axis`."""
    xv = _float(x)
    e = np.exp(xv - np.maximum.reduce(xv, axis=axis, keepdims=True))
    out = e / np.add.reduce(e, axis=axis, keepdims=True)
    def backward(g):
        return (out * (g - np.add.reduce(g * out, axis=axis, keepdims=True)),)
    return record(out, (x,), backward)


def log_softmax(x, axis=-1):
    """`x - logsumexp(x)` along `axis`."""
    xv = _float(x)
    shifted = xv - np.maximum.reduce(xv, axis=axis, keepdims=True)
    out = shifted - np.log(np.add.reduce(np.exp(shifted), axis=axis, keepdims=True))
    def backward(g):
        return (g - np.exp(out) * np.add.reduce(g, axis=axis, keepdims=True),)
    return record(out, (x,), backward)


def softplus(x):
    """`log(1 + exp(x))` elementwise, computed stably."""
    xv = _float(x)
    def backward(g):
        return (g * _sigmoid(xv),)
    return record(np.logaddexp(0, xv), (x,), backward)


def silu(x):
    """`x * sigmoid(x)` elementwise."""
    xv = _float(x)
    s = _sigmoid(xv)
    def backward(g):
        return (g * (s * (1 + xv * (1 - s))),)
    return record(xv * s, (x,), backward)


def erf(x):
    """The error function, elementwise (exact in float64; within 1.5e-7 in lower precisions)."""
    xv = _float(x)
    def backward(g):
        return (g * (2 / math.sqrt(math.pi)) * np.exp(-xv * xv),)
    return record(_erf(xv), (x,), backward)


_math_erf = np.frompyfunc(math.erf, 1, 1)


def _erf(x):
    if x.dtype == np.float64:  # the C library's erf, element by element: slower but exact
        return _math_erf(x).astype(np.float64) if x.ndim else np.float64(math.erf(x))
    # Abramowitz & Stegun 7.1.26 in float64; |error| < 1.5e-7, about one float32 rounding step
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (np.sign(x) * (1.0 - poly * np.exp(-z * z))).astype(x.dtype)


def gelu(x, approximate=True):
    """Gaussian error linear unit `x * Phi(x)`; `approximate=True` (default, as `keras.ops.gelu`) uses tanh."""
    xv = _float(x)
    if approximate:
        c = math.sqrt(2 / math.pi)
        th = np.tanh(c * (xv + 0.044715 * (xv * xv * xv)))
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
    return record(out, (x,), backward)


# ---------------------------------------------------------------- convolution, padding and normalization (layers)

def leaky_relu(x, negative_slope=0.2):
    """`x` where positive, else `negative_slope * x`."""
    xv = _float(x)
    slope = np.asarray(negative_slope, xv.dtype)
    positive = xv > 0
    def backward(g):
        return (np.where(positive, g, g * slope),)
    return record(np.where(positive, xv, xv * slope), (x,), backward)


def repeat(x, repeats, axis=None):
    """`np.repeat`: each element repeated `repeats` times along `axis` (of the flattened `x` when None)."""
    xv = _arr(x)
    flat = axis is None
    source = xv.reshape(-1) if flat else xv
    ax = 0 if flat else _axes(axis, xv.ndim)[0]
    counts = np.broadcast_to(np.asarray(repeats, dtype=np.int64), (source.shape[ax],))
    out = np.repeat(source, counts, axis=ax)
    def backward(g):
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        summed = np.add.reduceat(g, starts, axis=ax) if g.shape[ax] else np.zeros(source.shape, g.dtype)
        summed[(slice(None),) * ax + (counts == 0,)] = 0  # reduceat gives the next element for empty runs
        return (summed.reshape(xv.shape),)
    return record(out, (x,), backward)


def pad(x, pad_width, mode="constant", constant_values=None):
    """`x` with `constant_values` (0 by default) added before and after each axis, as `np.pad`.

    `pad_width` is one integer, one `(before, after)` pair, or a pair per axis; only `mode="constant"`.
    """
    if mode != "constant":
        raise ValueError(f"kerasckpt.ops.pad supports mode='constant' only. Received: mode={mode!r}")
    xv = _arr(x)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64).reshape(-1, 2) if np.ndim(pad_width) else
                             np.full((1, 2), pad_width, dtype=np.int64), (xv.ndim, 2))
    out = np.pad(xv, widths, constant_values=0 if constant_values is None else _v(constant_values))
    inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, xv.shape))
    def backward(g):
        return (g[inner], None)
    return record(out, (x, constant_values), backward)


def broadcast_to(x, shape):
    """`x` broadcast to `shape`."""
    xv = _v(x)
    def backward(g):
        return (unbroadcast(g, _shape(xv)),)
    return record(np.array(np.broadcast_to(xv, shape)), (x,), backward)


def layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=1e-3):
    """`(x - mean) / sqrt(var + epsilon) * gamma + beta`, the statistics over `axis` (an int or a list), as
    `keras.ops.layer_normalization`; `gamma` and `beta` have the shape of the normalized axes."""
    xv = _float(x)
    axes = _axes(axis, xv.ndim)
    param_shape = tuple(n if i in axes else 1 for i, n in enumerate(xv.shape))
    n = math.prod(xv.shape[a] for a in axes)
    mean = np.add.reduce(xv, axis=axes, keepdims=True) / n
    centered = xv - mean
    var = np.add.reduce(centered * centered, axis=axes, keepdims=True) / n
    inv = 1.0 / np.sqrt(var + np.asarray(epsilon, xv.dtype))
    normed = centered * inv
    gv = None if gamma is None else _arr(gamma).reshape(param_shape)
    out = normed if gv is None else normed * gv
    if beta is not None:
        out = out + _arr(beta).reshape(param_shape)
    others = tuple(i for i in range(xv.ndim) if i not in axes)
    def backward(g):
        g_normed = g if gv is None else g * gv
        gx = inv / n * (n * g_normed - np.add.reduce(g_normed, axis=axes, keepdims=True)
                        - normed * np.add.reduce(g_normed * normed, axis=axes, keepdims=True))
        g_gamma = None if gamma is None else np.add.reduce(g * normed, axis=others).reshape(_shape(_v(gamma)))
        g_beta = None if beta is None else np.add.reduce(g, axis=others).reshape(_shape(_v(beta)))
        return gx, g_gamma, g_beta
    return record(out, (x, gamma, beta), backward)


# ---------------------------------------------------------------- not differentiable

def _plain(fn, *params):
    """`fn` on tensors, not differentiable; `params` ("x" or ("axis", None)) name its arguments, as Keras does."""
    def op(*args, **kwargs):
        return Tensor(np.asarray(fn(*[_v(a) for a in args], **kwargs)))
    op.__name__ = fn.__name__
    op.__doc__ = f"`np.{fn.__name__}` on tensors (not differentiable)."
    op.__signature__ = inspect.Signature([
        inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) if isinstance(p, str) else
        inspect.Parameter(p[0], inspect.Parameter.POSITIONAL_OR_KEYWORD, default=p[1]) for p in params])
    return op


_BINARY, _REDUCE = ("x1", "x2"), ("x", ("axis", None), ("keepdims", False))
equal = _plain(np.equal, *_BINARY)
not_equal = _plain(np.not_equal, *_BINARY)
less = _plain(np.less, *_BINARY)
less_equal = _plain(np.less_equal, *_BINARY)
greater = _plain(np.greater, *_BINARY)
greater_equal = _plain(np.greater_equal, *_BINARY)
logical_and = _plain(np.logical_and, *_BINARY)
logical_or = _plain(np.logical_or, *_BINARY)
logical_not = _plain(np.logical_not, "x")
any = _plain(np.any, *_REDUCE)  # noqa: A001 - the NumPy name
all = _plain(np.all, *_REDUCE)  # noqa: A001 - the NumPy name
argmax = _plain(np.argmax, *_REDUCE)
argmin = _plain(np.argmin, *_REDUCE)
sign = _plain(np.sign, "x")
round = _plain(np.round, "x", ("decimals", 0))  # noqa: A001 - the NumPy name
isnan = _plain(np.isnan, "x")
isfinite = _plain(np.isfinite, "x")


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
    """The shape of `x` as a tuple (None for the unknown sizes of a symbolic tensor)."""
    return x.shape if isinstance(x, KerasTensor) else np.shape(_v(x))


# NumPy ufuncs that dispatch to the differentiable ops above (see `TensorOperators.__array_ufunc__`).
UFUNC_OPS = {
    np.add: add, np.subtract: subtract, np.multiply: multiply, np.true_divide: divide,
    np.negative: negative, np.power: power, np.square: square, np.sqrt: sqrt, np.exp: exp,
    np.log: log, np.absolute: abs, np.maximum: maximum, np.minimum: minimum, np.tanh: tanh,
    np.matmul: matmul,
}


# ---------------------------------------------------------------- symbolic tensors (the functional API)
# Given a KerasTensor, these ops record an op node of the functional graph instead of computing, as Keras 3's
# ops do (kerasckpt.symbolic.OP_NODES names them and their Keras classes).
for _name in symbolic.OP_NODES:
    globals()[_name] = symbolic.dispatching(_name, globals()[_name])
