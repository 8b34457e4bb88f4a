"""s3:// URLs against a real S3 server on the loopback interface (moto's, started by the tests; see
tests/s3server.py): every file format, streamed multipart uploads that are aborted on failure, downloads
checked as they stream, conditional writes, one layer of retries, errors naming the URL, a server that
stops and comes back in the middle of a save, and saving processes killed at random moments."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import kerasckpt
from kerasckpt import _storage, layers
from kerasckpt.errors import (CheckpointDamagedError, CheckpointNotFoundError, StorageAccessError,
                              StorageConflictError, StorageConnectionError)

import s3server
from crashing import kill_when_ready

WIDE = (1000, 3000)  # 3e6 parameters, 12 MB: three parts of 5 MiB (moto's, and S3's, smallest part size)


@pytest.fixture(autouse=True)
def _small_parts(monkeypatch):
    monkeypatch.setattr(_storage, "PART_SIZE", 5 << 20)
    monkeypatch.setattr(_storage, "SINGLE_PUT_MAX", 5 << 20)


def wide_model(seed=0):
    kerasckpt.utils.set_random_seed(seed)
    model = kerasckpt.Sequential([layers.Input(shape=(WIDE[0],)), layers.Dense(WIDE[1])])
    model.compile(optimizer="sgd", loss="mse")
    return model


def _same(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


def _uploads_open(s3):
    return s3.server.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])


# ------------------------------------------------------------------------------------------------ formats
@pytest.mark.parametrize("name", ["model.keras", "model.h5", "w.weights.h5"])
def test_every_format_round_trips_through_a_streamed_multipart_upload(s3, monkeypatch, name):
    def no_full_copy(self):
        raise AssertionError("the whole file was copied into one buffer")
    monkeypatch.setattr(_storage.ImageFile, "getvalue", no_full_copy)
    model, url = wide_model(), s3.url("run", name)
    if name.endswith(".weights.h5"):
        model.save_weights(url, storage_options=s3.storage_options)
        restored = wide_model(seed=1)
        restored.load_weights(url, storage_options=s3.storage_options)
    else:
        model.save(url, storage_options=s3.storage_options)
        restored = kerasckpt.models.load_model(url, storage_options=s3.storage_options)
    assert _same(model, restored)
    head = s3.server.client().head_object(Bucket=s3.bucket, Key=f"run/{name}")
    assert head["ETag"].strip('"').endswith("-3")  # three parts, streamed one at a time from the arrays
    assert int(head["Metadata"][_storage.SIZE_KEY]) == head["ContentLength"]
    assert _uploads_open(s3) == []


def test_a_small_file_goes_up_in_one_request_with_its_checksum(s3):
    model = kerasckpt.Sequential([layers.Input(shape=(3,)), layers.Dense(2)])
    url = s3.url("small.keras")
    model.save(url, storage_options=s3.storage_options)
    head = s3.server.client().head_object(Bucket=s3.bucket, Key="small.keras")
    assert "-" not in head["ETag"] and int(head["Metadata"][_storage.CRC_KEY], 16) == \
        _storage._fileio.checksum(s3.get("small.keras"))


def test_a_failing_upload_is_aborted_and_the_previous_object_stays(s3, monkeypatch):
    model, url = wide_model(), s3.url("best.keras")
    model.save(url, storage_options=s3.storage_options)
    before = s3.get("best.keras")
    real = _storage.ImageFile.parts

    def two_parts_then_fail(self, part_size):
        for n, part in enumerate(real(self, part_size)):
            if n == 2:
                raise OSError("the snapshot went away")
            yield part
    monkeypatch.setattr(_storage.ImageFile, "parts", two_parts_then_fail)
    model.layers[0].kernel.assign(np.zeros(WIDE, np.float32))
    with pytest.raises(Exception, match="best.keras"):
        model.save(url, storage_options=s3.storage_options)
    assert s3.get("best.keras") == before
    assert _uploads_open(s3) == []  # no partial upload left behind (nor published)


def test_a_download_is_checked_against_the_checksum_recorded_at_upload(s3):
    model, url = wide_model(), s3.url("w.weights.h5")
    model.save_weights(url, storage_options=s3.storage_options)
    client = s3.server.client()
    head = client.head_object(Bucket=s3.bucket, Key="w.weights.h5")
    data = bytearray(s3.get("w.weights.h5"))
    data[len(data) // 3] ^= 0x01  # damaged at rest, metadata intact
    client.put_object(Bucket=s3.bucket, Key="w.weights.h5", Body=bytes(data), Metadata=head["Metadata"])
    with pytest.raises(CheckpointDamagedError, match=r"w\.weights\.h5.*recorded when it was uploaded"):
        wide_model().load_weights(url, storage_options=s3.storage_options)


def test_files_from_other_tools_load_without_the_upload_checksum(s3):
    model, url = wide_model(), s3.url("copied.keras")
    model.save(url, storage_options=s3.storage_options)
    s3.put("plain.keras", s3.get("copied.keras"))  # as `aws s3 cp` would upload it: no kerasckpt metadata
    restored = kerasckpt.models.load_model(s3.url("plain.keras"), storage_options=s3.storage_options)
    assert _same(model, restored)


# ------------------------------------------------------------------------------------------------ errors
def test_a_missing_bucket_is_named_and_never_created(s3_server):
    options = s3_server.storage_options()
    model = kerasckpt.Sequential([layers.Input(shape=(3,)), layers.Dense(2)])
    with pytest.raises(CheckpointNotFoundError, match=r"bucket 'kc-missing-bucket' does not exist.*never creates"):
        model.save("s3://kc-missing-bucket/run/model.keras", storage_options=options)
    callback = kerasckpt.callbacks.ModelCheckpoint("s3://kc-missing-bucket/m.{epoch}.keras", monitor="loss",
                                                   storage_options=options)
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(CheckpointNotFoundError, match="kc-missing-bucket"):
        model.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), verbose=0, callbacks=[callback])
    buckets = [b["Name"] for b in s3_server.client().list_buckets()["Buckets"]]
    assert "kc-missing-bucket" not in buckets


def test_missing_credentials_get_one_line_saying_what_to_set(s3, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata lookup off this machine
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    options = {"client_kwargs": {"endpoint_url": s3.server.endpoint, "region_name": s3server.REGION}}
    with pytest.raises(StorageAccessError, match=r"s3://.*no credentials.*AWS_ACCESS_KEY_ID") as info:
        kerasckpt.Sequential([layers.Input(shape=(3,)), layers.Dense(2)]).save(s3.url("m.keras"),
                                                                              storage_options=options)
    assert "\n" not in str(info.value) and isinstance(info.value, PermissionError)


def test_retries_do_not_stack_and_the_error_names_the_url(s3_server):
    """One retry layer: botocore's. s3fs's loop makes one attempt and aiohttp none, so 3 attempts, not 3 x 5."""
    endpoint = f"http://127.0.0.1:{s3server.free_port()}"  # nothing listens there
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint},
               "config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": 3}}}
    sends = []
    fs = _storage.store("s3://kc-down/x", options).fs
    fs.s3.meta.events.register("before-send.s3", lambda **kw: sends.append(kw["request"].url))
    with pytest.raises(StorageConnectionError, match=r"s3://kc-down/run/model\.keras.*cannot be reached") as info:
        kerasckpt.Sequential([layers.Input(shape=(3,)), layers.Dense(2)]).save(
            "s3://kc-down/run/model.keras", storage_options=options)
    assert len(sends) == 3, sends
    assert isinstance(info.value, ConnectionError)


# ------------------------------------------------------------------------------------------------ conditions
def test_conditional_writes_detect_a_second_writer(s3):
    url, options = s3.url("run", "checkpoint"), s3.storage_options
    first = _storage.write_bytes(url, b"writer A, version 1", options, if_none_match=True)
    with pytest.raises(StorageConflictError, match="another writer"):
        _storage.write_bytes(url, b"writer B, version 1", options, if_none_match=True)
    second = _storage.write_bytes(url, b"writer A, version 2", options, if_match=first)
    with pytest.raises(StorageConflictError, match=r"run/checkpoint"):
        _storage.write_bytes(url, b"writer B, version 2", options, if_match=first)  # B read version 1
    assert s3.get("run/checkpoint") == b"writer A, version 2" and second == _storage.identity(url, options)
    # a request retried after its first attempt had succeeded: the object already holds exactly these bytes
    assert _storage.write_bytes(s3.url("once"), b"x", options, if_none_match=True)
    assert _storage.write_bytes(s3.url("once"), b"x", options, if_none_match=True)


# ------------------------------------------------------------------------------------------------ readers
def test_overwriting_the_best_model_never_leaves_a_moment_without_one(s3):
    url, options = s3.url("best.weights.h5"), s3.storage_options
    model = wide_model()
    model.save_weights(url, storage_options=options)
    seen, errors, stop = [], [], threading.Event()

    def reader():
        probe = wide_model(seed=5)
        while not stop.is_set():
            try:
                probe.load_weights(url, storage_options=options)
                seen.append(float(probe.layers[0].bias.numpy()[0]))
            except Exception as err:  # noqa: BLE001 (any failure is what the test looks for)
                errors.append(err)
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for generation in range(1, 5):
            model.layers[0].bias.assign(np.full((WIDE[1],), generation, np.float32))
            model.save_weights(url, storage_options=options)
    finally:
        stop.set()
        thread.join()
    assert errors == [] and seen and set(seen) <= {0.0, 1.0, 2.0, 3.0, 4.0}


# ------------------------------------------------------------------------------------------------ faults
@pytest.mark.slow
def test_the_server_stops_and_restarts_in_the_middle_of_a_save(monkeypatch):
    server = s3server.start(s3server.InProcessS3Server)
    try:
        base = server.make_bucket("kc-restart")
        options = server.storage_options(config_kwargs={"retries": {"mode": "standard", "total_max_attempts": 8},
                                                        "connect_timeout": 2, "read_timeout": 5})
        model, url = wide_model(), f"{base}/best.keras"
        model.save(url, storage_options=options)
        previous = server.client().get_object(Bucket="kc-restart", Key="best.keras")["Body"].read()
        real = _storage.ImageFile.parts
        outage = s3server.outage_during_uploads(monkeypatch, server)  # the first part is up: away, back after 1 s
        model.layers[0].kernel.assign(np.full(WIDE, 0.5, np.float32))
        model.save(url, storage_options=options)  # rides out the outage on the retries
        assert outage
        restored = kerasckpt.models.load_model(url, storage_options=options)
        assert _same(model, restored)

        # The server goes away for good: the save fails in fit(), naming the URL; once the server is back the
        # previous file is intact and loads.
        monkeypatch.setattr(_storage.ImageFile, "parts", real)
        saved = server.client().get_object(Bucket="kc-restart", Key="best.keras")["Body"].read()
        assert saved != previous
        server.stop()
        down = server.storage_options(config_kwargs={"retries": {"mode": "standard", "total_max_attempts": 2},
                                                     "connect_timeout": 1})
        callback = kerasckpt.callbacks.ModelCheckpoint(url, monitor="loss", storage_options=down)
        with pytest.raises(StorageConnectionError, match="s3://kc-restart/best.keras"):
            model.fit(np.ones((4, WIDE[0]), "float32"), np.ones((4, WIDE[1]), "float32"), verbose=0,
                      callbacks=[callback])
        server.start()
        assert server.client().get_object(Bucket="kc-restart", Key="best.keras")["Body"].read() == saved
        assert _same(restored, kerasckpt.models.load_model(url, storage_options=options))
    finally:
        server.stop()


KILLED_SAVER = r'''
import sys
import numpy as np
import kerasckpt
from kerasckpt import _storage, layers
_storage.PART_SIZE = _storage.SINGLE_PUT_MAX = 5 << 20
url, endpoint, background = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}
model = kerasckpt.Sequential([layers.Input(shape=(1000,)), layers.Dense(3000)])
model.compile(optimizer="sgd", loss="mse")
callback = kerasckpt.callbacks.ModelCheckpoint(url, monitor="loss", save_in_background=background,
                                               storage_options=options)
callback.set_model(model)
callback.on_train_begin()
for generation in range(1, 1000):
    model.layers[0].kernel.assign(np.full((1000, 3000), generation, np.float32))
    model.layers[0].bias.assign(np.full((3000,), -generation, np.float32))
    callback.on_epoch_end(generation - 1, {"loss": 1.0 / generation})
    if generation == 2:
        callback.wait_until_finished()
        print("ready", flush=True)
'''


@pytest.mark.slow
@pytest.mark.parametrize("name,background", [("best.keras", False), ("best.weights.h5", True)])
def test_savers_killed_at_random_moments_never_lose_the_best_file(s3, tmp_path, name, background):
    script = tmp_path / "saver.py"
    script.write_text(KILLED_SAVER)
    url = s3.url(name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    rng = np.random.default_rng(len(name) + background)
    for delay in rng.uniform(0.05, 1.5, size=3):
        kill_when_ready([sys.executable, str(script), url, s3.server.endpoint, "1" if background else "0"], delay,
                        env=env)
        probe = wide_model(seed=3)
        if name.endswith(".weights.h5"):
            probe.load_weights(url, storage_options=s3.storage_options)
        else:
            probe = kerasckpt.models.load_model(url, storage_options=s3.storage_options)
        generation = float(probe.layers[0].kernel.numpy()[0, 0])
        assert generation >= 2 and np.all(probe.layers[0].kernel.numpy() == generation)
        assert np.all(probe.layers[0].bias.numpy() == -generation)  # one whole generation, never a mix


# ------------------------------------------------------------------------------------------------ the CLI
@pytest.mark.slow
def test_the_command_line_tool_reads_verifies_and_writes_urls(s3):
    model = kerasckpt.Sequential([layers.Input(shape=(4,)), layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    model.save(s3.url("run", "model.keras"), storage_options=s3.storage_options)
    model.save_weights(s3.url("run", "sub", "w.weights.h5"), storage_options=s3.storage_options)
    env = {**os.environ, **s3.server.env(), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "kerasckpt", *argv], capture_output=True, text=True, env=env,
                              timeout=120)
    out = cli("verify", s3.url("run"))
    assert out.returncode == 0 and "All 2 intact" in out.stdout, out.stderr
    out = cli("convert", s3.url("run", "model.keras"), s3.url("out", "model.h5"))
    assert out.returncode == 0, out.stderr
    assert _same(model, kerasckpt.models.load_model(s3.url("out", "model.h5"), storage_options=s3.storage_options))
    out = cli("diff", s3.url("run", "model.keras"), s3.url("out", "model.h5"))
    assert out.returncode == 0, out.stderr
    damaged = bytearray(s3.get("run/sub/w.weights.h5"))
    damaged[-100] ^= 0xFF
    s3.put("run/sub/w.weights.h5", bytes(damaged))  # no upload checksum: the file's own checksums catch it
    out = cli("verify", s3.url("run", "sub", "w.weights.h5"))
    assert out.returncode == 1 and "w.weights.h5" in out.stdout
    out = cli("inspect", s3.url("run", "nope.keras"))
    assert out.returncode == 2 and "no such file: 's3://" in out.stderr
    out = cli("--storage-options", '{"anon": true, "client_kwargs": {"endpoint_url": "%s"}}' % s3.server.endpoint,
              "inspect", s3.url("run", "model.keras"))
    # the options reach the store: unsigned requests are refused, in one line naming the URL
    assert out.returncode == 2 and "access denied" in out.stderr and "run/model.keras" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
