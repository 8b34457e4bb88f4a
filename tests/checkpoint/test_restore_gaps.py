"""Restores that must restore every value or fail cleanly: `load_weights` into unbuilt models, failed
deferred restores (the layers are left unbuilt, nothing changes, the same call fails the same way),
and "did you mean" suggestions that name only values no object used."""
import types

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers, tracking
from kerasckpt.checkpoint import Checkpoint
from kerasckpt.errors import CheckpointError, CheckpointMismatchError

from .ckpt_helpers import TwoDense, same_weights

X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)


class Renamed(kerasckpt.Model):
    """TwoDense with its first layer set as `hidden`: the file's `dense_1` values fit no attribute."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(4, activation="relu")
        self.dense_2 = layers.Dense(1)

    def call(self, inputs, training=False):
        return self.dense_2(self.hidden(inputs))


def _trained(tmp_path, compiled=False):
    model = TwoDense()
    if compiled:
        model.compile(optimizer=kerasckpt.optimizers.Adam(0.01), loss="mse")
        model.fit(X, np.ones((4, 1), np.float32), epochs=2, verbose=0)
    else:
        model(X)
        for w in model.weights:
            w.assign(np.arange(w.value.size, dtype=np.float32).reshape(w.shape) / 7 + 0.5)
    model.save_weights(tmp_path / "w")
    return model, str(tmp_path / "w")


# ------------------------------------------------------------------------------------------------ load_weights
@pytest.mark.parametrize("model_cls", [Renamed, TwoDense])
def test_load_weights_native_refuses_an_unbuilt_model(tmp_path, model_cls):
    src, path = _trained(tmp_path)
    model = model_cls()
    with pytest.raises(ValueError, match=rf"Model '{model.name}' is not built yet.*'{path}'.*model.build"):
        model.load_weights(path)
    assert not model.built and tracking.held_children(model) == {}
    assert not any(tracking.held_children(layer) for layer in model.layers)  # nothing waits to be applied later
    model(X)  # built after the refusal: its own initial values, nothing applied behind the user's back
    assert not any(np.array_equal(a, b) for a, b in zip(model.get_weights(), src.get_weights()))


def test_load_weights_native_unbuilt_renamed_never_loads_silently(tmp_path):
    """The audit's case: no error at load or at the first call, `hidden` kept random values."""
    src, path = _trained(tmp_path)
    model = Renamed()
    with pytest.raises(ValueError, match="not built yet"):
        model.load_weights(path)
    model(X)
    with pytest.raises(CheckpointMismatchError, match=r"(?s)model/hidden/kernel.*No variable was changed"):
        model.load_weights(path)


def test_load_weights_native_happy_path_after_build(tmp_path):
    src, path = _trained(tmp_path, compiled=True)
    called, built = TwoDense(), TwoDense()
    called(X)
    built.build((None, 3))
    for dst in (called, built):
        dst.load_weights(path)
        assert same_weights(src, dst)
        assert np.array_equal(dst(X).numpy(), src(X).numpy())


def test_load_weights_native_missing_file_is_reported_before_the_unbuilt_model(tmp_path):
    with pytest.raises(CheckpointError, match="nope"):
        TwoDense().load_weights(str(tmp_path / "nope"))


class WithSpare(kerasckpt.Model):
    """A built model whose `spare` layer is never called, so it is never built."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense_1 = layers.Dense(4, activation="relu")
        self.dense_2 = layers.Dense(1)
        self.spare = layers.Dense(2)

    def call(self, inputs, training=False):
        return self.dense_2(self.dense_1(inputs))


def test_load_weights_native_refuses_values_for_a_layer_that_is_not_built(tmp_path):
    src = WithSpare()
    src(X)
    src.spare.build((None, 3))
    src.save_weights(tmp_path / "w")
    dst = WithSpare()
    dst(X)
    before = dst.get_weights()
    with pytest.raises(CheckpointMismatchError, match=r"(?s)model/spare/bias.*layer '.*' is not built yet"):
        dst.load_weights(tmp_path / "w")
    assert all(np.array_equal(a, b) for a, b in zip(before, dst.get_weights()))
    assert tracking.held_children(dst.spare) == {}
    with pytest.warns(UserWarning, match="not built yet"):
        dst.load_weights(tmp_path / "w", skip_mismatch=True)
    assert same_weights(src.dense_1, dst.dense_1) and tracking.held_children(dst.spare) == {}


# ------------------------------------------------------------------------------------------------ failed deferred
def _error_of(call):
    with pytest.raises(CheckpointMismatchError) as info:
        call()
    return str(info.value)


def test_failed_deferred_restore_leaves_the_model_as_it_was(tmp_path):
    src = TwoDense()
    src(X)
    path = Checkpoint(model=src).save(tmp_path / "ck")
    dst = TwoDense(outputs=3)
    Checkpoint(model=dst).restore(path).expect_partial()
    held = {layer.name: set(tracking.held_children(layer)) for layer in dst.layers}
    messages = [_error_of(lambda: dst(X)) for _ in range(3)]
    assert messages[0] == messages[1] == messages[2]  # the same error every time, never a different one
    assert "model/dense_2/kernel" in messages[0] and "model/dense_2/bias" in messages[0]
    assert "model/dense_1" not in messages[0] and "the values stay held" in messages[0]
    assert dst.weights == [] and not dst.built and not any(layer.built for layer in dst.layers)
    assert {layer.name: set(tracking.held_children(layer)) for layer in dst.layers} == held
    with pytest.raises(CheckpointMismatchError):
        dst.build((None, 3))  # the explicit build is one step too
    assert dst.weights == [] and not dst.built


class Adopts(kerasckpt.Model):
    """Sets an existing, built layer as a child in build(): held values reach variables that existed."""

    def __init__(self, pre, outputs, **kwargs):
        super().__init__(**kwargs)
        self._outputs = outputs
        object.__setattr__(self, "_pre", pre)  # untracked (Keras would track it): it becomes a child in build()

    def build(self, input_shape):
        self.first = self._pre
        self.second = layers.Dense(self._outputs)
        self.second.build((None, 4))

    def call(self, inputs):
        return self.second(self.first(inputs))


def test_failed_deferred_restore_undoes_values_of_variables_that_existed(tmp_path):
    pre = layers.Dense(4)
    pre.build((None, 3))
    src = Adopts(pre, 1)
    src(X)
    path = Checkpoint(model=src).write(tmp_path / "c")
    other = layers.Dense(4)
    other.build((None, 3))
    before = other.get_weights()
    dst = Adopts(other, 3)
    Checkpoint(model=dst).read(path).expect_partial()
    for _ in range(2):
        with pytest.raises(CheckpointMismatchError, match="model/second/kernel"):
            dst(X)
        assert all(np.array_equal(a, b) for a, b in zip(before, other.get_weights()))  # first's values undone
        assert dst.weights == [] and not dst.built and "first" not in vars(dst)


def test_correct_deferred_restore_still_applies_before_the_first_output(tmp_path):
    src = TwoDense()
    expected = src(X).numpy()
    path = Checkpoint(model=src).save(tmp_path / "ck")
    bad = TwoDense(outputs=3)
    Checkpoint(model=bad).restore(path).expect_partial()
    with pytest.raises(CheckpointMismatchError):
        bad(X)
    dst = TwoDense()
    status = Checkpoint(model=dst).restore(path)
    assert np.array_equal(dst(X).numpy(), expected)
    status.assert_consumed()
    assert len(dst.weights) == 4 and same_weights(src, dst)


class FailsOnce(layers.Layer):
    """A build that creates a weight and then fails the first time."""

    def __init__(self, failures=1, **kwargs):
        super().__init__(**kwargs)
        self._left = types.SimpleNamespace(failures=failures)  # not layer state, which a rollback restores

    def build(self, input_shape):
        self.w = self.add_weight((input_shape[-1],), "glorot_uniform", name="w")
        if self._left.failures:
            self._left.failures -= 1
            raise RuntimeError("first build fails")

    def call(self, inputs):
        return kerasckpt.ops.multiply(inputs, self.w)


def test_a_build_that_raises_leaves_no_half_built_layer():
    kerasckpt.utils.set_random_seed(5)
    expected = FailsOnce(failures=0)(X).numpy()
    kerasckpt.utils.set_random_seed(5)
    layer = FailsOnce()
    with pytest.raises(RuntimeError, match="first build fails"):
        layer(X)
    assert not layer.built and layer.weights == [] and "w" not in vars(layer)
    out = layer(X).numpy()
    assert layer.built and [w.path for w in layer.weights] == [f"{layer.name}/w"]
    assert np.array_equal(out, expected)  # the failed build's random draws were rewound


# ------------------------------------------------------------------------------------------------ did you mean
def test_missing_weight_suggests_the_unused_key_not_one_already_matched(tmp_path):
    _, path = _trained(tmp_path)
    model = Renamed()
    model(X)
    with pytest.raises(CheckpointMismatchError) as info:
        model.load_weights(path)
    message = str(info.value)
    assert "model/hidden/kernel  (did you mean `model/dense_1/kernel`?)" in message
    assert "model/hidden/bias  (did you mean `model/dense_1/bias`?)" in message
    assert "dense_2" not in message


def test_status_suggestions_name_only_what_is_free(tmp_path):
    _, path = _trained(tmp_path, compiled=True)
    model = Renamed()
    model(X)
    status = Checkpoint(model=model).read(path)
    with pytest.raises(AssertionError) as info:
        status.assert_existing_objects_matched()
    status.expect_partial()
    assert "model/hidden/kernel  (did you mean `model/dense_1/kernel`?)" in str(info.value)


class ThreeDense(kerasckpt.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense_1, self.dense_2, self.dense_3 = layers.Dense(4), layers.Dense(1), layers.Dense(1)

    def call(self, inputs):
        return self.dense_3(self.dense_2(self.dense_1(inputs)))


def test_unused_value_is_not_matched_to_an_object_that_got_its_value(tmp_path):
    src = ThreeDense()
    src(X)
    path = Checkpoint(model=src).write(tmp_path / "c")
    dst = TwoDense()
    dst(X)
    status = Checkpoint(model=dst).read(path).assert_existing_objects_matched()
    with pytest.raises(AssertionError) as info:
        status.assert_consumed()
    status.expect_partial()
    message = str(info.value)
    assert "model/dense_3/kernel" in message and "did you mean" not in message


def test_a_restore_outside_a_build_copies_no_variable_for_rollback(tmp_path, monkeypatch):
    """Undo copies are only needed inside a build transaction; a plain load must not double memory."""
    src = TwoDense()
    src(X)
    path = Checkpoint(model=src).save(tmp_path / "ck")
    dst = TwoDense()
    dst(X)
    copies = []
    real = kerasckpt.Variable.numpy
    monkeypatch.setattr(kerasckpt.Variable, "numpy", lambda self: (copies.append(self.path), real(self))[1])
    Checkpoint(model=dst).restore(path).assert_consumed()
    monkeypatch.undo()
    assert copies == [] and same_weights(src, dst)
