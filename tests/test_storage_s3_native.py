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
from crashing import kill_when_ready

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


def assign_generation(vs, step, gen):
    for k, v in generation_values(gen).items():
        vs[k].assign(v)
    step.assign(gen)


def _restore_generation(path, options):
    """Restore `path` and return its generation, checked to be one whole generation."""
    vs, step = _targets()
    Checkpoint(step=step, **vs).read(path, storage_options=options).assert_existing_objects_matched().expect_partial()
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
from test_storage_s3_native import assign_generation, generation_values

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
    assign_generation(vs, step, 2)
    events[0], kill_at[0] = 0, kill
    manager.save(checkpoint_number=1 if mode == "overwrite" else None)
    assign_generation(vs, step, 3)  # after the snapshot: never in a file
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


RUNNER = r'''
import sys
from kerasckpt import _storage
from kerasckpt.checkpoint import Checkpoint, CheckpointManager, CheckpointOptions
from kerasckpt.variables import Variable
from test_storage_s3_native import assign_generation, generation_values

_storage.PART_SIZE = _storage.SINGLE_PUT_MAX = 256 << 10  # s3server.MIN_PART_SIZE
directory, mode, background = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
vs = {k: Variable(v) for k, v in generation_values(0).items()}
step = Variable(0, dtype="int64")
manager = CheckpointManager(Checkpoint(step=step, **vs), directory, max_to_keep=2,
                            options=CheckpointOptions(save_in_background=background))
gen = 0
while True:
    gen += 1
    assign_generation(vs, step, gen)
    manager.save(checkpoint_number=1 if mode == "overwrite" else None)
    if gen == 2:
        manager.wait_until_finished()  # in the background too: two complete checkpoints before the kill
        print("ready", flush=True)
'''


@pytest.mark.slow
@pytest.mark.parametrize("mode,background", [("fresh", True), ("overwrite", False)])
def test_savers_killed_at_random_moments_leave_a_whole_checkpoint(s3, tmp_path, mode, background):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    directory = s3.url("run")
    rng = np.random.default_rng(len(mode) + background)
    for delay in rng.uniform(0.05, 1.2, size=2):
        kill_when_ready([sys.executable, str(script), directory, mode, "1" if background else "0"], delay,
                        env=_env(s3.server))
        latest = latest_checkpoint(directory, storage_options=s3.storage_options)
        assert _restore_generation(latest, s3.storage_options) >= 2


# ------------------------------------------------------------------------------------------------ faults
@pytest.mark.slow
def test_the_server_stops_and_restarts_in_the_middle_of_a_native_save(monkeypatch):
    server = s3server.start(s3server.InProcessS3Server)
    try:
        base = server.make_bucket("kc-native-restart")
        patient = server.storage_options(config_kwargs={"retries": {"mode": "standard", "total_max_attempts": 8},
                                                        "connect_timeout": 2, "read_timeout": 5})
        impatient = server.storage_options(config_kwargs={"retries": {"mode": "standard", "total_max_attempts": 2},
                                                          "connect_timeout": 1})
        directory = f"{base}/run"
        vs, step = _targets()
        ckpt = Checkpoint(step=step, **vs)
        assign_generation(vs, step, 1)
        manager = CheckpointManager(ckpt, directory, max_to_keep=1, storage_options=patient)
        manager.save()
        real = _storage.ImageFile.parts
        outages = s3server.outage_during_uploads(monkeypatch, server)  # the first part is up: away, back after 1 s
        assign_generation(vs, step, 2)
        second = manager.save()  # rides out the outage on the retries
        assert outages and _restore_generation(second, patient) == 2

        # The server goes away for good in the middle of the data upload: the save fails naming the URL, and
        # once the server is back the previous checkpoint is the latest, whole, and the next save goes on.
        state = server.client().get_object(Bucket="kc-native-restart", Key="run/checkpoint")["Body"].read()
        monkeypatch.setattr(_storage.ImageFile, "parts", real)
        down = CheckpointManager(ckpt, directory, max_to_keep=1, storage_options=impatient)
        outages = s3server.outage_during_uploads(monkeypatch, server, back_after=None)
        assign_generation(vs, step, 3)
        with pytest.raises(StorageConnectionError, match=r"s3://kc-native-restart/run/ckpt-3\.data-00000-of-00001"):
            down.save()
        assert outages
        server.start()
        monkeypatch.setattr(_storage.ImageFile, "parts", real)
        assert server.client().get_object(Bucket="kc-native-restart", Key="run/checkpoint")["Body"].read() == state
        assert latest_checkpoint(directory, storage_options=patient) == second
        assert _restore_generation(second, patient) == 2
        assert down.save() == f"{directory}/ckpt-3" and _restore_generation(f"{directory}/ckpt-3", patient) == 3
        keys = [o["Key"] for o in server.client().list_objects_v2(Bucket="kc-native-restart")["Contents"]]
        assert sorted(keys) == ["run/checkpoint", "run/ckpt-3.data-00000-of-00001", "run/ckpt-3.index"]
    finally:
        server.stop()


def test_damaged_and_missing_objects_are_named_and_the_manager_falls_back(s3):
    options, directory = s3.storage_options, s3.url("run")
    vs, step = _targets()
    manager = CheckpointManager(Checkpoint(step=step, **vs), directory, max_to_keep=2, storage_options=options)
    for gen in (1, 2):
        assign_generation(vs, step, gen)
        manager.save()
    client, key = s3.server.client(), "run/ckpt-2.data-00000-of-00001"
    head = client.head_object(Bucket=s3.bucket, Key=key)
    data = bytearray(s3.get(key))
    data[100] ^= 0x01
    client.put_object(Bucket=s3.bucket, Key=key, Body=bytes(data), Metadata=head["Metadata"])  # damaged at rest
    targets, counter = _targets()
    with pytest.raises(CheckpointDamagedError, match=rf"{key}.*recorded when it was uploaded"):
        Checkpoint(step=counter, **targets).restore(f"{directory}/ckpt-2", storage_options=options)
    assert int(counter.numpy()) == 0 and not targets["a"].numpy().any()  # nothing was assigned
    s3.put(key, bytes(data))  # without kerasckpt's metadata (another tool copied it): each value's checksum
    with pytest.raises(CheckpointDamagedError, match=rf"{key}' is damaged: checksum mismatch for 'a/"):
        Checkpoint(step=counter, **targets).restore(f"{directory}/ckpt-2", storage_options=options)
    client.delete_object(Bucket=s3.bucket, Key=key)
    with pytest.warns(UserWarning, match=r"run/checkpoint' names .*ckpt-2.*missing or damaged"):
        assert latest_checkpoint(directory, storage_options=options) == f"{directory}/ckpt-1"
    with pytest.raises(CheckpointNotFoundError, match=rf"'s3://{s3.bucket}/{key}' is missing"):
        bundle.CheckpointReader(f"{directory}/ckpt-2", options).check_complete()
    index = s3.get("run/ckpt-1.index")
    s3.put("run/ckpt-1.index", index[:len(index) // 2])
    with pytest.raises(CheckpointDamagedError, match=r"run/ckpt-1\.index' is damaged"):
        bundle.CheckpointReader(f"{directory}/ckpt-1", options)


# ------------------------------------------------------------------------------------------------ two writers
def test_a_second_writer_is_refused_by_the_stores_conditional_writes(s3, monkeypatch):
    options, directory = s3.storage_options, s3.url("run")
    mine = CheckpointManager(Checkpoint(**_targets()[0]), directory, max_to_keep=2, storage_options=options)
    theirs = CheckpointManager(Checkpoint(**_targets()[0]), directory, max_to_keep=2, checkpoint_name="theirs",
                               storage_options=options)
    mine.save()
    with pytest.raises(StorageConflictError, match=r"run/checkpoint.*before writing anything"):
        theirs.save()
    # The other writer slips in between this manager's check and its state write: S3 refuses the state write
    # (If-Match), and the checkpoint this save wrote is deleted again.
    latecomer = CheckpointManager(Checkpoint(**_targets()[0]), directory, max_to_keep=2, checkpoint_name="late",
                                  storage_options=options)
    real = bundle.write_bundle

    def latecomer_saves_meanwhile(prefix, *args, **kwargs):
        names = real(prefix, *args, **kwargs)
        if prefix.endswith("ckpt-2"):
            latecomer.save()
        return names
    monkeypatch.setattr(bundle, "write_bundle", latecomer_saves_meanwhile)
    with pytest.raises(StorageConflictError, match="after writing the checkpoint, which is deleted again"):
        mine.save()
    monkeypatch.setattr(bundle, "write_bundle", real)
    assert sorted(k for k in s3.keys("run/") if k.endswith(".index")) == ["run/ckpt-1.index", "run/late-1.index"]
    assert latest_checkpoint(directory, storage_options=options) == f"{directory}/late-1"

    # Two writers of one prefix: the index is replaced only if it is still the version read at the start.
    prefix = s3.url("plain", "w")
    Checkpoint(**{k: Variable(v) for k, v in generation_values(1).items()}).write(prefix, storage_options=options)
    real_write, raced = _storage.write_bytes, []

    def another_write_first(path, data, *args, **kwargs):
        if path.endswith(".index") and not raced:
            raced.append(path)
            Checkpoint(**{k: Variable(v) for k, v in generation_values(3).items()}).write(
                prefix, storage_options=options)
        return real_write(path, data, *args, **kwargs)
    monkeypatch.setattr(_storage, "write_bytes", another_write_first)
    with pytest.raises(StorageConflictError, match=r"plain/w\.index.*another writer"):
        Checkpoint(**{k: Variable(v) for k, v in generation_values(2).items()}).write(prefix, storage_options=options)
    targets, _ = _targets()
    Checkpoint(**targets).read(prefix, storage_options=options)
    assert np.array_equal(targets["b"].numpy(), generation_values(3)["b"])  # the other writer's, whole


def test_readers_see_whole_checkpoints_while_a_prefix_is_overwritten(s3):
    options, prefix = s3.storage_options, s3.url("best")
    vs, step = _targets()
    ckpt = Checkpoint(step=step, **vs)

    def write(gen):
        assign_generation(vs, step, gen)
        ckpt.write(prefix, storage_options=options)
    write(1)
    seen, errors, stop = [], [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.append(_restore_generation(prefix, options))
            except Exception as err:  # noqa: BLE001 (any failure is what the test looks for)
                errors.append(err)
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for gen in range(2, 6):
            time.sleep(0.2)
            write(gen)
    finally:
        stop.set()
        thread.join()
    assert errors == [] and set(seen) <= {1, 2, 3, 4, 5} and len(set(seen)) > 1


# ------------------------------------------------------------------------------------------------ resume
TRAIN = r'''
import os
import sys
import numpy as np
import kerasckpt
from kerasckpt import layers

backup, result = sys.argv[1], sys.argv[2]
kerasckpt.utils.set_random_seed(7)
rng = np.random.default_rng(0)
x = rng.normal(size=(768, 16)).astype("float32")
y = (x[:, :4].sum(axis=1) > 0).astype("int64")
model = kerasckpt.Sequential([layers.Input(shape=(16,)), layers.Dense(64, activation="relu"),
                              layers.BatchNormalization(), layers.Dropout(0.2), layers.Dense(2, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])


class ReportSteps(kerasckpt.callbacks.Callback):  # for the parent to aim its kills
    def on_train_batch_end(self, batch, logs=None):
        print(int(self.model.optimizer.iterations), flush=True)


model.fit(x, y, batch_size=32, epochs=4, validation_split=0.125, verbose=0, callbacks=[
    kerasckpt.callbacks.BackupAndRestore(backup, save_freq=4, save_in_background=True), ReportSteps()])
np.savez(result + ".tmp.npz", *model.get_weights())
os.replace(result + ".tmp.npz", result)
'''
TRAIN_STEPS = 84  # 4 epochs of 672 / 32 batches


def _run_until_finished(script, backup, result, kills, rng, env):
    """Train, SIGKILL the process after `kills` random steps (a few ms later: mid-batch or mid-upload),
    restart until it finishes; returns the number of kills that landed."""
    targets = sorted(rng.choice(np.arange(1, TRAIN_STEPS * 9 // 10), size=kills, replace=False))
    restarts = 0
    while True:
        child = subprocess.Popen([sys.executable, str(script), backup, str(result)], stdout=subprocess.PIPE, text=True,
                                 env=env)
        if targets:
            target = targets.pop(0)
            for line in child.stdout:
                if int(line) >= target:
                    break
            time.sleep(rng.uniform(0.0, 0.05))
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.communicate()
                restarts += 1
                continue
        child.communicate(timeout=300)
        assert child.returncode == 0
        return restarts


@pytest.mark.slow
def test_a_run_killed_again_and_again_resumes_from_an_s3_backup_to_the_same_weights(s3, tmp_path):
    """BackupAndRestore(backup_dir="s3://...", save_in_background=True): the training process is SIGKILLed three
    times and restarted until done; its final weights equal those of a run never interrupted, bit for bit."""
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    env, rng = _env(s3.server), np.random.default_rng(5)
    _run_until_finished(script, str(tmp_path / "local-backup"), tmp_path / "straight.npz", 0, rng, env)
    restarts = _run_until_finished(script, s3.url("run", "backup"), tmp_path / "resumed.npz", 3, rng, env)
    assert restarts == 3
    with np.load(tmp_path / "straight.npz") as a, np.load(tmp_path / "resumed.npz") as b:
        assert len(a.files) == len(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
    assert not [k for k in s3.keys("run/") if k.endswith(".index")]  # the finished run removed its backup


@pytest.mark.slow
def test_the_command_line_tool_lists_verifies_and_inspects_a_manager_directory_on_s3(s3):
    options, directory = s3.storage_options, s3.url("run")
    vs, step = _targets()
    manager = CheckpointManager(Checkpoint(step=step, **vs), directory, max_to_keep=2, storage_options=options)
    for gen in (1, 2, 3):
        step.assign(gen)
        manager.save()
    env = _env(s3.server)

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "kerasckpt", *argv], capture_output=True, text=True, env=env,
                              timeout=120)
    out = cli("ls", directory)
    assert out.returncode == 0 and "ckpt-3" in out.stdout and "latest" in out.stdout and "ckpt-1" not in out.stdout, \
        out.stderr
    out = cli("verify", directory)
    assert out.returncode == 0 and "All 3 intact" in out.stdout, out.stdout + out.stderr
    out = cli("inspect", directory)
    assert out.returncode == 0 and f"{directory}/ckpt-3" in out.stdout, out.stderr
