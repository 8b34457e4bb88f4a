"""Crash-safe file writing (temp file, flush, one fsync, rename, directory fsync) and checksums.

Shared by `checkpoint/` and `saving/`: nothing here knows about a file format. Also the worker threads
both use: checksums of large buffers on two threads, and `StreamingWriter`, which writes large
buffers while they are checksummed and the disk is already writing back.
"""
import concurrent.futures
import contextlib
import os
import secrets
import threading
import zlib

import crc32c as _crc32c

TEMP_MARK = ".kctmp-"  # temp files are `<final name>.kctmp-<pid>-<random>`; see `cleanup_temp_files`
_active = set()  # temp paths this process is writing right now (never cleaned up under its feet)


def checksum(buffer, value=0):
    """CRC-32 (zlib) of a bytes-like object, continuing from `value`.

    CRC-32 rather than Adler-32: both run at memory speed here (about 2.5 GB/s), and CRC-32
    detects every burst error up to 32 bits, where Adler-32 is weak on short inputs.
    """
    if not isinstance(buffer, (bytes, bytearray)):
        buffer = memoryview(buffer).cast("B")
    return zlib.crc32(buffer, value) & 0xFFFFFFFF


def crc32c(buffer, value=0):
    """CRC-32C (Castagnoli, TensorFlow's checksum) of a bytes-like object, continuing from `value`.

    Computed by the `crc32c` package (SSE4.2 / ARMv8 instructions, several GB/s, the GIL released on
    large buffers, any buffer without a copy).
    """
    if not isinstance(buffer, (bytes, bytearray)):
        buffer = memoryview(buffer).cast("B")
    return _crc32c.crc32c(buffer, value)


_CRC32C_MASK_DELTA = 0xA282EAD8


def mask_crc(crc):
    """TensorFlow's stored form of a CRC-32C (rotated and offset, so a CRC of CRCs is not trivial)."""
    return (((crc >> 15) | (crc << 17)) + _CRC32C_MASK_DELTA) & 0xFFFFFFFF


def unmask_crc(masked):
    rot = (masked - _CRC32C_MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


_POLYNOMIALS = {"crc32": 0xEDB88320, "crc32c": 0x82F63B78}
_shift_ops = {}  # polynomial -> [k]: the GF(2) operator that appends 2**k zero bytes to a CRC


def _gf2_times(matrix, vector):
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def crc_combine(crc1, crc2, len2, kind="crc32"):
    """The CRC of `a + b` from `crc(a)`, `crc(b)` and `len(b)` (zlib's crc32_combine, ~10 µs).

    Args:
        kind: "crc32" (zlib's) or "crc32c" (Castagnoli).
    """
    if len2 <= 0:
        return crc1
    poly = _POLYNOMIALS[kind]
    ops = _shift_ops.get(poly)
    if ops is None:
        ops = []
        op = [poly] + [1 << (n - 1) for n in range(1, 32)]
        for _ in range(3):  # 1 -> 8 zero bits
            op = [_gf2_times(op, op[n]) for n in range(32)]
        for _ in range(64):
            ops.append(op)
            op = [_gf2_times(op, op[n]) for n in range(32)]
        _shift_ops[poly] = ops
    k = 0
    while len2:
        if len2 & 1:
            t0, t1, t2, t3 = _byte_tables(poly, k, ops[k])
            crc1 = t0[crc1 & 0xFF] ^ t1[(crc1 >> 8) & 0xFF] ^ t2[(crc1 >> 16) & 0xFF] ^ t3[crc1 >> 24]
        len2 >>= 1
        k += 1
    return (crc1 ^ crc2) & 0xFFFFFFFF


_tables = {}  # (polynomial, k) -> the operator `ops[k]` applied to each value of each byte of a CRC


def _byte_tables(poly, k, op):
    """Four 256-entry tables: the operator `op` applied to a CRC is the XOR of one entry per byte.

    Built once per operator (1024 XORs); a combine then costs four lookups per set bit of the length
    instead of a 32-step product.
    """
    tables = _tables.get((poly, k))
    if tables is None:
        tables = []
        for byte in range(4):
            table = [0] * 256
            for value in range(1, 256):
                low = value & -value
                table[value] = table[value ^ low] ^ op[8 * byte + low.bit_length() - 1]
            tables.append(table)
        _tables[(poly, k)] = tables = tuple(tables)
    return tables


def crc32_combine(crc1, crc2, len2):
    """`crc_combine` for zlib's CRC-32."""
    return crc_combine(crc1, crc2, len2, "crc32")


def _checksum_fn(kind):
    """The checksum function of `kind`, looked up when called (so tests can wrap the module's functions)."""
    return {"crc32": checksum, "crc32c": crc32c}[kind]


# ----------------------------------------------------------------------------------------- threads

PARALLEL_CHUNK = 16 << 20  # buffers are checksummed in pieces of this size, two at a time
_pool_lock = threading.Lock()
_pools = {}


def cpu_pool():
    """Threads for checksums (zlib releases the GIL on large buffers)."""
    return _get_pool("cpu", max(2, min(4, os.cpu_count() or 2)))


def io_pool():
    """Threads for fsync, so that flushing to disk overlaps checksumming."""
    return _get_pool("io", 4)


def _get_pool(kind, workers):
    with _pool_lock:
        pool = _pools.get(kind)
        if pool is None:
            pool = _pools[kind] = concurrent.futures.ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix=f"kerasckpt-{kind}")
        return pool


def _reset_pools_after_fork():  # a forked child has no worker threads; never submit to the parent's pools
    global _pool_lock
    _pools.clear()
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pools_after_fork)


def checksum_many(buffers, parallel_min=PARALLEL_CHUNK, kind="crc32"):
    """The CRC of each bytes-like object; those of `parallel_min` bytes or more in pieces on two threads.

    Pieces of `PARALLEL_CHUNK` bytes are checksummed by the CPU pool and combined with
    `crc_combine`, so one huge array uses both cores as well as many medium ones do. Call it from
    any thread but the pool's own (it waits for the pool).

    Args:
        kind: "crc32" (zlib's CRC-32) or "crc32c" (TensorFlow's CRC-32C).
    """
    fn = _checksum_fn(kind)
    views = [b if isinstance(b, (bytes, bytearray)) else memoryview(b).cast("B") for b in buffers]
    pieces = [(i, start, view[start:start + PARALLEL_CHUNK]) for i, view in enumerate(views)
              if len(view) >= parallel_min for start in range(0, len(view), PARALLEL_CHUNK)]
    results = [None] * len(views)
    futures = [cpu_pool().submit(fn, piece) for _, _, piece in pieces] if len(pieces) > 1 else []
    for i, view in enumerate(views):  # the small ones here meanwhile
        if len(view) < parallel_min or len(pieces) <= 1:
            results[i] = fn(view)
    for (i, start, piece), fut in zip(pieces, futures):
        value = fut.result()
        results[i] = value if start == 0 else crc_combine(results[i], value, len(piece), kind)
    return results


WRITEBACK_EVERY = 64 << 20  # a streaming write starts the disk on what it wrote every this many bytes
POOL_MIN = 256 << 10  # pieces from this size on are checksummed on the CPU pool, smaller ones inline


def _datasync(fd):
    return (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(fd)


def pwrite_all(fd, view, offset):
    """Write all of the bytes-like `view` at `offset` of `fd` (one pwrite may write less than asked)."""
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:done + (1 << 30)], offset + done)


class FdFile:
    """A file descriptor seen as a random-access file, as writers use it (see `_storage.ImageFile`, the other kind).

    `pwrite`'s `borrow` is accepted for the same interface and ignored: the bytes are written at once.
    """

    def __init__(self, fd):
        self.fd = fd

    def pwrite(self, view, offset, borrow=False):
        pwrite_all(self.fd, view, offset)

    def pread_into(self, view, offset):
        done, view = 0, memoryview(view).cast("B")
        while done < len(view):
            n = os.preadv(self.fd, [view[done:done + (1 << 30)]], offset + done)
            if n == 0:
                break
            done += n
        return done

    def truncate(self, size):
        os.ftruncate(self.fd, size)

    def size(self):
        return os.fstat(self.fd).st_size

    def writeback(self):
        """Start the disk on what is written so far (fdatasync)."""
        _datasync(self.fd)


class StreamingWriter:
    """Writes large buffers into a file with their CRCs, keeping the CPU, page cache and disk busy at once.

    It writes into a descriptor or any random-access file of the `FdFile` interface (an in-memory
    `_storage.ImageFile` keeps a reference to each piece instead of copying it: the buffer must not
    change until that file is uploaded).
    `write` puts a buffer's bytes at an offset with pwrite, straight from the buffer, in pieces of
    `PARALLEL_CHUNK` bytes. While one piece is copied into the page cache, the CPU pool computes the
    CRC-32 of the pieces before it (from the source buffer), and every `WRITEBACK_EVERY` bytes an I/O
    thread starts the disk on what is written so far (fdatasync, one at a time), so the caller's final
    fsync finds little left to do. At 1e8 float32 parameters this beats `tofile` + fsync of the same
    bytes, which starts the disk only at the end (`benchmarks/save_speed.py`).

    Use it as a context manager around the writes, inside the descriptor's lifetime: leaving waits for
    every thread still using the descriptor, and re-raises a failed writeback (Linux reports a
    writeback error to one sync call only, so the caller's own fsync could succeed over lost data).

    Example:
        with StreamingWriter(fd) as writer:
            first = writer.write(memoryview(array).cast("B"), 4096)
            crcs = writer.checksums()   # crcs[first]: the CRC-32 of array's bytes
        os.fsync(fd)
    """

    def __init__(self, fd, kind="crc32"):
        self.file = fd if hasattr(fd, "pwrite") else FdFile(fd)
        self.kind = kind  # "crc32" (zlib's) or "crc32c" (TensorFlow's)
        self._fn = _checksum_fn(kind)
        self._parts = []  # per write() or track(): [(CRC-32 or its future, length)]
        self._syncs = []
        self._unsynced = 0

    def write(self, buffer, offset):
        """Write a bytes-like object at `offset`; returns the index of its CRC in `checksums()`."""
        view = memoryview(buffer).cast("B")
        parts = []
        for start in range(0, len(view), PARALLEL_CHUNK):
            piece = view[start:start + PARALLEL_CHUNK]
            parts.append((cpu_pool().submit(self._fn, piece) if len(piece) >= POOL_MIN else self._fn(piece),
                          len(piece)))
            self.file.pwrite(piece, offset + start, borrow=True)
            self._unsynced += len(piece)
            if self._unsynced >= WRITEBACK_EVERY and (not self._syncs or self._syncs[-1].done()):
                self._syncs.append(io_pool().submit(self.file.writeback))
                self._unsynced = 0
        self._parts.append(parts)
        return len(self._parts) - 1

    def track(self, buffer):
        """Checksum a bytes-like object written some other way; returns its index in `checksums()`."""
        self._parts.append([(self._fn(buffer), len(memoryview(buffer).cast("B")))])
        return len(self._parts) - 1

    def checksums(self):
        """The CRC of everything passed to `write` and `track`, in order (waits for the pool)."""
        out = []
        for parts in self._parts:
            value = 0
            for n, (crc, length) in enumerate(parts):
                crc = crc if isinstance(crc, int) else crc.result()
                value = crc if n == 0 else crc_combine(value, crc, length, self.kind)
            out.append(value)
        return out

    def wait(self):
        """Wait for every thread still using the descriptor (close it only after this)."""
        pending = [crc for parts in self._parts for crc, _ in parts if not isinstance(crc, int)]
        concurrent.futures.wait(pending + self._syncs)

    def close(self):
        """`wait`, then re-raise a failed writeback."""
        self.wait()
        for sync in self._syncs:
            sync.result()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close() if exc_type is None else self.wait()
        return False


def fsync_dir(path):
    """fsync a directory, so that renames and creations inside it survive a power loss."""
    try:
        fd = os.open(path or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # e.g. Windows, where directories cannot be opened; renames are durable there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path(path):
    """A fresh temporary name beside `path` (same directory, so the final rename is atomic)."""
    return f"{path}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def cleanup_temp_files(directory, startswith=""):
    """Delete temp files left in `directory` by interrupted writes; returns the names removed.

    Only files whose writing process is gone (or this process's own files that it is no longer
    writing) are removed, so a save running concurrently in another process is never disturbed.

    Args:
        directory: the directory to clean.
        startswith: only consider files whose name starts with this.
    """
    removed = []
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return removed
    for name in names:
        if TEMP_MARK not in name or not name.startswith(startswith):
            continue
        path = os.path.join(directory, name)
        try:
            pid = int(name.rsplit(TEMP_MARK, 1)[1].split("-", 1)[0])
        except ValueError:
            continue
        if path in _active or (pid != os.getpid() and _pid_alive(pid)):
            continue
        try:
            os.remove(path)
            removed.append(name)
        except OSError:
            pass
    return removed


def claim_temp(path):
    """A fresh temp name beside `path`, protected from `cleanup_temp_files` until `release_temp`."""
    tmp = temp_path(path)
    _active.add(tmp)
    return tmp


def release_temp(*paths):
    """End the protection of temp names from `claim_temp` (whether or not the files still exist)."""
    _active.difference_update(paths)


@contextlib.contextmanager
def open_temp(path):
    """Open a temp file beside `path` for binary writing; yields `(file, temp_path)`.

    On leaving normally the file is flushed, fsynced once and closed (not renamed: call
    `commit(temp_path, path)`); on an exception it is closed and deleted.
    """
    tmp = claim_temp(path)
    try:
        f = open(tmp, "xb")
        try:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    finally:
        release_temp(tmp)


def commit(tmp, path, sync_dir=True):
    """Rename a finished temp file over `path` (atomic), then fsync the directory."""
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    if sync_dir:
        fsync_dir(os.path.dirname(path))


@contextlib.contextmanager
def atomic_write(path):
    """Write `path` atomically: yields a binary file; the old `path` stays until the new one is durable.

    The data goes to a temp file in the same directory, which is flushed, fsynced once, renamed over
    `path` with `os.replace`, and the directory is fsynced. An exception (or a crash) at any point
    leaves the previous `path` untouched; an interrupted temp file is removed by
    `cleanup_temp_files`.

    Example:
        with atomic_write("run/best.keras") as f:
            f.write(payload)
    """
    with open_temp(path) as (f, tmp):
        yield f
    commit(tmp, path)


@contextlib.contextmanager
def atomic_fd(path):
    """A read-write descriptor of a temp file beside `path`, renamed over `path` once durable.

    An exception (or a crash) before the rename leaves any previous `path` untouched.
    """
    with open_temp(path) as (f, tmp):
        fd = os.open(tmp, os.O_RDWR | getattr(os, "O_BINARY", 0))
        try:
            yield fd
        finally:
            os.close(fd)
    commit(tmp, path)


def atomic_write_bytes(path, data):
    """`atomic_write` of a bytes-like object."""
    with atomic_write(path) as f:
        f.write(data)


def makedirs_for(path):
    """Create the parent directory of `path` when it is missing."""
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
