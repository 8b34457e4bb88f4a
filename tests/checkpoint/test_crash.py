"""Crash safety: a saver SIGKILLed at every file event of save() (fresh number, and overwriting the
checkpoint the state file names), a saver killed at random moments, and a failing os.replace. Afterwards
latest_checkpoint names a complete checkpoint that restores exactly, and the next save cleans up: temp
files, orphaned data, and whole checkpoints the killed save had written or was deleting."""
import json
import os
import subprocess

import numpy as np
import pytest

from kerasckpt import _fileio
from kerasckpt.checkpoint import Checkpoint, CheckpointManager, CheckpointOptions, latest_checkpoint
from kerasckpt.variables import Variable
from crashing import kill_when_ready

from .ckpt_helpers import PYTHON, child_env

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")

SHAPES = {"a": (64, 32), "b": (1000,)}


def generation_values(gen):
    """Values of save number `gen`: every array tells which save it came from."""
    return {k: (np.arange(int(np.prod(s)), dtype=np.float32).reshape(s) * 0.5 + gen * 1000) for k, s in SHAPES.items()}


DRIVER = r'''
import json, os, signal, sys
import numpy as np
from kerasckpt import _fileio
from kerasckpt.checkpoint import Checkpoint, CheckpointManager, CheckpointOptions
from kerasckpt.variables import Variable

SHAPES = {shapes!r}
def values(gen):
    return {{k: np.arange(int(np.prod(s)), dtype=np.float32).reshape(s) * 0.5 + gen * 1000
            for k, s in SHAPES.items()}}

root, mode = sys.argv[1], sys.argv[2]
background = sys.argv[3:] == ["background"]  # written on a writer thread; the values change meanwhile
_fileio.PARALLEL_CHUNK = 1024    # many pieces: kill points inside the data writes
_fileio.POOL_MIN = 1 << 40       # checksums inline: the same event order every run
events = [0]
kill_at = [None]

def hooked(fn):
    def wrapper(*args, **kwargs):
        events[0] += 1
        if kill_at[0] is not None and events[0] == kill_at[0]:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*args, **kwargs)
    return wrapper

for name in ("replace", "fsync", "remove", "unlink"):
    setattr(os, name, hooked(getattr(os, name)))
_fileio.crc32c = hooked(_fileio.crc32c)

def run(directory, kill):
    vs = {{k: Variable(v) for k, v in values(1).items()}}
    step = Variable(1, dtype="int64")
    manager = CheckpointManager(Checkpoint(step=step, **vs), directory, max_to_keep=1,
                                options=CheckpointOptions(save_in_background=background))
    manager.save()
    manager.wait_until_finished()
    for k, v in values(2).items():
        vs[k].assign(v)
    step.assign(2)
    events[0] = 0
    kill_at[0] = kill
    if mode == "overwrite":
        manager.save(checkpoint_number=1)   # over the checkpoint the state file names
    else:
        manager.save()                      # ckpt-2, then ckpt-1 is swept
    for k, v in values(3).items():          # after the snapshot: never in a file
        vs[k].assign(v)
    step.assign(3)
    manager.wait_until_finished()
    return events[0]

total = run(os.path.join(root, "count"), None)
outcome = {{}}
for k in range(1, total + 1):
    pid = os.fork()
    if pid == 0:
        try:
            run(os.path.join(root, str(k)), k)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    outcome[k] = "killed" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL else "exit"
print(json.dumps({{"total": total, "outcome": outcome}}))
'''


def _check_directory(directory, allowed):
    """The latest checkpoint is complete and holds one whole generation; a new manager continues."""
    latest = latest_checkpoint(directory)
    assert latest is not None, os.listdir(directory)
    vs = {k: Variable(np.zeros(s, np.float32)) for k, s in SHAPES.items()}
    step = Variable(0, dtype="int64")
    Checkpoint(step=step, **vs).restore(latest).assert_consumed()
    gen = int(step.value)
    assert gen in allowed
    for k, v in generation_values(gen).items():
        assert np.array_equal(vs[k].value, v), (directory, k)
    manager = CheckpointManager(Checkpoint(step=step, **vs), directory, max_to_keep=1)
    assert manager.restore_or_initialize() == latest
    new = manager.save()
    assert not [n for n in os.listdir(directory) if _fileio.TEMP_MARK in n]  # leftovers cleaned
    prefixes = {n.split(".")[0] for n in os.listdir(directory) if n != "checkpoint"}
    assert all(os.path.exists(os.path.join(directory, p + ".index")) for p in prefixes)  # no orphaned data
    # nor whole checkpoints the killed save had written or was deleting: max_to_keep=1 keeps only the new one
    assert prefixes == {os.path.basename(new)}, sorted(os.listdir(directory))
    assert latest_checkpoint(directory) == new
    return gen


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("mode", ["fresh", "overwrite"])
def test_sigkill_at_every_file_event(tmp_path, mode, background):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(shapes=SHAPES))
    out = subprocess.run([PYTHON, str(script), str(tmp_path), mode] + (["background"] if background else []),
                         capture_output=True, text=True,
                         env=child_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    total, outcome = result["total"], result["outcome"]
    assert total >= 20 and list(outcome.values()).count("killed") == total  # every event was a kill point
    gens = [_check_directory(str(tmp_path / str(k)), allowed={1, 2}) for k in range(1, total + 1)]
    assert gens[0] == 1 and gens[-1] == 2  # killed early: the old one; killed during the sweep: the new one


RUNNER = r'''
import sys
import numpy as np
from kerasckpt.checkpoint import Checkpoint, CheckpointManager
from kerasckpt.variables import Variable
from kerasckpt.checkpoint import CheckpointOptions
directory, mode = sys.argv[1], sys.argv[2]
background = sys.argv[3:] == ["background"]  # each save is written while the next values are assigned
shape = (512, 512)
a, b = Variable(np.zeros(shape, np.float32)), Variable(np.zeros(shape, np.float32))
step = Variable(0, dtype="int64")
manager = CheckpointManager(Checkpoint(step=step, a=a, b=b), directory, max_to_keep=2,
                            options=CheckpointOptions(save_in_background=background))
gen = 0
while True:
    gen += 1
    a.assign(np.full(shape, gen, np.float32))
    b.assign(np.full(shape, -gen, np.float32))
    step.assign(gen)
    manager.save(checkpoint_number=1 if mode == "overwrite" else None)
    if gen == 2:
        manager.wait_until_finished()  # in the background too: two complete checkpoints before the kill
        print("ready", flush=True)
'''


@pytest.mark.parametrize("mode,delay,background", [
    ("fresh", 0.05, False), ("fresh", 0.17, False), ("overwrite", 0.03, False), ("overwrite", 0.11, False),
    ("fresh", 0.05, True), ("fresh", 0.13, True), ("overwrite", 0.03, True), ("overwrite", 0.11, True)])
def test_sigkill_at_random_moments(tmp_path, mode, delay, background):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    directory = tmp_path / "run"
    kill_when_ready([PYTHON, str(script), str(directory), mode] + (["background"] if background else []), delay,
                    env=child_env())
    latest = latest_checkpoint(directory)
    a, b = Variable(np.zeros((512, 512), np.float32)), Variable(np.zeros((512, 512), np.float32))
    step = Variable(0, dtype="int64")
    Checkpoint(step=step, a=a, b=b).restore(latest).assert_consumed()
    gen = int(step.value)
    assert gen >= 2 and np.all(a.value == gen) and np.all(b.value == -gen)


# ------------------------------------------------------------------------------------------------ failing rename
def _two_saves(tmp_path):
    v = Variable(np.arange(10, dtype=np.float32))
    manager = CheckpointManager(Checkpoint(v=v), tmp_path, max_to_keep=1)
    first = manager.save()
    v.assign(v.value + 100)
    return v, manager, first


@pytest.mark.parametrize("background", [False, True])  # the error then comes from wait_until_finished()
@pytest.mark.parametrize("fail_at", [1, 2, 3])  # data rename, index rename, state file rename
@pytest.mark.parametrize("overwrite", [False, True])
def test_failing_os_replace_keeps_previous_checkpoint(tmp_path, monkeypatch, fail_at, overwrite, background):
    v, manager, first = _two_saves(tmp_path)
    real, calls = os.replace, [0]

    def failing(src, dst):
        calls[0] += 1
        if calls[0] == fail_at:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="No space left"):
        manager.save(checkpoint_number=1 if overwrite else None,
                     options=CheckpointOptions(save_in_background=background))
        manager.wait_until_finished()
    monkeypatch.setattr(os, "replace", real)
    assert not [n for n in os.listdir(tmp_path) if _fileio.TEMP_MARK in n]
    assert latest_checkpoint(tmp_path) == first
    target = Variable(np.zeros(10, np.float32))
    Checkpoint(v=target).restore(first).expect_partial()
    if fail_at < 2 or not overwrite:  # before the index rename the old checkpoint is what is visible
        assert np.array_equal(target.value, np.arange(10, dtype=np.float32))
    path = manager.save()
    assert latest_checkpoint(tmp_path) == path
    Checkpoint(v=target).restore(path).expect_partial()
    assert np.array_equal(target.value, v.value)
    data_files = [n for n in os.listdir(tmp_path) if ".data-" in n]
    assert len(data_files) == 1  # orphaned data of the failed save is gone


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "best.bin"
    _fileio.atomic_write_bytes(target, b"old")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError, match="boom"):
        _fileio.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["best.bin"]


def test_cleanup_spares_live_writers(tmp_path):
    alive = tmp_path / f"x.index{_fileio.TEMP_MARK}{os.getppid()}-abcd"
    dead = tmp_path / f"x.index{_fileio.TEMP_MARK}999999999-abcd"
    alive.write_bytes(b"1")
    dead.write_bytes(b"1")
    assert _fileio.cleanup_temp_files(str(tmp_path)) == [dead.name]
    assert alive.exists()
