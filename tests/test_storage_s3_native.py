"""Native checkpoints on s3:// against a real S3 server on the loopback interface (moto's, started by the tests;
see tests/s3server.py): the kill-storm and damage tests of the local format repeated on URLs, a server that
stops and comes back in the middle of a save, two writers in one directory, readers during overwrites, and a
training run killed again and again that resumes from an s3:// BackupAndRestore backup to the same weights."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from kerasckpt import _storage
from kerasckpt.checkpoint import Checkpoint, CheckpointManager, bundle, latest_checkpoint
from kerasckpt.errors import (CheckpointDamagedError, CheckpointNotFoundError, StorageConflictError,
                              StorageConnectionError)
from kerasckpt.variables import Variable

import s3server

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = {"a": (200, 1000), "b": (1000,)}  # 804 KB of data: a multipart upload of four parts (see _small_parts)


@pytest.fixture(autouse=True)
def _small_parts(monkeypatch):
    monkeypatch.setattr(_storage, "PART_SIZE", s3server.MIN_PART_SIZE)
    monkeypatch.setattr(_storage, "SINGLE_PUT_MAX", s3server.MIN_PART_SIZE)


def generation_values(gen):
    """Values of save number `gen`: every array tells which save it came from."""
    return {k: np.full(s, gen, np.float32) + np.arange(s[-1], dtype=np.float32) for k, s in SHAPES.items()}


def _targets():
    return {k: Variable(np.zeros(s, np.float32)) for k, s in SHAPES.items()}, Variable(0, dtype="int64")


def _restore_generation(path, options):
    """Restore `path` and return its generation, checked to be one whole generation."""
    vs, step = _targets()
    Checkpoint(step=step, **vs).restore(path, storage_options=options).assert_consumed()
    gen = int(step.numpy())
    for k, v in generation_values(gen).items():
        assert np.array_equal(vs[k].numpy(), v), (path, k)
    return gen


def _env(server):
    return {**os.environ, **server.env(), "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), HERE, os.environ.get("PYTHONPATH")]))}


# ------------------------------------------------------------------------------------------------ kill storm
DRIVER = r'''
import json, os, signal, sys
import numpy as np
import s3fs
from kerasckpt import _storage
from kerasckpt.checkpoint import Checkpoint, CheckpointManager, CheckpointOptions
from kerasckpt.variables import Variable
from test_storage_s3_native import generation_values

base, mode, background, when = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
_storage.PART_SIZE = _storage.SINGLE_PUT_MAX = 256 << 10  # s3server.MIN_PART_SIZE
events, kill_at = [0], [None]
real = s3fs.S3FileSystem._call_s3


def event(now):
    if now:
        events[0] += 1
        if events[0] == kill_at[0]:
            os.kill(os.getpid(), signal.SIGKILL)


async def counted(self, method, *args, **kwargs):  # kill points: before each request is sent, or after its answer
    event(when == "before")
    result = await real(self, method, *args, **kwargs)
    event(when == "after")
    return result
s3fs.S3FileSystem._call_s3 = counted


def run(directory, kill):
    vs = {k: Variable(v) for k, v in generation_values(1).items()}
    step = Variable(1, dtype="int64")
    manager = CheckpointManager(Checkpoint(step=step, **vs), directory, max_to_keep=1,
                                options=CheckpointOptions(save_in_background=background))
    manager.save()
    manager.wait_until_finished()
    for k, v in generation_values(2).items():
        vs[k].assign(v)
    step.assign(2)
    events[0], kill_at[0] = 0, kill
    manager.save(checkpoint_number=1 if mode == "overwrite" else None)
    for k, v in generation_values(3).items():  # after the snapshot: never in a file
        vs[k].assign(v)
    step.assign(3)
    manager.wait_until_finished()
    return events[0]


total = run(base + "/count", None)
outcome = {}
for k in range(1, total + 1):
    pid = os.fork()
    if pid == 0:
        try:
            run(f"{base}/{k}", k)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    outcome[k] = "killed" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL else "exit"
print(json.dumps({"total": total, "outcome": outcome}))
'''


def _check_directory(s3, directory, allowed):
    """The latest checkpoint is complete and one whole generation; a new manager continues and sweeps."""
    options = s3.storage_options
    latest = latest_checkpoint(directory, storage_options=options)
    assert latest is not None, s3.keys(directory.split("/", 3)[3])
    gen = _restore_generation(latest, options)
    assert gen in allowed
    vs, step = _targets()
    manager = CheckpointManager(Checkpoint(step=step, **vs), directory, max_to_keep=1, storage_options=options)
    assert manager.restore_or_initialize() == latest
    new = manager.save()
    names = {k.rsplit("/", 1)[1] for k in s3.keys(directory.split("/", 3)[3] + "/")}
    # no orphaned data, nor whole checkpoints the killed save had written or was deleting: only the new one
    assert names == {"checkpoint", new.rsplit("/", 1)[1] + ".index", new.rsplit("/", 1)[1] + ".data-00000-of-00001"}
    assert latest_checkpoint(directory, storage_options=options) == new
    return gen


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")
@pytest.mark.parametrize("mode,background,when", [("fresh", False, "before"), ("overwrite", True, "after")])
def test_sigkill_at_every_request_of_a_save(s3, tmp_path, mode, background, when):
    """A saver forked per kill point is SIGKILLed before the k-th request of a manager's save is sent (or once
    its answer is in); every request is a kill point. Afterwards the latest checkpoint is one whole generation
    and a new manager sweeps everything the killed save left."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    out = subprocess.run([sys.executable, str(script), s3.url("run"), mode, "1" if background else "0", when],
                         capture_output=True, text=True, env=_env(s3.server), timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    total, outcome = result["total"], result["outcome"]
    assert total >= 10 and list(outcome.values()).count("killed") == total  # every event was a kill point
    gens = [_check_directory(s3, s3.url("run", str(k)), allowed={1, 2}) for k in range(1, total + 1)]
    assert gens[0] == 1 and gens[-1] == 2  # killed early: the old one; killed during the sweep: the new one
