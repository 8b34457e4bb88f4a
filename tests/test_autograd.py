"""GradientTape semantics, graph recording, NumPy interop of Tensors and Variables."""
import numpy as np
import pytest

from kerasckpt import ops
from kerasckpt.autograd import GradientTape, Tensor, backpropagate, needs_grad, unbroadcast
from kerasckpt.variables import Variable


def var(values, name="v", dtype="float64"):
    return Variable(np.asarray(values, dtype=dtype), name=name)


# ---------------------------------------------------------------- tape basics

def test_non_persistent_tape_refuses_a_second_gradient():
    v = var([1.0, 2.0])
    with GradientTape() as tape:
        y = ops.sum(v * v)
    tape.gradient(y, v)
    with pytest.raises(RuntimeError, match=r"already used.*GradientTape\(persistent=True\)"):
        tape.gradient(y, v)


def test_persistent_tape_gives_gradients_again():
    v = var([1.0, 2.0])
    with GradientTape(persistent=True) as tape:
        y = ops.sum(v * v)
        z = ops.sum(v * 3.0)
    np.testing.assert_array_equal(tape.gradient(y, v).numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(tape.gradient(z, v).numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(tape.gradient(y, v).numpy(), [2.0, 4.0])


def test_unconnected_source_gets_none_or_zeros():
    a, b = var([1.0], "a"), var([5.0, 6.0], "b")
    with GradientTape(persistent=True) as tape:
        y = ops.sum(a * 2.0)
    ga, gb = tape.gradient(y, [a, b])
    assert ga.numpy().tolist() == [2.0] and gb is None
    gb = tape.gradient(y, [a, b], unconnected_gradients="zero")[1]
    assert gb.numpy().tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="unconnected_gradients='never'"):
        tape.gradient(y, a, unconnected_gradients="never")


def test_gradient_accumulates_over_every_use():
    v = var([3.0, -1.0])
    with GradientTape() as tape:
        y = ops.sum(v * v + v * 4.0 + ops.exp(v) * 0.0 + v)
    np.testing.assert_allclose(tape.gradient(y, v).numpy(), 2 * v.numpy() + 5.0)


def test_shared_subexpression_is_differentiated_once_per_consumer():
    v = var([0.5])
    with GradientTape() as tape:
        h = ops.tanh(v)
        y = ops.sum(h * h + h)  # dy/dh = 2h + 1, reached through three edges
    h_val = np.tanh(0.5)
    np.testing.assert_allclose(tape.gradient(y, v).numpy(), [(2 * h_val + 1) * (1 - h_val ** 2)])


def test_watch_makes_a_tensor_differentiable():
    t = ops.convert_to_tensor(np.array([1.0, 2.0]), dtype="float64")
    with GradientTape() as tape:
        y = ops.sum(t * t)
    assert tape.gradient(y, t) is None  # not watched: a constant
    with GradientTape() as tape:
        tape.watch(t)
        y = ops.sum(t * t)
    np.testing.assert_array_equal(tape.gradient(y, t).numpy(), [2.0, 4.0])


def test_watch_accepts_lists_and_variables_but_names_a_bad_type():
    t, v = ops.convert_to_tensor([1.0]), var([1.0])
    with GradientTape() as tape:
        tape.watch([t, v])
        with pytest.raises(TypeError, match="Received: ndarray"):
            tape.watch(np.ones(2))
        with pytest.raises(TypeError, match="Received: float"):
            tape.watch(1.0)
    assert needs_grad(t)


def test_stop_recording_pauses_and_resumes():
    v = var([2.0])
    with GradientTape() as tape:
        with tape.stop_recording():
            paused = v * 3.0
        after = v * 5.0
        y = ops.sum(paused + after)
    assert paused.parents is None and after.parents is not None
    assert tape.gradient(y, v).numpy().tolist() == [5.0]


def test_stop_gradient_blocks_one_path():
    v = var([3.0])
    with GradientTape() as tape:
        y = ops.sum(v * ops.stop_gradient(v))
    assert tape.gradient(y, v).numpy().tolist() == [3.0]  # not 2 * 3


def test_nothing_is_recorded_outside_a_tape():
    v = var([1.0, 2.0])
    assert (v * 2.0).parents is None
    with GradientTape():
        inside = v * 2.0
    after = v * 2.0
    assert inside.parents is not None
    assert after.parents is None and ops.relu(after).parents is None


def test_an_exception_inside_the_tape_stops_recording():
    v = var([1.0])
    with pytest.raises(ZeroDivisionError):
        with GradientTape():
            1 / 0
    assert (v * 2.0).parents is None


def test_a_tape_cannot_be_entered_twice():
    tape = GradientTape()
    with tape:
        with pytest.raises(RuntimeError, match="already recording"):
            tape.__enter__()


def test_nested_tapes_both_work():
    v = var([2.0])
    with GradientTape() as outer:
        a = v * v
        with GradientTape() as inner:
            b = a * 3.0
        inner_grad = inner.gradient(ops.sum(b), v)
        c = ops.sum(b + v)
    assert inner_grad is not None and inner_grad.numpy().tolist() == [12.0]  # d(3 v^2)/dv
    assert outer.gradient(c, v).numpy().tolist() == [13.0]


def test_stop_recording_of_inner_tape_keeps_outer_tape_recording():
    v = var([2.0])
    with GradientTape() as outer:
        with GradientTape() as inner:
            with inner.stop_recording():
                y = ops.sum(v * v)
    assert outer.gradient(y, v).numpy().tolist() == [4.0]


def test_gradient_with_respect_to_an_intermediate_tensor():
    v = var([1.0, 2.0])
    with GradientTape() as tape:
        h = v * 3.0
        y = ops.sum(h * h)
    gh, gv = tape.gradient(y, [h, v])
    np.testing.assert_array_equal(gh.numpy(), 2 * h.numpy())
    np.testing.assert_array_equal(gv.numpy(), 18 * v.numpy())


def test_target_list_is_summed_and_output_gradients_weight_it():
    v = var([1.0, 2.0])
    with GradientTape(persistent=True) as tape:
        y1, y2 = v * 2.0, ops.sum(v)
    np.testing.assert_array_equal(tape.gradient([y1, y2], v).numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(tape.gradient(y1, v, output_gradients=np.array([10.0, 100.0])).numpy(), [20, 200])
    weighted = tape.gradient([y1, y2], v, output_gradients=[np.array([10.0, 100.0]), 2.0])
    np.testing.assert_array_equal(weighted.numpy(), [22, 202])


def test_sources_keep_their_structure():
    a, b, c = var([1.0], "a"), var([2.0], "b"), var([3.0], "c")
    with GradientTape() as tape:
        y = ops.sum(a * 1.0 + b * 2.0 + c * 3.0)
    grads = tape.gradient(y, {"first": a, "rest": (b, [c])})
    assert set(grads) == {"first", "rest"} and isinstance(grads["rest"], tuple) and isinstance(grads["rest"][1], list)
    assert [grads["first"].item(), grads["rest"][0].item(), grads["rest"][1][0].item()] == [1.0, 2.0, 3.0]
    assert isinstance(grads["first"], Tensor)


def test_gradients_are_writable_and_do_not_alias_each_other():
    a, b = var(np.ones((2, 3)), "a"), var(np.ones((2, 3)), "b")
    with GradientTape() as tape:
        y = ops.sum(a + b) + ops.sum(ops.reshape(a, (3, 2)))
    ga, gb = backpropagate(y, [a, b])
    ga *= 10  # optimizers may update gradients in place
    assert gb.tolist() == [[1.0] * 3] * 2 and ga.tolist() == [[20.0] * 3] * 2
    with GradientTape() as tape:
        y = ops.mean(b)  # the gradient of a reduction is a broadcast: must come back as a real array
    gb = tape.gradient(y, b).numpy()
    gb += 1.0
    assert gb.flags.writeable and gb.flags.owndata


def test_gradient_dtype_follows_the_source():
    v32, counter = var([1.0, 2.0], "w", "float32"), var([3], "n", "int64")
    with GradientTape() as tape:
        y = ops.sum(v32 * np.array([1.0, 1.0])) + ops.sum(counter * 1.5)  # a float64 loss
    g32, gint = tape.gradient(y, [v32, counter])
    assert g32.dtype == np.float32 and g32.numpy().tolist() == [1.0, 1.0]
    assert gint is None  # integer sources get no gradient, as in TensorFlow


def test_non_trainable_variables_get_gradients_too():
    v = Variable(np.array([1.0, 2.0]), trainable=False, name="moving")
    with GradientTape() as tape:
        y = ops.sum(v * v)
    np.testing.assert_array_equal(tape.gradient(y, v).numpy(), [2.0, 4.0])


def test_a_long_chain_does_not_recurse():
    v = var([1.0])
    with GradientTape() as tape:
        y = v
        for _ in range(5000):
            y = y + 1.0
    assert tape.gradient(y, v).numpy().tolist() == [1.0]


def test_target_that_is_not_a_tensor_gives_none():
    v = var([1.0])
    with GradientTape() as tape:
        y = float(ops.sum(v))
    assert tape.gradient(y, [v]) == [None]


def test_unbroadcast_sums_stretched_and_added_axes():
    g = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(unbroadcast(g, (3, 1)), g.sum(axis=0).sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(unbroadcast(g, ()), g.sum())
    assert unbroadcast(g, (2, 3, 4)) is g


# ---------------------------------------------------------------- NumPy interop

def test_numpy_ufuncs_on_variables_and_tensors_are_differentiable():
    v = var([0.0, 1.0])
    with GradientTape() as tape:
        y = np.exp(v)
        z = np.maximum(y, 1.5) * np.sqrt(np.square(y) + 1.0)
        total = ops.sum(z)
    assert isinstance(y, Tensor) and isinstance(z, Tensor)
    e = np.exp(v.numpy())
    expected = (np.where(e >= 1.5, np.sqrt(e ** 2 + 1), 0) + np.maximum(e, 1.5) * e / np.sqrt(e ** 2 + 1)) * e
    np.testing.assert_allclose(tape.gradient(total, v).numpy(), expected)


def test_ndarray_on_the_left_defers_to_the_tensor():
    v = var([1.0, 2.0])
    w = np.array([3.0, 4.0])
    with GradientTape() as tape:
        products = [w * v, w + v, w - v, w / v, w @ v, np.float64(2.0) * v, 2.0 ** v]
        total = ops.add_n([ops.sum(p) for p in products])
    assert all(isinstance(p, Tensor) for p in products)
    x = v.numpy()
    expected = w + 1 - 1 - w / x ** 2 + w + 2 + np.log(2.0) * 2.0 ** x
    np.testing.assert_allclose(tape.gradient(total, v).numpy(), expected)


def test_ufunc_with_keywords_or_non_differentiable_ufunc_falls_back_to_numpy():
    t = ops.convert_to_tensor(np.array([1.0, -2.0]))
    out = np.empty(2, np.float32)
    np.add(t, 1.0, out=out)
    assert out.tolist() == [2.0, -1.0]
    assert np.sign(t).tolist() == [1.0, -1.0] and isinstance(np.sign(t), np.ndarray)


def test_python_conversions_and_formatting():
    v = var([[1.0, 2.0], [3.0, 4.0]])
    total = ops.sum(v)
    assert isinstance(total.numpy(), np.ndarray) and total.shape == ()
    assert float(total) == 10.0 and int(total) == 10 and bool(total)
    assert f"{total:.3f}" == "10.000" and f"{ops.mean(v):.1f}" == "2.5"
    assert np.mean(total) == 10.0 and np.mean(v * 1.0) == 2.5 and float(np.sum(v * 1.0)) == 10.0
    assert np.asarray(v * 1.0, dtype=np.float32).dtype == np.float32
    assert len(v) == 2 and len(v * 1.0) == 2
    with pytest.raises(TypeError):
        len(total)
    assert "Tensor shape=()" in repr(total)


def test_iteration_and_indexing_are_differentiable():
    v = var([[1.0, 2.0], [3.0, 4.0]])
    with GradientTape() as tape:
        rows = list(v)
        total = ops.sum(rows[0] * 10.0) + ops.sum(rows[1]) + v[1, 0] * 100.0 + ops.sum(v[:, 1])
    assert len(rows) == 2 and rows[1].numpy().tolist() == [3.0, 4.0]
    np.testing.assert_array_equal(tape.gradient(total, v).numpy(), [[10, 11], [101, 2]])


def test_comparisons_and_properties():
    t = ops.convert_to_tensor(np.array([1.0, 2.0, 3.0]))
    assert (t > 1.5).numpy().tolist() == [False, True, True]
    assert (t == 2.0).numpy().tolist() == [False, True, False]
    assert t.ndim == 1 and t.size == 3 and t.dtype == np.float32 and t.T.shape == (3,)
    assert {t: 1}[t] == 1  # hashable by identity


def test_variable_assign_error_names_the_path():
    v = Variable(np.zeros((2, 3)), name="kernel")
    with pytest.raises(ValueError, match=r"shape \(3, 2\).*'kernel'.*shape \(2, 3\)"):
        v.assign(np.zeros((3, 2)))


def test_tensors_are_slotted():
    t = ops.convert_to_tensor([1.0])
    with pytest.raises(AttributeError):
        t.some_new_attribute = 1
