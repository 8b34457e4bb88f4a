"""Convolution and pooling ops of `kerasckpt.ops`: windows as strided views, im2col + one matmul, vectorized
over the batch; backward passes add window gradients back with one slice per kernel offset."""
import itertools
import math

import numpy as np

from kerasckpt.autograd import needs_grad, record, value_of


def _tuple(value, rank, name):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * rank
    values = tuple(int(v) for v in value)
    if len(values) != rank:
        raise ValueError(f"`{name}` needs {rank} integers (one per spatial axis). Received: {name}={value!r}")
    return values


def _check_format(data_format, padding, allowed=("valid", "same")):
    data_format = data_format or "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first'. Received: {data_format!r}")
    if not isinstance(padding, str) or padding.lower() not in allowed:
        raise ValueError(f"padding must be one of {list(allowed)}. Received: padding={padding!r}")
    return data_format, padding.lower()


def _float_array(x):
    v = np.asarray(value_of(x))
    return v if v.dtype.kind == "f" else v.astype(np.float32)


def _plan(sizes, kernel, strides, dilations, padding):
    """Output sizes and (before, after) paddings per spatial axis, as TensorFlow and Keras compute them."""
    outs, pads = [], []
    for n, k, s, d in zip(sizes, kernel, strides, dilations):
        span = (k - 1) * d + 1
        if padding == "valid":
            out, total = max((n - span) // s + 1, 0), 0
        else:
            out = -(-n // s)
            total = max((out - 1) * s + span - n, 0)
        outs.append(out)
        pads.append((total // 2, total - total // 2))
    return tuple(outs), tuple(pads)


def _pad(x, pads, value=0.0):
    if not any(lo or hi for lo, hi in pads):
        return x
    return np.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),), constant_values=value)


def _crop(x, pads):
    if not any(lo or hi for lo, hi in pads):
        return x
    return x[(slice(None),) + tuple(slice(lo, x.shape[i + 1] - hi) for i, (lo, hi) in enumerate(pads))]


def _windows(x, outs, kernel, strides, dilations):
    """A read-only view (N, *outs, *kernel, C) of the windows of channels-last `x`."""
    step = x.strides
    shape = (x.shape[0],) + outs + tuple(kernel) + (x.shape[-1],)
    strides_ = ((step[0],) + tuple(t * s for t, s in zip(step[1:-1], strides))
                + tuple(t * d for t, d in zip(step[1:-1], dilations)) + (step[-1],))
    return np.lib.stride_tricks.as_strided(x, shape, strides_, writeable=False)


def _add_windows(grad_windows, shape, outs, kernel, strides, dilations):
    """The inverse of `_windows` for gradients: each window's values added back into an array of `shape`."""
    out = np.zeros(shape, grad_windows.dtype)
    lead = (slice(None),) * (1 + len(outs))
    for offset in itertools.product(*(range(k) for k in kernel)):
        target = (slice(None),) + tuple(slice(o * d, o * d + (n - 1) * s + 1, s)
                                        for o, d, n, s in zip(offset, dilations, outs, strides))
        out[target] += grad_windows[lead + offset]
    return out


def _channels_last(x, data_format):
    return np.moveaxis(x, 1, -1) if data_format == "channels_first" else x


def _channels_back(x, data_format):
    return np.ascontiguousarray(np.moveaxis(x, -1, 1)) if data_format == "channels_first" else x


def _conv_args(op, inputs, kernel, strides, padding, data_format, dilation_rate):
    """The arrays and checked arguments of a convolution: (inputs, kernel, rank, strides, dilations,
    padding, data_format)."""
    data_format, padding = _check_format(data_format, padding)
    xv, wv = _float_array(inputs), _float_array(kernel)
    rank = wv.ndim - 2
    if xv.ndim != rank + 2:
        raise ValueError(f"{op} with a {rank}-D kernel of shape {wv.shape} needs inputs of rank {rank + 2}. "
                         f"Received inputs of shape {xv.shape}.")
    return (xv, wv, rank, _tuple(strides, rank, "strides"), _tuple(dilation_rate, rank, "dilation_rate"), padding,
            data_format)


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """N-D convolution (cross-correlation) as in `keras.ops.conv`, for 1 and 2 (or more) spatial axes.

    `kernel` has shape `(*kernel_size, in_channels // groups, filters)`; the number of groups is the input's
    channels divided by `kernel.shape[-2]`. `padding` is "valid" or "same" (TensorFlow's split, the extra
    pixel after).
    """
    xv, wv, rank, strides, dilations, padding, data_format = _conv_args(
        "conv", inputs, kernel, strides, padding, data_format, dilation_rate)
    x = _channels_last(xv, data_format)
    channels, per_group, filters = x.shape[-1], wv.shape[-2], wv.shape[-1]
    if per_group < 1 or channels % per_group or filters % (channels // per_group):
        raise ValueError(f"conv: inputs with {channels} channels do not fit a kernel of shape {wv.shape} (its "
                         "input-channel axis must divide the channels, and the groups the filters).")
    groups = channels // per_group
    kernel_size = wv.shape[:rank]
    outs, pads = _plan(x.shape[1:-1], kernel_size, strides, dilations, padding)
    xp = _pad(x, pads)
    n, rows, taps = x.shape[0], x.shape[0] * math.prod(outs), math.prod(kernel_size)
    cols = _windows(xp, outs, kernel_size, strides, dilations).reshape(rows, taps * channels)
    if groups == 1:
        w2 = wv.reshape(taps * channels, filters)
        out = cols @ w2
    else:  # (groups, rows, taps * per_group) @ (groups, taps * per_group, filters // groups)
        cols_g = cols.reshape(rows, taps, groups, per_group).transpose(2, 0, 1, 3).reshape(groups, rows, -1)
        w_g = wv.reshape(taps, per_group, groups, filters // groups).transpose(2, 0, 1, 3).reshape(groups, -1,
                                                                                                    filters // groups)
        out = (cols_g @ w_g).transpose(1, 0, 2).reshape(rows, filters)
    out = _channels_back(out.reshape((n,) + outs + (filters,)), data_format)

    def backward(g):
        g2 = _channels_last(g, data_format).reshape(rows, filters)
        gx = gw = None
        if groups == 1:
            if needs_grad(kernel):
                gw = (cols.T @ g2).reshape(wv.shape)
            if needs_grad(inputs):
                gcols = (g2 @ w2.T).reshape((n,) + outs + tuple(kernel_size) + (channels,))
        else:
            g_g = g2.reshape(rows, groups, filters // groups).transpose(1, 0, 2)
            if needs_grad(kernel):
                gw = (cols_g.transpose(0, 2, 1) @ g_g).reshape(groups, taps, per_group, filters // groups)
                gw = gw.transpose(1, 2, 0, 3).reshape(wv.shape)
            if needs_grad(inputs):
                gcols = (g_g @ w_g.transpose(0, 2, 1)).reshape(groups, rows, taps, per_group)
                gcols = gcols.transpose(1, 2, 0, 3).reshape((n,) + outs + tuple(kernel_size) + (channels,))
        if needs_grad(inputs):
            gx = _channels_back(_crop(_add_windows(gcols, xp.shape, outs, kernel_size, strides, dilations), pads),
                                data_format)
        return gx, gw

    return record(out, (inputs, kernel), backward)


def _transpose_plan(sizes, kernel, strides, dilations, padding, output_padding):
    """(full length, crop before, output length) per axis: Keras's rule (its JAX padding, which the torch
    backend crops to as well); a negative crop after means zeros are added at the end."""
    plans = []
    for i, (n, k, s, d) in enumerate(zip(sizes, kernel, strides, dilations)):
        span = (k - 1) * d + 1
        extra = None if output_padding is None else output_padding[i]
        if padding == "valid":
            before, after = span - 1, span - 1 + (max(span, s) - span if extra is None else extra)
        else:
            total = s + span - 2 if extra is None else span + span % 2 - 2 + extra
            before = min(total // 2 + total % 2, span - 1)
            after = total - before
        full = (n - 1) * s + span
        plans.append((full, span - 1 - before, full - (span - 1 - before) - (span - 1 - after)))
    return plans


def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None,
                   dilation_rate=1):
    """Transposed convolution as in `keras.ops.conv_transpose`: the gradient of `conv` with respect to its input.

    `kernel` has shape `(*kernel_size, filters, in_channels)`; output sizes follow Keras's rule, with
    `output_padding` (None, or one integer per axis, each below the stride) adding to the end.
    """
    xv, wv, rank, strides, dilations, padding, data_format = _conv_args(
        "conv_transpose", inputs, kernel, strides, padding, data_format, dilation_rate)
    if output_padding is not None:
        output_padding = _tuple(output_padding, rank, "output_padding")
    x = _channels_last(xv, data_format)
    n, sizes, channels = x.shape[0], x.shape[1:-1], x.shape[-1]
    kernel_size, filters = wv.shape[:rank], wv.shape[-2]
    if wv.shape[-1] != channels:
        raise ValueError(f"conv_transpose: inputs with {channels} channels do not fit a kernel of shape {wv.shape} "
                         "(its last axis is the input channels).")
    taps = math.prod(kernel_size)
    plans = _transpose_plan(sizes, kernel_size, strides, dilations, padding, output_padding)
    w2 = np.moveaxis(wv, -1, 0).reshape(channels, taps * filters)  # (C, *K, F) flattened
    x2 = x.reshape(-1, channels)
    cols = (x2 @ w2).reshape((n,) + tuple(sizes) + tuple(kernel_size) + (filters,))
    full = _add_windows(cols, (n,) + tuple(p[0] for p in plans) + (filters,), tuple(sizes), kernel_size, strides,
                        dilations)
    out = _channels_back(_fit(full, plans), data_format)

    def backward(g):
        g_full = _unfit(_channels_last(g, data_format), plans)
        gcols = np.ascontiguousarray(_windows(g_full, tuple(sizes), kernel_size, strides, dilations))
        gcols = gcols.reshape(-1, taps * filters)
        gx = _channels_back((gcols @ w2.T).reshape(x.shape), data_format) if needs_grad(inputs) else None
        gw = np.moveaxis((x2.T @ gcols).reshape((channels,) + tuple(kernel_size) + (filters,)), 0, -1) \
            if needs_grad(kernel) else None
        return gx, gw

    return record(out, (inputs, kernel), backward)


def _fit(full, plans):
    """`full` cropped (or zero-padded at the end) to each axis's (crop before, output length)."""
    pads = [(0, 0)] + [(0, max(lo + length - size, 0)) for size, lo, length in plans] + [(0, 0)]
    if any(hi for _, hi in pads):
        full = np.pad(full, pads)
    return full[(slice(None),) + tuple(slice(lo, lo + length) for _, lo, length in plans)]


def _unfit(g, plans):
    """The gradient of `_fit`: `g` placed back into zeros of the full shape."""
    shape = (g.shape[0],) + tuple(max(size, lo + length) for size, lo, length in plans) + (g.shape[-1],)
    full = np.zeros(shape, g.dtype)
    full[(slice(None),) + tuple(slice(lo, lo + length) for _, lo, length in plans)] = g
    return full[(slice(None),) + tuple(slice(0, size) for size, _, _ in plans)]


def _pool_args(inputs, pool_size, strides, padding, data_format):
    data_format, padding = _check_format(data_format, padding)
    xv = np.asarray(value_of(inputs))
    rank = xv.ndim - 2
    if rank < 1:
        raise ValueError(f"Pooling needs inputs of rank 3 or more (batch, spatial axes, channels). Received "
                         f"inputs of shape {xv.shape}.")
    pool = _tuple(pool_size, rank, "pool_size")
    strides = pool if strides is None else _tuple(strides, rank, "strides")
    return xv, _channels_last(xv, data_format), pool, strides, padding, data_format


def _taps(xp, outs, pool, strides):
    """(offset, view) for each position of the pooling window, in row-major order: view[n, *o, c] is the
    value at that position of window `o` (a strided slice of `xp`, no copy)."""
    for offset in itertools.product(*(range(k) for k in pool)):
        yield offset, xp[(slice(None),) + tuple(slice(o, o + (n - 1) * s + 1, s)
                                                for o, n, s in zip(offset, outs, strides))]


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Largest value of each window, as `keras.ops.max_pool`; the gradient goes to the first largest value of a
    window (in row-major order), as in TensorFlow and torch."""
    xv, x, pool, strides, padding, data_format = _pool_args(inputs, pool_size, strides, padding, data_format)
    outs, pads = _plan(x.shape[1:-1], pool, strides, (1,) * len(pool), padding)
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp = _pad(x, pads, lowest)
    best = None
    for _, view in _taps(xp, outs, pool, strides):
        best = view.copy() if best is None else np.maximum(best, view, out=best)
    out = _channels_back(best, data_format)

    tiles = strides == pool and not any(lo or hi for lo, hi in pads)  # windows tile the input: reshape, no loop

    def backward(g):
        g = _channels_last(g, data_format)
        if tiles:
            return (_channels_back(_tiled_max_grad(xp, best, g, pool), data_format),)
        grad, taken = np.zeros(xp.shape, g.dtype), np.zeros(best.shape, bool)
        for offset, view in _taps(xp, outs, pool, strides):
            hit = (view == best) & ~taken
            taken |= hit
            target = (slice(None),) + tuple(slice(o, o + (n - 1) * s + 1, s) for o, n, s in zip(offset, outs, strides))
            grad[target] += hit * g
        return (_channels_back(_crop(grad, pads), data_format),)

    return record(out, (inputs,), backward)


def _tiled_max_grad(x, best, g, pool):
    """The max-pool gradient when the windows tile `x` (strides == pool_size, no padding): on a reshaped view,
    one comparison, then boolean passes that keep only the first largest value of each window."""
    rank, outs = len(pool), best.shape[1:-1]
    split = (x.shape[0],) + tuple(d for o, p in zip(outs, pool) for d in (o, p)) + (x.shape[-1],)
    inner = x[(slice(None),) + tuple(slice(0, o * p) for o, p in zip(outs, pool))]
    hit = inner.reshape(split) == best.reshape(_tile_shape(best.shape, rank))
    seen = None
    for offset in itertools.product(*(range(p) for p in pool)):  # ties: the first in row-major order wins
        view = hit[(slice(None),) + tuple(i for o in offset for i in (slice(None), o)) + (slice(None),)]
        if seen is None:
            seen = view.copy()
            continue
        view &= ~seen
        seen |= view
    window_grad = (hit * g.reshape(_tile_shape(g.shape, rank))).reshape(inner.shape)  # faster than np.where
    if inner.shape == x.shape:
        return window_grad
    grad = np.zeros(x.shape, g.dtype)
    grad[(slice(None),) + tuple(slice(0, n) for n in inner.shape[1:-1])] = window_grad
    return grad


def _tile_shape(shape, rank):
    """(N, o1, 1, o2, 1, ..., C): an output-shaped array broadcast over the positions of each window."""
    return (shape[0],) + tuple(d for o in shape[1:1 + rank] for d in (o, 1)) + (shape[-1],)


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Mean of each window, as `keras.ops.average_pool`; with "same" padding the padded positions are not
    counted (TensorFlow's and JAX's rule).

    Note: Keras on the torch backend counts a copy of the edge values instead when the padding of an axis is
    uneven; kerasckpt follows the other backends there.
    """
    xv, x, pool, strides, padding, data_format = _pool_args(inputs, pool_size, strides, padding, data_format)
    x = x if x.dtype.kind == "f" else x.astype(np.float32)
    rank = len(pool)
    outs, pads = _plan(x.shape[1:-1], pool, strides, (1,) * rank, padding)
    xp = _pad(x, pads)
    axes = tuple(range(1 + rank, 1 + 2 * rank))
    total = _windows(xp, outs, pool, strides, (1,) * rank).sum(axis=axes)  # (N, *outs, C)
    if any(lo or hi for lo, hi in pads):
        ones = _pad(np.ones((1,) + x.shape[1:-1] + (1,), x.dtype), pads)
        counts = _windows(ones, outs, pool, strides, (1,) * rank).sum(axis=axes)
    else:
        counts = np.asarray(math.prod(pool), x.dtype)
    out = _channels_back(total / counts, data_format)

    def backward(g):
        share = _channels_last(g, data_format) / counts  # (N, *outs, C)
        gwin = np.broadcast_to(share[(slice(None),) * (1 + rank) + (None,) * rank],
                               share.shape[:1 + rank] + pool + share.shape[-1:])
        return (_channels_back(_crop(_add_windows(gwin, xp.shape, outs, pool, strides, (1,) * rank), pads),
                               data_format),)

    return record(out, (inputs,), backward)
