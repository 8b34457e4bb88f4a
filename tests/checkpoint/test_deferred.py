"""Deferred restoration: values for variables that do not exist yet are applied when they are created
(unbuilt layers, models built later or by their first call, layers created in build(), optimizer
slots), and optimizer slots are keyed by the path of their variable, never by position."""
import inspect

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers, tracking
from kerasckpt.checkpoint import Checkpoint
from kerasckpt.errors import CheckpointMismatchError
from kerasckpt.tracking import Trackable
from kerasckpt.utils import clear_session
from kerasckpt.variables import Variable

from .ckpt_helpers import TwoDense, object_paths, same_weights

X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)


def test_unbuilt_dense_gets_values_at_build(tmp_path):
    src = layers.Dense(5, name="d")
    src.build((None, 3))
    path = Checkpoint(layer=src).write(tmp_path / "c")
    dst = layers.Dense(5, name="d")
    status = Checkpoint(layer=dst).read(path)
    status.assert_existing_objects_matched()  # nothing exists yet
    with pytest.raises(AssertionError, match=r"(?s)not used:.*layer/kernel  .*\[held"):
        status.assert_consumed()
    assert np.array_equal(dst(X).numpy(), src(X).numpy())  # the first output is already the restored one
    status.assert_consumed()
    assert tracking.held_children(dst) == {}


def test_sequential_built_later(tmp_path):
    src = kerasckpt.Sequential([layers.Dense(4, activation="relu"), layers.Dropout(0.3), layers.Dense(2)])
    src.build((None, 3))
    path = Checkpoint(model=src).write(tmp_path / "c")
    clear_session()  # the same default layer names, as in a new process
    dst = kerasckpt.Sequential([layers.Dense(4, activation="relu"), layers.Dropout(0.3), layers.Dense(2)])
    status = Checkpoint(model=dst).read(path)
    assert np.array_equal(dst(X).numpy(), src(X).numpy())
    status.assert_consumed()
    assert same_weights(src, dst)


def test_functional_model_restores_at_once(tmp_path):
    inp = layers.Input(shape=(3,))
    src = kerasckpt.Model(inp, layers.Dense(2)(layers.Dense(4)(inp)))
    path = Checkpoint(model=src).write(tmp_path / "c")
    clear_session()
    inp = layers.Input(shape=(3,))
    dst = kerasckpt.Model(inp, layers.Dense(2)(layers.Dense(4)(inp)))
    Checkpoint(model=dst).read(path).assert_consumed()
    assert same_weights(src, dst)


def test_subclassed_model_built_by_first_call(tmp_path):
    src = TwoDense()
    expected = src(X).numpy()
    path = Checkpoint(model=src).write(tmp_path / "c")
    dst = TwoDense()  # no build(): built by its first call, where TensorFlow loses dense_1's kernel
    status = Checkpoint(model=dst).read(path)
    assert np.array_equal(dst(X).numpy(), expected)
    status.assert_consumed()
    assert len(dst.weights) == 4 and same_weights(src, dst)


class LazyHead(kerasckpt.Model):
    """Creates its sub-layer in build(): the child itself does not exist at restore time."""

    def build(self, input_shape):
        self.head = layers.Dense(2)
        self.head.build(input_shape)

    def call(self, inputs):
        return self.head(inputs)


def test_layer_created_in_build_gets_values(tmp_path):
    src = LazyHead()
    expected = src(X).numpy()
    path = Checkpoint(model=src).write(tmp_path / "c")
    assert object_paths(path) == ["model/head/bias", "model/head/kernel"]
    dst = LazyHead()
    status = Checkpoint(model=dst).read(path)
    assert np.array_equal(dst(X).numpy(), expected)
    status.assert_consumed()


def test_later_restore_wins(tmp_path):
    a, b = layers.Dense(2, name="d"), layers.Dense(2, name="d")
    a.build((None, 3))
    b.build((None, 3))
    pa = Checkpoint(layer=a).write(tmp_path / "a")
    pb = Checkpoint(layer=b).write(tmp_path / "b")
    dst = layers.Dense(2, name="d")
    Checkpoint(layer=dst).read(pa).expect_partial()
    Checkpoint(layer=dst).read(pb).expect_partial()
    dst.build((None, 3))
    assert same_weights(dst, b)


def test_held_value_with_wrong_shape_raises_at_build(tmp_path):
    src = layers.Dense(2)
    src.build((None, 3))
    path = Checkpoint(layer=src).write(tmp_path / "c")
    dst = layers.Dense(2)
    Checkpoint(layer=dst).read(path).expect_partial()
    expected = r"(?s)held since restore.*'layer/kernel': the checkpoint holds shape \(3, 2\).*\(5, 2\).*Build the"
    with pytest.raises(CheckpointMismatchError, match=expected):
        dst.build((None, 5))


def test_held_values_die_with_their_object(tmp_path):
    src = layers.Dense(2)
    src.build((None, 3))
    path = Checkpoint(layer=src).write(tmp_path / "c")
    dst = layers.Dense(2)
    Checkpoint(layer=dst).read(path).expect_partial()
    assert set(tracking.held_children(dst)) == {"kernel", "bias"}
    n = len(tracking._held_children)
    del dst
    import gc
    gc.collect()
    assert len(tracking._held_children) == n - 1


# ------------------------------------------------------------------------------------------------ optimizer slots
class FakeOptimizer(Trackable):
    """The optimizer contract checkpoints rely on: iterations + slot_variables() + slot_created()."""

    def __init__(self):
        self.iterations = Variable(0, dtype="int64", name="iterations")
        self._slots = []

    def _trackable_children(self):
        return {"iterations": self.iterations}

    def slot_variables(self):
        return list(self._slots)

    def build(self, var_list):
        for v in var_list:
            slot = Variable(np.zeros(v.shape, v.value.dtype), name=v.name + "_m")
            self._slots.append(("m", v, slot))
            tracking.slot_created(self, "m", v, slot)

    def slot(self, v):
        return next(s for _, ref, s in self._slots if ref is v)


def _trained_pair(tmp_path):
    model = TwoDense()
    model(X)
    opt = FakeOptimizer()
    opt.build(model.trainable_weights)
    for _, ref, slot in opt.slot_variables():
        slot.assign(ref.value * 10 + 1)
    opt.iterations.assign(7)
    return model, opt, Checkpoint(model=model, optimizer=opt).save(tmp_path / "ck")


def test_slot_keys_name_the_variable_path(tmp_path):
    _, _, path = _trained_pair(tmp_path)
    names = object_paths(path)
    assert "model/dense_1/kernel/.OPTIMIZER_SLOT/optimizer/m" in names
    assert "optimizer/iterations" in names


def test_slots_restored_into_optimizer_built_in_another_order(tmp_path):
    model, opt, path = _trained_pair(tmp_path)
    new = TwoDense()
    new(X)
    new_opt = FakeOptimizer()
    w = new.trainable_weights
    new_opt.build([w[2], w[3], w[0], w[1]])  # dense_2 first: positions differ from the saved order
    Checkpoint(model=new, optimizer=new_opt).restore(path).assert_consumed()
    for ref_old, ref_new in zip(model.trainable_weights, new.trainable_weights):
        assert np.array_equal(new_opt.slot(ref_new).value, opt.slot(ref_old).value)


def test_slots_deferred_until_created_model_unbuilt(tmp_path):
    model, opt, path = _trained_pair(tmp_path)
    new, new_opt = TwoDense(), FakeOptimizer()
    status = Checkpoint(model=new, optimizer=new_opt).restore(path)
    assert int(new_opt.iterations.value) == 7  # exists from construction: restored at once
    status.assert_existing_objects_matched()
    new(X)  # variables created and restored ...
    w = new.trainable_weights
    new_opt.build([w[3], w[1], w[2], w[0]])  # ... then slots, in another order
    status.assert_consumed()
    for ref_old, ref_new in zip(model.trainable_weights, new.trainable_weights):
        assert np.array_equal(new_opt.slot(ref_new).value, opt.slot(ref_old).value)


def test_slots_of_unreachable_variables_use_the_fallback_key(tmp_path):
    v = Variable(np.arange(3.0), name="free")
    opt = FakeOptimizer()
    opt.build([v])
    opt.slot(v).assign([5.0, 6.0, 7.0])
    path = Checkpoint(optimizer=opt).write(tmp_path / "c")
    assert "optimizer/.slots/free/m" in object_paths(path)
    v2 = Variable(np.zeros(3), name="free")
    opt2 = FakeOptimizer()
    Checkpoint(optimizer=opt2).read(path)
    opt2.build([v2])
    assert np.array_equal(opt2.slot(v2).value, [5.0, 6.0, 7.0])


def _optimizer_calls_slot_created():
    from kerasckpt.optimizers import base
    return "slot_created" in inspect.getsource(base)


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop"])
def test_real_optimizer_slots_by_path(tmp_path, name):
    make = {"SGD": lambda: kerasckpt.optimizers.SGD(0.1, momentum=0.9), "Adam": lambda: kerasckpt.optimizers.Adam(0.1),
            "RMSprop": lambda: kerasckpt.optimizers.RMSprop(0.1, momentum=0.5)}[name]
    model = TwoDense()
    opt = make()
    y = np.ones((4, 1), np.float32)
    for _ in range(3):
        with kerasckpt.GradientTape() as tape:
            loss = kerasckpt.ops.mean((model(X) - y) ** 2)
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
    path = Checkpoint(model=model, optimizer=opt).write(tmp_path / "c")
    keys = object_paths(path)
    assert any("/.OPTIMIZER_SLOT/optimizer/" in k for k in keys) and "optimizer/iterations" in keys
    new, new_opt = TwoDense(), make()
    new(X)
    w = new.trainable_weights
    new_opt.build([w[2], w[3], w[0], w[1]])
    Checkpoint(model=new, optimizer=new_opt).read(path).assert_consumed()
    for ref_old, ref_new in zip(model.trainable_weights, new.trainable_weights):
        old = {n: s.value for n, r, s in opt.slot_variables() if r is ref_old}
        got = {n: s.value for n, r, s in new_opt.slot_variables() if r is ref_new}
        assert old.keys() == got.keys() and all(np.array_equal(old[n], got[n]) for n in old)


@pytest.mark.skipif(not _optimizer_calls_slot_created(), reason="the optimizer does not call tracking.slot_created yet")
def test_real_optimizer_deferred_slots(tmp_path):
    model, opt = TwoDense(), kerasckpt.optimizers.Adam(0.05)
    y = np.ones((4, 1), np.float32)

    def step(m, o):
        with kerasckpt.GradientTape() as tape:
            loss = kerasckpt.ops.mean((m(X) - y) ** 2)
        o.apply_gradients(zip(tape.gradient(loss, m.trainable_weights), m.trainable_weights))

    for _ in range(3):
        step(model, opt)
    path = Checkpoint(model=model, optimizer=opt).write(tmp_path / "c")
    new, new_opt = TwoDense(), kerasckpt.optimizers.Adam(0.5)
    status = Checkpoint(model=new, optimizer=new_opt).read(path)
    step(new, new_opt)  # builds model and slots: all restored before the first update
    step(model, opt)
    status.assert_consumed()
    assert same_weights(model, new)
