"""CheckpointManager: arguments, numbering, retention (max_to_keep, keep_checkpoint_every_n_hours with an
injected clock), checkpoint_interval, restore_or_initialize, the state file, and recovery."""
import os
import re
import warnings

import numpy as np
import pytest

from kerasckpt.checkpoint import Checkpoint, CheckpointManager, latest_checkpoint
from kerasckpt.checkpoint.state import parse_state, read_state
from kerasckpt.variables import Variable


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def _files(d):
    return sorted(n for n in os.listdir(d) if n != "checkpoint")


def _prefixes(d):
    return sorted({n.split(".")[0] for n in _files(d)}, key=lambda p: int(p.rsplit("-", 1)[1]))


def _prefixes_of(d, name):
    return [p for p in _prefixes(d) if p.rsplit("-", 1)[0] == name]


def test_arguments_are_validated(tmp_path):
    ck = Checkpoint(v=Variable(1.0))
    with pytest.raises(TypeError, match="max_to_keep"):
        CheckpointManager(ck, tmp_path)
    for bad in (0, -1):
        with pytest.raises(ValueError, match=f"positive integer or `None` for `max_to_keep`, got {bad}"):
            CheckpointManager(ck, tmp_path, max_to_keep=bad)
    with pytest.raises(ValueError, match="`step_counter` should be passed"):
        CheckpointManager(ck, tmp_path, 2, checkpoint_interval=2)
    with pytest.raises(TypeError, match="needs a Checkpoint"):
        CheckpointManager(Variable(1.0), tmp_path, 2)


def test_directory_created_by_first_save(tmp_path):
    d = tmp_path / "run"
    m = CheckpointManager(Checkpoint(v=Variable(1.0)), d, max_to_keep=2)
    assert not d.exists() and m.latest_checkpoint is None and m.checkpoints == []
    assert m.save() == str(d / "ckpt-1") and m.latest_checkpoint == str(d / "ckpt-1")


def test_max_to_keep_and_state_file(tmp_path):
    m = CheckpointManager(Checkpoint(v=Variable(1.0)), tmp_path, max_to_keep=2, _clock=Clock())
    for _ in range(4):
        m.save()
    assert _prefixes(tmp_path) == ["ckpt-3", "ckpt-4"]
    assert m.checkpoints == [str(tmp_path / "ckpt-3"), str(tmp_path / "ckpt-4")]
    text = (tmp_path / "checkpoint").read_text()
    assert text.startswith('model_checkpoint_path: "ckpt-4"\nall_model_checkpoint_paths: "ckpt-3"\n'
                           'all_model_checkpoint_paths: "ckpt-4"\nall_model_checkpoint_timestamps: 1000.0\n')
    assert "last_preserved_timestamp: 999.0" in text
    assert latest_checkpoint(tmp_path) == str(tmp_path / "ckpt-4")


def test_max_to_keep_none_keeps_all(tmp_path):
    m = CheckpointManager(Checkpoint(v=Variable(1.0)), tmp_path, max_to_keep=None)
    for _ in range(4):
        m.save()
    assert len(m.checkpoints) == 4 and len(_prefixes(tmp_path)) == 4


def test_checkpoint_name_and_number(tmp_path):
    ck = Checkpoint(v=Variable(1.0))
    m = CheckpointManager(ck, tmp_path, max_to_keep=3, checkpoint_name="model")
    assert m.save().endswith("model-1")
    assert m.save(checkpoint_number=100).endswith("model-100")
    assert int(ck.save_counter.value) == 2
    assert m.save().endswith("model-101")  # after the highest on disk (TensorFlow: model-3)
    m.save(checkpoint_number=100)  # saving a number again moves it to the newest position
    assert [os.path.basename(p) for p in m.checkpoints] == ["model-1", "model-101", "model-100"]


def test_keep_checkpoint_every_n_hours_with_clock(tmp_path):
    clock = Clock(0.0)
    period = 0.2 / 3600  # 0.2 s, as in the TensorFlow experiment
    m = CheckpointManager(Checkpoint(v=Variable(1.0)), tmp_path, max_to_keep=2,
                          keep_checkpoint_every_n_hours=period, _clock=clock)
    for i in range(8):
        clock.t = 0.01 + 0.08 * i
        m.save()
    assert _prefixes(tmp_path) == ["ckpt-1", "ckpt-4", "ckpt-7", "ckpt-8"]
    assert [os.path.basename(p) for p in m.checkpoints] == ["ckpt-7", "ckpt-8"]
    state, _ = read_state(tmp_path)
    assert state.all_model_checkpoint_paths == ["ckpt-7", "ckpt-8"]
    assert state.last_preserved_timestamp == pytest.approx(0.01 + 0.08 * 3)


def test_checkpoint_interval(tmp_path):
    step = Variable(0, dtype="int64")
    m = CheckpointManager(Checkpoint(v=Variable(1.0), step=step), tmp_path, max_to_keep=None,
                          step_counter=step, checkpoint_interval=3)
    got = []
    for s in range(10):
        step.assign(s)
        p = m.save()
        got.append(p and os.path.basename(p))
    assert got == ["ckpt-1", None, None, "ckpt-2", None, None, "ckpt-3", None, None, "ckpt-4"]
    assert m.save(check_interval=False) is None  # the same step never twice
    step.assign(10)
    assert m.save(check_interval=False).endswith("ckpt-5")


def test_restore_or_initialize(tmp_path):
    calls = []
    v = Variable(1.0)
    m = CheckpointManager(Checkpoint(v=v), tmp_path, max_to_keep=2, init_fn=lambda: calls.append(1))
    assert m.restore_or_initialize() is None and calls == [1]
    v.assign(5.0)
    path = m.save()
    v.assign(0.0)
    v2 = Variable(0.0)
    m2 = CheckpointManager(Checkpoint(v=v2), tmp_path, max_to_keep=2, init_fn=lambda: calls.append(2))
    assert m2.restore_or_initialize() == path and float(v2.value) == 5.0 and calls == [1]


def test_new_manager_continues_numbering_and_retention(tmp_path):
    m = CheckpointManager(Checkpoint(v=Variable(1.0)), tmp_path, max_to_keep=2)
    for _ in range(3):
        m.save()
    fresh = CheckpointManager(Checkpoint(v=Variable(2.0)), tmp_path, max_to_keep=2)  # not restored
    assert fresh.checkpoints == [str(tmp_path / "ckpt-2"), str(tmp_path / "ckpt-3")]
    assert fresh.save().endswith("ckpt-4")  # TensorFlow overwrites ckpt-1 and calls it the latest
    assert _prefixes(tmp_path) == ["ckpt-3", "ckpt-4"]


def test_plain_save_state_is_not_managed(tmp_path):
    ck = Checkpoint(v=Variable(1.0))
    ck.save(tmp_path / "ckpt")
    ck.save(tmp_path / "ckpt")
    m = CheckpointManager(Checkpoint(v=Variable(0.0)), tmp_path, max_to_keep=1)
    assert m.checkpoints == [] and m.latest_checkpoint == str(tmp_path / "ckpt-2")
    assert m.save().endswith("ckpt-3")
    assert _prefixes(tmp_path) == ["ckpt-1", "ckpt-2", "ckpt-3"]  # never deletes what it does not manage


def test_a_checkpoint_saved_under_another_prefix_is_named_and_restored(tmp_path):
    """Issue 11: `Checkpoint.save("dir/model")` gives model-2, which TensorFlow's manager restores; the
    manager said None and started from scratch."""
    v = Variable(1.0)
    ck = Checkpoint(v=v)
    ck.save(tmp_path / "model")
    v.assign(2.0)
    saved = ck.save(tmp_path / "model")
    v2 = Variable(0.0)
    ck2 = Checkpoint(v=v2)
    m = CheckpointManager(ck2, tmp_path, max_to_keep=1)
    assert m.latest_checkpoint == latest_checkpoint(tmp_path) == saved == str(tmp_path / "model-2")
    assert m.checkpoints == []  # not this manager's to delete
    assert m.restore_or_initialize() == saved and float(v2.value) == 2.0 and int(ck2.save_counter.value) == 2
    assert m.save().endswith("ckpt-3") and m.save().endswith("ckpt-4")  # numbering continues, as in TensorFlow
    assert _prefixes(tmp_path) == ["model-1", "model-2", "ckpt-4"]
    assert m.latest_checkpoint == latest_checkpoint(tmp_path) == str(tmp_path / "ckpt-4")


def test_a_damaged_state_file_falls_back_to_the_newest_checkpoint_of_any_prefix(tmp_path):
    m = CheckpointManager(Checkpoint(v=Variable(1.0)), tmp_path, max_to_keep=None)
    m.save()
    newest = Checkpoint(v=Variable(3.0)).save(tmp_path / "model")
    (tmp_path / "checkpoint").write_bytes(b"")
    state_file = re.escape(str(tmp_path / "checkpoint"))
    with pytest.warns(UserWarning, match=rf"state file '{state_file}' is damaged.*model-1"):
        assert latest_checkpoint(tmp_path) == newest
    v = Variable(0.0)
    with pytest.warns(UserWarning, match=rf"state file '{state_file}' is damaged.*model-1"):
        m2 = CheckpointManager(Checkpoint(v=v), tmp_path, max_to_keep=1)
    assert m2.restore_or_initialize() == newest and float(v.value) == 3.0 and m2.checkpoints == []


def test_two_managers_keep_each_others_entries(tmp_path):
    a = CheckpointManager(Checkpoint(v=Variable(1.0)), tmp_path, max_to_keep=2, checkpoint_name="a")
    b = CheckpointManager(Checkpoint(v=Variable(2.0)), tmp_path, max_to_keep=2, checkpoint_name="b")
    for _ in range(3):
        a.save()
    for _ in range(2):
        b.save()
    assert {n.split(".")[0] for n in _files(tmp_path)} == {"a-2", "a-3", "b-1", "b-2"}
    a2 = CheckpointManager(Checkpoint(v=Variable(0.0)), tmp_path, max_to_keep=2, checkpoint_name="a")
    assert a2.checkpoints == [str(tmp_path / "a-2"), str(tmp_path / "a-3")]  # TensorFlow adopts b's list
    # the newest checkpoint in the directory, whoever saved it, as in TensorFlow (SPEC §5)
    assert a2.latest_checkpoint == latest_checkpoint(tmp_path) == str(tmp_path / "b-2")
    assert a2.save().endswith("a-4") and _prefixes_of(tmp_path, "a") == ["a-3", "a-4"]
    assert _prefixes_of(tmp_path, "b") == ["b-1", "b-2"]  # never deletes another name's checkpoints


def test_state_naming_missing_files_falls_back(tmp_path):
    v = Variable(1.0)
    m = CheckpointManager(Checkpoint(v=v), tmp_path, max_to_keep=3)
    for i in range(3):
        v.assign(float(i))
        m.save()
    os.remove(tmp_path / "ckpt-3.data-00000-of-00001")
    state_file = re.escape(str(tmp_path / "checkpoint"))
    with pytest.warns(UserWarning, match=rf"state file '{state_file}' names .*ckpt-3.*missing or damaged.*ckpt-2"):
        assert latest_checkpoint(tmp_path) == str(tmp_path / "ckpt-2")
    v2 = Variable(9.0)
    with pytest.warns(UserWarning, match=rf"state file '{state_file}' names .*ckpt-3"):
        m2 = CheckpointManager(Checkpoint(v=v2), tmp_path, max_to_keep=3)
    assert m2.latest_checkpoint == str(tmp_path / "ckpt-2")
    assert m2.restore_or_initialize() == str(tmp_path / "ckpt-2") and float(v2.value) == 1.0
    assert m2.save().endswith("ckpt-4")  # never reuses the number of the broken one


@pytest.mark.parametrize("content", [b"", b"this is not a state file\n", b'model_checkpoint_path: "ck\x00\xff',
                                     b'model_checkpoint_path: 3\n'])
def test_garbled_or_empty_state_file_falls_back_to_scan(tmp_path, content):
    v = Variable(1.0)
    m = CheckpointManager(Checkpoint(v=v), tmp_path, max_to_keep=5)
    for i in range(3):
        v.assign(float(i))
        m.save()
    (tmp_path / "checkpoint").write_bytes(content)
    with pytest.warns(UserWarning, match="damaged.*ckpt-3"):
        assert latest_checkpoint(tmp_path) == str(tmp_path / "ckpt-3")
    v2 = Variable(0.0)
    with pytest.warns(UserWarning, match="damaged"):
        m2 = CheckpointManager(Checkpoint(v=v2), tmp_path, max_to_keep=1)
    assert m2.restore_or_initialize() == str(tmp_path / "ckpt-3") and float(v2.value) == 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert m2.save().endswith("ckpt-4")  # never starts over at ckpt-1
    assert parse_state((tmp_path / "checkpoint").read_text()).model_checkpoint_path == "ckpt-4"
    assert _prefixes(tmp_path) == ["ckpt-1", "ckpt-2", "ckpt-3", "ckpt-4"]  # unlisted ones are never deleted


def test_state_file_round_trip_and_escapes():
    from kerasckpt.checkpoint.state import CheckpointState, format_state
    state = CheckpointState('we"ird\\näme-1', ['a-1', 'we"ird\\näme-1'], [1.5, 2.25], 0.5)
    back = parse_state(format_state(state))
    assert back.model_checkpoint_path == state.model_checkpoint_path
    assert back.all_model_checkpoint_paths == state.all_model_checkpoint_paths
    assert back.all_model_checkpoint_timestamps == [1.5, 2.25] and back.last_preserved_timestamp == 0.5
    tf = 'model_checkpoint_path: "ckpt-4"\nall_model_checkpoint_paths: "ckpt-3"\nall_model_checkpoint_paths: "ckpt-4"\n'
    assert parse_state(tf).all_model_checkpoint_paths == ["ckpt-3", "ckpt-4"]


def test_manager_saves_values_exactly(tmp_path):
    v = Variable(np.random.default_rng(0).standard_normal((5, 5)).astype(np.float32))
    m = CheckpointManager(Checkpoint(v=v), tmp_path, max_to_keep=1)
    m.save()
    v2 = Variable(np.zeros((5, 5), np.float32))
    CheckpointManager(Checkpoint(v=v2), tmp_path, max_to_keep=1).restore_or_initialize()
    assert np.array_equal(v.value, v2.value)
