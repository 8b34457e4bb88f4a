"""ModelCheckpoint retention: `save_top_k` with a missing or NaN monitor, and ties against `best_filepath`."""
import os
import pathlib
import warnings

import numpy as np
import pytest

import kerasckpt
from kerasckpt.callbacks import Callback
from kerasckpt.callbacks.model_checkpoint import ModelCheckpoint

N, BATCH = 16, 8


def _model():
    model = kerasckpt.Sequential([kerasckpt.layers.Input(shape=(4,)), kerasckpt.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, 4)).astype("float32"), rng.normal(size=(N, 2)).astype("float32")


class Script(Callback):
    """Sets `logs[key] = values[epoch]`, or leaves the key out where the value is None (list it first)."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        if self.values[epoch] is not None:
            logs[self.key] = self.values[epoch]


class Snapshot(Callback):
    """After every epoch (list it after ModelCheckpoint): the directory's files with their bytes."""

    def __init__(self, directory):
        super().__init__()
        self.directory, self.snapshots = str(directory), []

    def on_epoch_end(self, epoch, logs=None):
        names = sorted(os.listdir(self.directory)) if os.path.isdir(self.directory) else []
        self.snapshots.append({n: pathlib.Path(self.directory, n).read_bytes() for n in names})


def _fit(cb, values, key="score", directory=None, **fit_kwargs):
    x, y = _data()
    snapshot = Snapshot(directory) if directory is not None else None
    callbacks = ([Script(key, values)] if values is not None else []) + [cb] + ([snapshot] if snapshot else [])
    _model().fit(x, y, batch_size=BATCH, epochs=len(values) if values else fit_kwargs.pop("epochs"), shuffle=False,
                 verbose=0, callbacks=callbacks, **fit_kwargs)
    return snapshot


def _missing_warnings(record):
    return [w for w in record if "found no" in str(w.message)]


def test_save_top_k_without_the_monitor_warns_once_and_saves_nothing(tmp_path):
    # A monitor no callback ever logs: each file used to be written and deleted at once, silently.
    cb = ModelCheckpoint(str(tmp_path / "d" / "w{epoch}.weights.h5"), monitor="score", mode="min", save_top_k=2)
    with pytest.warns(UserWarning, match=r"save_top_k=2\) found no 'score'") as record:
        _fit(cb, None, epochs=3)
    found = _missing_warnings(record)
    assert len(found) == 1
    assert "Available keys: loss" in str(found[0].message) and "Set monitor=" in str(found[0].message)
    assert cb.files == [] and cb.best_filepath is None
    assert not (tmp_path / "d").exists() or os.listdir(tmp_path / "d") == []


def test_save_top_k_keeps_ranked_files_while_the_monitor_is_missing_then_ranks_again(tmp_path):
    values = [2.0, 3.0, None, None, 1.0, 4.0, 0.5]
    cb = ModelCheckpoint(str(tmp_path / "w{epoch}.weights.h5"), monitor="score", mode="min", save_top_k=2)
    with pytest.warns(UserWarning, match="found no 'score'") as record:
        snapshot = _fit(cb, values, directory=tmp_path)
    assert len(_missing_warnings(record)) == 1
    names = [sorted(s) for s in snapshot.snapshots]
    assert names[2] == names[3] == names[1] == ["w1.weights.h5", "w2.weights.h5"]
    assert snapshot.snapshots[3] == snapshot.snapshots[1]  # not rewritten, not deleted
    assert names[4] == ["w1.weights.h5", "w5.weights.h5"]
    assert names[6] == ["w5.weights.h5", "w7.weights.h5"]
    assert [f["epoch"] for f in cb.files] == [5, 7] and cb.best == 0.5
    assert cb.best_filepath == str(tmp_path / "w7.weights.h5")


def test_save_top_k_missing_monitor_never_overwrites_a_ranked_fixed_file(tmp_path):
    path = tmp_path / "w.weights.h5"
    cb = ModelCheckpoint(str(path), monitor="score", mode="min", save_top_k=1)
    with pytest.warns(UserWarning, match="found no 'score'"):
        snapshot = _fit(cb, [2.0, None, None], directory=tmp_path)
    assert snapshot.snapshots[0] == snapshot.snapshots[1] == snapshot.snapshots[2] != {}
    assert cb.best == 2.0 and cb.best_filepath == str(path) and len(cb.files) == 1


def test_save_top_k_skips_a_nan_value_instead_of_losing_the_ranked_file(tmp_path, capsys):
    path = tmp_path / "w.weights.h5"
    cb = ModelCheckpoint(str(path), monitor="score", mode="min", save_top_k=1, verbose=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NaN is reported in verbose output, not warned about
        snapshot = _fit(cb, [2.0, float("nan"), 1.0], directory=tmp_path)
    assert snapshot.snapshots[1] == snapshot.snapshots[0] != {}
    assert snapshot.snapshots[2] != snapshot.snapshots[1] and cb.best == 1.0
    assert [f["value"] for f in cb.files] == [1.0]
    assert "Epoch 2: score is nan, which save_top_k cannot rank; not saving" in capsys.readouterr().out


def test_save_best_only_missing_monitor_warning_lists_the_available_keys(tmp_path):
    cb = ModelCheckpoint(str(tmp_path / "best.weights.h5"), save_best_only=True, save_top_k=3)
    with pytest.warns(UserWarning, match=r"save_best_only=True\) found no 'val_loss' .*Available keys: loss"):
        _fit(cb, None, epochs=2, validation_split=0.25, validation_freq=[2, 4])  # epoch 1 has no val_loss
    assert [f["epoch"] for f in cb.files] == [2] and os.listdir(tmp_path) == ["best.weights.h5"]


@pytest.mark.parametrize("mode,k,values,kept", [
    ("min", 1, [1.0, 1.0, 1.0], [1]),
    ("max", 1, [1.0, 1.0, 1.0], [1]),
    ("max", 1, [1.0, 2.0, 2.0, 0.0], [2]),
    ("min", 2, [1.0, 1.0, 1.0, 1.0], [1, 4]),
    ("max", 2, [1.0, 1.0, 1.0, 1.0], [1, 4]),
    ("min", 2, [2.0, 1.0, 1.0, 1.0], [2, 4]),
    ("max", 2, [2.0, 1.0, 2.0, 2.0], [1, 4]),
    ("min", 2, [3.0, 1.0, 2.0, 2.0], [2, 4]),
])
def test_save_top_k_keeps_exactly_k_files_on_ties_with_best_filepath_among_them(tmp_path, mode, k, values, kept):
    cb = ModelCheckpoint(str(tmp_path / "w{epoch}.weights.h5"), monitor="score", mode=mode, save_top_k=k)
    snapshot = _fit(cb, values, directory=tmp_path)
    expected = [f"w{e}.weights.h5" for e in kept]
    assert sorted(os.listdir(tmp_path)) == expected
    assert all(len(s) <= k for s in snapshot.snapshots)
    assert sorted(os.path.basename(f["path"]) for f in cb.files) == expected
    best = max(values) if mode == "max" else min(values)
    first_best = values.index(best) + 1  # `best` moves on strict improvement only, as in Keras
    assert cb.best == best and cb.best_filepath == str(tmp_path / f"w{first_best}.weights.h5")
