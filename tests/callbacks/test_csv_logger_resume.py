"""CSVLogger with BackupAndRestore: the log of a crashed and resumed fit() equals, byte for byte, the log
of a fit() never interrupted (no row lost, none repeated, one header)."""
import os

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.callbacks import BackupAndRestore, CallbackList, CSVLogger
from crashing import Crash

EPOCHS, BATCH = 4, 8  # 48 training samples -> 6 batches per epoch
EARLIER = b"epoch,loss,mae,val_loss,val_mae\r\n0,9.0,3.0,8.0,2.5\r\n"  # a log of an earlier run, for append=True


def _fit(callbacks):
    kerasckpt.utils.clear_session()
    kerasckpt.utils.set_random_seed(5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]], "float32") + rng.normal(0, 0.1, size=(64, 1))).astype("float32")
    model = kerasckpt.Sequential([layers.Input(shape=(3,)), layers.Dense(4, activation="relu"), layers.Dense(1)])
    model.compile(kerasckpt.optimizers.SGD(0.01), "mse", metrics=["mae"])
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, validation_split=0.25, verbose=0, callbacks=callbacks)
    return model


def _callbacks(directory, append, save_freq, logger_first, crash=None):
    logger = CSVLogger(directory / "log.csv", append=append)
    backup = BackupAndRestore(str(directory / "backup"), save_freq=save_freq)
    return ([logger, backup] if logger_first else [backup, logger]) + ([Crash(*crash)] if crash else [])


@pytest.mark.parametrize("append", [False, True])
@pytest.mark.parametrize("save_freq,crash,logger_first", [
    ("epoch", (2, 3), False),     # mid-epoch: the backup of epoch 1's end has 2 rows
    ("epoch", (1, None), True),   # in on_epoch_end after epoch 1's row, before its backup
    (2, (2, None), False),        # the same with batch backups: the last one precedes the row
    (2, (1, 4), True),            # mid-epoch, resumed mid-epoch (on_epoch_begin is not called again)
    (1, (0, 2), False),           # before the first row, so before the header
    (4, (3, None), True),         # in the last epoch's on_epoch_end
])
def test_resumed_log_equals_the_uninterrupted_log_byte_for_byte(tmp_path, append, save_freq, crash, logger_first):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for directory in (straight, resumed):
        directory.mkdir()
        (directory / "log.csv").write_bytes(EARLIER)  # overwritten unless append=True
    _fit(_callbacks(straight, append, save_freq, logger_first))
    expected = (straight / "log.csv").read_bytes()
    assert expected.count(b"epoch,") == 1 and expected.count(b"\r\n") == 1 + append + EPOCHS

    with pytest.raises(KeyboardInterrupt, match="simulated crash"):
        _fit(_callbacks(resumed, append, save_freq, logger_first, crash))
    crashed = (resumed / "log.csv").read_bytes()
    if crash[1] is None:  # the crashing epoch's row is in the file, but not in the backup
        assert crashed == expected[:len(crashed)] and crashed.count(b"\r\n") == 1 + append + crash[0] + 1
    _fit(_callbacks(resumed, append, save_freq, logger_first))
    assert (resumed / "log.csv").read_bytes() == expected


def test_the_same_logger_instance_resumes_too(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    straight.mkdir()
    resumed.mkdir()
    _fit(_callbacks(straight, False, "epoch", False))
    callbacks = _callbacks(resumed, False, "epoch", False)
    with pytest.raises(KeyboardInterrupt):
        _fit(callbacks + [Crash(2, None)])
    _fit(callbacks)
    assert (resumed / "log.csv").read_bytes() == (straight / "log.csv").read_bytes()


@pytest.mark.parametrize("damage", ["delete", "shorten"])
def test_resuming_with_the_log_missing_or_shorter_warns_naming_it(tmp_path, damage):
    straight = tmp_path / "straight"
    straight.mkdir()
    _fit(_callbacks(straight, False, "epoch", False))
    rows = (straight / "log.csv").read_bytes().split(b"\r\n")
    with pytest.raises(KeyboardInterrupt):
        _fit(_callbacks(tmp_path, False, "epoch", False, crash=(2, 1)))  # backup has header + rows of epochs 0, 1
    path = tmp_path / "log.csv"
    if damage == "delete":
        path.unlink()
        match = r"CSVLogger is resuming '.*log\.csv', which is missing, so it starts anew, but \d+ bytes had been"
    else:
        path.write_bytes(path.read_bytes()[:-5])
        match = r"CSVLogger is resuming '.*log\.csv', which has only \d+ bytes, but \d+ bytes had been"
    with pytest.warns(UserWarning, match=match + r".*Keep the log file in place"):
        _fit(_callbacks(tmp_path, False, "epoch", False))
    if damage == "delete":  # a header, then the rows of the epochs run after the resume
        assert path.read_bytes() == b"\r\n".join([rows[0]] + rows[3:])
    else:
        assert path.read_bytes().endswith(b"\r\n".join(rows[3:]))


def test_state_round_trip_through_a_callback_list(tmp_path):
    path = tmp_path / "log.csv"

    class _Model:
        stop_training, history = False, None

    first = CallbackList([CSVLogger(path)], model=_Model())
    first.on_train_begin()
    first.on_epoch_end(0, {"loss": 1.0})
    state = first.get_state()
    assert state == {"CSVLogger": {"size": len(path.read_bytes()), "header_written": True,
                                   "keys": ["loss", "val_loss"], "checked_keys": True}}
    first.on_epoch_end(1, {"loss": 0.5})  # written, then lost: the state predates it

    second = CallbackList([CSVLogger(path)], model=_Model())
    second.set_state(state)
    second.on_train_begin()
    assert second.get_state() == state  # resumed in mid-epoch: nothing written yet
    second.on_epoch_end(1, {"loss": 0.25})
    second.on_train_end()
    assert path.read_bytes() == b"epoch,loss,val_loss\r\n0,1.0,NA\r\n1,0.25,NA\r\n"


def test_append_false_empties_the_file_at_the_first_epoch_and_at_the_end_of_an_empty_run(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"old contents")
    logger = CSVLogger(path)
    cbs = CallbackList([logger], model=type("M", (), {"stop_training": False, "history": None})())
    cbs.on_train_begin()
    assert path.read_bytes() == b"old contents"  # a BackupAndRestore later in the list may still restore the log
    cbs.on_epoch_begin(0)
    assert path.read_bytes() == b""
    cbs.on_train_end()
    path.write_bytes(b"old contents")
    cbs.on_train_begin()
    cbs.on_train_end()  # fit(epochs=0), as Keras: the file is emptied
    assert os.path.getsize(path) == 0
