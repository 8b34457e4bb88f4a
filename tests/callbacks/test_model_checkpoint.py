"""ModelCheckpoint: which files exist after which epoch or batch, templates, best tracking, retention, crashes."""
import datetime
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.callbacks import Callback
from kerasckpt.callbacks.model_checkpoint import ModelCheckpoint

N, BATCH = 32, 8  # 4 batches per epoch


def _model(lib=kerasckpt):
    model = lib.Sequential([lib.layers.Input(shape=(4,)), lib.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, 4)).astype("float32"), rng.integers(0, 3, size=N)


class Script(Callback):
    """Writes scripted values into the epoch logs (placed before ModelCheckpoint, which sees them)."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class Listing(Callback):
    """Records, after every epoch (placed after ModelCheckpoint), the files and their mtimes."""

    def __init__(self, directory):
        super().__init__()
        self.directory, self.snapshots = directory, []

    def on_epoch_end(self, epoch, logs=None):
        names = sorted(os.listdir(self.directory)) if os.path.isdir(self.directory) else []
        self.snapshots.append({n: os.stat(os.path.join(self.directory, n)).st_mtime_ns for n in names})

    def saved_names(self):
        """Per epoch, the files that appeared or changed during it."""
        out, previous = [], {}
        for snap in self.snapshots:
            out.append(sorted(n for n, t in snap.items() if previous.get(n) != t))
            previous = snap
        return out


def _run(lib, tmp_path, filepath, epochs=3, script=None, **kwargs):
    model = _model(lib)
    x, y = _data()
    directory = str(tmp_path)
    cb = (lib.callbacks.ModelCheckpoint if lib is not kerasckpt else ModelCheckpoint)(
        os.path.join(directory, filepath), **kwargs)
    listing = Listing(directory)
    callbacks = ([Script(*script)] if script else []) + [cb, listing]
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
    return cb, listing.saved_names()


CASES = {
    "every_epoch": dict(filepath="w.{epoch:02d}.weights.h5"),
    "every_3_batches": dict(filepath="w.e{epoch}-b{batch}.weights.h5", save_freq=3),
    "every_4_batches": dict(filepath="w.e{epoch}-b{batch}.weights.h5", save_freq=4),
    "best_only_template": dict(filepath="w.{epoch}.weights.h5", save_best_only=True, monitor="score", mode="min",
                               script=("score", [3.0, 1.0, 2.0, 0.5])),
    "best_only_fixed": dict(filepath="best.weights.h5", save_best_only=True, monitor="score", mode="max",
                            script=("score", [1.0, 3.0, 2.0, 4.0])),
    "threshold": dict(filepath="w.{epoch}.weights.h5", save_best_only=True, monitor="score", mode="min",
                      initial_value_threshold=2.5, script=("score", [3.0, 1.0, 2.0, 0.5])),
}
# What Keras 3.15.1 writes for each case (recorded from keras, checked again by the test below).
KERAS_EXPECTED = {
    "every_epoch": [["w.01.weights.h5"], ["w.02.weights.h5"], ["w.03.weights.h5"], ["w.04.weights.h5"]],
    "every_3_batches": [["w.e1-b3.weights.h5"], ["w.e2-b2.weights.h5"], ["w.e3-b1.weights.h5", "w.e3-b4.weights.h5"],
                        ["w.e4-b3.weights.h5"]],
    "every_4_batches": [["w.e1-b4.weights.h5"], ["w.e2-b4.weights.h5"], ["w.e3-b4.weights.h5"], ["w.e4-b4.weights.h5"]],
    "best_only_template": [["w.1.weights.h5"], ["w.2.weights.h5"], [], ["w.4.weights.h5"]],
    "best_only_fixed": [["best.weights.h5"], ["best.weights.h5"], [], ["best.weights.h5"]],
    "threshold": [[], ["w.2.weights.h5"], [], ["w.4.weights.h5"]],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_files_written_per_epoch_match_keras_expectations(tmp_path, case):
    kwargs = dict(CASES[case])
    _, saved = _run(kerasckpt, tmp_path, kwargs.pop("filepath"), epochs=4, **kwargs)
    assert saved == KERAS_EXPECTED[case]


@pytest.mark.keras
@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_writes_the_same_files(tmp_path, case):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() == "numpy":
        pytest.skip("Keras's numpy backend cannot train")
    kwargs = dict(CASES[case])
    _, saved = _run(keras, tmp_path, kwargs.pop("filepath"), epochs=4, **kwargs)
    assert saved == KERAS_EXPECTED[case]


def test_angle_bracket_template_means_the_same(tmp_path):
    cb, saved = _run(kerasckpt, tmp_path, "w.<epoch:02d>-<loss:.3f>.weights.h5", epochs=2)
    assert [len(s) for s in saved] == [1, 1]
    assert saved[0][0].startswith("w.01-") and saved[1][0].startswith("w.02-")
    assert cb.files[-1]["path"].endswith(saved[1][0])


def test_missing_template_key_names_the_template_and_the_available_keys(tmp_path):
    with pytest.raises(KeyError) as err:
        _run(kerasckpt, tmp_path, "w.{epoch:02d}-{val_acc:.3f}.keras", epochs=1)
    text = str(err.value)
    assert "w.{epoch:02d}-{val_acc:.3f}.keras" in text and "'val_acc'" in text
    assert "Available keys: accuracy, loss, epoch" in text


def test_values_never_add_directory_levels(tmp_path):
    class Both(Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["out.acc"], logs["head/loss"], logs["tag"] = 0.25, 1.5, "a/b"

    model, (x, y) = _model(), _data()
    cb = ModelCheckpoint(str(tmp_path / "w.{out.acc:.1f}-{head/loss:.1f}-{tag}.weights.h5"))
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[Both(), cb])
    assert sorted(os.listdir(tmp_path)) == ["w.0.2-1.5-a_b.weights.h5"]


def test_keras_file_with_save_weights_only_is_refused():
    with pytest.raises(ValueError, match="cannot write 'm.keras'"):
        ModelCheckpoint("m.keras", save_weights_only=True)


@pytest.mark.parametrize("save_freq", ["batch", 0, -2, 1.5, True])
def test_bad_save_freq_is_refused(save_freq):
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        ModelCheckpoint("m.weights.h5", save_freq=save_freq)


def test_a_directory_as_filepath_is_an_oserror(tmp_path):
    (tmp_path / "taken.weights.h5").mkdir()
    with pytest.raises(OSError, match="existing directory"):
        _run(kerasckpt, tmp_path, "taken.weights.h5", epochs=1)


@pytest.mark.parametrize("filepath", ["a_file/w.keras", "a_file/sub/w.{epoch}.weights.h5", "a_file/{epoch}/w.keras"])
def test_a_file_where_the_directory_should_be_is_named_before_training(tmp_path, filepath):
    (tmp_path / "a_file").write_bytes(b"someone's data")
    model, (x, y) = _model(), _data()
    weights = model.get_weights()
    full = str(tmp_path / filepath)
    with pytest.raises(NotADirectoryError) as err:
        model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[ModelCheckpoint(full)])
    text = str(err.value)
    assert f"'{full}'" in text and f"'{tmp_path / 'a_file'}' is an existing file" in text
    assert text.endswith("Move or rename '" + str(tmp_path / "a_file") + "', or pass a filepath in another directory.")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))  # raised before any epoch
    assert (tmp_path / "a_file").read_bytes() == b"someone's data" and os.listdir(tmp_path) == ["a_file"]


@pytest.mark.parametrize("background", [False, True])
def test_a_file_blocking_a_later_directory_keeps_what_was_saved(tmp_path, background):
    class Block(Callback):  # listed before ModelCheckpoint: the file appears just before the save of epoch 2
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                (tmp_path / "ck" / "e2").write_bytes(b"in the way")

    model, (x, y) = _model(), _data()
    cb = ModelCheckpoint(str(tmp_path / "ck" / "e{epoch}" / "w.weights.h5"), save_in_background=background)
    with pytest.raises(NotADirectoryError, match=r"ck/e2' is an existing file.*Move or rename"):
        model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, callbacks=[Block(), cb])
    saved = tmp_path / "ck" / "e1" / "w.weights.h5"
    assert [f["path"] for f in cb.files] == [str(saved)] and (tmp_path / "ck" / "e2").read_bytes() == b"in the way"
    _model().load_weights(str(saved))


def test_directories_are_created_on_demand(tmp_path):
    _run(kerasckpt, tmp_path, "deep/er/w.{epoch}.weights.h5", epochs=1)
    assert os.listdir(tmp_path / "deep" / "er") == ["w.1.weights.h5"]


def test_nan_is_never_best_and_does_not_block_later_improvements(tmp_path):
    cb, saved = _run(kerasckpt, tmp_path, "w.{epoch}.weights.h5", epochs=3, save_best_only=True, monitor="score",
                     mode="min", script=("score", [float("nan"), 2.0, 1.0]))
    assert saved == [[], ["w.2.weights.h5"], ["w.3.weights.h5"]]
    assert cb.best == 1.0 and cb.best_filepath.endswith("w.3.weights.h5")


def test_monitor_missing_at_some_epochs_warns_once_and_never_overwrites_the_best_file(tmp_path):
    # validation_freq=2: val_loss exists at epochs 2 and 4 (1-based) only
    path = tmp_path / "best.weights.h5"
    model, (x, y) = _model(), _data()
    cb = ModelCheckpoint(str(path), save_best_only=True, monitor="val_loss")
    listing = Listing(str(tmp_path))
    with pytest.warns(UserWarning, match=r"found no 'val_loss' in the logs at epoch 1.*Available keys: accuracy, "
                                         r"loss") as record:
        model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, validation_split=0.25, validation_freq=2,
                  callbacks=[cb, listing])
    assert len([w for w in record if "found no" in str(w.message)]) == 1
    assert listing.saved_names() == [[], ["best.weights.h5"], []]  # epoch 3 has no score: not overwritten
    assert cb.best_filepath == str(path) and cb.files[-1]["epoch"] == 2


@pytest.mark.parametrize("option", [{"save_best_only": True}, {"save_top_k": 2}])
@pytest.mark.parametrize("fit_kwargs,save_freq,reason", [
    ({}, "epoch", "validates at no epoch"),
    ({"validation_split": 0.25, "validation_freq": [5]}, "epoch", "validates at no epoch"),
    ({"validation_split": 0.25}, 2, "saves on batches"),
])
def test_a_val_monitor_this_fit_never_logs_is_refused_before_training(tmp_path, option, fit_kwargs, save_freq,
                                                                      reason):
    """Issue 11: with no validation the run warned once and ended without any checkpoint."""
    model, (x, y) = _model(), _data()
    before = [w.copy() for w in model.get_weights()]
    cb = ModelCheckpoint(str(tmp_path / "w{epoch}.weights.h5"), save_freq=save_freq, **option)
    epochs = []
    seen = kerasckpt.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(epoch))
    with pytest.raises(ValueError, match=rf"monitor='val_loss'\) would save nothing in this fit\(\): .*{reason}.*"
                                         r"The logs will have: loss, accuracy\. Pass validation_data="):
        model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, callbacks=[cb, seen], **fit_kwargs)
    assert epochs == [] and os.listdir(tmp_path) == []
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_a_fit_that_runs_no_epoch_is_not_refused(tmp_path):
    model, (x, y) = _model(), _data()
    cb = ModelCheckpoint(str(tmp_path / "best.weights.h5"), save_best_only=True)
    model.fit(x, y, batch_size=BATCH, epochs=2, initial_epoch=2, verbose=0, callbacks=[cb])
    assert cb.files == [] and os.listdir(tmp_path) == []


def test_a_val_monitor_validated_at_a_later_epoch_only_is_not_refused(tmp_path):
    model, (x, y) = _model(), _data()
    cb = ModelCheckpoint(str(tmp_path / "best.weights.h5"), save_best_only=True)
    with pytest.warns(UserWarning, match="found no 'val_loss'"):
        model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, validation_split=0.25, validation_freq=[3],
                  callbacks=[cb])
    assert cb.best_filepath == str(tmp_path / "best.weights.h5") and [f["epoch"] for f in cb.files] == [3]


def test_best_filepath_reloads_the_predictions_of_the_best_epoch(tmp_path):
    x, y = _data()
    model = kerasckpt.Sequential([layers.Input(shape=(4,)), layers.Dense(8, activation="relu"), layers.Dense(3)])
    model.compile(optimizer="adam", loss=kerasckpt.losses.SparseCategoricalCrossentropy(from_logits=True))
    predictions = {}

    class Remember(Callback):
        def on_epoch_end(self, epoch, logs=None):
            predictions[epoch + 1] = model.predict(x, verbose=0)

    cb = ModelCheckpoint(str(tmp_path / "m.{epoch:02d}.keras"), monitor="score", mode="max", save_best_only=True)
    scores = [0.1, 0.9, 0.3, 0.5]
    model.fit(x, y, batch_size=BATCH, epochs=4, verbose=0, callbacks=[Script("score", scores), cb, Remember()])
    assert cb.best == 0.9 and cb.best_filepath == str(tmp_path / "m.02.keras")
    reloaded = kerasckpt.models.load_model(cb.best_filepath)
    assert np.array_equal(reloaded.predict(x, verbose=0), predictions[2])


def test_best_is_tracked_without_save_best_only_and_dropped_when_overwritten(tmp_path):
    cb, _ = _run(kerasckpt, tmp_path, "w.{epoch}.weights.h5", epochs=3, monitor="score", mode="min",
                 script=("score", [2.0, 1.0, 3.0]))
    assert cb.best == 1.0 and cb.best_filepath.endswith("w.2.weights.h5")
    cb, _ = _run(kerasckpt, tmp_path, "fixed.weights.h5", epochs=3, monitor="score", mode="min",
                 script=("score", [2.0, 1.0, 3.0]))
    assert cb.best == 1.0 and cb.best_filepath is None  # the file now holds epoch 3


def test_save_top_k_keeps_the_k_best_and_breaks_ties_by_recency(tmp_path):
    cb, _ = _run(kerasckpt, tmp_path, "w.{epoch}.weights.h5", epochs=5, monitor="score", mode="min", save_top_k=2,
                 script=("score", [5.0, 3.0, 4.0, 1.0, 3.0]))
    assert sorted(os.listdir(tmp_path)) == ["w.4.weights.h5", "w.5.weights.h5"]
    assert [f["epoch"] for f in cb.files] == [4, 5]


def test_max_to_keep_keeps_the_newest_and_the_best(tmp_path):
    cb, _ = _run(kerasckpt, tmp_path, "w.{epoch}.weights.h5", epochs=5, monitor="score", mode="min", max_to_keep=2,
                 script=("score", [1.0, 3.0, 4.0, 5.0, 6.0]))
    assert sorted(os.listdir(tmp_path)) == ["w.1.weights.h5", "w.4.weights.h5", "w.5.weights.h5"]


def test_retention_deletes_only_files_this_callback_wrote(tmp_path):
    (tmp_path / "w.9.weights.h5").write_bytes(b"not ours")
    _run(kerasckpt, tmp_path, "w.{epoch}.weights.h5", epochs=3, monitor="score", mode="min", max_to_keep=1,
         script=("score", [1.0, 2.0, 3.0]))
    assert (tmp_path / "w.9.weights.h5").read_bytes() == b"not ours"
    assert sorted(os.listdir(tmp_path)) == ["w.1.weights.h5", "w.3.weights.h5", "w.9.weights.h5"]


def test_timedelta_save_freq(tmp_path):
    _, saved = _run(kerasckpt, tmp_path, "w.e{epoch}-b{batch}.weights.h5", epochs=1,
                    save_freq=datetime.timedelta(0))
    assert saved == [[f"w.e1-b{b}.weights.h5" for b in range(1, 5)]]
    _, saved = _run(kerasckpt, tmp_path / "none", "w.e{epoch}-b{batch}.weights.h5", epochs=2,
                    save_freq=datetime.timedelta(hours=1))
    assert saved == [[], []]


def test_state_round_trip_keeps_best_across_a_resume(tmp_path):
    cb, _ = _run(kerasckpt, tmp_path, "best.weights.h5", epochs=2, save_best_only=True, monitor="score",
                 mode="min", script=("score", [2.0, 1.0]))
    state = cb.get_state()
    resumed = ModelCheckpoint(str(tmp_path / "best.weights.h5"), save_best_only=True, monitor="score", mode="min")
    resumed.set_state(state)
    assert resumed.get_state() == state
    before = (tmp_path / "best.weights.h5").read_bytes()
    model, (x, y) = _model(), _data()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[Script("score", [1.5]), resumed])
    assert resumed.best == 1.0 and (tmp_path / "best.weights.h5").read_bytes() == before


def test_batch_counter_is_carried_across_epochs_and_resumes(tmp_path):
    cb = ModelCheckpoint(str(tmp_path / "w.e{epoch}-b{batch}.weights.h5"), save_freq=3)
    model, (x, y) = _model(), _data()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[cb])
    assert cb.get_state()["batches_seen_since_last_saving"] == 1


def test_verbose_messages(tmp_path, capsys):
    _run(kerasckpt, tmp_path, "best.weights.h5", epochs=2, save_best_only=True, monitor="score", mode="min",
         verbose=1, script=("score", [2.0, 3.0]))
    out = capsys.readouterr().out
    assert "Epoch 1: score improved from None to 2.00000, saving model to" in out
    assert "Epoch 2: score did not improve from 2.00000" in out


@pytest.mark.parametrize("background", [False, True])  # in the background it raises at on_train_end
def test_a_failed_rename_keeps_the_previous_best_intact(tmp_path, monkeypatch, background):
    x, y = _data()
    model = _model()
    path = tmp_path / "best.weights.h5"
    cb = ModelCheckpoint(str(path), save_best_only=True, monitor="score", mode="min", save_in_background=background)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[Script("score", [2.0]), cb])
    saved_weights = model.get_weights()
    before = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError("simulated crash between writing and renaming")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated crash"):
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[Script("score", [1.0]), cb])
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["best.weights.h5"]
    assert cb.best == 2.0 and cb.best_filepath == str(path)  # the failed save is not counted
    fresh = _model()
    fresh.load_weights(str(path))
    for a, b in zip(fresh.get_weights(), saved_weights):
        assert np.array_equal(a, b)


CHILD = textwrap.dedent("""
    import hashlib, os, sys
    import numpy as np
    import kerasckpt
    from kerasckpt import layers
    from kerasckpt.callbacks import Callback
    from kerasckpt.callbacks.model_checkpoint import ModelCheckpoint

    path, log, background = sys.argv[1], sys.argv[2], sys.argv[3] == "background"
    kerasckpt.utils.set_random_seed(0)
    model = kerasckpt.Sequential([layers.Input(shape=(64,)), layers.Dense(512), layers.Dense(512), layers.Dense(4)])
    model.compile(optimizer="adam", loss="mse")

    def digest():
        return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()

    class Log(Callback):
        def on_epoch_end(self, epoch, logs=None):  # runs before ModelCheckpoint: the state about to be saved
            with open(log, "a") as f:
                f.write(f"saving {epoch} {digest()}\\n"); f.flush(); os.fsync(f.fileno())
    class Done(Callback):
        def on_epoch_end(self, epoch, logs=None):
            with open(log, "a") as f:
                f.write(f"done {epoch}\\n"); f.flush(); os.fsync(f.fileno())

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 64)).astype("float32"), rng.normal(size=(64, 4)).astype("float32")
    model.fit(x, y, batch_size=64, epochs=10000, verbose=0,
              callbacks=[Log(), ModelCheckpoint(path, monitor="loss", save_in_background=background), Done()])
""")


@pytest.mark.parametrize("delay,background", [(0.0, False), (0.07, False), (0.15, False), (0.3, False), (0.45, False),
                                              (0.0, True), (0.1, True), (0.25, True), (0.4, True)])
def test_sigkill_mid_save_leaves_a_loadable_checkpoint_equal_to_a_saved_state(tmp_path, delay, background):
    path, log = tmp_path / "model.keras", tmp_path / "log.txt"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(path), str(log), "background" if background else "-"],
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 60
    first_complete = "done 1" if background else "done"  # in the background save 0 is complete at "done 1"
    while time.time() < deadline and not (log.exists() and first_complete in log.read_text()):
        time.sleep(0.05)
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()
    lines = log.read_text().split("\n")
    saving = {int(l.split()[1]): l.split()[2] for l in lines if l.startswith("saving ") and len(l.split()) == 3}
    done = [int(l.split()[1]) for l in lines if l.startswith("done ")]
    assert done, "the child never finished a save"
    reloaded = kerasckpt.models.load_model(str(path))
    found = hashlib.sha256(b"".join(w.tobytes() for w in reloaded.get_weights())).hexdigest()
    # In the background, "done e" means save e is queued and save e - 1 is complete.
    first = done[-1] - 1 if background and done[-1] > 0 else done[-1]
    candidates = {saving[e] for e in range(first, done[-1] + 2) if e in saving}
    assert found in candidates
