"""A real S3 server on the loopback interface for the storage tests: moto's standalone server, as s3fs's own
test suite uses it, started by the tests themselves (never a mock of the client library).

`S3Server` runs it in a child process (the shared server of the test session). `InProcessS3Server` runs it
on a thread of the test process, so that it can be stopped and started again on the same port while its
buckets and objects stay (they live in this process's memory). Where the server cannot start, the tests
skip, except when KERASCKPT_REQUIRE_S3=1 (set by .ci/run): then they fail.

Both accept multipart parts from `MIN_PART_SIZE` bytes on (S3's minimum is 5 MiB), so that a test can upload
a checkpoint of a few hundred KB in several parts (with `_storage.PART_SIZE` patched to match).
"""
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

REQUIRED = os.environ.get("KERASCKPT_REQUIRE_S3") == "1"
REGION = "us-east-1"
MIN_PART_SIZE = 256 << 10


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(endpoint, proc=None, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the moto server exited with status {proc.returncode}")
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the moto server at {endpoint} did not answer within {timeout:.0f} s")


class _Server:
    endpoint = None

    def storage_options(self, **extra):
        """fsspec storage_options for s3:// URLs on this server."""
        return {"key": "testing", "secret": "testing",
                "client_kwargs": {"endpoint_url": self.endpoint, "region_name": REGION}, **extra}

    def env(self):
        """The environment variables that point botocore (and so s3fs) at this server."""
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_DEFAULT_REGION": REGION}

    def client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    def make_bucket(self, name):
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"


class S3Server(_Server):
    """moto's server in a child process on 127.0.0.1."""

    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(MIN_PART_SIZE)})
        try:
            _wait_until_up(self.endpoint, self.proc)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class InProcessS3Server(_Server):
    """moto's server on a thread of this process: `stop()` closes the port, `start()` opens it again, data kept."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = None
        self.start()

    def start(self):
        import moto.s3.models
        from moto.server import DomainDispatcherApplication, create_backend_app
        moto.s3.models.S3_UPLOAD_PART_MIN_SIZE = MIN_PART_SIZE
        from werkzeug.serving import make_server
        app = DomainDispatcherApplication(create_backend_app)
        for attempt in range(50):  # the port of a server just stopped can take a moment to be free again
            try:
                self._server = make_server("127.0.0.1", self.port, app, threaded=True)
                break
            except OSError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        _wait_until_up(self.endpoint)

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def start(kind=S3Server, **kwargs):
    """A started server, or a skip (a failure under KERASCKPT_REQUIRE_S3=1) when it cannot start."""
    try:
        pytest.importorskip("s3fs") if not REQUIRED else __import__("s3fs")
        return kind(**kwargs)
    except pytest.skip.Exception:
        raise
    except Exception as err:
        message = f"cannot start moto's S3 server on 127.0.0.1 ({type(err).__name__}: {err})"
        if REQUIRED:
            pytest.fail(message + "; KERASCKPT_REQUIRE_S3=1 requires it (pip install 'moto[server]' s3fs)")
        pytest.skip(message)


def outage_during_uploads(monkeypatch, server, back_after=1.0):
    """Stop `server` once the first part of the next upload is out (multipart uploads only), and start it
    again `back_after` seconds later (None: not at all); returns the list the outage's time is added to."""
    from kerasckpt import _storage
    real, outages = _storage.ImageFile.parts, []

    def parts_with_an_outage(self, part_size):
        for n, part in enumerate(real(self, part_size)):
            if n == 1 and not outages:
                outages.append(time.monotonic())
                server.stop()
                if back_after is not None:
                    threading.Timer(back_after, server.start).start()
            yield part
    monkeypatch.setattr(_storage.ImageFile, "parts", parts_with_an_outage)
    return outages
