"""Exact resume with streaming data: BackupAndRestore puts a PyDataset back where it was (position, shuffle,
augmentation, its own state), a custom loop restores Checkpoint(iterator=...), through real SIGKILLs too;
a generator is said not to be positionable."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.callbacks import BackupAndRestore

from crashing import Crash
from pipeline_datasets import Augmented, WithState, arrays, process_alive

CHILD = os.path.join(os.path.dirname(__file__), "resume_data_child.py")


def _model():
    model = kerasckpt.Sequential([layers.Input((5,)), layers.Dense(8, activation="relu"), layers.Dropout(0.2),
                                  layers.Dense(3)])
    model.compile(kerasckpt.optimizers.Adam(0.01), kerasckpt.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _fit(directory, crash=None, dataset=Augmented, settings=None, save_freq=1, steps_per_epoch=None):
    """A fit() on a fresh dataset, as a restarted process builds it; returns the model and its History."""
    kerasckpt.utils.clear_session()
    kerasckpt.utils.set_random_seed(5)
    x, y = arrays(56)
    train = dataset(x[:40], y[:40], batch_size=8, **(settings or {}))  # its seed comes from the global generator
    val = Augmented(x[40:], y[40:], batch_size=8)  # validation augments too: its stream is backed up
    model = _model()
    callbacks = [BackupAndRestore(str(directory), save_freq=save_freq)] + ([Crash(*crash)] if crash else [])
    model.fit(train, epochs=4, validation_data=val, verbose=0, callbacks=callbacks, steps_per_epoch=steps_per_epoch)
    return model, train


@pytest.mark.parametrize("settings", [pytest.param({}, id="main-thread"), pytest.param({"workers": 3}, id="threads")])
@pytest.mark.parametrize("crash,save_freq", [((1, 2), 1), ((2, None), "epoch"), ((0, 4), 2), ((2, 0), 3)])
def test_a_resumed_fit_on_a_shuffling_augmenting_dataset_is_bit_identical(tmp_path, settings, crash, save_freq):
    straight, _ = _fit(tmp_path / "straight", settings=settings, save_freq=save_freq)
    with pytest.raises(KeyboardInterrupt, match="simulated crash"):
        _fit(tmp_path / "resumed", crash=crash, settings=settings, save_freq=save_freq)
    resumed, data = _fit(tmp_path / "resumed", settings=settings, save_freq=save_freq)
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert resumed.history.run_history == straight.history.history
    assert not os.listdir(tmp_path / "resumed")


def test_resuming_needs_the_hooks_replayed_or_the_batches_differ(tmp_path):
    """The check above fails when the dataset's shuffled order (state on_epoch_end derived) is not rebuilt."""
    straight, _ = _fit(tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "resumed", crash=(2, 1))
    from kerasckpt.data import stream as stream_module
    original = stream_module.DatasetStream._replay_to
    stream_module.DatasetStream._replay_to = lambda self, target, who: self._set_epochs(*target)
    try:
        resumed, _ = _fit(tmp_path / "resumed")
    finally:
        stream_module.DatasetStream._replay_to = original
    assert not all(np.array_equal(a, b) for a, b in zip(straight.get_weights(), resumed.get_weights()))


def test_a_dataset_with_get_state_resumes_from_it(tmp_path):
    straight, straight_data = _fit(tmp_path / "straight", dataset=WithState)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "resumed", crash=(2, 3), dataset=WithState)
    resumed, data = _fit(tmp_path / "resumed", dataset=WithState)
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert data.level == straight_data.level == 4
    assert data.events.count("end") == 2  # epochs 2 and 3 only: nothing replayed, get_state() held the rest


def test_steps_per_epoch_across_the_datasets_epochs_resumes_exactly(tmp_path):
    straight, _ = _fit(tmp_path / "straight", steps_per_epoch=3)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "resumed", crash=(2, 1), steps_per_epoch=3)
    resumed, _ = _fit(tmp_path / "resumed", steps_per_epoch=3)
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_a_generator_is_said_once_not_to_be_positionable(tmp_path):
    x, y = arrays(40)

    def batches():
        for i in range(0, 40, 8):
            yield x[i:i + 8], y[i:i + 8]
    with pytest.warns(UserWarning) as record:
        _model().fit(batches(), epochs=1, shuffle=False, verbose=0, validation_data=batches(),
                     callbacks=[BackupAndRestore(str(tmp_path / "b"))])
    said = [str(w.message) for w in record if "cannot put" in str(w.message)]
    assert said == ["BackupAndRestore cannot put the training data (a generator) and the validation data (a generator) "
                    "back where it was: a resumed run continues at the saved epoch and batch with the batches a new "
                    "generator yields, not the ones the interrupted run would have seen, so it is not an exact "
                    "resume. A PyDataset's position and state are backed up."]


def test_a_backup_of_another_dataset_is_refused(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "b", crash=(1, 1))
    with pytest.raises(kerasckpt.errors.CheckpointMismatchError, match="fit argument samples: 'Augmented: 5 batches'"):
        _fit(tmp_path / "b", dataset=WithState)


# ---------------------------------------------------------------------- real process death



def _run(mode, workdir, result, settings, kill_after=None):
    """Run the child until it finishes, or SIGKILL it once it reports step `kill_after`; returns its pid."""
    os.makedirs(workdir, exist_ok=True)
    child = subprocess.Popen([sys.executable, CHILD, mode, workdir, result, settings], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if kill_after is not None:
        for line in child.stdout:
            if int(line) >= kill_after:
                child.send_signal(signal.SIGKILL)
                break
    child.communicate(timeout=300)
    if kill_after is None:
        assert child.returncode == 0
    else:
        assert child.returncode == -signal.SIGKILL, "the child finished before it was killed"
    return child.pid


def _same_result(a, b):
    with np.load(a) as one, np.load(b) as two:
        return len(one.files) == len(two.files) and all(np.array_equal(one[k], two[k]) for k in one.files)


@pytest.mark.slow
@pytest.mark.parametrize("mode,settings,kills", [("fit", "processes", (7, 22)), ("fit", "threads", (3, 16)),
                                                 ("loop", "threads", (5, 20))])
def test_sigkilled_training_on_streaming_data_resumes_bit_identically(tmp_path, mode, settings, kills):
    straight = str(tmp_path / "straight.npz")
    _run(mode, str(tmp_path / "a"), straight, settings)
    resumed, workdir = str(tmp_path / "resumed.npz"), str(tmp_path / "b")
    for step in kills:  # mid-epoch (6 or 12 batches per epoch), mid-save perhaps
        pid = _run(mode, workdir, resumed, settings, kill_after=step)
        if settings == "processes":  # the worker processes watch their parent: none outlives it
            workers = [int(name[:-4]) for name in os.listdir(os.path.join(workdir, "pids"))
                       if int(name[:-4]) != pid]
            assert workers
            deadline = time.monotonic() + 10
            while [w for w in workers if process_alive(w)] and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not [w for w in workers if process_alive(w)], "worker processes outlived the killed training process"
    _run(mode, workdir, resumed, settings)
    assert _same_result(straight, resumed)
