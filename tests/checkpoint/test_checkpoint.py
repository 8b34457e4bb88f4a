"""Checkpoint: roots, keys, save/write/restore/read, the statuses and their failure messages, partial
restore, transactional failures, and the unused-value warning."""
import gc
import os
import pathlib
import warnings

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.checkpoint import Checkpoint, list_variables, load_variable
from kerasckpt.errors import CheckpointMismatchError
from kerasckpt.random import SeedGenerator
from kerasckpt.variables import Variable

from .ckpt_helpers import TwoDense, object_paths, same_weights

X = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)


def built(model):
    model(X)
    return model


def keys(path):
    return sorted(object_paths(path))


# ------------------------------------------------------------------------------------------------ roots and keys
@pytest.mark.parametrize("bad", [3, "text", np.ones(2), [1, 2], {"a": 1}, None])
def test_non_trackable_root_raises(bad):
    with pytest.raises(ValueError, match="expecting a to be a trackable object"):
        Checkpoint(a=bad)


def test_save_counter_is_reserved():
    with pytest.raises(ValueError, match="save_counter"):
        Checkpoint(save_counter=Variable(1))


def test_keys_are_attribute_paths(tmp_path):
    model = built(TwoDense())
    step = Variable(0, dtype="int64")
    path = Checkpoint(model=model, step=step, extra={"a": Variable(1.0), "b": [Variable(2.0)]}).save(tmp_path / "c")
    assert keys(path) == sorted(["model/dense_1/kernel", "model/dense_1/bias", "model/dense_2/kernel",
                                 "model/dense_2/bias", "step", "save_counter", "extra/a", "extra/b/0"])


def test_object_reachable_twice_is_saved_once_and_restorable_through_either(tmp_path):
    layer = layers.Dense(2)
    layer.build((None, 3))
    path = Checkpoint(a=layer, b=layer).write(tmp_path / "c")
    assert keys(path) == ["a/bias", "a/kernel"]
    other = layers.Dense(2)
    other.build((None, 3))
    Checkpoint(b=other).read(path).assert_existing_objects_matched()
    assert same_weights(layer, other)


def test_seed_generator_state_is_saved(tmp_path):
    drop = layers.Dropout(0.5, seed=3)
    drop.seed_generator.next()
    drop.seed_generator.next()
    path = Checkpoint(drop=drop, gen=SeedGenerator(11)).write(tmp_path / "c")
    assert load_variable(path, "drop/seed_generator/counter") == 2
    fresh = layers.Dropout(0.5, seed=99)
    gen = SeedGenerator(0)
    Checkpoint(drop=fresh, gen=gen).read(path).assert_consumed()
    assert fresh.seed_generator.get_state() == {"seed": 3, "counter": 2} and gen.seed == 11
    assert np.array_equal(fresh(np.ones((4, 8)), training=True).numpy(), drop(np.ones((4, 8)), training=True).numpy())


# ------------------------------------------------------------------------------------------------ save / write
def test_save_numbers_and_writes_state_file(tmp_path):
    ck = Checkpoint(v=Variable(1.0))
    assert ck.save(tmp_path / "ck") == str(tmp_path / "ck-1")
    p2 = ck.save(pathlib.Path(tmp_path / "ck"))
    assert isinstance(p2, str) and p2.endswith("ck-2") and int(ck.save_counter.value) == 2
    state = (tmp_path / "checkpoint").read_text()
    assert state == 'model_checkpoint_path: "ck-2"\nall_model_checkpoint_paths: "ck-2"\n'
    assert ck.save(tmp_path / "sub" / "other").endswith("other-3")  # the counter belongs to the Checkpoint
    assert kerasckpt.checkpoint.latest_checkpoint(tmp_path) == str(tmp_path / "ck-2")


def test_write_is_exact_path_without_counter_or_state(tmp_path):
    ck = Checkpoint(v=Variable(1.0))
    assert ck.write(tmp_path / "a" / "plain") == str(tmp_path / "a" / "plain")
    assert sorted(os.listdir(tmp_path / "a")) == ["plain.data-00000-of-00001", "plain.index"]
    assert ck._save_counter is None and keys(tmp_path / "a" / "plain") == ["v"]


def test_read_vs_restore_on_written_checkpoint(tmp_path):
    path = Checkpoint(v=Variable(5.0)).write(tmp_path / "w")
    Checkpoint(v=Variable(0.0)).read(path).assert_consumed()
    status = Checkpoint(v=Variable(0.0)).restore(path)  # creates save_counter, which the file lacks
    with pytest.raises(AssertionError, match=r"1 object\(s\) got no value.*\n    save_counter"):
        status.assert_consumed()
    status.assert_nontrivial_match()


def test_read_holds_save_counter_until_it_exists(tmp_path):
    src = Checkpoint(v=Variable(5.0))
    src.save(tmp_path / "ck")
    src.save(tmp_path / "ck")
    ck = Checkpoint(v=Variable(0.0))
    ck.read(tmp_path / "ck-2").expect_partial()
    assert ck._save_counter is None
    assert ck.save(tmp_path / "again").endswith("again-3")


def test_restore_brings_back_save_counter(tmp_path):
    src = Checkpoint(v=Variable(5.0))
    for _ in range(3):
        src.save(tmp_path / "ck")
    ck = Checkpoint(v=Variable(0.0))
    ck.restore(tmp_path / "ck-2").assert_consumed()
    assert int(ck.save_counter.value) == 2 and float(ck.v.value) == 5.0


def test_restore_none_gives_initialization_only_status():
    status = Checkpoint(v=Variable(1.0)).restore(None)
    for name in ("assert_consumed", "assert_existing_objects_matched", "assert_nontrivial_match"):
        with pytest.raises(AssertionError, match=r"No checkpoint specified \(save_path=None\)"):
            getattr(status, name)()
    assert status.expect_partial() is status


# ------------------------------------------------------------------------------------------------ statuses
def _saved_full(tmp_path):
    model = built(TwoDense())
    ck = Checkpoint(model=model, step=Variable(3, dtype="int64"))
    return model, ck.save(tmp_path / "ck")


def test_status_methods_pass_and_chain(tmp_path):
    model, path = _saved_full(tmp_path)
    new = built(TwoDense())
    status = Checkpoint(model=new, step=Variable(0, dtype="int64")).restore(path)
    assert status.assert_consumed() is status
    assert status.assert_existing_objects_matched().assert_nontrivial_match().expect_partial() is status
    assert same_weights(model, new)


def test_model_only_restore_existing_passes_consumed_fails(tmp_path):
    _, path = _saved_full(tmp_path)
    status = Checkpoint(model=built(TwoDense())).restore(path)
    status.assert_existing_objects_matched().assert_nontrivial_match()
    with pytest.raises(AssertionError, match=r"1 checkpoint value\(s\) were not used:\n    step"):
        status.assert_consumed()
    status.expect_partial()


def test_renamed_attribute_lists_both_sides_with_closest_match(tmp_path):
    _, path = _saved_full(tmp_path)

    class Renamed(kerasckpt.Model):
        def __init__(self):
            super().__init__()
            self.dense_one = layers.Dense(4, activation="relu")
            self.dense_2 = layers.Dense(1)

        def call(self, x):
            return self.dense_2(self.dense_one(x))

    status = Checkpoint(model=built(Renamed()), step=Variable(0, dtype="int64")).restore(path)
    with pytest.raises(AssertionError) as info:
        status.assert_existing_objects_matched()
    text = str(info.value)
    assert "model/dense_one/kernel  (did you mean `model/dense_1/kernel`?)" in text
    assert "model/dense_1/kernel  (did you mean `model/dense_one/kernel`?)" in text
    assert str(tmp_path / "ck-1") in text
    with pytest.raises(AssertionError, match="dense_one"):
        status.assert_consumed()
    status.assert_nontrivial_match()  # dense_2 matched
    status.expect_partial()


def test_extra_variable_fails_existing_and_consumed(tmp_path):
    _, path = _saved_full(tmp_path)
    status = Checkpoint(model=built(TwoDense()), step=Variable(0, dtype="int64"), more=Variable(1.0)).restore(path)
    for method in (status.assert_existing_objects_matched, status.assert_consumed):
        with pytest.raises(AssertionError, match=r"got no value from the checkpoint:\n    more"):
            method()


def test_nontrivial_match_ignores_save_counter(tmp_path):
    _, path = _saved_full(tmp_path)
    status = Checkpoint(other=Variable(1.0)).restore(path)  # only save_counter matches
    with pytest.raises(AssertionError, match="Nothing except save_counter matched"):
        status.assert_nontrivial_match()
    status.expect_partial()


def test_different_root_name_matches_nothing(tmp_path):
    _, path = _saved_full(tmp_path)
    status = Checkpoint(net=built(TwoDense())).read(path)
    expected = r"(?s)4 object\(s\) got no value.*net/dense_1/kernel.*did you mean `model/"
    with pytest.raises(AssertionError, match=expected):
        status.assert_existing_objects_matched()
    with pytest.raises(AssertionError):
        status.assert_nontrivial_match()
    status.expect_partial()


# ------------------------------------------------------------------------------------------------ partial restore
def test_nested_checkpoint_restores_one_layer(tmp_path):
    model, path = _saved_full(tmp_path)
    head3 = built(TwoDense(outputs=3))
    before = head3.dense_2.kernel.numpy()
    status = Checkpoint(model=Checkpoint(dense_1=head3.dense_1)).restore(path)
    status.assert_existing_objects_matched()
    with pytest.raises(AssertionError):
        status.assert_consumed()
    status.expect_partial()
    assert np.array_equal(head3.dense_1.kernel.value, model.dense_1.kernel.value)
    assert np.array_equal(head3.dense_2.kernel.value, before)


def test_nested_checkpoint_into_unbuilt_layer_is_deferred(tmp_path):
    model, path = _saved_full(tmp_path)
    layer = layers.Dense(4, activation="relu")
    Checkpoint(model=Checkpoint(dense_1=layer)).restore(path).expect_partial()
    layer.build((None, 3))
    assert np.array_equal(layer.kernel.value, model.dense_1.kernel.value)


# ------------------------------------------------------------------------------------------------ transactional
def test_shape_mismatch_changes_no_variable(tmp_path):
    _, path = _saved_full(tmp_path)
    head3 = built(TwoDense(outputs=3))
    before = head3.get_weights()
    step = Variable(0, dtype="int64")
    with pytest.raises(CheckpointMismatchError, match=r"(?s)'model/dense_2/kernel': the checkpoint holds shape \(4, 1\)"
                       r" float32 but variable '.*kernel' has shape \(4, 3\).*No variable was changed") as info:
        Checkpoint(model=head3, step=step).restore(path)
    assert isinstance(info.value, ValueError) and "ck-1" in str(info.value)
    assert all(np.array_equal(a, b) for a, b in zip(before, head3.get_weights()))  # dense_1 untouched too
    assert int(step.value) == 0


def test_dtype_mismatch_raises(tmp_path):
    path = Checkpoint(v=Variable(np.ones(2), dtype="float32")).write(tmp_path / "c")
    v = Variable(np.zeros(2), dtype="int64")
    with pytest.raises(CheckpointMismatchError, match="float32 but variable .* int64"):
        Checkpoint(v=v).read(path)
    assert np.array_equal(v.value, [0, 0])


# ------------------------------------------------------------------------------------------------ warnings
def _unused_warnings(record):
    return [w for w in record if "restored values that no object used" in str(w.message)]


def test_unused_values_warn_once_at_garbage_collection(tmp_path):
    _, path = _saved_full(tmp_path)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        Checkpoint(model=built(TwoDense())).restore(path)
        gc.collect()
    found = _unused_warnings(record)
    assert len(found) == 1
    text = str(found[0].message)
    assert text.count("Value in checkpoint not used: step") == 1 and "expect_partial()" in text


def test_expect_partial_silences_the_warning(tmp_path):
    _, path = _saved_full(tmp_path)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        Checkpoint(model=built(TwoDense())).restore(path).expect_partial()
        status = Checkpoint(model=built(TwoDense()), step=Variable(0, dtype="int64")).restore(path)
        del status
        gc.collect()
    assert not _unused_warnings(record)


def test_failed_restore_does_not_warn(tmp_path):
    _, path = _saved_full(tmp_path)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointMismatchError):
            Checkpoint(model=built(TwoDense(outputs=3))).restore(path)
        gc.collect()
    assert not _unused_warnings(record)


# ------------------------------------------------------------------------------------------------ save_weights_native
def _compiled(model):
    model.compile(optimizer=kerasckpt.optimizers.Adam(0.01), loss="mse")
    model.fit(X, np.ones((2, 1), np.float32), epochs=2, verbose=0)
    return model


def test_weights_native_round_trip_with_optimizer(tmp_path):
    from kerasckpt.checkpoint import load_weights_native, save_weights_native
    src = _compiled(TwoDense())
    save_weights_native(src, tmp_path / "w")
    names = keys(tmp_path / "w")
    assert "optimizer/iterations" in names and "model/dense_1/kernel" in names
    dst = _compiled(TwoDense())
    load_weights_native(dst, tmp_path / "w")
    assert same_weights(src, dst)
    assert int(dst.optimizer.iterations.value) == int(src.optimizer.iterations.value)
    fresh = built(TwoDense())  # uncompiled: the optimizer values are ignored quietly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_weights_native(fresh, tmp_path / "w")
        assert same_weights(src, fresh)
        del fresh
        gc.collect()


def test_weights_native_mismatch_and_skip(tmp_path):
    from kerasckpt.checkpoint import load_weights_native, save_weights_native
    save_weights_native(built(TwoDense()), tmp_path / "w")
    bigger = built(TwoDense(outputs=3))
    before = bigger.get_weights()
    with pytest.raises(ValueError, match="dense_2/kernel"):
        load_weights_native(bigger, tmp_path / "w")
    assert all(np.array_equal(a, b) for a, b in zip(before, bigger.get_weights()))
    with pytest.warns(UserWarning, match="Skipped 2 value"):
        load_weights_native(bigger, tmp_path / "w", skip_mismatch=True)
    assert not np.array_equal(before[0], bigger.get_weights()[0])  # dense_1 loaded
    assert np.array_equal(before[2], bigger.get_weights()[2])      # dense_2 kept


def test_weights_native_missing_weight_raises(tmp_path):
    from kerasckpt.checkpoint import load_weights_native, save_weights_native
    save_weights_native(layers.Dense(2, name="a"), tmp_path / "empty")  # unbuilt: no weights saved
    with pytest.raises(CheckpointMismatchError, match=r"(?s)no value for 4 weight.*model/dense_1/kernel"):
        load_weights_native(built(TwoDense()), tmp_path / "empty")


def test_metrics_are_trackable(tmp_path):
    metric = kerasckpt.metrics.Mean()
    metric.update_state([1.0, 2.0, 6.0])
    path = Checkpoint(metric=metric).write(tmp_path / "m")
    other = kerasckpt.metrics.Mean()
    Checkpoint(metric=other).read(path).assert_consumed()
    assert float(other.result()) == 3.0
