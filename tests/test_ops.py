"""Every differentiable op: forward against NumPy, gradient against central differences, dtypes.

Shapes, axes and values come from hypothesis; non-differentiable points (relu/abs at 0, ties of
max/min/maximum, clip bounds, sqrt/log near 0) are avoided by construction.
"""
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kerasckpt import ops
from kerasckpt.autograd import GradientTape, Tensor
from kerasckpt.variables import Variable

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
SHAPES_1D_UP = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
_erf = np.vectorize(math.erf, otypes=[np.float64])


@dataclass
class Case:
    inputs: list  # float64 arrays: every one of them gets a gradient
    fn: Callable  # tensors -> Tensor
    ref: Callable  # NumPy arrays -> expected array


# ---------------------------------------------------------------- value generators

def values(data, shape, kind="any"):
    """float64 values of `shape`, kept away from the non-differentiable points of `kind`."""
    shape = tuple(shape)
    size = int(np.prod(shape))
    if kind == "distinct":  # no ties, gaps far larger than the finite-difference step
        perm = data.draw(st.permutations(range(size)))
        return (np.array(perm, dtype=np.float64).reshape(shape) - size / 2) * 0.37
    if kind in ("grid", "grid_half", "clip"):
        lo, hi = (-8, 8) if kind == "clip" else (-3, 3)
        ints = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(lo, hi))).astype(np.float64)
        return {"grid": ints, "grid_half": ints + 0.5, "clip": ints * 0.25 + 0.125}[kind]
    lo, hi = {"any": (-3, 3), "pos": (0.5, 3), "nonzero": (-3, 3), "wide": (-6, 6)}[kind]
    arr = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_subnormal=False)))
    if kind == "nonzero":
        arr = np.where(arr >= 0, arr + 0.2, arr - 0.2)
    return arr


def draw_axis(data, ndim, tuples=True, none=True):
    kinds = (["none"] if none or ndim == 0 else []) + (["int", "tuple"] if tuples else ["int"]) * (ndim > 0)
    kind = data.draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    if kind == "int":
        return data.draw(st.integers(-ndim, ndim - 1))
    axes = data.draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(a - ndim if data.draw(st.booleans()) else a for a in axes)  # negative spellings too


# ---------------------------------------------------------------- the ops, one case generator each

UNARY = {  # name: (op, NumPy reference, value kind)
    "negative": (ops.negative, np.negative, "any"),
    "square": (ops.square, np.square, "any"),
    "sqrt": (ops.sqrt, np.sqrt, "pos"),
    "exp": (ops.exp, np.exp, "any"),
    "log": (ops.log, np.log, "pos"),
    "abs": (ops.abs, np.abs, "nonzero"),
    "relu": (ops.relu, lambda x: np.maximum(x, 0), "nonzero"),
    "sigmoid": (ops.sigmoid, lambda x: 1 / (1 + np.exp(-x)), "wide"),
    "tanh": (ops.tanh, np.tanh, "any"),
    "softplus": (ops.softplus, lambda x: np.log1p(np.exp(x)), "wide"),
    "silu": (ops.silu, lambda x: x / (1 + np.exp(-x)), "wide"),
    "erf": (ops.erf, _erf, "any"),
    "gelu": (lambda x: ops.gelu(x, approximate=False), lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))), "any"),
    "gelu_approximate": (lambda x: ops.gelu(x, approximate=True),
                         lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))), "any"),
    "clip": (lambda x: ops.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), "clip"),
    "cast": (lambda x: ops.cast(x, x.dtype), lambda x: x, "any"),
    "power_int_exponent": (lambda x: ops.power(x, 3), lambda x: x ** 3, "any"),
    "power_float_exponent": (lambda x: ops.power(x, 0.5), np.sqrt, "pos"),
    "constant_base_power": (lambda x: ops.power(2.0, x), lambda x: 2.0 ** x, "any"),
}

BINARY = {  # name: (op, NumPy reference, kind of x, kind of y)
    "add": (ops.add, np.add, "any", "any"),
    "subtract": (ops.subtract, np.subtract, "any", "any"),
    "multiply": (ops.multiply, np.multiply, "any", "any"),
    "divide": (ops.divide, np.divide, "any", "nonzero"),
    "maximum": (ops.maximum, np.maximum, "grid", "grid_half"),
    "minimum": (ops.minimum, np.minimum, "grid", "grid_half"),
    "power": (ops.power, np.power, "pos", "any"),
    "operators": (lambda x, y: (x + y) * x - (y - 1.5) / 2.0 + (-x) ** 2 - 3.0 * y,
                  lambda x, y: (x + y) * x - (y - 1.5) / 2.0 + (-x) ** 2 - 3.0 * y, "any", "any"),
}


def unary_case(name):
    op, ref, kind = UNARY[name]
    def draw(data):
        return Case([values(data, data.draw(SHAPES), kind)], op, ref)
    return draw


def binary_case(name, shapes=None):
    op, ref, kx, ky = BINARY[name]
    def draw(data):
        sx, sy = shapes or data.draw(hnp.mutually_broadcastable_shapes(
            num_shapes=2, min_dims=0, max_dims=3, max_side=4)).input_shapes
        return Case([values(data, sx, kx), values(data, sy, ky)], op, ref)
    return draw


def where_case(data):
    shapes = hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=4)
    sc, sx, sy = data.draw(shapes).input_shapes
    cond = data.draw(hnp.arrays(np.bool_, sc))
    return Case([values(data, sx), values(data, sy)], lambda x, y: ops.where(cond, x, y),
                lambda x, y: np.where(cond, x, y))


def add_n_case(data):
    shape = data.draw(SHAPES)
    return Case([values(data, shape) for _ in range(3)], lambda *xs: ops.add_n(list(xs)),
                lambda *xs: xs[0] + xs[1] + xs[2])


def matmul_shapes(data):
    """Operand shapes for `@`: 1-D, 2-D and batched 3-D/4-D operands with broadcast batch axes."""
    n, k, m = (data.draw(st.integers(1, 4)) for _ in range(3))
    bx, by = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3)).input_shapes
    sx = (k,) if data.draw(st.booleans()) and not bx else bx + (n, k)
    sy = (k,) if data.draw(st.booleans()) and not by else by + (k, m)
    return sx, sy


def matmul_case(shapes=None):
    def draw(data):
        sx, sy = shapes or matmul_shapes(data)
        return Case([values(data, sx), values(data, sy)], ops.matmul, np.matmul)
    return draw


def reduction_case(op, ref, kind="any"):
    def draw(data):
        shape = data.draw(SHAPES)
        axis, keepdims = draw_axis(data, len(shape)), data.draw(st.booleans())
        return Case([values(data, shape, kind)], lambda x: op(x, axis=axis, keepdims=keepdims),
                    lambda x: ref(x, axis=axis, keepdims=keepdims))
    return draw


def _np_logsumexp(x, axis, keepdims):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def softmax_case(op, ref):
    def draw(data):
        shape = data.draw(SHAPES_1D_UP)
        axis = data.draw(st.integers(-len(shape), len(shape) - 1))
        return Case([values(data, shape, "wide")], lambda x: op(x, axis=axis), lambda x: ref(x, axis))
    return draw


def _np_softmax(x, axis):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def reshape_case(data):
    shape = data.draw(SHAPES)
    size = int(np.prod(shape))
    new = data.draw(st.sampled_from([(-1,), tuple(reversed(shape)), (size, 1), (1, -1), shape + (1,)]))
    return Case([values(data, shape)], lambda x: ops.reshape(x, new), lambda x: np.reshape(x, new))


def transpose_case(data):
    shape = data.draw(SHAPES)
    axes = None
    if data.draw(st.booleans()):
        perm = data.draw(st.permutations(range(len(shape))))
        axes = tuple(a - len(shape) if data.draw(st.booleans()) else a for a in perm)
    return Case([values(data, shape)], lambda x: ops.transpose(x, axes), lambda x: np.transpose(x, axes))


def expand_dims_case(data):
    shape = data.draw(SHAPES)
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    return Case([values(data, shape)], lambda x: ops.expand_dims(x, axis), lambda x: np.expand_dims(x, axis))


def squeeze_case(data):
    shape = list(data.draw(SHAPES))
    for _ in range(data.draw(st.integers(1, 2))):
        shape.insert(data.draw(st.integers(0, len(shape))), 1)
    ones = [i for i, n in enumerate(shape) if n == 1]
    axis = data.draw(st.sampled_from([None] + ones + [i - len(shape) for i in ones]))
    return Case([values(data, tuple(shape))], lambda x: ops.squeeze(x, axis), lambda x: np.squeeze(x, axis))


def concatenate_case(data):
    shape = data.draw(SHAPES_1D_UP)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    parts = []
    for _ in range(data.draw(st.integers(1, 3))):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3))
        parts.append(values(data, s))
    return Case(parts, lambda *xs: ops.concatenate(list(xs), axis=axis), lambda *xs: np.concatenate(xs, axis=axis))


def stack_case(data):
    shape = data.draw(SHAPES)
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    parts = [values(data, shape) for _ in range(data.draw(st.integers(1, 3)))]
    return Case(parts, lambda *xs: ops.stack(list(xs), axis=axis), lambda *xs: np.stack(xs, axis=axis))


def take_index_case(data):
    shape = data.draw(SHAPES_1D_UP)
    kind = data.draw(st.sampled_from(["basic", "integer_array", "mask", "mixed"]))
    if kind == "basic":  # ints, negative ints, slices with steps, Ellipsis, np.newaxis
        key = data.draw(hnp.basic_indices(shape, allow_newaxis=True))
    elif kind == "integer_array":  # repeated indices must add up
        result_shape = hnp.array_shapes(min_dims=1, max_dims=2, max_side=5)
        key = data.draw(hnp.integer_array_indices(shape, result_shape=result_shape))
    elif kind == "mask":
        key = data.draw(hnp.arrays(np.bool_, shape))
    else:
        rows = np.array(data.draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=5)))
        key = (rows,) + (slice(None, None, -1),) * (len(shape) > 1)
    return Case([values(data, shape)], lambda x: ops.take_index(x, key), lambda x: x[key])


def take_case(data):
    shape = data.draw(SHAPES_1D_UP)
    axis = data.draw(st.sampled_from([None] + list(range(-len(shape), len(shape)))))
    n = int(np.prod(shape)) if axis is None else shape[axis]
    idx = data.draw(hnp.arrays(np.int64, data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=4)),
                               elements=st.integers(-n, n - 1)))
    return Case([values(data, shape)], lambda x: ops.take(x, idx, axis=axis), lambda x: np.take(x, idx, axis=axis))


def take_along_axis_case(data):
    shape = data.draw(SHAPES_1D_UP)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    ishape = [1 if data.draw(st.booleans()) else n for n in shape]  # size-1 axes broadcast
    ishape[axis] = data.draw(st.integers(1, 4))
    idx = data.draw(hnp.arrays(np.int64, tuple(ishape), elements=st.integers(-shape[axis], shape[axis] - 1)))
    return Case([values(data, shape)], lambda x: ops.take_along_axis(x, idx, axis=axis),
                lambda x: np.take_along_axis(x, idx, axis=axis))


CASES = {
    **{name: unary_case(name) for name in UNARY},
    **{name: binary_case(name) for name in BINARY},
    "where": where_case,
    "add_n": add_n_case,
    "matmul": matmul_case(),
    "sum": reduction_case(ops.sum, np.sum),
    "mean": reduction_case(ops.mean, np.mean),
    "max": reduction_case(ops.max, np.max, "distinct"),
    "min": reduction_case(ops.min, np.min, "distinct"),
    "logsumexp": reduction_case(ops.logsumexp, _np_logsumexp),
    "softmax": softmax_case(ops.softmax, _np_softmax),
    "log_softmax": softmax_case(ops.log_softmax, lambda x, axis: np.log(_np_softmax(x, axis))),
    "reshape": reshape_case,
    "transpose": transpose_case,
    "expand_dims": expand_dims_case,
    "squeeze": squeeze_case,
    "concatenate": concatenate_case,
    "stack": stack_case,
    "take_index": take_index_case,
    "take": take_case,
    "take_along_axis": take_along_axis_case,
}

DIFFERENTIABLE_OPS = (
    "add subtract multiply divide negative power square sqrt exp log abs maximum minimum where clip add_n "
    "matmul reshape transpose expand_dims squeeze concatenate stack take_index take take_along_axis sum mean max "
    "min logsumexp relu sigmoid tanh softmax log_softmax softplus silu erf gelu cast").split()


def test_every_differentiable_op_has_a_case():
    covered = {name.split("_approximate")[0] for name in CASES} | {"power", "cast"}
    missing = [name for name in DIFFERENTIABLE_OPS if name not in covered or not callable(getattr(ops, name, None))]
    assert not missing, f"ops without a gradient test (or missing from kerasckpt.ops): {missing}"


# ---------------------------------------------------------------- checks

def as_tensors(arrays, dtype="float64"):
    return [ops.convert_to_tensor(a, dtype=dtype) for a in arrays]


def check_gradients(case):
    xs = [np.asarray(a, dtype=np.float64) for a in case.inputs]
    out = case.fn(*as_tensors(xs))
    weights = np.random.default_rng(out.size).standard_normal(out.shape)  # a fixed random upstream gradient

    def loss(arrays):
        return float(np.sum(np.asarray(case.fn(*as_tensors(arrays))) * weights))

    variables = [Variable(a, dtype="float64") for a in xs]
    with GradientTape() as tape:
        total = ops.sum(ops.multiply(case.fn(*variables), weights))
    grads = tape.gradient(total, variables)
    eps = 1e-6
    for i, (x, grad) in enumerate(zip(xs, grads)):
        numeric = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            shifted = [a.copy() for a in xs]
            shifted[i][idx] = x[idx] + eps
            up = loss(shifted)
            shifted[i][idx] = x[idx] - eps
            numeric[idx] = (up - loss(shifted)) / (2 * eps)
        assert grad is not None, f"no gradient for input {i}"
        assert grad.dtype == np.float64 and grad.shape == x.shape, (grad.dtype, grad.shape, x.shape)
        np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-5, atol=1e-6, err_msg=f"gradient of input {i}")


def check_forward(case):
    xs = [np.asarray(a, dtype=np.float64) for a in case.inputs]
    out = case.fn(*as_tensors(xs))
    expected = np.asarray(case.ref(*xs))
    assert isinstance(out, Tensor) and isinstance(out.numpy(), np.ndarray)
    assert out.dtype == np.float64, "float64 inputs must stay float64"
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)


def check_float32(case):
    variables = [Variable(np.asarray(a, dtype=np.float32)) for a in case.inputs]
    with GradientTape() as tape:
        out = case.fn(*variables)
        total = ops.sum(ops.multiply(out, np.ones(out.shape, np.float32)))
    assert out.dtype == np.float32
    # every backward closure in the graph keeps float32 (the final cast in gradient() would hide it)
    stack, seen = [out], set()
    while stack:
        node = stack.pop()
        if not isinstance(node, Tensor) or node.parents is None or id(node) in seen:
            continue
        seen.add(id(node))
        for parent, g in zip(node.parents, node.backward(np.ones(node.shape, np.float32))):
            assert g is None or np.asarray(g).dtype == np.float32, (node.backward, np.asarray(g).dtype)
            stack.append(parent)
    for grad in tape.gradient(total, variables):
        assert grad.dtype == np.float32


@pytest.mark.parametrize("name", sorted(CASES))
@FAST
@given(data=st.data())
def test_gradient_matches_finite_differences(name, data):
    check_gradients(CASES[name](data))


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_forward_matches_numpy(name, data):
    check_forward(CASES[name](data))


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_float32_in_float32_out_and_float32_gradients(name, data):
    check_float32(CASES[name](data))


BROADCAST_PAIRS = [((3, 1), (1, 4)), ((5,), (2, 5)), ((), (2, 3)), ((2, 3), ()), ((), ()), ((4, 1, 3), (2, 1)),
                   ((1,), (3, 1, 2))]


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
@settings(max_examples=2, deadline=None)
@given(data=st.data())
def test_broadcasting_gradients_sum_back(name, shapes, data):
    case = binary_case(name, shapes)(data)
    check_gradients(case)
    check_forward(case)


MATMUL_SHAPES = [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((2, 2, 3), (3, 4)), ((3,), (2, 3, 4)),
                 ((2, 2, 3), (3,)), ((2, 1, 2, 3), (4, 3, 2)), ((1, 3), (2, 3, 1))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
@settings(max_examples=2, deadline=None)
@given(data=st.data())
def test_matmul_shapes(shapes, data):
    case = matmul_case(shapes)(data)
    check_gradients(case)
    check_forward(case)


# ---------------------------------------------------------------- numerics the cases above do not reach

def test_extreme_inputs_stay_finite_and_quiet():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        for op in (ops.sigmoid, ops.softplus, ops.silu, ops.tanh, ops.gelu):
            v = Variable(x, dtype="float64")
            with GradientTape() as tape:
                y = op(v)
                total = ops.sum(y)
            assert np.all(np.isfinite(y.numpy())), op.__name__
            assert np.all(np.isfinite(tape.gradient(total, v).numpy())), op.__name__
        assert np.all(np.isfinite(ops.log_softmax(x).numpy()))
        np.testing.assert_allclose(ops.softmax(x).numpy(), [0, 0, 0, 0, 1])


def test_logsumexp_of_minus_infinity_is_minus_infinity():
    assert ops.logsumexp(np.array([-np.inf, -np.inf])).numpy() == -np.inf
    np.testing.assert_array_equal(ops.logsumexp(np.array([[-np.inf, -np.inf], [0.0, 0.0]]), axis=1).numpy(),
                                  [-np.inf, np.log(2)])


def test_ties_share_the_gradient_of_max():
    v = Variable([1.0, 3.0, 3.0])
    with GradientTape() as tape:
        y = ops.max(v)
    np.testing.assert_array_equal(tape.gradient(y, v).numpy(), [0, 0.5, 0.5])


def test_maximum_tie_sends_gradient_to_x():
    x, y = Variable([2.0]), Variable([2.0])
    with GradientTape() as tape:
        z = ops.maximum(x, y)
    gx, gy = tape.gradient(z, [x, y])
    assert gx.numpy().tolist() == [1.0] and gy.numpy().tolist() == [0.0]


def test_integer_and_bool_inputs_to_float_ops():
    np.testing.assert_allclose(ops.sigmoid(np.array([0, 1])).numpy(), [0.5, 1 / (1 + np.exp(-1))], rtol=1e-6)
    assert ops.sigmoid(np.array([0, 1])).dtype.kind == "f"
    assert ops.mean(np.array([1, 2])).numpy() == 1.5


def test_python_numbers_and_lists_become_arrays():
    out = ops.add(1.0, 2.0)
    assert isinstance(out.numpy(), np.ndarray) and out.shape == () and float(out) == 3.0
    assert ops.sum(np.arange(3.0)).shape == ()
    assert ops.add([1.0, 2.0], 1).dtype == np.float32  # lists of floats become float32, as in Keras


def test_convert_to_tensor_dtypes():
    assert ops.convert_to_tensor(np.ones(2)).dtype == np.float32
    assert ops.convert_to_tensor(Variable(np.ones(2), dtype="float64")).dtype == np.float64
    assert ops.convert_to_tensor(np.arange(2)).dtype == np.arange(2).dtype
    assert ops.convert_to_tensor([1.0], dtype="float16").dtype == np.float16


def test_add_n_of_one_tensor_is_a_tensor():
    v = Variable([1.0, 2.0])
    with GradientTape() as tape:
        y = ops.add_n([v])
    assert isinstance(y, Tensor)
    np.testing.assert_array_equal(tape.gradient(y, v).numpy(), [1.0, 1.0])


def test_clip_with_array_bounds_broadcasts():
    v = Variable(np.array([[-2.0], [0.0], [2.0]]))
    with GradientTape() as tape:
        y = ops.clip(v, np.array([-1.0, -3.0]), ops.convert_to_tensor([1.0, 3.0]))
    np.testing.assert_array_equal(y.numpy(), [[-1, -2], [0, 0], [1, 2]])
    np.testing.assert_array_equal(tape.gradient(y, v).numpy(), [[1], [2], [1]])


def test_shape_ops_on_variables_are_snapshots():
    v = Variable(np.arange(4.0))
    views = [ops.reshape(v, (2, 2)), ops.transpose(v), v[1:], ops.expand_dims(v, 0), ops.convert_to_tensor(v),
             ops.stop_gradient(v)]
    v.assign(np.zeros(4))
    for t in views:
        assert t.numpy().ravel().tolist()[-1] == 3.0


def test_cast_gradient_comes_back_in_the_input_dtype():
    v = Variable(np.array([1.5, -2.0], np.float32))
    with GradientTape(persistent=True) as tape:
        wide = ops.cast(v, "float64")
        as_int = ops.cast(v, "int32")
        total = ops.sum(wide * np.array([2.0, 3.0]))
    assert wide.dtype == np.float64 and as_int.numpy().tolist() == [1, -2]
    grad = tape.gradient(total, v)
    assert grad.dtype == np.float32 and grad.numpy().tolist() == [2.0, 3.0]
    assert tape.gradient(as_int, v) is None  # nothing flows back through an integer result


def test_gelu_default_is_approximate_as_in_keras_ops():
    x = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(ops.gelu(x).numpy(), ops.gelu(x, approximate=True).numpy())
