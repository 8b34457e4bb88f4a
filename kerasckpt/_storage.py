"""Where bytes go: a local path, or an fsspec URL (`s3://`, `gs://`, `memory://`, ...), with the same guarantees.

Format modules never open files or URLs themselves: they write into the file `atomic_file` yields and
read from the descriptor `open_read` yields, and ask this module whether a path exists, what a directory
holds and how names join. Locally that is `_fileio` (temp file, fsync, rename). On a store without rename
a file is laid out in memory (`ImageFile`: small writes copied, the arrays only referenced) and uploaded
when it is complete: S3 in a multipart upload streamed from the arrays, aborted on any failure, so the
object appears whole or not at all; other stores in one `pipe_file`. Downloads land in anonymous memory
(a descriptor the readers use as a local file), checked against the CRC-32 recorded at upload as they
stream. Writes can be conditional (`write_bytes(if_match=, if_none_match=)` on the `identity` that
`read_versioned` returned), which is how a second writer of a checkpoint directory is detected. `listing`
gives a directory's files with sizes and times in one request. Errors name the URL and say what to
install, set or do.
"""
# Retries: S3 requests go through botocore's "standard" retry mode only; s3fs's own retry loop is set to
# one attempt and aiohttp never retries, so a request is tried `total_max_attempts` times, not 5 x 5.
import asyncio
import bisect
import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
import zlib

from kerasckpt import _fileio
from kerasckpt.errors import (CheckpointDamagedError, CheckpointError, CheckpointIsADirectoryError,
                              CheckpointNotFoundError, StorageAccessError, StorageConflictError,
                              StorageConnectionError, StorageError, StorageUnavailableError)

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)://")
_LOCAL_PROTOCOLS = ("file", "local")
# protocol -> (package, extra of kerasckpt that installs it)
_PACKAGES = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"),
             "az": ("adlfs", "azure"), "abfs": ("adlfs", "azure"), "abfss": ("adlfs", "azure"),
             "adl": ("adlfs", "azure")}
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"}  # no directories
_CREDENTIALS = {
    "s3": "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or pass "
          "storage_options={'key': ..., 'secret': ...}",
    "gs": "Set GOOGLE_APPLICATION_CREDENTIALS, or pass storage_options={'token': ...}",
}
MAX_ATTEMPTS = 5  # tries of one S3 request (botocore's standard mode: exponential backoff with jitter)
PART_SIZE = 32 << 20  # multipart upload part size (S3 needs >= 5 MiB); grows so that no upload has > 9000 parts
PARTS_IN_FLIGHT = 4
SINGLE_PUT_MAX = 16 << 20  # objects up to this size go up in one PutObject (copied whole into its body)
DOWNLOAD_CHUNK = 8 << 20
DOWNLOAD_RESUMES = 3  # a download cut off mid-stream continues from where it stopped, this many times
_BORROW_MIN = 64 << 10  # borrowed writes from this size on are referenced, not copied
CRC_KEY = "kerasckpt-crc32"  # object metadata: CRC-32 and size of the whole object, checked on download
SIZE_KEY = "kerasckpt-size"


# ----------------------------------------------------------------------------------------- names

def protocol(path):
    """The URL scheme of `path` (`"s3"` for `"s3://bucket/key"`), or None for a local path."""
    m = _URL.match(path) if isinstance(path, str) else None
    return m.group(1).lower() if m else None


def is_url(path):
    """Whether `path` names a store other than the local disk (`file://` URLs are local paths)."""
    proto = protocol(path)
    return proto is not None and proto not in _LOCAL_PROTOCOLS


def normalize(path):
    """`path` as a str: URLs kept as they are (never `os.path`-normalized), `file://` stripped."""
    path = os.fspath(path)
    if protocol(path) in _LOCAL_PROTOCOLS:
        return path.split("://", 1)[1]
    return path


def join(base, *names):
    """`os.path.join` for local paths; `/`-joined for URLs."""
    if not is_url(base):
        return os.path.join(base, *names)
    return "/".join([base.rstrip("/")] + [n.strip("/") for n in names])


def split(path):
    """`(directory, name)`: `os.path.split` locally; for URLs the bucket stays in the directory part."""
    if not is_url(path):
        return os.path.split(path)
    head, _, tail = path.rstrip("/").rpartition("/")
    if head.endswith(":/"):  # "s3://bucket": the bucket is the directory itself
        return path.rstrip("/"), ""
    return head, tail


def dirname(path):
    return split(path)[0]


def basename(path):
    return split(path)[1]


def absolute(path):
    """An absolute local path, or the URL unchanged."""
    return path if is_url(path) else os.path.abspath(path)


# ----------------------------------------------------------------------------------------- errors

_CONNECTION_ERRORS = {"EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError",
                      "ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "ClientPayloadError",
                      "ServerTimeoutError", "FSTimeoutError", "TimeoutError", "IncompleteRead", "HTTPClientError",
                      "ConnectionError", "ProxyConnectionError"}
_CREDENTIAL_ERRORS = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
                      "NoAuthTokenError", "DefaultCredentialsError"}
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
           "AllAccessDisabled", "403", "Forbidden"}


def _code(err):
    """The store's error code and message of a failed request (s3fs raises OSErrors caused by botocore's)."""
    for candidate in (err, err.__cause__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):
            error = response.get("Error") or {}
            return str(error.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode") or ""), \
                str(error.get("Message") or "")
    return None, None


def _bucket(url):
    rest = url.split("://", 1)[1]
    return rest.split("/", 1)[0]


def translate(err, url, action):
    """The CheckpointError for `err` (raised by fsspec, s3fs, botocore, aiohttp) while `action`-ing `url`."""
    if isinstance(err, CheckpointError):
        return err
    names = {cls.__name__ for cls in type(err).__mro__}
    proto = protocol(url) or "file"
    where = f"Cannot {action} {url!r}"
    code, message = _code(err)
    if names & _CREDENTIAL_ERRORS:
        advice = _CREDENTIALS.get(_PACKAGES.get(proto, (None, proto))[1], "Pass them in storage_options=")
        return StorageAccessError(f"{where}: no credentials for the {proto}:// store were found. {advice}.")
    if code is not None:
        if code == "NoSuchBucket":
            return CheckpointNotFoundError(f"{where}: the bucket {_bucket(url)!r} does not exist. Create it first "
                                           "(kerasckpt never creates buckets), or check the URL.")
        if code in ("NoSuchKey", "404", "NotFound"):
            return CheckpointNotFoundError(f"{where}: no such object. Check the URL, or save there first.")
        if code in _DENIED:
            return StorageAccessError(f"{where}: access denied ({code}: {message or 'no details'}). Check the "
                                      "credentials and the bucket's permissions.")
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
            return StorageConflictError(f"{where}: another writer changed it first ({code}). Two writers use the same "
                                        "location: give each run its own directory.")
        return StorageError(f"{where}: the store answered {code}: {message or err}.")
    if names & _CONNECTION_ERRORS or isinstance(err, (ConnectionError, asyncio.TimeoutError)):
        return StorageConnectionError(f"{where}: the store cannot be reached ({type(err).__name__}: {err}), retries "
                                      "included. Check the endpoint and the network; nothing was replaced, so the "
                                      "previous file, if any, is intact.")
    if isinstance(err, FileNotFoundError):
        return CheckpointNotFoundError(f"{where}: not found ({err}). Check the URL, or save there first.")
    if isinstance(err, PermissionError):
        return StorageAccessError(f"{where}: permission denied ({err}). Check the credentials.")
    if isinstance(err, IsADirectoryError):
        return CheckpointIsADirectoryError(f"{where}: it is a directory. Pass the URL of a file.")
    return StorageError(f"{where}: {type(err).__name__}: {err}")


@contextlib.contextmanager
def _errors(url, action):
    try:
        yield
    except CheckpointError:
        raise
    except Exception as err:
        raise translate(err, url, action) from err


# ----------------------------------------------------------------------------------------- stores

_stores = {}
_stores_lock = threading.Lock()


def _forget_stores_after_fork():  # a forked child must not reuse the parent's connections and event loop
    global _stores_lock
    _stores.clear()
    _stores_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_stores_after_fork)


def _mtime_ns(entry):
    """The modification time in a store's description of an object (fsspec has no one key for it), in ns."""
    for key in ("LastModified", "mtime", "last_modified", "updated", "created"):
        value = entry.get(key)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            value = value.timestamp()
        elif isinstance(value, str):
            import datetime
            try:
                value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
        return int(float(value) * 1e9)
    return 0


def _freeze(options):
    return json.dumps(options or {}, sort_keys=True, default=repr)


def store(url, storage_options=None):
    """The `RemoteStore` for `url` (one per protocol and `storage_options`); a missing package is refused."""
    proto = protocol(url)
    key = (proto, _freeze(storage_options))
    with _stores_lock:
        found = _stores.get(key)
    if found is not None:
        return found
    package, extra = _PACKAGES.get(proto, (None, "fsspec"))
    try:
        import fsspec
    except ImportError:
        raise StorageUnavailableError(
            f"Cannot use {url!r}: URLs need the package fsspec, which is not installed. Install it with "
            f"pip install \"kerasckpt[{extra}]\"; nothing was written.") from None
    try:
        cls = fsspec.get_filesystem_class(proto)
    except ImportError:
        package = package or "the fsspec implementation of that protocol"
        raise StorageUnavailableError(
            f"Cannot use {url!r}: the {proto}:// protocol needs the package {package}, which is not installed. "
            f"Install it with pip install \"kerasckpt[{extra}]\"; nothing was written.") from None
    except ValueError:
        from fsspec.registry import known_implementations
        raise ValueError(f"Cannot use {url!r}: {proto!r} is not a storage protocol fsspec knows. Known protocols "
                         f"include {', '.join(sorted(known_implementations)[:12])}, ... Check the URL.") from None
    options = dict(storage_options or {})
    s3 = proto in ("s3", "s3a")
    if s3:  # one retry layer: botocore's (see the note at the top)
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("retries", {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS})
        options["config_kwargs"] = config
    with _errors(url, "connect to the store of"):
        fs = cls(skip_instance_cache=True, **options)
    if s3:
        fs.retries = 1
    found = (S3Store if s3 else RemoteStore)(proto, fs)
    with _stores_lock:
        return _stores.setdefault(key, found)


class RemoteStore:
    """An fsspec filesystem, with kerasckpt's rules: atomic uploads, no directories made on object stores."""

    def __init__(self, proto, fs):
        self.protocol, self.fs = proto, fs
        self.has_directories = proto not in _OBJECT_STORES

    def path(self, url):
        return self.fs._strip_protocol(url)

    def info(self, url):
        """The store's description of `url` (a dict with "type" and "size"), or None when nothing is there."""
        with _errors(url, "look up"):
            try:
                return self.fs.info(self.path(url))
            except FileNotFoundError:
                return None

    def _ls(self, url):
        """`{name: the store's description}` of what is directly under the directory `url` (fresh, not cached)."""
        with _errors(url, "list"):
            try:
                self.fs.invalidate_cache(self.path(url))
                entries = self.fs.ls(self.path(url), detail=True)
            except FileNotFoundError:
                return {}
        base = self.path(url).rstrip("/")
        return {e["name"].rstrip("/").rsplit("/", 1)[-1]: e for e in entries if e["name"].rstrip("/") != base}

    def listdir(self, url):
        """The names directly under the directory `url`; [] when there is none."""
        return sorted(self._ls(url))

    def listing(self, url):
        """`{name: (size, mtime_ns)}` of the files directly under the directory `url`; {} when there is none."""
        return {name: (e.get("size") or 0, _mtime_ns(e)) for name, e in self._ls(url).items()
                if e.get("type") != "directory"}

    def remove(self, url):
        """Delete the object at `url`; a missing one is not an error."""
        with _errors(url, "delete"):
            try:
                self.fs.rm_file(self.path(url))
            except FileNotFoundError:
                pass

    def prepare_directory(self, url):
        """Make `url` ready to hold files: real directories are created; object stores need none."""
        if self.has_directories:
            with _errors(url, "create the directory"):
                self.fs.makedirs(self.path(url), exist_ok=True)

    def token(self, url):
        """What identifies the current content of `url` (ETag, checksum, or size and time), None when absent."""
        info = self.info(url)
        if info is None or info.get("type") == "directory":
            return None
        for key in ("ETag", "etag", "md5Hash", "crc32c", "checksum"):
            if info.get(key):
                return str(info[key])
        return json.dumps([info.get("size"), str(info.get("mtime") or info.get("LastModified") or info.get("created"))])

    def read_bytes(self, url):
        with _errors(url, "read"):
            return self.fs.cat_file(self.path(url))

    def read_versioned(self, url):
        """`(bytes, token)` of the object at `url`, or `(None, None)` when there is none.

        Stores without conditional reads look the token up first: a write in between makes it stale, which
        the conditional write that uses it then refuses (it can only err towards a conflict).
        """
        token = self.token(url)
        if token is None:
            return None, None
        try:
            return self.read_bytes(url), token
        except CheckpointNotFoundError:
            return None, None

    def download(self, url, fd):
        """Write the object's bytes into the descriptor `fd`; returns its size."""
        data = self.read_bytes(url)
        _fileio.pwrite_all(fd, memoryview(data), 0)
        return len(data)

    def upload(self, url, image, if_match=None, if_none_match=False):
        """Make `image` (an `ImageFile` or bytes) the object at `url`, whole or not at all; returns its token.

        `if_match` (a token) / `if_none_match` make the write conditional. Stores without conditional
        writes check before writing, which catches a second writer unless both write at the same moment.
        """
        data = image.getvalue() if isinstance(image, ImageFile) else bytes(image)
        if if_match is not None or if_none_match:
            current = self.token(url)
            if (if_none_match and current is not None) or (if_match is not None and current != if_match):
                raise StorageConflictError(
                    f"Cannot write {url!r}: another writer changed it since this one last wrote or read it. Two "
                    "writers use the same location: give each run its own directory.")
        with _errors(url, "write"):
            self.fs.pipe_file(self.path(url), data)
        return self.token(url)


class S3Store(RemoteStore):
    """S3 through s3fs's client: streamed multipart uploads (aborted on failure), conditional writes, verified reads."""

    def __init__(self, proto, fs):
        super().__init__(proto, fs)
        self._buckets = set()

    def _run(self, coro_fn, *args):
        from fsspec.asyn import sync
        return sync(self.fs.loop, coro_fn, *args)

    def _split(self, url):
        bucket, key, _ = self.fs.split_path(url)
        return bucket, key

    def _head(self, url):
        """HeadObject's answer for `url`, or None when there is no such object (one request)."""
        bucket, key = self._split(url)
        with _errors(url, "look up"):
            try:
                return self._run(self.fs._call_s3, "head_object", dict(Bucket=bucket, Key=key))
            except Exception as err:
                if _code(err)[0] not in ("404", "NoSuchKey", "NotFound"):
                    raise
        self.check_bucket(url)
        return None

    def info(self, url):
        bucket, key = self._split(url)
        if not key:
            return {"type": "directory", "size": 0, "name": bucket}
        head = self._head(url)
        if head is not None:
            return {"type": "file", "size": head["ContentLength"], "ETag": head["ETag"], "name": url}
        with _errors(url, "look up"):
            listed = self._run(self.fs._call_s3, "list_objects_v2",
                               dict(Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1))
            if listed.get("KeyCount", 0) or listed.get("Contents"):
                return {"type": "directory", "size": 0, "name": url}
            return None

    def check_bucket(self, url):
        """Raise CheckpointNotFoundError naming the bucket when it does not exist (never create it)."""
        bucket, _ = self._split(url)
        if bucket in self._buckets:
            return
        try:
            with _errors(url, "use the bucket of"):
                self._run(self.fs._call_s3, "head_bucket", dict(Bucket=bucket))
        except CheckpointNotFoundError:  # HeadBucket answers a bare 404
            raise CheckpointNotFoundError(
                f"Cannot use {url!r}: the bucket {bucket!r} does not exist. Create it first (kerasckpt never creates "
                "buckets), or check the URL.") from None
        self._buckets.add(bucket)

    def prepare_directory(self, url):
        self.check_bucket(url)  # s3fs's makedirs would create a missing bucket: kerasckpt only checks

    def _list(self, url):
        """`(objects, subdirectories)` directly under the directory `url`: `{name: listed object}`, `{name}`."""
        bucket, key = self._split(url)
        prefix = key.rstrip("/") + "/" if key else ""
        objects, subdirs = {}, set()
        with _errors(url, "list"):
            token = None
            while True:
                kw = dict(Bucket=bucket, Prefix=prefix, Delimiter="/")
                if token:
                    kw["ContinuationToken"] = token
                page = self._run(self.fs._call_s3, "list_objects_v2", kw)
                objects.update((o["Key"][len(prefix):], o) for o in page.get("Contents", []))
                subdirs.update(p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", []))
                token = page.get("NextContinuationToken")
                if not page.get("IsTruncated") or not token:
                    break
        objects.pop("", None)
        subdirs.discard("")
        if not objects and not subdirs:
            self.check_bucket(url)
        return objects, subdirs

    def listdir(self, url):
        objects, subdirs = self._list(url)
        return sorted(set(objects) | subdirs)

    def listing(self, url):
        objects, _ = self._list(url)
        return {name: (o.get("Size") or 0, _mtime_ns({"LastModified": o.get("LastModified")}))
                for name, o in objects.items()}

    def remove(self, url, if_match=None):
        bucket, key = self._split(url)
        kw = dict(Bucket=bucket, Key=key)
        if if_match is not None:
            kw["IfMatch"] = if_match
        with _errors(url, "delete"):
            self._run(self.fs._call_s3, "delete_object", kw)

    def token(self, url):
        if not self._split(url)[1]:
            return None
        head = self._head(url)
        return None if head is None else head["ETag"]

    # ------------------------------------------------------------------ reading
    def read_bytes(self, url):
        return self._read(url)[0]

    def read_versioned(self, url):
        try:
            return self._read(url)
        except CheckpointNotFoundError:
            self.check_bucket(url)
            return None, None

    def _read(self, url):
        """`(bytes, ETag)` of the object at `url`, checked as `download` checks it."""
        fd = memory_file()
        try:
            size, etag = self._download_versioned(url, fd)
            return (os.pread(fd, size, 0) if size else b""), etag
        finally:
            os.close(fd)

    def download(self, url, fd):
        return self._download_versioned(url, fd)[0]

    def _download_versioned(self, url, fd):
        bucket, key = self._split(url)
        with _errors(url, "read"):
            return self._run(self._download, url, bucket, key, fd)

    async def _download(self, url, bucket, key, fd):
        """Stream the object into `fd`, its CRC-32 computed chunk by chunk; resumes a cut-off stream."""
        pos, crc, etag, size, expected = 0, 0, None, None, None
        for attempt in range(DOWNLOAD_RESUMES + 1):
            kw = dict(Bucket=bucket, Key=key)
            if etag is not None:  # continue the same version only
                kw.update(Range=f"bytes={pos}-", IfMatch=etag)
            response = await self.fs._call_s3("get_object", kw)
            if etag is None:
                etag, size = response["ETag"], response["ContentLength"]
                meta = {k.lower(): v for k, v in (response.get("Metadata") or {}).items()}
                expected = (int(meta[CRC_KEY], 16), int(meta[SIZE_KEY])) if CRC_KEY in meta and SIZE_KEY in meta \
                    else None
                os.ftruncate(fd, size)
            body = response["Body"]
            try:
                while pos < size:
                    chunk = await body.read(DOWNLOAD_CHUNK)
                    if not chunk:
                        break
                    _fileio.pwrite_all(fd, chunk, pos)
                    crc = zlib.crc32(chunk, crc)
                    pos += len(chunk)
            except Exception as err:
                if not {c.__name__ for c in type(err).__mro__} & _CONNECTION_ERRORS or attempt == DOWNLOAD_RESUMES:
                    raise
                continue
            finally:
                body.close()
            if pos == size:
                break
        if pos != size:
            raise StorageConnectionError(f"Cannot read {url!r}: the download stopped at byte {pos} of {size}. "
                                         "Check the network and try again.")
        if expected is not None and (size, crc & 0xFFFFFFFF) != (expected[1], expected[0]):
            raise CheckpointDamagedError(
                f"{url!r} is damaged: its {size} bytes do not match the CRC-32 and size recorded when it was uploaded. "
                "Restore it from a backup or save it again.")
        return size, etag

    # ------------------------------------------------------------------ writing
    def upload(self, url, image, if_match=None, if_none_match=False):
        bucket, key = self._split(url)
        if not key:
            raise CheckpointIsADirectoryError(f"Cannot write {url!r}: it names a bucket, not an object. Pass a URL "
                                              "such as 's3://bucket/run/model.keras'.")
        if not isinstance(image, ImageFile):
            image = ImageFile.of(image)
        self.check_bucket(url)
        with _errors(url, "write"):
            return self._run(self._upload, url, bucket, key, image, if_match, if_none_match)

    async def _upload(self, url, bucket, key, image, if_match, if_none_match):
        size = image.size()
        metadata = {CRC_KEY: f"{image.crc32():08x}", SIZE_KEY: str(size)}
        condition = {}
        if if_match is not None:
            condition["IfMatch"] = if_match
        elif if_none_match:
            condition["IfNoneMatch"] = "*"
        if size <= SINGLE_PUT_MAX or if_match is not None:
            body = image.getvalue()
            try:
                response = await self.fs._call_s3("put_object", dict(Bucket=bucket, Key=key, Body=body,
                                                                     Metadata=metadata, **condition))
            except Exception as err:
                if _code(err)[0] in ("PreconditionFailed", "412") and await self._wrote_it(bucket, key, body):
                    return self._md5_etag(body)  # a retried request that had succeeded the first time
                raise
            return response.get("ETag")
        mpu = await self.fs._call_s3("create_multipart_upload", dict(Bucket=bucket, Key=key, Metadata=metadata))
        upload_id = mpu["UploadId"]
        try:
            parts = await self._upload_parts(bucket, key, upload_id, image)
            response = await self.fs._call_s3("complete_multipart_upload", dict(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, **condition))
            return response.get("ETag")
        except BaseException:
            # Never publish a partial object: the upload is dropped, the previous object stays.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.fs._call_s3("abort_multipart_upload",
                                                      dict(Bucket=bucket, Key=key, UploadId=upload_id)))
            raise

    async def _upload_parts(self, bucket, key, upload_id, image):
        part_size = max(PART_SIZE, -(-image.size() // 9000))
        slots = asyncio.Semaphore(PARTS_IN_FLIGHT)
        tasks = []

        async def send(number, body):
            try:
                response = await self.fs._call_s3("upload_part", dict(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body))
                return {"PartNumber": number, "ETag": response["ETag"]}
            finally:
                slots.release()

        try:
            for number, body in enumerate(image.parts(part_size), 1):
                await slots.acquire()
                if any(t.done() and t.exception() is not None for t in tasks):
                    slots.release()
                    break
                tasks.append(asyncio.ensure_future(send(number, body)))
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _wrote_it(self, bucket, key, body):
        try:
            head = await self.fs._call_s3("head_object", dict(Bucket=bucket, Key=key))
        except Exception:
            return False
        return head.get("ETag", "").strip('"') == self._md5_etag(body).strip('"')

    @staticmethod
    def _md5_etag(body):
        return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'


# ----------------------------------------------------------------------------------------- images

class ImageFile:
    """A file laid out in memory before it is uploaded: small writes are copied, large borrowed buffers referenced.

    The writers treat it like a descriptor (`pwrite`, `pread_into`, `truncate`, `size`), as they treat
    `_fileio.FdFile`; holes read as zeros. `pieces()` gives the content in order without copying the
    referenced arrays, so an upload streams from them (`parts()` copies one part at a time).
    """

    def __init__(self):
        self._starts = []  # sorted start offsets of the segments
        self._segments = []  # bytearray (owned) or memoryview (borrowed), parallel to _starts
        self._size = 0

    @classmethod
    def of(cls, data):
        image = cls()
        image.pwrite(memoryview(data).cast("B"), 0, borrow=True)
        return image

    def size(self):
        return self._size

    def writeback(self):
        pass

    def _cut(self, start, stop):
        """Remove [start, stop) from the segments (splitting those that straddle an end)."""
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        new_starts, new_segments = self._starts[:i], self._segments[:i]
        while i < len(self._starts) and self._starts[i] < stop:
            s, seg = self._starts[i], self._segments[i]
            end = s + len(seg)
            if end <= start:
                new_starts.append(s)
                new_segments.append(seg)
            else:
                if s < start:
                    new_starts.append(s)
                    new_segments.append(seg[:start - s])
                if end > stop:
                    new_starts.append(stop)
                    new_segments.append(seg[stop - s:])
            i += 1
        self._starts = new_starts + self._starts[i:]
        self._segments = new_segments + self._segments[i:]

    def pwrite(self, view, offset, borrow=False):
        """Put the bytes of `view` at `offset`; with `borrow`, keep a reference (the buffer must not change)."""
        view = memoryview(view).cast("B")
        n = len(view)
        if not n:
            return
        i = bisect.bisect_right(self._starts, offset) - 1
        if i >= 0 and isinstance(self._segments[i], bytearray):
            s, seg = self._starts[i], self._segments[i]
            if offset + n <= s + len(seg):  # inside an owned segment: overwrite in place
                seg[offset - s:offset - s + n] = view
                return
        self._cut(offset, offset + n)
        i = bisect.bisect_right(self._starts, offset) - 1
        data = view if borrow and n >= _BORROW_MIN else bytearray(view)
        prev = self._segments[i] if i >= 0 else None
        if isinstance(data, bytearray) and isinstance(prev, bytearray) and self._starts[i] + len(prev) == offset:
            prev += data  # appending to an owned segment: h5py and the zip writer mostly write in order
        else:
            self._starts.insert(i + 1, offset)
            self._segments.insert(i + 1, data)
        self._size = max(self._size, offset + n)

    def truncate(self, size):
        self._cut(size, max(size, self._size) + 1)
        self._size = size

    def pread_into(self, view, offset):
        """Fill `view` from `offset` (holes read as zeros); returns the number of bytes read."""
        view = memoryview(view).cast("B")
        n = max(0, min(len(view), self._size - offset))
        view[:n] = b"\0" * n if n < (1 << 20) else bytes(n)
        i = max(0, bisect.bisect_right(self._starts, offset) - 1)
        while i < len(self._starts) and self._starts[i] < offset + n:
            s, seg = self._starts[i], self._segments[i]
            lo, hi = max(s, offset), min(s + len(seg), offset + n)
            if lo < hi:
                view[lo - offset:hi - offset] = memoryview(seg)[lo - s:hi - s]
            i += 1
        return n

    def pieces(self):
        """The content from byte 0 to the end, in order, as memoryviews (holes as zeros)."""
        pos = 0
        for s, seg in zip(self._starts, self._segments):
            if s >= self._size:
                break
            if s > pos:
                yield from _zeros(s - pos)
            seg = memoryview(seg)[:self._size - s]
            yield seg
            pos = s + len(seg)
        if pos < self._size:
            yield from _zeros(self._size - pos)

    def parts(self, part_size):
        """The content in `bytearray`s of `part_size` bytes (the last one shorter)."""
        part = bytearray()
        for piece in self.pieces():
            while len(piece):
                take = min(len(piece), part_size - len(part))
                part += piece[:take]
                piece = piece[take:]
                if len(part) == part_size:
                    yield part
                    part = bytearray()
        if part or not self._size:
            yield part

    def getvalue(self):
        return b"".join(bytes(p) for p in self.pieces())

    def crc32(self):
        pieces = list(self.pieces())
        value = 0
        for piece, crc in zip(pieces, _fileio.checksum_many(pieces)):
            value = _fileio.crc32_combine(value, crc, len(piece))
        return value


def _zeros(n, chunk=1 << 20):
    block = memoryview(bytes(min(n, chunk)))
    while n > 0:
        yield block[:min(n, chunk)]
        n -= chunk


def memory_file():
    """A read-write descriptor of an anonymous file in memory (a temp file where memfd is missing)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("kerasckpt", getattr(os, "MFD_CLOEXEC", 0))
    with tempfile.TemporaryFile() as f:
        return os.dup(f.fileno())


# ----------------------------------------------------------------------------------------- the entry points

def _remote(path, storage_options):
    return store(path, storage_options) if is_url(path) else None


def info(path, storage_options=None):
    """`{"type": "file" | "directory", "size": n}` of `path`, or None when nothing is there (one request on a store)."""
    remote = _remote(path, storage_options)
    if remote is not None:
        found = remote.info(path)
        return None if found is None else {"type": "directory" if found["type"] == "directory" else "file",
                                           "size": found.get("size") or 0}
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"type": "directory" if stat.S_ISDIR(st.st_mode) else "file", "size": st.st_size}


def is_directory_in_the_way(path, storage_options=None):
    """Whether a directory stands at `path`, where a file is to be written.

    Object stores have no directories (an object and keys under its name coexist), so for them this is
    False without a request: a save to a store costs no lookups before its upload.
    """
    remote = _remote(path, storage_options)
    if remote is None:
        return os.path.isdir(path)
    return remote.has_directories and isdir(path, storage_options)


def exists(path, storage_options=None):
    remote = _remote(path, storage_options)
    return os.path.exists(path) if remote is None else remote.info(path) is not None


def isdir(path, storage_options=None):
    remote = _remote(path, storage_options)
    if remote is None:
        return os.path.isdir(path)
    info = remote.info(path)
    return info is not None and info["type"] == "directory"


def isfile(path, storage_options=None):
    remote = _remote(path, storage_options)
    if remote is None:
        return os.path.isfile(path)
    return remote.token(path) is not None  # on S3 one HeadObject


def listdir(path, storage_options=None):
    """The names in the directory `path` (sorted for URLs); raises OSError locally when it is not one."""
    remote = _remote(path, storage_options)
    return os.listdir(path or ".") if remote is None else remote.listdir(path)


def listing(directory, storage_options=None):
    """`{name: (size, mtime_ns)}` of the files directly in `directory`; {} when there is none.

    One request on a store. Object stores keep coarser times (S3: whole seconds): compare them with `<=`.
    """
    remote = _remote(directory, storage_options)
    if remote is not None:
        return remote.listing(directory)
    out = {}
    try:
        with os.scandir(directory or ".") as entries:
            for entry in entries:
                try:
                    if entry.is_file():
                        st = entry.stat()
                        out[entry.name] = (st.st_size, st.st_mtime_ns)
                except OSError:  # deleted meanwhile
                    continue
    except OSError:
        return {}
    return out


def isabs(path):
    """Whether `path` is absolute: a URL, or an absolute local path."""
    return is_url(path) or os.path.isabs(path)


def remove(path, storage_options=None):
    remote = _remote(path, storage_options)
    if remote is None:
        os.remove(path)
    else:
        remote.remove(path)


def makedirs(path, storage_options=None):
    """Create the directory `path` locally; on a store, check that its bucket exists (never create one)."""
    remote = _remote(path, storage_options)
    if remote is None:
        if path:
            os.makedirs(path, exist_ok=True)
    else:
        remote.prepare_directory(path)


def makedirs_for(path, storage_options=None):
    """`makedirs` of the directory holding `path` (on an object store: check the bucket of `path`)."""
    remote = _remote(path, storage_options)
    if remote is not None and not remote.has_directories:
        remote.prepare_directory(path)  # errors name the file, not its "directory"
    elif dirname(path):
        makedirs(dirname(path), storage_options)


def identity(path, storage_options=None):
    """What tells one version of a file from another: `[inode, mtime_ns, size]` locally, the ETag remotely."""
    remote = _remote(path, storage_options)
    if remote is None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return [st.st_ino, st.st_mtime_ns, st.st_size]
    return remote.token(path)


@contextlib.contextmanager
def atomic_file(path, storage_options=None):
    """A file to write `path` into, which replaces `path` atomically once it is complete.

    Locally an `_fileio.FdFile` of a temp file beside `path` (fsync, rename; see `_fileio.atomic_fd`); on a
    store an `ImageFile`, uploaded whole when the block ends without an exception (S3: a multipart upload
    streamed from the referenced arrays, aborted on failure). Either way an exception or a crash before the
    end leaves any previous `path` untouched.
    """
    remote = _remote(path, storage_options)
    if remote is None:
        with _fileio.atomic_fd(path) as fd:
            yield _fileio.FdFile(fd)
        return
    image = ImageFile()
    yield image
    remote.upload(path, image)


def write_bytes(path, data, storage_options=None, if_match=None, if_none_match=False):
    """Write `data` to `path` atomically; returns the new `identity`.

    On a store `data` may also be an `ImageFile` (streamed), and the write is conditional with `if_match`
    (the identity it must replace) or `if_none_match` (only where nothing is), raising StorageConflictError
    otherwise (see `RemoteStore.upload`). Locally the conditions are not checked.
    """
    remote = _remote(path, storage_options)
    if remote is None:
        _fileio.atomic_write_bytes(path, data)
        return identity(path)
    return remote.upload(path, data, if_match=if_match, if_none_match=if_none_match)


def read_versioned(path, storage_options=None):
    """`(bytes, identity)` of `path` read at one moment, or `(None, None)` when there is nothing there."""
    remote = _remote(path, storage_options)
    if remote is not None:
        return remote.read_versioned(path)
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            return f.read(), [st.st_ino, st.st_mtime_ns, st.st_size]
    except (FileNotFoundError, NotADirectoryError):
        return None, None


def open_descriptor(path, storage_options=None):
    """A read-only descriptor of `path` (the caller closes it): the file, or the object downloaded into memory.

    A download is checked as it streams against the CRC-32 recorded at upload (see `S3Store._download`).
    """
    remote = _remote(path, storage_options)
    if remote is None:
        return os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    fd = memory_file()
    try:
        remote.download(path, fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def open_read(path, storage_options=None):
    """`open_descriptor` as a context manager that closes the descriptor."""
    fd = open_descriptor(path, storage_options)
    try:
        yield fd
    finally:
        os.close(fd)


def read_bytes(path, storage_options=None):
    remote = _remote(path, storage_options)
    if remote is None:
        with open(path, "rb") as f:
            return f.read()
    return remote.read_bytes(path)


class AppendFile:
    """A text file written at its end, flushed row by row (`CSVLogger`): `write`, `flush`, `size`, `truncate`, `close`.

    Locally the file itself, opened for appending. On a store, which cannot append, the content is kept in
    memory and every `flush` uploads it whole (atomically), so the object always holds complete rows.
    """

    def __init__(self, path, storage_options=None):
        self.path, self._options = path, storage_options
        self._remote = is_url(path)
        if self._remote:
            self._data = bytearray(read_bytes(path, storage_options) if exists(path, storage_options) else b"")
            self._dirty = False
            self.closed = False
        else:
            self._file = open(path, "a")

    @property
    def closed(self):
        return self._closed if self._remote else self._file.closed

    @closed.setter
    def closed(self, value):
        self._closed = value

    def write(self, text):
        if not self._remote:
            return self._file.write(text)
        self._data += text.encode("utf-8")
        self._dirty = True
        return len(text)

    def flush(self):
        if not self._remote:
            self._file.flush()
        elif self._dirty:
            write_bytes(self.path, bytes(self._data), self._options)
            self._dirty = False

    def size(self):
        """Bytes in the file, all written text included (flushed or not)."""
        if self._remote:
            return len(self._data)
        self._file.flush()
        return os.fstat(self._file.fileno()).st_size

    def truncate(self, size):
        if self._remote:
            del self._data[size:]
            self._dirty = True
        else:
            self._file.flush()
            os.ftruncate(self._file.fileno(), size)

    def close(self):
        if self._remote:
            if not self._closed:
                self.flush()
                self._closed = True
        else:
            self._file.close()
