"""Exact resume: fit() interrupted at (epoch, batch) and started again equals a run never interrupted."""
import itertools
import os
import threading
import time

import numpy as np
import pytest

import kerasckpt
from kerasckpt import _background
from kerasckpt.callbacks import (BackupAndRestore, Callback, CSVLogger, EarlyStopping, ModelCheckpoint,
                                 ReduceLROnPlateau)
from kerasckpt.checkpoint import bundle as files
from kerasckpt.errors import CheckpointError
from conftest import make_model, tiny_data
from crashing import Crash

EPOCHS, BATCH = 4, 8  # 48 training samples -> 6 batches per epoch


def _optimizer(name):
    return {"sgd": lambda: kerasckpt.optimizers.SGD(0.05, momentum=0.9),
            "adam": lambda: kerasckpt.optimizers.Adam(0.01),
            "adamw": lambda: kerasckpt.optimizers.AdamW(0.01),
            "rmsprop": lambda: kerasckpt.optimizers.RMSprop(0.005)}[name]()


def _train(tmp_path, kind, optimizer, dropout, shuffle, save_freq, crash=None, monitor_callbacks=True,
           background=False):
    """One fit() with the resume-relevant callbacks; returns the model and its callbacks."""
    kerasckpt.utils.clear_session()
    kerasckpt.utils.set_random_seed(3)
    tmp_path.mkdir(exist_ok=True)
    x, y = tiny_data(64)
    model = make_model(kind, dropout=dropout)
    model.compile(optimizer=_optimizer(optimizer), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    mc = ModelCheckpoint(str(tmp_path / "mc" / "w{epoch}"), monitor="val_loss", save_best_only=True,
                         save_in_background=background)
    es = EarlyStopping(monitor="val_loss", patience=1, min_delta=0.05)
    others = [mc, es, ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.5),
              CSVLogger(str(tmp_path / "log.csv"))] if monitor_callbacks else []
    callbacks = [BackupAndRestore(str(tmp_path / "backup"), save_freq=save_freq,
                                  save_in_background=background)] + others
    if crash is not None:
        callbacks.append(Crash(*crash))
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, validation_split=0.25, shuffle=shuffle, verbose=0,
              callbacks=callbacks)
    return model, mc, es


def _checkpoints(directory):
    """`{prefix: {key: bytes}}` of the native checkpoints ModelCheckpoint left in `directory`."""
    out = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".index"):
            prefix = str(directory / name[:-len(".index")])
            with files.CheckpointReader(prefix) as reader:
                out[name[:-len(".index")]] = {key: reader.read(key).tobytes() for key in reader.keys()
                                              if not key.startswith("_")}  # values, not the graph or the record
    return out


def _state(model):
    return [v.numpy() for v in model.weights] + [v.numpy() for v in model.optimizer.variables]


CASES = [(kind, freq, crash, opt, dropout, shuffle) for (kind, freq, crash), opt, dropout, shuffle in zip(
    itertools.product(("sequential", "functional", "subclass"), ("epoch", 2), ((0, 3), (1, 0), (2, 5))),
    itertools.cycle(("adam", "sgd", "rmsprop", "adamw")), itertools.cycle((0.3, 0.0, 0.3)),
    itertools.cycle((True, False)))]


@pytest.mark.parametrize("kind,save_freq,crash,optimizer,dropout,shuffle", CASES)
def test_interrupted_fit_resumes_to_the_same_run(tmp_path, kind, save_freq, crash, optimizer, dropout, shuffle):
    _check_resume(tmp_path, kind, save_freq, crash, optimizer, dropout, shuffle, background=False)


@pytest.mark.parametrize("kind,save_freq,crash,optimizer,dropout,shuffle", CASES[::2])
def test_interrupted_fit_resumes_to_the_same_run_with_background_saving(tmp_path, monkeypatch, kind, save_freq, crash,
                                                                       optimizer, dropout, shuffle):
    """BackupAndRestore and ModelCheckpoint save in the background, with slow writes: training moves on
    while a backup is written, and the crash comes with saves still in flight."""
    real = _background.PreparedSave.write

    def slow(prepared, arrays=None):
        if threading.current_thread() is not threading.main_thread():
            time.sleep(0.01)
        return real(prepared, arrays)
    monkeypatch.setattr(_background.PreparedSave, "write", slow)
    _check_resume(tmp_path, kind, save_freq, crash, optimizer, dropout, shuffle, background=True)


def _check_resume(tmp_path, kind, save_freq, crash, optimizer, dropout, shuffle, background):
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight, straight_mc, straight_es = _train(straight_dir, kind, optimizer, dropout, shuffle, save_freq,
                                                background=background)
    crash = (min(crash[0], len(straight.history.epoch) - 1), crash[1])  # EarlyStopping may end training early

    with pytest.raises(KeyboardInterrupt, match="simulated crash"):
        _train(resumed_dir, kind, optimizer, dropout, shuffle, save_freq, crash=crash, background=background)
    _background.wait_all()  # saves the interrupted fit() left in flight finish (as they would at exit)
    batches_done = crash[0] * 6 + crash[1]  # finished batches before the crashing one
    expect_backup = crash[0] > 0 if save_freq == "epoch" else batches_done >= save_freq
    has_backup = (resumed_dir / "backup").is_dir() and bool(os.listdir(resumed_dir / "backup"))
    assert has_backup == expect_backup
    resumed, resumed_mc, resumed_es = _train(resumed_dir, kind, optimizer, dropout, shuffle, save_freq,
                                             background=background)

    for a, b in zip(_state(straight), _state(resumed), strict=True):
        assert np.array_equal(a, b)
    assert resumed.history.run_history == straight.history.history
    assert resumed.history.run_epoch == straight.history.epoch
    # fit() returns this call's epochs, as in Keras: from the epoch of the last backup on
    backed_up = crash[0] * 6 if save_freq == "epoch" else batches_done // save_freq * save_freq
    first = crash[0] if save_freq == "epoch" else max(backed_up - 1, 0) // 6
    assert resumed.history.epoch == straight.history.epoch[first:]
    assert resumed.history.history == {k: v[first:] for k, v in straight.history.history.items()}
    assert resumed_es.stopped_epoch == straight_es.stopped_epoch
    assert resumed_mc.best == straight_mc.best
    assert _checkpoints(resumed_dir / "mc") == _checkpoints(straight_dir / "mc")
    assert [f["epoch"] for f in resumed_mc.files] == [f["epoch"] for f in straight_mc.files]
    assert (resumed_dir / "log.csv").read_bytes() == (straight_dir / "log.csv").read_bytes()
    assert not os.path.exists(resumed_dir / "backup") or not os.listdir(resumed_dir / "backup")


def test_mid_epoch_resume_continues_at_the_next_batch(tmp_path):
    seen = []

    class Record(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(batch)

    kerasckpt.utils.set_random_seed(0)
    x, y = tiny_data(64)
    model = make_model("sequential")
    model.compile("adam", "sparse_categorical_crossentropy")
    backup = BackupAndRestore(str(tmp_path), save_freq=1)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[backup, Crash(0, 4), Record()])
    assert seen == [0, 1, 2, 3, 4]
    seen.clear()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[backup, Record()])
    assert seen == [4, 5, 6, 7] + list(range(8))  # batch 4 crashed before its backup, so it runs again


def test_a_backup_of_another_run_is_refused_with_the_differences(tmp_path):
    x, y = tiny_data(64)
    model = make_model("sequential")
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=3, verbose=0,
                  callbacks=[BackupAndRestore(str(tmp_path), save_freq=1), Crash(0, 2)])
    with pytest.raises(CheckpointError, match=r"fit argument batch_size: 8 in the backup, 16 now.*fit argument "
                                              r"shuffle: True in the backup, False now"):
        model.fit(x, y, batch_size=16, epochs=4, shuffle=False, verbose=0, callbacks=[BackupAndRestore(str(tmp_path))])
    other = make_model("sequential", units=5)
    other.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(CheckpointError, match=r"has shape \(6, 16\) in the backup, \(6, 5\) now"):
        other.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[BackupAndRestore(str(tmp_path))])


def test_double_checkpoint_falls_back_to_the_previous_backup_when_the_newest_is_damaged(tmp_path):
    x, y = tiny_data(64)
    kerasckpt.utils.set_random_seed(0)
    model = make_model("functional")
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=3, verbose=0,
                  callbacks=[BackupAndRestore(str(tmp_path), save_freq=1, double_checkpoint=True), Crash(1, 1)])
    newest = max((p for p in os.listdir(tmp_path) if p.endswith(".index")), key=lambda p: os.stat(tmp_path / p).st_mtime_ns)
    with files.CheckpointReader(str(tmp_path / newest[:-len(".index")])) as reader:  # damage a value, not the record
        entry = reader.entry("model/dense/kernel")
        data_file = tmp_path / reader.data_files()[entry.shard]
    data = bytearray(data_file.read_bytes())
    data[entry.offset + entry.size // 2] ^= 0xFF
    data_file.write_bytes(bytes(data))
    seen = []

    class Record(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(batch)

    with pytest.warns(UserWarning, match="Falling back to the previous backup"):
        model.fit(x, y, batch_size=8, epochs=3, verbose=0,
                  callbacks=[BackupAndRestore(str(tmp_path), save_freq=1, double_checkpoint=True), Record()])
    # the newest backup (after batch 0 of epoch 1) is damaged; the previous one was taken after the last
    # batch of epoch 0, so the run replays epoch 0's end and trains epochs 1 and 2 in full
    assert seen == list(range(8)) * 2


def test_backup_is_deleted_after_a_finished_run_unless_asked_to_keep(tmp_path):
    x, y = tiny_data(32)
    model = make_model("sequential")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[BackupAndRestore(str(tmp_path / "a"))])
    assert not [p for p in os.listdir(tmp_path / "a") if p.startswith("backup")]
    model.fit(x, y, epochs=1, verbose=0, callbacks=[BackupAndRestore(str(tmp_path / "b"), delete_checkpoint=False)])
    assert [p for p in os.listdir(tmp_path / "b") if p.endswith(".index")] == ["backup.index"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        BackupAndRestore("dir", save_freq=0)
    with pytest.raises(ValueError, match="backup_dir"):
        BackupAndRestore("")


class EpochLog(Callback):
    """Holds no state: learns the epoch in on_epoch_begin, as user callbacks do, and logs what it sees."""

    def __init__(self):
        super().__init__()
        self.epoch, self.seen = None, []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.seen.append(("begin", epoch))

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append((self.epoch, batch))


def _scheduled_fit(directory, crash=None):
    """fit() with hooks whose on_epoch_begin changes what a backup holds: the learning rate (halved from
    the current one) and the global random state."""
    kerasckpt.utils.set_random_seed(0)
    x, y = tiny_data(64)
    model = make_model("sequential", dropout=0.3)
    model.compile(kerasckpt.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    log = EpochLog()
    draw = kerasckpt.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: kerasckpt.random.draw_seed())
    callbacks = [BackupAndRestore(str(directory), save_freq=3), kerasckpt.callbacks.LearningRateScheduler(
        lambda epoch, lr: lr * 0.5), draw, log] + ([Crash(*crash)] if crash else [])
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=callbacks)
    return model, log, kerasckpt.random.get_global_state()


def test_a_run_resumed_inside_an_epoch_begins_it_with_on_epoch_begin(tmp_path):
    """Issue 11: the resumed run continued inside epoch 1 without on_epoch_begin(1)."""
    straight, straight_log, straight_random = _scheduled_fit(tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        _scheduled_fit(tmp_path / "resumed", crash=(1, 4))
    resumed, log, resumed_random = _scheduled_fit(tmp_path / "resumed")
    # backed up every 3 batches (8 per epoch), last after batch 3 of epoch 1: batch 4 (crashed) runs again
    assert log.seen[:3] == [("begin", 1), (1, 4), (1, 5)]
    assert log.seen[1:] == straight_log.seen[straight_log.seen.index((1, 4)):]
    # what on_epoch_begin changed had been backed up after it ran: it is put back, so the run stays exact
    for a, b in zip(_state(straight), _state(resumed), strict=True):
        assert np.array_equal(a, b)
    assert float(resumed.optimizer.learning_rate) == float(np.float32(0.01) / 8)  # halved at 3 epoch begins
    assert resumed_random == straight_random
