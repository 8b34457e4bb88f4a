"""iter(dataset) and DatasetIterator: Keras's plain pass, epochs with hooks and workers, and positions that a
Checkpoint saves and restores into a new iterator over a new dataset."""
import threading

import numpy as np
import pytest

import kerasckpt
from kerasckpt.utils import DatasetIterator

from pipeline_datasets import Augmented, Batches, Endless, arrays


def _same(a, b):
    assert len(a) == len(b)
    for batch_a, batch_b in zip(a, b):
        for part_a, part_b in zip(batch_a, batch_b):
            assert np.array_equal(part_a, part_b)


def test_iter_is_one_plain_pass_as_in_keras():
    x, y = arrays(20)
    data = Batches(x, y, batch_size=8, workers=4)
    batches = list(data)
    _same(batches, [data[0], data[1], data[2]])
    assert [e for e in data.events if not e.startswith("get")] == []  # no epoch hooks
    assert not [t for t in threading.enumerate() if t.name.startswith("kerasckpt-data")]  # no workers
    endless = iter(Endless())
    assert [int(next(endless)[0].shape[0]) for _ in range(7)] == [4] * 7


def test_dataset_iterator_runs_epochs_with_hooks_and_workers_then_stops_them():
    x, y = arrays(24)
    data = Batches(x, y, batch_size=8, workers=2)
    it = DatasetIterator(data, epochs=2, shuffle=True)
    batches = list(it)
    assert len(batches) == 6 and [e for e in data.events if not e.startswith("get")] == ["begin", "end"] * 2
    orders = [[e for e in data.events if e.startswith("get")][i:i + 3] for i in (0, 3)]
    assert sorted(orders[0]) == sorted(orders[1]) == ["get 0", "get 1", "get 2"]
    assert not [t for t in threading.enumerate() if t.name.startswith("kerasckpt-data")]
    with pytest.raises(StopIteration):
        next(it)
    with pytest.raises(ValueError, match="epochs=0"):
        DatasetIterator(data, epochs=0)


@pytest.mark.parametrize("make", [lambda d: iter(d), lambda d: DatasetIterator(d, epochs=3, shuffle=True)],
                         ids=["iter", "DatasetIterator"])
@pytest.mark.parametrize("taken", [0, 2, 5, 6])
def test_a_checkpointed_iterator_restores_into_a_fresh_one_exactly(tmp_path, make, taken):
    x, y = arrays(48)
    original = make(Augmented(x, y, batch_size=8, seed=3))
    for _ in range(taken):
        next(original)
    path = kerasckpt.Checkpoint(iterator=original).save(str(tmp_path / "ckpt"))
    expected = list(original)
    fresh = make(Augmented(x, y, batch_size=8, seed=50))
    kerasckpt.Checkpoint(iterator=fresh).restore(path).assert_consumed()
    _same(list(fresh), expected)
    shapes = [shape for name, shape in kerasckpt.list_variables(path) if name.startswith("iterator/state")]
    assert len(shapes) == 1 and shapes[0][0] > 10  # one uint8 vector of JSON, like TensorFlow's string state


def test_a_custom_loop_restores_iterator_model_and_optimizer_together(tmp_path):
    x, y = arrays(48)

    def run(directory, steps, crash_after=None):
        kerasckpt.utils.set_random_seed(5)
        model = kerasckpt.Sequential([kerasckpt.layers.Input((5,)), kerasckpt.layers.Dense(3)])
        opt = kerasckpt.optimizers.Adam(0.01)
        it = DatasetIterator(Augmented(x, y, batch_size=8, seed=3), epochs=None, shuffle=True)
        step = kerasckpt.Variable(0, dtype="int64", trainable=False)
        manager = kerasckpt.CheckpointManager(kerasckpt.Checkpoint(model=model, optimizer=opt, step=step, iterator=it),
                                              str(directory), max_to_keep=2)
        manager.restore_or_initialize()
        loss_fn = kerasckpt.losses.SparseCategoricalCrossentropy(from_logits=True)
        while int(step.numpy()) < steps:
            xb, yb = next(it)
            with kerasckpt.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_weights)
            opt.apply_gradients(zip(grads, model.trainable_weights))
            step.assign(step.numpy() + 1)
            manager.save()
            if crash_after is not None and int(step.numpy()) == crash_after:
                it.close()
                return None
        it.close()
        return model.get_weights()

    straight = run(tmp_path / "straight", 14)
    assert run(tmp_path / "resumed", 14, crash_after=9) is None
    resumed = run(tmp_path / "resumed", 14)
    for a, b in zip(straight, resumed):
        assert np.array_equal(a, b)


def test_a_damaged_iterator_state_is_refused_when_the_iterator_is_next_used():
    it = iter(Batches(*arrays(16)))
    it._state.assign(np.frombuffer(b'{"stream": {}}', np.uint8))
    with pytest.raises(ValueError, match="incomplete or damaged .*KeyError"):
        next(it)
    with pytest.raises(ValueError, match="not valid JSON"):
        it._state.assign(np.frombuffer(b"\xff{", np.uint8))


def test_saving_right_after_a_restore_saves_the_restored_position(tmp_path):
    x, y = arrays(48)
    original = DatasetIterator(Augmented(x, y, batch_size=8, seed=3), epochs=2, shuffle=True)
    for _ in range(7):
        next(original)
    first = kerasckpt.Checkpoint(iterator=original).save(str(tmp_path / "a"))
    expected = list(original)
    restored = DatasetIterator(Augmented(x, y, batch_size=8, seed=3), epochs=2, shuffle=True)
    ckpt = kerasckpt.Checkpoint(iterator=restored)
    ckpt.restore(first)
    second = ckpt.save(str(tmp_path / "b"))  # before any batch was taken
    fresh = DatasetIterator(Augmented(x, y, batch_size=8, seed=3), epochs=2, shuffle=True)
    kerasckpt.Checkpoint(iterator=fresh).restore(second)
    _same(list(fresh), expected)
