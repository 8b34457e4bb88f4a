"""Losses as in `keras.losses`: `Loss` classes, per-sample loss functions, reductions, get/serialize.

The built-in losses are fused kernels: a NumPy forward with Keras 3's exact math (epsilon clipping,
label smoothing) and one backward closure, so a training step pays for two graph nodes per loss.
"""
import inspect
import warnings

import numpy as np

from kerasckpt import ops
from kerasckpt._registry import builtin, lookup
from kerasckpt.autograd import Tensor, needs_grad, record, unbroadcast, value_of
from kerasckpt.utils import get_uid, snake_case
from kerasckpt.variables import Variable

EPSILON = 1e-7  # keras.config.epsilon()
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None, "none")


def _with_mask(tensor, mask):
    """A copy of the Tensor node carrying Keras's `_keras_mask` (entries that take no part in reductions)."""
    out = Tensor(tensor.value, tensor.parents, tensor.backward)
    out._keras_mask = mask
    return out


def get_mask(x):
    """The boolean `_keras_mask` attached to a loss value or a prediction (as a NumPy array), or None."""
    mask = getattr(x, "_keras_mask", None)
    return None if mask is None else np.asarray(value_of(mask), dtype=bool)


def _both(a, b):
    return b if a is None else a if b is None else a & b


# ---------------------------------------------------------------- shapes and dtypes

def standardize_reduction(reduction):
    """`reduction` if Keras 3 knows it, else a ValueError listing the valid values."""
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"Invalid value for argument `reduction`: {reduction!r}. Use one of: "
            "'sum_over_batch_size', 'sum', 'mean', 'mean_with_sample_weight', 'none' or None.")
    return reduction


def standardize_dtype(dtype):
    """A floating dtype name from None (float32), a name, a NumPy dtype or a DTypePolicy config."""
    if dtype is None:
        return "float32"
    if isinstance(dtype, dict):  # {"class_name": "DTypePolicy", "config": {"name": "float32"}}
        dtype = dtype.get("config", {}).get("name", "float32")
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        np_dtype = None
    if np_dtype is None or np_dtype.kind != "f":
        raise ValueError(f"Losses and metrics compute in a floating dtype. Received: dtype={dtype!r}. "
                         "Use 'float32' (the default), 'float16' or 'float64'.")
    return np_dtype.name


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Keras's rank fix-up of two arrays whose ranks differ by one trailing axis of size 1."""
    r1, r2 = np.ndim(x1), np.ndim(x2)
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and np.shape(x1)[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = np.expand_dims(x2, -1)
        else:
            x1 = np.squeeze(x1, -1)
    if r2 == r1 + 1 and np.shape(x2)[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = np.expand_dims(x1, -1)
        else:
            x2 = np.squeeze(x2, -1)
    return x1, x2


def _same_rank_tensors(y_true, y_pred):
    """`squeeze_or_expand_to_same_rank` for Tensors, keeping the graph (for user loss functions)."""
    r1, r2 = len(ops.shape(y_true)), len(ops.shape(y_pred))
    if r1 == r2 + 1 and ops.shape(y_true)[-1] == 1:
        return (ops.squeeze(y_true, -1), y_pred) if r2 != 1 else (y_true, ops.expand_dims(y_pred, -1))
    if r2 == r1 + 1 and ops.shape(y_pred)[-1] == 1:
        return (ops.expand_dims(y_true, -1), y_pred) if r1 == 1 else (y_true, ops.squeeze(y_pred, -1))
    return y_true, y_pred


def _pred_array(y_pred):
    """The floating array behind `y_pred` (ints and bools become float32, lists float32)."""
    cls = y_pred.__class__
    arr = y_pred.value if cls is Tensor else y_pred._value if cls is Variable else value_of(y_pred)
    if arr.__class__ is not np.ndarray:
        src = arr
        arr = np.asarray(arr)
        if arr.dtype == np.float64 and not isinstance(src, np.generic):
            arr = arr.astype(np.float32)  # Python lists and floats: Keras's float32 default
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    return arr


def _prepare(y_true, y_pred):
    """(true array, pred array, pred's original shape) in y_pred's dtype, ranks fixed up as Keras does."""
    p = _pred_array(y_pred)
    t = value_of(y_true)
    if t.__class__ is not np.ndarray:
        t = np.asarray(t)
    if t.dtype is not p.dtype:
        t = t.astype(p.dtype)
    p_shape = p.shape
    if t.ndim != p.ndim:
        t, p = squeeze_or_expand_to_same_rank(t, p)
    return t, p, p_shape


def _check_broadcast(t, p, fn_name):
    if t.shape == p.shape:
        return
    try:
        np.broadcast_shapes(t.shape, p.shape)
    except ValueError:
        raise ValueError(
            f"{fn_name}: y_true of shape {t.shape} and y_pred of shape {p.shape} do not broadcast "
            "together. Pass labels with the shape of the model's output (or one that broadcasts to it)."
        ) from None


def _require_same_shape(t, p, fn_name, hint=""):
    if t.shape != p.shape:
        raise ValueError(
            f"{fn_name} needs y_true and y_pred of the same shape. Received: y_true.shape={t.shape}, "
            f"y_pred.shape={p.shape}. Reshape the labels to {p.shape}.{hint}")


def _node(value, y_true, y_pred, p_shape, grad_p, grad_t):
    """Record a loss value whose backward gives `grad_p(g)` to y_pred and `grad_t(g)` to y_true."""
    t_shape = np.shape(value_of(y_true)) if needs_grad(y_true) else None

    def backward(g):
        gp = grad_p(g)
        if gp.shape != p_shape:
            gp = gp.reshape(p_shape)
        return gp, (None if t_shape is None else grad_t(g).reshape(t_shape))

    return record(value, (y_pred, y_true), backward)


def _mean(x, axis, n):
    # np.mean's Python wrapper costs more than the arithmetic at these sizes
    return np.add.reduce(x, axis=axis) / x.dtype.type(n)


# ---------------------------------------------------------------- per-sample loss functions

def mean_squared_error(y_true, y_pred):
    """Mean of `square(y_true - y_pred)` over the last axis, one value per sample.

    Args:
        y_true: ground-truth values, shape `(batch_size, d0, .. dN)`.
        y_pred: predictions, same shape (or one that broadcasts with it).
    """
    t, p, p_shape = _prepare(y_true, y_pred)
    _check_broadcast(t, p, "mean_squared_error")
    d = p - t
    if d.ndim == 0:
        out, n = d * d, 1
    else:
        n = d.shape[-1]
        out = _mean(d * d, -1, n)

    def grad_d(g):
        return (g if d.ndim == 0 else g[..., None]) * d * d.dtype.type(2.0 / n)

    def grad_p(g):
        return unbroadcast(grad_d(g), p.shape)

    def grad_t(g):
        return -unbroadcast(grad_d(g), t.shape)

    return _node(out, y_true, y_pred, p_shape, grad_p, grad_t)


def mean_absolute_error(y_true, y_pred):
    """Mean of `abs(y_true - y_pred)` over the last axis, one value per sample.

    Args:
        y_true: ground-truth values, shape `(batch_size, d0, .. dN)`.
        y_pred: predictions, same shape (or one that broadcasts with it).
    """
    t, p, p_shape = _prepare(y_true, y_pred)
    _check_broadcast(t, p, "mean_absolute_error")
    d = p - t
    if d.ndim == 0:
        out, n = np.abs(d), 1
    else:
        n = d.shape[-1]
        out = _mean(np.abs(d), -1, n)

    def grad_d(g):
        return (g if d.ndim == 0 else g[..., None]) * np.sign(d) * d.dtype.type(1.0 / n)

    def grad_p(g):
        return unbroadcast(grad_d(g), p.shape)

    def grad_t(g):
        return -unbroadcast(grad_d(g), t.shape)

    return _node(out, y_true, y_pred, p_shape, grad_p, grad_t)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Binary cross-entropy, averaged over `axis`: one value per sample.

    Probabilities are clipped to `[1e-7, 1 - 1e-7]` as in Keras; with `from_logits=True` the
    numerically stable `max(x, 0) - x * t + log(1 + exp(-|x|))` is used.

    Args:
        y_true: labels in [0, 1], shape of `y_pred` (a trailing axis of size 1 may be missing).
        y_pred: probabilities, or logits when `from_logits=True`.
        from_logits: whether `y_pred` holds logits.
        label_smoothing: in [0, 1]; labels become `t * (1 - s) + 0.5 * s`.
        axis: the axis the mean is taken over.
    """
    t, p, p_shape = _prepare(y_true, y_pred)
    _require_same_shape(t, p, "binary_crossentropy")
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    one = p.dtype.type(1.0)
    if from_logits:
        # torch.nn.functional.binary_cross_entropy_with_logits, as Keras's torch backend computes it
        elem = (one - t) * p + (np.maximum(-p, 0) + np.log1p(np.exp(-np.abs(p))))
    else:
        q = np.clip(p, EPSILON, 1.0 - EPSILON)
        elem = -(t * np.log(q) + (one - t) * np.log(one - q))
    if elem.ndim == 0:
        out, n = elem, 1
    else:
        n = elem.shape[axis]
        out = _mean(elem, axis, n)
    scale = (1.0 - label_smoothing) if label_smoothing else 1.0

    def expand(g):
        return g if elem.ndim == 0 else np.expand_dims(g, axis) * p.dtype.type(1.0 / n)

    def grad_p(g):
        if from_logits:
            local = one / (one + np.exp(-p)) - t
        else:  # clip passes the gradient only inside [eps, 1 - eps], as torch.clamp does
            local = np.where(q == p, (q - t) / (q * (one - q)), p.dtype.type(0))
        return expand(g) * local

    def grad_t(g):
        local = -p if from_logits else np.log(one - q) - np.log(q)
        return expand(g) * local * p.dtype.type(scale)

    return _node(out, y_true, y_pred, p_shape, grad_p, grad_t)


def _check_axis(axis):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"`axis` must be an int. Received: axis={axis!r} of type {type(axis).__name__}")


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Cross-entropy between one-hot (or soft) labels and predicted distributions over `axis`.

    Probabilities are renormalised to sum to 1 and clipped to `[1e-7, 1 - 1e-7]` as in Keras.

    Args:
        y_true: one-hot labels, shape of `y_pred`.
        y_pred: probabilities, or logits when `from_logits=True`.
        from_logits: whether `y_pred` holds logits.
        label_smoothing: in [0, 1]; labels become `t * (1 - s) + s / num_classes`.
        axis: the class axis.
    """
    _check_axis(axis)
    t, p, p_shape = _prepare(y_true, y_pred)
    if p.ndim < 1:
        raise ValueError(f"categorical_crossentropy needs y_pred of rank >= 1. Received: y_pred.shape={p.shape}. "
                         "Pass a batch of class scores, e.g. shape (batch_size, num_classes).")
    _require_same_shape(t, p, "categorical_crossentropy",
                        " If y_true holds integer class ids, use sparse_categorical_crossentropy instead.")
    if p.shape[-1] == 1:
        warnings.warn(
            f"In loss categorical_crossentropy, expected y_pred.shape to be (batch_size, num_classes) with "
            f"num_classes > 1. Received: y_pred.shape={p.shape}. Consider using 'binary_crossentropy' if you "
            "only have 2 classes.", SyntaxWarning, stacklevel=2)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / t.shape[-1]  # Keras uses the last axis here
    if from_logits:
        shifted = p - p.max(axis=axis, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=axis, keepdims=True)
        log_q = shifted - np.log(total)
    else:
        s = p.sum(axis=axis, keepdims=True)
        r = p / s
        q = np.clip(r, EPSILON, 1.0 - EPSILON)
        log_q = np.log(q)
    out = -(t * log_q).sum(axis=axis)

    def grad_p(g):
        g = np.expand_dims(g, axis)
        if from_logits:
            return g * (exp / total * t.sum(axis=axis, keepdims=True) - t)
        gr = np.where(q == r, -g * t / q, p.dtype.type(0))
        return (gr - (gr * r).sum(axis=axis, keepdims=True)) / s

    def grad_t(g):
        return -np.expand_dims(g, axis) * log_q * p.dtype.type(1.0 - label_smoothing)

    return _node(out, y_true, y_pred, p_shape, grad_p, grad_t)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Cross-entropy between integer class ids and predicted distributions over `axis`.

    Probabilities are renormalised and clipped to `[1e-7, 1 - 1e-7]` as in Keras. Entries whose
    label is `ignore_class` get loss 0 and are masked out of the reduction.

    Args:
        y_true: integer class ids, shape of `y_pred` without the class axis (or with it of size 1).
        y_pred: probabilities, or logits when `from_logits=True`.
        from_logits: whether `y_pred` holds logits.
        ignore_class: a label value (e.g. -1 or 255) that takes no part in the loss.
        axis: the class axis.

    Note:
        Ignored entries get an exact zero gradient, whatever `y_pred` holds there.
    """
    _check_axis(axis)
    p = _pred_array(y_pred)
    p_shape = p.shape
    labels = value_of(y_true)
    if labels.__class__ is not np.ndarray:
        labels = np.asarray(labels)
    if p.ndim < 1:
        raise ValueError(f"sparse_categorical_crossentropy needs y_pred of rank >= 1. Received: "
                         f"y_pred.shape={p.shape}. Pass a batch of class scores, e.g. (batch_size, num_classes).")
    if labels.ndim == p.ndim and labels.shape[axis] == 1:
        labels = labels.squeeze(axis)
    moved = axis not in (-1, p.ndim - 1)
    pm = np.moveaxis(p, axis, -1) if moved else p
    if labels.shape != pm.shape[:-1]:
        raise ValueError(
            f"sparse_categorical_crossentropy needs y_true with the shape of y_pred without its class axis. "
            f"Received: y_true.shape={np.shape(value_of(y_true))}, y_pred.shape={p.shape}. Pass integer class "
            f"ids of shape {pm.shape[:-1]}; for one-hot labels use categorical_crossentropy.")
    num_classes = pm.shape[-1]
    valid = None if ignore_class is None else labels != ignore_class
    ids = labels.astype(np.intp)
    if valid is not None:
        ids[~valid] = 0
    if ids.size and (np.minimum.reduce(ids, axis=None) < 0 or np.maximum.reduce(ids, axis=None) >= num_classes):
        bad = ids[(ids < 0) | (ids >= num_classes)].flat[0]
        raise ValueError(
            f"sparse_categorical_crossentropy got label {bad} but y_pred has {num_classes} classes "
            f"(valid labels: 0..{num_classes - 1}). Fix the labels, or pass ignore_class={bad} to skip them.")
    flat = pm.reshape(-1, num_classes)
    rows, cols = np.arange(flat.shape[0]), ids.reshape(-1)
    if from_logits:
        shifted = flat - np.maximum.reduce(flat, axis=-1, keepdims=True)  # ndarray.max/sum without their wrappers
        exp = np.exp(shifted)
        total = np.add.reduce(exp, axis=-1)
        out = np.log(total) - shifted[rows, cols]
    else:
        s = flat.sum(axis=-1)
        r_l = flat[rows, cols] / s
        q_l = np.clip(r_l, EPSILON, 1.0 - EPSILON)
        out = -np.log(q_l)
    out = out.reshape(ids.shape)
    if valid is not None:
        out[~valid] = 0

    def backward(g):
        g = g.reshape(-1)
        if valid is not None:
            g = np.where(valid.reshape(-1), g, g.dtype.type(0))
        if from_logits:
            grad = exp * (g / total)[:, None]
            grad[rows, cols] -= g
        else:  # d(-log clip(p_l / s))/dp_j = (gr_l * [j == l] - gr_l * r_l) / s
            gr_l = np.where(q_l == r_l, -g / q_l, g.dtype.type(0))
            grad = np.empty_like(flat)
            grad[...] = (-(gr_l * r_l) / s)[:, None]
            grad[rows, cols] += gr_l / s
        grad = grad.reshape(pm.shape)
        if moved:
            grad = np.moveaxis(grad, -1, axis)
        return grad.reshape(p_shape), None

    result = record(out, (y_pred, y_true), backward)
    return result if valid is None else _with_mask(result, valid)


# ---------------------------------------------------------------- reductions

def _apply_mask(sample_weight, mask, dtype, reduction):
    """Merge a boolean mask into the sample weights as Keras's `apply_mask` does."""
    if mask is None:
        return sample_weight
    if reduction in ("mean", "sum_over_batch_size"):
        valid = mask.sum()
        weight = np.asarray(mask.size / valid if valid else 0.0, dtype)
        float_mask = np.where(mask, weight, np.asarray(0, dtype))
    else:
        float_mask = mask.astype(dtype)
    if sample_weight is None:
        return float_mask
    float_mask, sample_weight = squeeze_or_expand_to_same_rank(float_mask, sample_weight)
    return sample_weight * float_mask


def _align_weights(values, sample_weight):
    """Values and weights with Keras's rank fix-up, then weights aligned from the batch axis."""
    if sample_weight.ndim != values.ndim:
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
    if 0 < sample_weight.ndim < values.ndim:
        # Keras 3 broadcasts from the right here, which pairs weights with the wrong axis; a
        # per-sample weight belongs to the leading (batch) axis.
        sample_weight = sample_weight.reshape(sample_weight.shape + (1,) * (values.ndim - sample_weight.ndim))
    if sample_weight.shape != values.shape:
        try:
            np.broadcast_shapes(values.shape, sample_weight.shape)
        except ValueError:
            raise ValueError(
                f"sample_weight of shape {sample_weight.shape} does not fit losses of shape {values.shape}. "
                f"Pass one weight per sample, shape ({values.shape[0] if values.ndim else ''},).") from None
    return values, sample_weight


def reduce_weighted_values(values, sample_weight=None, mask=None, reduction="sum_over_batch_size",
                           dtype=None):
    """Weight per-sample losses and reduce them to a scalar as Keras's reductions do.

    Args:
        values: per-sample losses (a Tensor or array).
        sample_weight: optional weights, one per sample (or per entry of `values`).
        mask: optional boolean array; masked-out entries take no part (Keras's `_keras_mask`).
        reduction: one of `REDUCTIONS`.
        dtype: the computation dtype (float32 by default).

    Note:
        Weights of lower rank than `values` pair with the leading (batch) axes; Keras 3 pairs
        them with the trailing axes, which is wrong (or fails) for losses of rank 2 and more.
    """
    return _reduce(values, sample_weight, mask, standardize_reduction(reduction), np.dtype(standardize_dtype(dtype)))


def _reduce(values, sample_weight, mask, reduction, dtype):
    if values.__class__ is Tensor or isinstance(values, Tensor):
        if values.value.dtype is not dtype and values.value.dtype != dtype:
            values = ops.cast(values, dtype)
    elif isinstance(values, Variable):
        values = ops.cast(values, dtype) if values._value.dtype != dtype else values
    else:
        values = Tensor(np.asarray(values, dtype=dtype))
    v = value_of(values)
    sw = None
    if sample_weight is not None:
        sw = value_of(sample_weight)
        if sw.__class__ is not np.ndarray or sw.dtype is not dtype:
            sw = np.asarray(sw, dtype=dtype)
    if mask is not None:
        sw = _apply_mask(sw, mask, dtype, reduction)
    v2 = v
    if sw is not None:
        v2, sw = _align_weights(v, sw)
    if reduction is None or reduction == "none" or v2.ndim == 0 or v2.shape == (0,):
        if sw is None:
            return values
        return ops.multiply(ops.reshape(values, v2.shape) if v2.shape != v.shape else values, sw)
    weighted = v2 if sw is None else v2 * sw
    total = np.add.reduce(weighted, axis=None)  # weighted.sum() without its Python wrapper
    if reduction == "sum":
        divisor = None
        out = total
    else:
        divisor = sw.sum(dtype=dtype) if reduction == "mean_with_sample_weight" and sw is not None \
            else dtype.type(weighted.size)
        out = total / divisor if divisor != 0 else dtype.type(0)  # divide_no_nan
    out = np.asarray(out, dtype=dtype)

    def backward(g):
        if divisor is not None and divisor == 0:
            return (np.zeros_like(v),)
        factor = g if divisor is None else g / divisor
        if sw is None:
            grad = np.empty(v.shape, dtype=v.dtype)  # np.full without its Python wrapper
            grad.fill(factor)
        else:
            grad = unbroadcast(np.asarray(factor * sw, dtype=v.dtype) * np.ones_like(weighted), v2.shape)
        return (grad if grad.shape == v.shape else grad.reshape(v.shape),)

    return record(out, (values,), backward)


# ---------------------------------------------------------------- Loss classes

def _to_dtype(x, dtype):
    cls = x.__class__
    if cls is np.ndarray:
        return x if x.dtype is dtype else x.astype(dtype)
    if cls is Tensor or isinstance(x, (Tensor, Variable)):
        current = value_of(x).dtype
        return x if current is dtype or current == dtype else ops.cast(x, dtype)
    return np.asarray(x, dtype=dtype)



@builtin()
class Loss:
    """Base of every loss: `__call__` computes per-sample losses with `call`, then weights and reduces.

    Subclass and implement `call(y_true, y_pred)` with `kerasckpt.ops`, returning one loss per
    sample; gradients then flow to `y_pred` through the ops.

    Args:
        name: the loss's name; defaults to the snake_case class name.
        reduction: `"sum_over_batch_size"` (default), `"sum"`, `"mean"`,
            `"mean_with_sample_weight"`, or `"none"`/None for no reduction.
        dtype: the computation dtype; float32 by default.

    Note:
        A `sample_weight` of lower rank than the per-sample losses weighs their leading (batch)
        axes; Keras 3 pairs it with the trailing axes, silently mis-weighting when they match.
    """

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or get_uid(snake_case(type(self).__name__))
        self.reduction = standardize_reduction(reduction)
        self._dtype = standardize_dtype(dtype)
        self._np_dtype = np.dtype(self._dtype)

    @property
    def dtype(self):
        return self._dtype

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The reduced loss: a Tensor (scalar unless `reduction` is none) differentiable w.r.t. y_pred."""
        dtype = self._np_dtype
        in_mask = get_mask(y_pred)  # a mask on the predictions (masked sequence outputs) leaves entries out
        losses = self.call(_to_dtype(y_true, dtype), _to_dtype(y_pred, dtype))
        return _reduce(losses, sample_weight, _both(in_mask, get_mask(losses)), self.reduction, dtype)

    def call(self, y_true, y_pred):
        """Per-sample losses; subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred).")

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


@builtin()
class LossFunctionWrapper(Loss):
    """A `Loss` around a function `fn(y_true, y_pred, **kwargs)` that returns per-sample losses.

    Args:
        fn: the loss function.
        reduction: see `Loss`.
        name: the loss's name.
        dtype: the computation dtype.
        **kwargs: passed on to `fn`.
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not callable(fn):
            raise ValueError(f"LossFunctionWrapper needs a callable `fn`. Received: fn={fn!r}. "
                             "Pass a function fn(y_true, y_pred) returning per-sample losses.")
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        if not is_builtin_function(self.fn):  # the built-in kernels fix up ranks themselves
            y_true, y_pred = _same_rank_tensors(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        config = super().get_config()
        config["fn"] = serialize(self.fn)
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "fn" in config:
            config["fn"] = deserialize(config["fn"])
        return cls(**config)

    def __repr__(self):
        return f"<LossFunctionWrapper({getattr(self.fn, '__name__', self.fn)}, kwargs={self._fn_kwargs})>"


@builtin()
class MeanSquaredError(LossFunctionWrapper):
    """Mean of squares of errors: `mean(square(y_true - y_pred))`.

    Args:
        reduction: see `Loss`; `"sum_over_batch_size"` by default.
        name: defaults to `"mean_squared_error"`.
        dtype: the computation dtype.
    """

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


@builtin()
class MeanAbsoluteError(LossFunctionWrapper):
    """Mean of absolute errors: `mean(abs(y_true - y_pred))`.

    Args:
        reduction: see `Loss`; `"sum_over_batch_size"` by default.
        name: defaults to `"mean_absolute_error"`.
        dtype: the computation dtype.
    """

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


@builtin()
class BinaryCrossentropy(LossFunctionWrapper):
    """Cross-entropy for binary (0 or 1) labels; see `binary_crossentropy`.

    Args:
        from_logits: whether `y_pred` holds logits rather than probabilities.
        label_smoothing: in [0, 1]; squeezes labels towards 0.5.
        axis: the axis the mean is taken over.
        reduction: see `Loss`.
        name: defaults to `"binary_crossentropy"`.
        dtype: the computation dtype.
    """

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy", dtype=None):
        super().__init__(binary_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing, axis=self.axis)
        return config


@builtin()
class CategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy for one-hot labels; see `categorical_crossentropy`.

    Args:
        from_logits: whether `y_pred` holds logits rather than probabilities.
        label_smoothing: in [0, 1]; mixes labels with the uniform distribution.
        axis: the class axis.
        reduction: see `Loss`.
        name: defaults to `"categorical_crossentropy"`.
        dtype: the computation dtype.
    """

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        super().__init__(categorical_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing, axis=self.axis)
        return config


@builtin()
class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy for integer class ids; see `sparse_categorical_crossentropy`.

    With `ignore_class`, ignored entries are masked: `"sum_over_batch_size"` averages over the
    remaining entries only, as in Keras.

    Args:
        from_logits: whether `y_pred` holds logits rather than probabilities.
        ignore_class: a label value that takes no part in the loss.
        reduction: see `Loss`.
        axis: the class axis.
        name: defaults to `"sparse_categorical_crossentropy"`.
        dtype: the computation dtype.

    Note:
        `get_config` includes `axis` when it is not -1; Keras drops it and so reloads a
        different loss.
    """

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size", axis=-1,
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(sparse_categorical_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, ignore_class=ignore_class, axis=axis)
        self.from_logits, self.ignore_class, self.axis = from_logits, ignore_class, axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update(from_logits=self.from_logits, ignore_class=self.ignore_class)
        if self.axis != -1:
            config["axis"] = self.axis
        return config


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
bce = BCE = binary_crossentropy

_FUNCTIONS = {f.__name__: f for f in (mean_squared_error, mean_absolute_error, binary_crossentropy,
                                      categorical_crossentropy, sparse_categorical_crossentropy)}


_FUNCTION_IDS = frozenset(id(f) for f in _FUNCTIONS.values())  # module-level functions: their ids never change


def is_builtin_function(fn):
    """Whether `fn` is one of the loss functions above (identity, so unhashable callables are fine)."""
    return id(fn) in _FUNCTION_IDS


_CLASSES = {c.__name__: c for c in (Loss, LossFunctionWrapper, MeanSquaredError, MeanAbsoluteError,
                                    BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy)}
ALL_OBJECTS_DICT = {**_CLASSES, **_FUNCTIONS, "mse": mean_squared_error, "MSE": mean_squared_error,
                    "mae": mean_absolute_error, "MAE": mean_absolute_error,
                    "bce": binary_crossentropy, "BCE": binary_crossentropy}
_BASES = ("Loss", "LossFunctionWrapper")


# ---------------------------------------------------------------- get / serialize

def serialize_object(obj, module, builtin_classes):
    """Keras's `serialize_keras_object` dict for a loss or metric instance or function."""
    if obj is None or isinstance(obj, str):
        return obj
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        name = getattr(obj, "_registered_name", None) or obj.__name__
        return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}
    cls = type(obj)
    if builtin_classes.get(cls.__name__) is cls:
        mod, registered = module, None
        if cls.__name__ in ("LossFunctionWrapper",):  # not exported by keras.losses
            mod, registered = "keras.src.losses.losses", "LossFunctionWrapper"
        return {"module": mod, "class_name": cls.__name__, "config": obj.get_config(), "registered_name": registered}
    return {"module": cls.__module__, "class_name": cls.__name__, "config": obj.get_config(),
            "registered_name": getattr(cls, "_registered_name", None) or cls.__name__}


def deserialize_object(config, table, custom_objects, kind, valid_names, base, functions=None):
    """The class or function a name or Keras config dict refers to (an instance for class configs)."""
    custom_objects = custom_objects or {}
    if isinstance(config, str):
        found = custom_objects.get(config) or table.get(config) or lookup(config)
        if found is None or inspect.isclass(found) and not issubclass(found, base):
            raise ValueError(f"Unknown {kind}: {config!r}. Use one of: {', '.join(valid_names)}, or pass "
                             "the object itself (or register it with register_serializable).")
        return found
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret {kind} identifier: {config!r}. Pass a name such as "
                         f"{valid_names[0]!r}, a config dict with 'class_name' and 'config', or the object.")
    class_name, inner = config["class_name"], config.get("config") or {}
    registered = config.get("registered_name")
    if class_name == "function":  # {"class_name": "function", "config": "mean_squared_error"}
        found = custom_objects.get(inner) or (functions or table).get(inner) or lookup(inner)
        if not callable(found) or inspect.isclass(found):
            names = ", ".join(sorted(functions or table))
            raise ValueError(f"Unknown {kind} function: {inner!r}. Use one of: {names}, "
                             "or pass it in custom_objects / register it with register_serializable.")
        return found
    found = None
    if registered and registered not in (class_name, "function"):
        found = custom_objects.get(registered) or lookup(registered, custom_objects)
    found = found or custom_objects.get(class_name) or table.get(class_name) or lookup(class_name)
    if found is None or not inspect.isclass(found) or not issubclass(found, base):
        raise ValueError(f"Unknown {kind} class: {class_name!r}. Use one of: {', '.join(valid_names)}, "
                         "or pass it in custom_objects / register it with register_serializable.")
    return found.from_config(dict(inner))


def _valid_names():
    return sorted(name for name in ALL_OBJECTS_DICT if name not in _BASES)


def serialize(loss):
    """The Keras config dict of a loss instance or function (what `keras.losses.serialize` gives)."""
    return serialize_object(loss, "keras.losses", _CLASSES)


def deserialize(name, custom_objects=None):
    """A loss from `serialize`'s dict or a name; classes named by a dict are instantiated.

    Args:
        name: a config dict or a name.
        custom_objects: extra `{name: class or function}` to consider first.
    """
    return deserialize_object(name, ALL_OBJECTS_DICT, custom_objects, "loss", _valid_names(), Loss, _FUNCTIONS)


def get(identifier):
    """A loss from a name, a Keras config dict, a `Loss` instance or class, or a function.

    As in Keras, snake_case names and the aliases `"mse"`, `"mae"`, `"bce"` give the loss
    function; CamelCase names, classes and config dicts give a `Loss` instance.

    Args:
        identifier: the name, config dict, instance, class or callable; None gives None.
    """
    if identifier is None:
        return None
    obj = deserialize(identifier) if isinstance(identifier, (str, dict)) else identifier
    if inspect.isclass(obj):
        obj = obj()
    if not callable(obj):
        raise ValueError(f"Could not interpret loss identifier: {identifier!r}. Pass a name such as 'mse', "
                         f"a Loss instance or a function. Valid names: {', '.join(_valid_names())}.")
    return obj
