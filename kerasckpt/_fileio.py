"""Crash-safe file writing (temp file, flush, one fsync, rename, directory fsync) and checksums.

Shared by `checkpoint/` and `saving/`: nothing here knows about a file format.
"""
import contextlib
import os
import secrets
import zlib

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


def atomic_write_bytes(path, data):
    """`atomic_write` of a bytes-like object."""
    with atomic_write(path) as f:
        f.write(data)


def makedirs_for(path):
    """Create the parent directory of `path` when it is missing."""
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
