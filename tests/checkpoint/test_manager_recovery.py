"""CheckpointManager after an interrupted save: whole checkpoints the killed save had written (before the
state file named them) or was deleting (after the state file dropped them) are handled by the next save
as retention would have; checkpoints kept by keep_checkpoint_every_n_hours or never managed stay; and
latest_checkpoint(directory) agrees with the manager when no state file was written yet."""
import os
import time

import numpy as np
import pytest

from kerasckpt.checkpoint import Checkpoint, CheckpointManager, latest_checkpoint
from kerasckpt.checkpoint import manager as manager_module
from kerasckpt.checkpoint import state as state_module
from kerasckpt.checkpoint.state import parse_state, read_state
from kerasckpt.variables import Variable


class Killed(BaseException):
    """Stands for a SIGKILL at a chosen point of a save."""


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def _prefixes(d):
    return sorted({n.split(".")[0] for n in os.listdir(d) if n != "checkpoint"},
                  key=lambda p: int(p.rsplit("-", 1)[1]))


def _manager(d, value=0.0, **kwargs):
    kwargs.setdefault("max_to_keep", 1)
    return CheckpointManager(Checkpoint(v=Variable(np.full(3, value, np.float32))), d, **kwargs)


def _killed_before_the_state_update(d, value):
    """ckpt-N complete on disk, the state file not rewritten: as a kill between the index rename and it."""
    state = (d / "checkpoint").read_bytes()
    m = _manager(d, value, max_to_keep=None)
    path = m.save()
    (d / "checkpoint").write_bytes(state)
    os.utime(d / "checkpoint", ns=(1, os.stat(path + ".index").st_mtime_ns - 1))  # the state is older
    return path


def _killed_during_the_sweep(d, monkeypatch, **kwargs):
    """The state file already dropped the old checkpoint; its files were not deleted yet."""
    m = _manager(d, 1.0, **kwargs)
    old = m.save()

    def killed(self, prefix):
        raise Killed(prefix)
    monkeypatch.setattr(CheckpointManager, "_delete", killed)
    with pytest.raises(Killed):
        m.save()
    monkeypatch.undo()
    return old


def _values(path):
    v = Variable(np.zeros(3, np.float32))
    Checkpoint(v=v).restore(path).expect_partial()
    return v.value


# ------------------------------------------------------------------------------- killed before the state update
@pytest.mark.parametrize("max_to_keep,left", [(1, ["ckpt-3"]), (2, ["ckpt-2", "ckpt-3"]),
                                              (None, ["ckpt-1", "ckpt-2", "ckpt-3"])])
def test_a_checkpoint_the_state_never_named_is_kept_or_deleted_as_retention_says(tmp_path, max_to_keep, left):
    first = _manager(tmp_path, 1.0).save()
    orphan = _killed_before_the_state_update(tmp_path, 2.0)
    assert _prefixes(tmp_path) == ["ckpt-1", "ckpt-2"]
    m = _manager(tmp_path, 3.0, max_to_keep=max_to_keep)
    # the killed save's checkpoint is complete and the newest: listed last, and what is restored
    assert m.checkpoints == [first, orphan]
    assert latest_checkpoint(tmp_path) == orphan == m.latest_checkpoint == m.restore_or_initialize()
    new = m.save()
    assert new.endswith("ckpt-3") and _prefixes(tmp_path) == left
    assert [os.path.basename(p) for p in m.checkpoints] == left
    assert read_state(tmp_path)[0].all_model_checkpoint_paths == left
    assert np.array_equal(_values(new), np.full(3, 2.0, np.float32))  # continues the killed save's values


def test_after_a_killed_save_the_restored_checkpoint_is_the_newest_listed_and_one_timeline_continues(tmp_path):
    """Issue 11: ckpt-1 was restored while the adopted ckpt-2 stayed, giving [ckpt-2 (step 2), ckpt-3 (step 1)]."""
    def run():
        step = Variable(np.int64(0))
        return step, CheckpointManager(Checkpoint(step=step), tmp_path, max_to_keep=2)

    step, m = run()
    step.assign(1)
    m.save()
    state = (tmp_path / "checkpoint").read_bytes()
    step.assign(2)
    killed = m.save()  # complete, then "killed" before the state file named it
    (tmp_path / "checkpoint").write_bytes(state)
    os.utime(tmp_path / "checkpoint", ns=(1, os.stat(killed + ".index").st_mtime_ns - 1))
    step, m = run()
    assert m.restore_or_initialize() == m.checkpoints[-1] == killed and int(step.value) == 2
    step.assign(3)
    m.save()
    assert [os.path.basename(p) for p in m.checkpoints] == ["ckpt-2", "ckpt-3"]
    assert [_step(p) for p in m.checkpoints] == [2, 3]  # save order: the steps only grow


def _step(path):
    step = Variable(np.int64(0))
    Checkpoint(step=step).restore(path).expect_partial()
    return int(step.value)


def test_a_higher_numbered_checkpoint_older_than_the_state_is_never_taken(tmp_path):
    """Only a checkpoint written after the state file can be a save killed before updating it."""
    _manager(tmp_path).save()
    other = Checkpoint(v=Variable(np.ones(3, np.float32))).write(tmp_path / "ckpt-9")
    os.utime(other + ".index", (time.time() - 3600, time.time() - 3600))
    m2 = _manager(tmp_path)
    assert m2.save().endswith("ckpt-10")
    assert _prefixes(tmp_path) == ["ckpt-9", "ckpt-10"]


# ------------------------------------------------------------------------------- killed during the sweep
def test_a_checkpoint_a_killed_sweep_was_deleting_is_deleted_by_the_next_save(tmp_path, monkeypatch):
    old = _killed_during_the_sweep(tmp_path, monkeypatch)
    assert _prefixes(tmp_path) == ["ckpt-1", "ckpt-2"]
    text = (tmp_path / "checkpoint").read_text()
    state = parse_state(text)
    assert state.all_model_checkpoint_paths == ["ckpt-2"] and state.deleting == ["ckpt-1"]  # a recorded intent
    assert '# kerasckpt deleting: "ckpt-1"' in text  # a comment: TensorFlow's parser skips it
    m = _manager(tmp_path)
    assert m.checkpoints == [str(tmp_path / "ckpt-2")] and old not in m.checkpoints
    assert latest_checkpoint(tmp_path) == m.restore_or_initialize() == str(tmp_path / "ckpt-2")
    m.save()
    assert _prefixes(tmp_path) == ["ckpt-3"]
    # the record names what this save deleted; the next state write drops names without files
    assert not [p for p in read_state(tmp_path)[0].deleting if os.path.exists(tmp_path / (p + ".index"))]


def test_the_deleting_record_survives_until_the_files_are_gone(tmp_path, monkeypatch):
    _killed_during_the_sweep(tmp_path, monkeypatch)
    m = _manager(tmp_path, max_to_keep=3)  # would keep ckpt-1, but the state already dropped it
    real = os.remove

    def busy(path):
        if os.path.basename(path).startswith("ckpt-1."):
            raise PermissionError(13, "busy", path)
        return real(path)
    monkeypatch.setattr(os, "remove", busy)
    with pytest.warns(UserWarning, match="Could not delete old checkpoint file"):
        m.save()
    assert read_state(tmp_path)[0].deleting == ["ckpt-1"] and "ckpt-1" in _prefixes(tmp_path)
    monkeypatch.setattr(os, "remove", real)
    m.save()
    assert _prefixes(tmp_path) == ["ckpt-2", "ckpt-3", "ckpt-4"]


def test_a_recorded_checkpoint_written_again_since_is_not_deleted(tmp_path, monkeypatch):
    _killed_during_the_sweep(tmp_path, monkeypatch)
    os.utime(tmp_path / "checkpoint", ns=(1, os.stat(tmp_path / "checkpoint").st_mtime_ns - 10**9))
    again = Checkpoint(v=Variable(np.full(3, 5.0, np.float32))).write(tmp_path / "ckpt-1")  # after the record
    _manager(tmp_path, max_to_keep=3).save()
    assert _prefixes(tmp_path) == ["ckpt-1", "ckpt-2", "ckpt-3"]
    assert np.array_equal(_values(again), np.full(3, 5.0, np.float32))


def test_a_number_saved_again_is_no_longer_deleted(tmp_path, monkeypatch):
    _killed_during_the_sweep(tmp_path, monkeypatch)
    v = Variable(np.full(3, 7.0, np.float32))
    m = CheckpointManager(Checkpoint(v=v), tmp_path, max_to_keep=2)
    again = m.save(checkpoint_number=1)  # the user saves that number on purpose
    assert again.endswith("ckpt-1") and read_state(tmp_path)[0].deleting == []
    assert _prefixes(tmp_path) == ["ckpt-1", "ckpt-2"] and np.array_equal(_values(again), v.value)


def test_another_manager_completes_the_deletion(tmp_path, monkeypatch):
    _killed_during_the_sweep(tmp_path, monkeypatch)
    CheckpointManager(Checkpoint(v=Variable(1.0)), tmp_path, max_to_keep=1, checkpoint_name="other").save()
    assert set(_prefixes(tmp_path)) == {"ckpt-2", "other-1"}


# ------------------------------------------------------------------------------- never deleted
def test_checkpoints_kept_by_the_hours_rule_survive_later_managers_and_killed_saves(tmp_path, monkeypatch):
    clock = Clock(0.0)
    m = _manager(tmp_path, max_to_keep=2, keep_checkpoint_every_n_hours=0.2 / 3600, _clock=clock)
    for i in range(8):
        clock.t = 0.01 + 0.08 * i
        m.save()
    assert _prefixes(tmp_path) == ["ckpt-1", "ckpt-4", "ckpt-7", "ckpt-8"]
    _killed_before_the_state_update(tmp_path, 9.0)  # ckpt-9, never named
    # a manager without the hours rule, and with its own clock: the preserved ones are not its to delete
    later = _manager(tmp_path, max_to_keep=1)
    later.save()
    assert _prefixes(tmp_path) == ["ckpt-1", "ckpt-4", "ckpt-10"]
    real_delete = CheckpointManager._delete

    def killed(self, prefix):
        raise Killed(prefix)
    monkeypatch.setattr(CheckpointManager, "_delete", killed)
    with pytest.raises(Killed):
        later.save()
    monkeypatch.setattr(CheckpointManager, "_delete", real_delete)
    _manager(tmp_path, max_to_keep=1).save()
    assert _prefixes(tmp_path) == ["ckpt-1", "ckpt-4", "ckpt-12"]


def test_unlisted_checkpoints_without_a_record_are_never_deleted(tmp_path):
    ck = Checkpoint(v=Variable(1.0))
    for _ in range(3):
        ck.save(tmp_path / "ckpt")  # plain saves: the state names only the last, nobody manages them
    m = _manager(tmp_path)
    m.save()
    m.save()
    assert _prefixes(tmp_path) == ["ckpt-1", "ckpt-2", "ckpt-3", "ckpt-5"]


# ------------------------------------------------------------------------------- no state file yet
def test_without_a_state_file_latest_checkpoint_agrees_with_the_manager(tmp_path):
    assert latest_checkpoint(tmp_path) is None and latest_checkpoint(tmp_path / "nope") is None
    first = _manager(tmp_path, 1.0).save()
    os.remove(tmp_path / "checkpoint")  # killed between the first checkpoint's rename and the first state file
    assert latest_checkpoint(tmp_path) == first
    m = _manager(tmp_path)
    assert m.latest_checkpoint == first and m.checkpoints == [first]  # adopted, not orphaned
    assert m.restore_or_initialize() == first
    assert np.array_equal(_values(first), np.ones(3, np.float32))
    m.save()
    assert _prefixes(tmp_path) == ["ckpt-2"]  # max_to_keep=1: retention removed the adopted one
    assert latest_checkpoint(tmp_path) == m.latest_checkpoint


def test_without_a_state_file_an_incomplete_newest_is_skipped(tmp_path):
    first = _manager(tmp_path, max_to_keep=None).save()
    second = _manager(tmp_path, max_to_keep=None).save()
    os.remove(tmp_path / "checkpoint")
    os.remove(second + ".data-00000-of-00001")
    assert latest_checkpoint(tmp_path) == first == _manager(tmp_path).latest_checkpoint


def test_the_state_text_stays_tensorflow_text_format():
    tf = ('model_checkpoint_path: "ckpt-2"\nall_model_checkpoint_paths: "ckpt-2"\n'
          '# kerasckpt deleting: "ckpt-1"\n# any other comment\n')
    state = parse_state(tf)
    assert state.deleting == ["ckpt-1"] and state.all_model_checkpoint_paths == ["ckpt-2"]
    again = state_module.format_state(state)
    assert parse_state(again).deleting == ["ckpt-1"]
    assert all(line.startswith("#") or ": " in line for line in again.splitlines())
