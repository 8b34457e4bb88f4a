"""The ops behind the convolution, pooling, reshaping and normalization layers: values against direct NumPy
loops, gradients against central differences (float64), and their argument errors."""
import itertools

import numpy as np
import pytest

from kerasckpt import ops
from kerasckpt.autograd import GradientTape


def _grads(fn, arrays):
    tensors = [ops.convert_to_tensor(a, dtype="float64") for a in arrays]
    with GradientTape() as tape:
        tape.watch(tensors)
        out = fn(*tensors)
        probe = np.random.default_rng(9).normal(size=np.shape(out))
        loss = ops.sum(ops.multiply(out, probe))
    return out.numpy(), [g.numpy() for g in tape.gradient(loss, tensors)], probe


def check_gradients(fn, *arrays, eps=1e-6):
    out, grads, probe = _grads(fn, arrays)
    for array, grad in zip(arrays, grads):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            up, down = array.copy(), array.copy()
            up[index] += eps
            down[index] -= eps
            others = [up if a is array else a for a in arrays], [down if a is array else a for a in arrays]
            numeric[index] = ((fn(*others[0]).numpy() * probe).sum() - (fn(*others[1]).numpy() * probe).sum()) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)
    return out


def _direct_conv2d(x, k, strides, dilation, pads, groups):
    """Cross-correlation by explicit loops over output positions (the definition)."""
    x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    n, h, w, c = x.shape
    kh, kw, cg, f = k.shape
    oh = (h - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    ow = (w - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    out = np.zeros((n, oh, ow, f))
    fg = f // groups
    for i, j, g in itertools.product(range(oh), range(ow), range(groups)):
        patch = x[:, i * strides[0]:i * strides[0] + (kh - 1) * dilation[0] + 1:dilation[0],
                  j * strides[1]:j * strides[1] + (kw - 1) * dilation[1] + 1:dilation[1], g * cg:(g + 1) * cg]
        out[:, i, j, g * fg:(g + 1) * fg] = np.einsum("nhwc,hwcf->nf", patch, k[..., g * fg:(g + 1) * fg])
    return out


@pytest.mark.parametrize("strides, dilation, padding, groups, pads", [
    ((1, 1), (1, 1), "valid", 1, ((0, 0), (0, 0))),
    ((2, 3), (1, 1), "same", 1, ((1, 1), (0, 1))),  # TensorFlow's split: the extra pixel after
    ((1, 1), (2, 1), "same", 2, ((2, 2), (1, 1))),
])
def test_conv_matches_the_definition_and_central_differences(strides, dilation, padding, groups, pads):
    rng = np.random.default_rng(0)
    x, k = rng.normal(size=(2, 5, 6, 4)), rng.normal(size=(3, 3, 4 // groups, 2 * groups))
    out = check_gradients(lambda a, b: ops.conv(a, b, strides, padding, dilation_rate=dilation), x, k)
    np.testing.assert_allclose(out, _direct_conv2d(x, k, strides, dilation, pads, groups), rtol=1e-10)


def test_conv_channels_first_is_the_transposed_channels_last():
    rng = np.random.default_rng(1)
    x, k = rng.normal(size=(2, 7, 3)), rng.normal(size=(2, 3, 4))
    last = ops.conv(x, k, 2, "same").numpy()
    first = ops.conv(np.moveaxis(x, -1, 1), k, 2, "same", data_format="channels_first").numpy()
    np.testing.assert_allclose(np.moveaxis(first, 1, -1), last, rtol=1e-12)


def test_conv_transpose_is_the_input_gradient_of_conv():
    """<conv(x, k), y> == <x, conv_transpose(y, k')>: the defining property, for stride 2 and "valid"."""
    rng = np.random.default_rng(2)
    x, k = rng.normal(size=(1, 7, 7, 3)), rng.normal(size=(3, 3, 3, 2))
    y = rng.normal(size=ops.conv(x, k, 2).shape)
    back = ops.conv_transpose(y, k, 2, "valid", output_padding=0).numpy()  # kernel: (*size, filters, in)
    assert back.shape == x.shape
    np.testing.assert_allclose((ops.conv(x, k, 2).numpy() * y).sum(), (x * back).sum(), rtol=1e-10)
    check_gradients(lambda a, b: ops.conv_transpose(a, b, (2, 1), "same", dilation_rate=1), y[:, :2, :2],
                    rng.normal(size=(2, 3, 4, 2)))


@pytest.mark.parametrize("pool, strides, padding", [(2, None, "valid"), ((3, 2), (1, 2), "same"), (2, 3, "valid")])
def test_max_pool_picks_the_window_maximum_and_the_first_of_ties(pool, strides, padding):
    rng = np.random.default_rng(3)
    x = rng.permutation(2 * 7 * 5 * 2).reshape(2, 7, 5, 2).astype(float)  # distinct values: no ties
    check_gradients(lambda a: ops.max_pool(a, pool, strides, padding), x)
    ties = np.zeros((1, 4, 4, 1))
    _, (grad,), _ = _grads(lambda a: ops.max_pool(a, 2), [ties])
    assert grad[0, ::2, ::2, 0].all() and np.count_nonzero(grad) == 4  # one position per window: the first


def test_average_pool_same_padding_does_not_count_the_padding():
    x = np.arange(1.0, 6.0).reshape(1, 5, 1)
    out = ops.average_pool(x, 2, 2, "same").numpy().ravel()
    np.testing.assert_allclose(out, [1.5, 3.5, 5.0])  # the last window holds one value
    check_gradients(lambda a: ops.average_pool(a, (2, 3), (1, 2), "same"), np.random.default_rng(4).normal(
        size=(2, 5, 6, 2)))


def test_pad_repeat_broadcast_leaky_relu_gradients():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 3, 4))
    np.testing.assert_array_equal(check_gradients(lambda a: ops.pad(a, [[0, 0], [1, 2], [3, 0]], constant_values=7.0),
                                                  x), np.pad(x, [[0, 0], [1, 2], [3, 0]], constant_values=7.0))
    assert ops.pad(x, 1).shape == (4, 5, 6) and ops.pad(x, (1, 0)).shape == (3, 4, 5)
    np.testing.assert_array_equal(check_gradients(lambda a: ops.repeat(a, [2, 0, 1], axis=1), x),
                                  np.repeat(x, [2, 0, 1], axis=1))
    np.testing.assert_array_equal(check_gradients(lambda a: ops.repeat(a, 2), x), np.repeat(x, 2))
    check_gradients(lambda a: ops.broadcast_to(a, (3, 2, 3, 4)), x)
    np.testing.assert_array_equal(check_gradients(lambda a: ops.leaky_relu(a, 0.1), x), np.where(x > 0, x, 0.1 * x))


@pytest.mark.parametrize("axis", [-1, [1, 2], 1])
def test_layer_normalization_matches_numpy_and_central_differences(axis):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 3, 4))
    axes = tuple(np.atleast_1d(axis) % 3)
    shape = tuple(x.shape[a] for a in axes)
    gamma, beta = rng.normal(size=shape), rng.normal(size=shape)
    out = check_gradients(lambda a, g, b: ops.layer_normalization(a, g, b, axis, 1e-3), x, gamma, beta)
    bshape = [x.shape[i] if i in axes else 1 for i in range(3)]
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-3) * gamma.reshape(bshape) + beta.reshape(bshape)
    np.testing.assert_allclose(out, expected, rtol=1e-10)


@pytest.mark.parametrize("call, match", [
    (lambda: ops.conv(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 2, 4))), "do not fit a kernel"),
    (lambda: ops.conv(np.zeros((1, 5, 3)), np.zeros((3, 3, 3, 4))), "needs inputs of rank 4"),
    (lambda: ops.conv(np.zeros((1, 5, 3)), np.zeros((3, 3, 4)), padding="full"), "padding must be one of"),
    (lambda: ops.max_pool(np.zeros((1, 5, 3)), 2, data_format="NHWC"), "data_format must be"),
    (lambda: ops.max_pool(np.zeros((1, 5, 5, 3)), (2, 2, 2)), "pool_size` needs 2 integers"),
    (lambda: ops.pad(np.zeros(3), 1, mode="reflect"), "mode='constant' only"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
