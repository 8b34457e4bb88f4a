"""DatasetStream and its workers: the same batches in the same order with or without workers, epoch hooks,
errors naming the batch, nothing left running, and positions that save and restore exactly."""
import os
import threading
import warnings

import numpy as np
import pytest

from kerasckpt.data import state as dstate
from kerasckpt.data.stream import DatasetStream

from pipeline_datasets import (Augmented, Batches, DiesAt, Endless, RaisesUnpicklable, WithState, arrays,
                               process_alive)

WORKERS = [pytest.param({}, id="main-thread"), pytest.param({"workers": 3}, id="threads"),
           pytest.param({"workers": 2, "use_multiprocessing": True}, id="processes")]


def _take(stream, n):
    return [stream.next() for _ in range(n)]


def _same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b):
        for part_a, part_b in zip(a, b):
            assert part_a.dtype == part_b.dtype and np.array_equal(part_a, part_b)


def _worker_threads():
    return [t for t in threading.enumerate() if t.name.startswith("kerasckpt-data-worker")]



@pytest.mark.parametrize("settings", WORKERS)
def test_workers_deliver_the_batches_of_workers_1_in_its_order(settings):
    x, y = arrays(44)
    reference = DatasetStream(Augmented(x, y, batch_size=8, seed=4), shuffle=True, seed=9)
    expected = _take(reference, 14)  # 6 batches per epoch: two epochs and a part, hooks in between
    stream = DatasetStream(Augmented(x, y, batch_size=8, seed=4, **settings), shuffle=True, seed=9)
    try:
        got = _take(stream, 14)
    finally:
        stream.close()
    _same(got, expected)
    assert stream.epoch == 2 and stream.index == 2
    assert not _worker_threads()


def test_epochs_call_the_hooks_around_the_batches_in_a_shuffled_order():
    x, y = arrays(24)
    data = Batches(x, y, batch_size=8)
    stream = DatasetStream(data, shuffle=True, seed=1)
    _take(stream, 3)
    assert stream.epoch_complete and data.events[0] == "begin" and "end" not in data.events
    stream.end_epoch()
    _take(stream, 3)
    stream.end_epoch()
    first, second = data.events[1:4], data.events[6:9]
    assert data.events[4:6] == ["end", "begin"] and data.events[-1] == "end"
    assert sorted(first) == sorted(second) == ["get 0", "get 1", "get 2"] and first != second
    assert dstate.epochs_of(data) == (2, False)  # the epoch count lives on the dataset


def test_without_shuffle_batches_come_in_index_order_and_an_endless_dataset_keeps_counting():
    data = Batches(*arrays(24), batch_size=8)
    _same(_take(DatasetStream(data, shuffle=False), 3), [data[0], data[1], data[2]])
    endless = DatasetStream(Endless(), shuffle=True)
    batches = _take(endless, 5)
    endless.end_epoch()
    batches += _take(endless, 2)
    for i, (x, _) in enumerate(batches):
        np.testing.assert_array_equal(x, Endless()[i][0])  # index i, never shuffled, across epochs


@pytest.mark.parametrize("settings,at", [({}, (0, 3)), ({}, (1, 0)), ({}, (2, 6))] +
                         [(w.values[0], (1, 5)) for w in WORKERS])
def test_a_restored_stream_over_a_fresh_dataset_continues_exactly(settings, at):
    """Position (epoch, batch) saved, a new dataset and stream restored from it: the same batches follow,
    including the cumulative shuffle that on_epoch_end derived (replayed) and the noise (keyed by position)."""
    x, y = arrays(48)
    original = DatasetStream(Augmented(x, y, batch_size=8, seed=2), shuffle=True, seed=7)
    _take(original, at[0] * 6 + at[1])
    if at[1] == 6:
        original.end_epoch()
    state = original.get_state()
    expected = _take(original, 9)
    fresh = DatasetStream(Augmented(x, y, batch_size=8, seed=99, **settings), shuffle=False)  # other seeds too
    try:
        fresh.set_state(state)
        got = _take(fresh, 9)
    finally:
        fresh.close()
    _same(got, expected)


def test_a_dataset_with_get_state_is_restored_from_it_without_replaying_its_hooks():
    x, y = arrays(32)
    original = DatasetStream(WithState(x, y, batch_size=8, seed=2), shuffle=True, seed=7)
    _take(original, 9)  # epoch 2, batch 1
    state = original.get_state()
    assert state["state"]["level"] == 2
    expected = _take(original, 6)
    data = WithState(x, y, batch_size=8, seed=2)
    fresh = DatasetStream(data, seed=1)
    fresh.set_state(state)
    assert data.events == [] and data.level == 2  # set_state() did it all: no hook ran
    _same(_take(fresh, 6), expected)


def test_a_dataset_already_past_the_saved_epoch_warns_that_derived_state_may_differ():
    x, y = arrays(16)
    data = Augmented(x, y, batch_size=8, seed=2)
    stream = DatasetStream(data, seed=3)
    state = stream.get_state()
    _take(stream, 5)
    with pytest.warns(UserWarning, match="already been through epoch 2.*Create the dataset afresh"):
        stream.set_state(state)
    assert (stream.epoch, stream.index) == (0, 0)


@pytest.mark.parametrize("change,match", [
    (lambda x, y: Batches(x, y, batch_size=8), "saved for a Augmented"),
    (lambda x, y: Augmented(x, y, batch_size=4), "saved for 2 batches per epoch, this dataset has 4"),
    (lambda x, y: WithState(x, y, batch_size=8), "without the dataset's get_state")])
def test_a_state_of_another_dataset_is_refused(change, match):
    x, y = arrays(16)
    state = DatasetStream(Augmented(x, y, batch_size=8), seed=1).get_state()
    with pytest.raises(ValueError, match=match):
        DatasetStream(change(x, y), seed=1).set_state(state)


@pytest.mark.parametrize("settings", WORKERS)
def test_an_error_in_getitem_names_the_batch_index_and_stops_the_workers(settings, tmp_path):
    x, y = arrays(40)
    stream = DatasetStream(Batches(x, y, batch_size=4, fail_at=3, log_dir=str(tmp_path), **settings), seed=1)
    pids = stream.worker_pids
    with pytest.raises(KeyError, match=r"no record for batch 3") as info:
        _take(stream, 10)
    assert r"Raised by Batches.__getitem__(3) (the batch at index 3)." in info.value.__notes__
    if settings.get("use_multiprocessing"):
        assert any(f"data worker process {pid}" in note for note in info.value.__notes__ for pid in pids)
    stream.close()
    assert not _worker_threads()
    assert not [pid for pid in pids if process_alive(pid)]


def test_a_worker_process_that_dies_is_an_error_naming_the_batch():
    x, y = arrays(40)
    stream = DatasetStream(DiesAt(x, y, batch_size=4, fail_at=5, workers=2, use_multiprocessing=True), seed=1)
    try:
        with pytest.raises(RuntimeError, match=r"data worker process \d+ died \(exit code 3\) before sending the "
                                               r"batch at index \d \(it had been asked for the batches at indices "
                                               r"\[[\d, ]*5[\d, ]*\]\)"):
            _take(stream, 10)
    finally:
        stream.close()


def test_an_exception_that_cannot_travel_back_arrives_as_its_text():
    x, y = arrays(40)
    stream = DatasetStream(RaisesUnpicklable(x, y, batch_size=4, fail_at=2, workers=1, use_multiprocessing=True),
                           seed=1)
    try:
        with pytest.raises(RuntimeError, match=r"__getitem__\(2\) failed in a worker process: .*Unpicklable: 1-2"):
            _take(stream, 4)
    finally:
        stream.close()


def test_a_dataset_that_cannot_be_pickled_says_what_to_do():
    x, y = arrays(16)
    data = Batches(x, y, workers=1, use_multiprocessing=True)
    data.lock = threading.Lock()
    stream = DatasetStream(data, seed=1)
    try:
        with pytest.raises(TypeError, match="lock") as info:
            stream.next()
        assert any("use_multiprocessing=False" in note for note in info.value.__notes__)
    finally:
        stream.close()


@pytest.mark.parametrize("settings", WORKERS[1:])
def test_closing_ends_every_worker_even_in_the_middle_of_slow_batches(settings, tmp_path):
    x, y = arrays(80)
    stream = DatasetStream(Batches(x, y, batch_size=4, delay=0.3, log_dir=str(tmp_path), **settings), seed=1)
    stream.next()
    pids = stream.worker_pids
    stream.close()
    assert not _worker_threads()
    assert not [pid for pid in pids if process_alive(pid)]


def test_loading_ahead_stops_at_the_planned_number_of_batches(tmp_path):
    x, y = arrays(80)
    data = Batches(x, y, batch_size=4, workers=3, max_queue_size=8)
    stream = DatasetStream(data, seed=1)
    stream.plan(3)
    _take(stream, 3)
    stream.close()
    assert sorted(e for e in data.events if e.startswith("get")) == ["get 0", "get 1", "get 2"]


def test_epoch_hooks_do_not_overlap_batches_loading_in_threads():
    x, y = arrays(64)
    data = Batches(x, y, batch_size=4, workers=4, max_queue_size=10, delay=0.02)
    stream = DatasetStream(data, seed=1)
    _take(stream, 40)  # 16 batches per epoch
    stream.close()
    events = data.events
    for i, event in enumerate(events):
        if event == "end":  # every batch of the epoch was loaded before it ended, none of the next
            assert sorted(events[i - 16:i]) == sorted(f"get {k}" for k in range(16))


@pytest.mark.parametrize("bad,match", [({"workers": -1}, "workers=-1"), ({"workers": 1.5}, "workers=1.5"),
                                       ({"max_queue_size": 0}, "max_queue_size=0")])
def test_bad_worker_settings_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        DatasetStream(Batches(*arrays(8), **bad))


def test_bad_lengths_are_refused():
    class Empty(Batches):
        def __len__(self):
            return 0

    class Negative(Batches):
        @property
        def num_batches(self):
            return -2
    with pytest.raises(ValueError, match="Empty has no batches"):
        DatasetStream(Empty(*arrays(8)))
    with pytest.raises(ValueError, match=r"Negative.num_batches .* Received: -2"):
        DatasetStream(Negative(*arrays(8)))


def test_a_missing_super_init_warns_as_keras_does():
    class NoSuper(Batches):
        def __init__(self):
            self.x, self.y, self.batch_size, self.events, self.log_dir, self.fail_at, self.delay = \
                *arrays(8), 4, [], None, None, 0.0
            self.sample_weight = None
    with pytest.warns(UserWarning, match=r"should call `super\(\).__init__\(\*\*kwargs\)`"):
        stream = DatasetStream(NoSuper())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(_take(stream, 2)) == 2


def test_worker_processes_see_the_parents_sys_path_and_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = arrays(16)
    stream = DatasetStream(Batches(x, y, batch_size=8, log_dir=".", workers=1, use_multiprocessing=True), seed=1)
    try:
        _take(stream, 2)
        pids = stream.worker_pids
    finally:
        stream.close()
    assert os.path.exists(tmp_path / f"{pids[0]}.log")  # the relative log_dir resolved in the worker too
