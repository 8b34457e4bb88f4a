"""BackupAndRestore: NumPy values in callback states, fallback warnings, save_freq=False, a file as backup_dir.

The crash/resume pattern of tests/test_resume.py: a run interrupted by a raising callback and started
again must end bit-identical to a run never interrupted.
"""
import os

import numpy as np
import pytest

import kerasckpt
from kerasckpt import _background, layers
from kerasckpt.callbacks import BackupAndRestore, Callback, EarlyStopping
from kerasckpt.checkpoint import bundle as files
from crashing import Crash

EPOCHS, BATCH = 6, 8  # 48 samples -> 6 batches per epoch


class Record(Callback):
    """Records the training batches run."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append(batch)


def _fit(callbacks, epochs=EPOCHS, seed=3, **fit_kwargs):
    """A small regression fit() whose loss goes up and down (SGD with a large momentum), so the best
    epoch of EarlyStopping is not the last; returns the model."""
    kerasckpt.utils.clear_session()
    kerasckpt.utils.set_random_seed(seed)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 1)) + rng.normal(0, 0.5, size=(48, 1))).astype("float32")
    model = kerasckpt.Sequential([layers.Input(shape=(4,)), layers.Dense(8, activation="relu"), layers.Dropout(0.2),
                                  layers.Dense(1)])
    model.compile(kerasckpt.optimizers.SGD(0.05, momentum=0.9), "mse")
    model.fit(x, y, epochs=epochs, callbacks=callbacks, **{"batch_size": BATCH, "verbose": 0, **fit_kwargs})
    return model


def _state(model):
    return [v.numpy() for v in model.weights] + [v.numpy() for v in model.optimizer.variables]


def _backup_files(directory):
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))} \
        if directory.is_dir() else {}


# ---------------------------------------------------------------------- NumPy values in callback states

@pytest.mark.parametrize("save_freq,crash,backup_first,background", [
    ("epoch", (4, 2), True, False), ("epoch", (4, None), False, False), (2, (4, 3), True, False),
    (2, (1, 1), False, True), (1, (5, 0), True, True)])
def test_early_stopping_restore_best_weights_resumes_bit_identical(tmp_path, save_freq, crash, backup_first,
                                                                   background):
    def callbacks(directory, crash=None):
        es = EarlyStopping(monitor="loss", patience=2, restore_best_weights=True)
        backup = BackupAndRestore(str(directory), save_freq=save_freq, save_in_background=background)
        cbs = [backup, es] if backup_first else [es, backup]
        return cbs + ([Crash(*crash)] if crash else []), es

    straight_cbs, straight_es = callbacks(tmp_path / "straight")
    straight = _fit(straight_cbs)
    assert straight_es.best_epoch < straight_es.stopped_epoch  # the restored best weights are not the last ones

    with pytest.raises(KeyboardInterrupt, match="simulated crash"):
        _fit(callbacks(tmp_path / "resumed", crash)[0])
    _background.wait_all()  # a backup the interrupted fit() left in flight finishes (as it would at exit)
    assert os.listdir(tmp_path / "resumed")  # a backup holding best weights is there
    resumed_cbs, resumed_es = callbacks(tmp_path / "resumed")
    resumed = _fit(resumed_cbs)

    for a, b in zip(_state(straight), _state(resumed), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    for a, b in zip(straight_es.best_weights, resumed_es.best_weights, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert (resumed_es.best, resumed_es.best_epoch, resumed_es.stopped_epoch, resumed_es.wait) == \
        (straight_es.best, straight_es.best_epoch, straight_es.stopped_epoch, straight_es.wait)
    assert resumed.history.run_history == straight.history.history


def _holder_state(n):
    return {"weights": [np.arange(6, dtype="float64").reshape(2, 3) * n, np.array(n, dtype="int8")],
            "nested": ({"flag": np.bool_(n % 2), "half": np.float32(n / 2)}, [np.zeros((0, 2), "uint16")]),
            "plain": [1, "a", None, 2.5], 3: np.array([True, False]), "b/c%d": np.complex64(n + 2j)}


class Holder(Callback):
    """Keeps NumPy values of several kinds, nested in dicts, lists and tuples, in its state."""

    def __init__(self):
        super().__init__()
        self.batches, self.restored = 0, None

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def get_state(self):
        return _holder_state(self.batches)

    def set_state(self, state):
        self.restored = state


def test_numpy_arrays_and_scalars_anywhere_in_a_callback_state_are_restored_exactly(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit([BackupAndRestore(str(tmp_path), save_freq=1), Holder(), Crash(0, 3)])
    with files.CheckpointReader(str(tmp_path / "backup")) as reader:
        assert reader.has_tensor("callback_states/Holder/weights/0/.ATTRIBUTES/VARIABLE_VALUE")
        assert reader.has_tensor("callback_states/Holder/b%2Fc%25d/.ATTRIBUTES/VARIABLE_VALUE")  # escaped like any path

    holder = Holder()
    _fit([BackupAndRestore(str(tmp_path)), holder])
    got, expected = holder.restored, _holder_state(3)  # backed up after batch 2; batch 3 crashed before
    assert got["plain"] == [1, "a", None, 2.5]
    for a, b in [(got["weights"][0], expected["weights"][0]), (got["weights"][1], expected["weights"][1]),
                 (got["nested"][1][0], expected["nested"][1][0]), (got["3"], expected[3])]:
        assert type(a) is np.ndarray and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    for a, b in [(got["nested"][0]["flag"], expected["nested"][0]["flag"]),
                 (got["nested"][0]["half"], expected["nested"][0]["half"]), (got["b/c%d"], expected["b/c%d"])]:
        assert type(a) is type(b) and a == b  # NumPy scalars come back as the same NumPy scalar type


@pytest.mark.parametrize("value,match", [
    ({"seen": {1, 2}}, r"get_state\(\)\['seen'\] is \{1, 2\} of type builtins.set"),
    ({"names": np.array(["a", "b"])}, r"get_state\(\)\['names'\] is a NumPy array of dtype <U1"),
    ({"by": {(1, 2): 3}}, r"get_state\(\)\['by'\] has the dict key \(1, 2\) of type tuple"),
    ([0, object], r"get_state\(\)\[1\] is <class 'object'> of type builtins.type"),
])
def test_a_callback_state_a_backup_cannot_hold_is_refused_naming_the_callback(tmp_path, value, match):
    class Odd(Callback):
        def get_state(self):
            return value

        def set_state(self, state):
            pass

    odd = Odd()
    odd.state_key = "odd-one"
    with pytest.raises(TypeError, match=r"callback Odd \(state key 'odd-one'\): " + match) as info:
        _fit([BackupAndRestore(str(tmp_path)), odd])
    assert "Make get_state() return only" in str(info.value)
    assert not [name for name in os.listdir(tmp_path) if name.startswith("backup")]


# ---------------------------------------------------------------------- double_checkpoint fallback

def _newest_backup(directory):
    sequences = {}
    for name in os.listdir(directory):
        if name.endswith(".index"):
            with files.CheckpointReader(str(directory / name[:-len(".index")])) as reader:
                sequences[name[:-len(".index")]] = reader.metadata["sequence"]
    return max(sequences, key=sequences.get), sequences


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_double_checkpoint_warns_when_the_newest_index_is_damaged(tmp_path, where):
    with pytest.raises(KeyboardInterrupt):
        _fit([BackupAndRestore(str(tmp_path), save_freq=1, double_checkpoint=True), Crash(1, 1)])
    newest, sequences = _newest_backup(tmp_path)
    assert sorted(sequences.values()) == [6, 7]  # after the last batch of epoch 0, after batch 0 of epoch 1
    index = tmp_path / f"{newest}.index"
    data = bytearray(index.read_bytes())
    data[{"start": 0, "middle": len(data) // 2, "end": -1}[where]] ^= 0xFF
    index.write_bytes(bytes(data))

    record = Record()
    with pytest.warns(UserWarning, match=rf"cannot resume from the backup '.*{newest}'.*{newest}\.index.*Falling back "
                                         r"to the other backup, which may be older, '.*backup-[ab]' \(sequence 6\)") \
            as caught:
        _fit([BackupAndRestore(str(tmp_path), save_freq=1, double_checkpoint=True), record])
    assert len([w for w in caught if "BackupAndRestore" in str(w.message)]) == 1
    # the previous backup was taken after the last batch of epoch 0: epochs 1 to 5 run in full
    assert record.seen == list(range(6)) * (EPOCHS - 1)


def test_double_checkpoint_with_every_backup_damaged_raises(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit([BackupAndRestore(str(tmp_path), save_freq=1, double_checkpoint=True), Crash(1, 1)])
    for name in os.listdir(tmp_path):
        if name.endswith(".index"):
            (tmp_path / name).write_bytes(b"\0" * 8)
    with pytest.warns(UserWarning, match="Falling back"), pytest.raises(kerasckpt.errors.CheckpointError,
                                                                        match=r"backup-[ab]\.index"):
        _fit([BackupAndRestore(str(tmp_path), save_freq=1, double_checkpoint=True)])


# ---------------------------------------------------------------------- save_freq=False

def test_save_freq_false_restores_an_existing_backup_but_never_backs_up(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit([BackupAndRestore(str(tmp_path / "a"), save_freq=2), Crash(1, 4)])
    before = _backup_files(tmp_path / "a")
    assert before

    class Snapshot(Callback):  # the backup files after every batch and epoch of the restore-only run
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append(_backup_files(tmp_path / "a"))

        on_epoch_end = on_train_batch_end

    record, snapshot = Record(), Snapshot()
    _fit([BackupAndRestore(str(tmp_path / "a"), save_freq=False, delete_checkpoint=False), record, snapshot])
    assert record.seen == [4, 5] + list(range(6)) * 4  # resumed after batch 3 of epoch 1, the last backup
    assert all(files_now == before for files_now in snapshot.seen)
    assert _backup_files(tmp_path / "a") == before

    _fit([BackupAndRestore(str(tmp_path / "a"), save_freq=False)], epochs=EPOCHS)  # restores, then deletes
    assert not _backup_files(tmp_path / "a")
    _fit([BackupAndRestore(str(tmp_path / "b"), save_freq=False, delete_checkpoint=False)], epochs=2)
    assert not _backup_files(tmp_path / "b")


@pytest.mark.parametrize("save_freq", [True, 0, -1, 1.5, "batch", None])
def test_save_freq_other_than_epoch_a_positive_int_or_false_is_refused(save_freq):
    with pytest.raises(ValueError, match=r"Unrecognized save_freq: .*Expected 'epoch', a positive number of "
                                         r"batches, or False"):
        BackupAndRestore("dir", save_freq=save_freq)


# ---------------------------------------------------------------------- backup_dir is a file

def test_backup_dir_that_is_a_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "taken"
    path.write_text("not a directory")
    with pytest.raises(kerasckpt.errors.CheckpointNotADirectoryError, match=r"BackupAndRestore cannot use backup_dir='.*taken': it is a file, "
                                              r"not a directory\. Pass a directory"):
        BackupAndRestore(str(path))
    with pytest.raises(NotADirectoryError, match=r"backup_dir='.*taken.sub.dir': '.*taken' is a file, so no "
                                                 r"directory can be created below it\. Pass a backup_dir"):
        BackupAndRestore(path / "sub" / "dir")


def test_backup_dir_that_became_a_file_is_refused_before_training(tmp_path):
    backup = BackupAndRestore(str(tmp_path / "later"))
    (tmp_path / "later").write_text("created after the callback")
    record = Record()
    with pytest.raises(kerasckpt.errors.CheckpointNotADirectoryError, match=r"backup_dir='.*later': it is a file"):
        _fit([backup, record])
    assert record.seen == []


# ---------------------------------------------------------------------- the History of a resumed fit()

class InterruptAtEpochBegin(Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 4:
            raise RuntimeError("Interrupting!")


def _keras_doc_example(lib, backup_dir):
    """Keras's own BackupAndRestore example: interrupted at the start of epoch 4 of 10, then resumed."""
    model = lib.Sequential([lib.layers.Dense(10)])
    model.compile(lib.optimizers.SGD(), loss="mse")
    model.build(input_shape=(None, 20))
    x, y = np.arange(100).reshape(5, 20) / 100.0, np.zeros(5)
    interrupt = type("Interrupt", (lib.callbacks.Callback,), {"on_epoch_begin": InterruptAtEpochBegin.on_epoch_begin})
    with pytest.raises(RuntimeError, match="Interrupting!"):
        model.fit(x, y, epochs=10, batch_size=1, verbose=0,
                  callbacks=[lib.callbacks.BackupAndRestore(backup_dir), interrupt()])
    history = model.fit(x, y, epochs=10, batch_size=1, verbose=0, callbacks=[lib.callbacks.BackupAndRestore(backup_dir)])
    return model, history


def test_a_resumed_fit_returns_the_history_of_this_call_as_keras_does(tmp_path):
    """Issue 11: the returned History held epochs 0..9; Keras's example checks len(...) == 6."""
    model, history = _keras_doc_example(kerasckpt, str(tmp_path))
    assert len(history.history["loss"]) == 6 and history.epoch == [4, 5, 6, 7, 8, 9]
    assert model.history is history
    assert history.run_epoch == list(range(10)) and len(history.run_history["loss"]) == 10
    assert history.run_history["loss"][4:] == history.history["loss"]


@pytest.mark.slow  # importing Keras
def test_the_history_of_a_resumed_fit_matches_keras(tmp_path):
    pytest.importorskip("torch")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    _, theirs = _keras_doc_example(keras, str(tmp_path / "keras"))
    _, ours = _keras_doc_example(kerasckpt, str(tmp_path / "ours"))
    assert ours.epoch == theirs.epoch and sorted(ours.history) == sorted(theirs.history)
    assert len(ours.history["loss"]) == len(theirs.history["loss"])


# ---------------------------------------------------------------------- training longer; what may change

def _longer(directory, epochs, crash=None, extra=(), delete_checkpoint=False, save_freq="epoch", **fit_kwargs):
    """`_fit` with EarlyStopping (state that must carry over) and a kept backup; returns the model and History."""
    es = EarlyStopping(monitor="loss", patience=50)
    callbacks = [BackupAndRestore(str(directory), save_freq=save_freq, delete_checkpoint=delete_checkpoint), es,
                 *extra] + ([Crash(*crash)] if crash else [])
    model = _fit(callbacks, epochs=epochs, **fit_kwargs)
    return model, model.history, es


@pytest.mark.parametrize("save_freq", ["epoch", 4])
def test_a_finished_run_trained_for_more_epochs_equals_a_straight_run(tmp_path, save_freq):
    """Issue 11: a kept backup and fit(epochs=5) after fit(epochs=3) was refused as "a different run"."""
    straight, straight_history, straight_es = _longer(tmp_path / "straight", 5, save_freq=save_freq)
    _, first, _ = _longer(tmp_path / "more", 3, save_freq=save_freq)
    assert first.epoch == [0, 1, 2]
    record = Record()
    more, history, es = _longer(tmp_path / "more", 5, save_freq=save_freq, extra=[record], verbose=2)
    assert history.epoch == [3, 4] and history.history == {k: v[3:] for k, v in straight_history.history.items()}
    assert history.run_history == straight_history.history
    for a, b in zip(_state(straight), _state(more), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert (es.best, es.wait) == (straight_es.best, straight_es.wait)
    assert record.seen == list(range(6)) * 2  # a kept backup is at the run's end, whatever save_freq says


def test_a_killed_run_resumed_with_more_epochs_equals_a_straight_run(tmp_path):
    straight, straight_history, _ = _longer(tmp_path / "straight", 5, delete_checkpoint=True)
    with pytest.raises(KeyboardInterrupt):
        _longer(tmp_path / "resumed", 3, crash=(1, 2), save_freq=2)
    resumed, history, _ = _longer(tmp_path / "resumed", 5, save_freq=2, delete_checkpoint=True)
    assert history.run_history == straight_history.history and history.epoch == [1, 2, 3, 4]
    assert all(np.array_equal(a, b) for a, b in zip(_state(straight), _state(resumed), strict=True))
    assert not os.listdir(tmp_path / "resumed")


def test_a_backup_past_a_smaller_epochs_trains_nothing(tmp_path):
    _, _, _ = _longer(tmp_path, 4)
    record = Record()
    model, history, _ = _longer(tmp_path, 2, extra=[record])
    assert record.seen == [] and history.epoch == [] and history.history == {}
    assert len(history.run_history["loss"]) == 4


def test_a_resume_with_other_stateful_callbacks_is_refused_with_the_differences(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _longer(tmp_path, 3, crash=(1, 2), save_freq=2)
    added = kerasckpt.callbacks.ReduceLROnPlateau(monitor="loss")
    with pytest.raises(kerasckpt.errors.CheckpointMismatchError,
                       match=r"it was made by a different run\. callback 'ReduceLROnPlateau' holds state, and the "
                             r"backup has none for it\. Run with the same model"):
        _longer(tmp_path, 3, extra=[added])
    with pytest.raises(kerasckpt.errors.CheckpointMismatchError,
                       match=r"the backup has the state of callback 'EarlyStopping', which this fit\(\) does not have"):
        _fit([BackupAndRestore(str(tmp_path))], epochs=3)
    with pytest.raises(kerasckpt.errors.CheckpointMismatchError, match=r"fit argument batch_size: 8 in the backup, "
                                                                       r"16 now"):
        _longer(tmp_path, 3, batch_size=16)
    _, history, _ = _longer(tmp_path, 3, initial_epoch=2, verbose=2)  # both may change: the backup's position wins
    assert history.epoch == [1, 2]


def test_a_stateful_callback_not_ready_before_its_on_train_begin_is_matched_by_key(tmp_path):
    class Counter(Callback):  # its state exists only once on_train_begin ran (after BackupAndRestore's)
        def on_train_begin(self, logs=None):
            if not self._take_restored():
                self.count = 0

        def on_train_batch_end(self, batch, logs=None):
            self.count += 1

        def get_state(self):
            return {"count": self.count}

        def set_state(self, state):
            self.count, self._state_restored = state["count"], True

    with pytest.raises(KeyboardInterrupt):
        _fit([BackupAndRestore(str(tmp_path), save_freq=1), Counter(), Crash(1, 2)])
    counter = Counter()
    _fit([BackupAndRestore(str(tmp_path)), counter])
    assert counter.count == EPOCHS * 6
    with pytest.raises(KeyboardInterrupt):
        _fit([BackupAndRestore(str(tmp_path), save_freq=1), Counter(), Crash(1, 2)])
    with pytest.raises(kerasckpt.errors.CheckpointMismatchError, match="backup has the state of callback 'Counter'"):
        _fit([BackupAndRestore(str(tmp_path))])
