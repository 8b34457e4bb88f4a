"""Background saving: snapshot the values in the training thread, write the file on a writer thread.

Every saver splits a save into a `PreparedSave` (the live arrays it reads + a function that writes
the file from arrays). In the foreground that function runs on the live arrays, without a copy; in
the background `BackgroundWriter.submit` copies them into reused buffers and a writer thread writes
the file from the copies. One writer per saver, one save in flight; errors wait for the owner.
"""
# One thread per writer, started by its first save and kept (idle, waiting for the next job) until
# `release_buffers()` or until the writer is garbage-collected: starting a thread per save made the
# training thread wait for the new thread to be scheduled (and for the GIL it takes at once), several
# milliseconds on a busy machine, which at 1e6 parameters was more than the copy itself.
# The exit hook runs before `concurrent.futures` stops accepting work (its pools are what the
# writers checksum and fsync on), so a save still running at exit completes; see `_finish_at_exit`.
# A failure nobody collected also fails the process (exit status 1): schedulers and CI must not see
# success when the last checkpoint was never written.
import atexit
import concurrent.futures.thread  # noqa: F401  registered before our hook, so it shuts down after it
import os
import sys
import threading
import time
import weakref

import numpy as np

from kerasckpt import _storage

_lock = threading.Lock()
_inflight = set()   # writers with a save running
_unclaimed = set()  # writers holding an error their owner has not collected yet


class PreparedSave:
    """One save split in two: `arrays` (the live values, only read) and `write(arrays)`.

    Everything else the file holds (configs, JSON state, names, counters) is computed when the save is
    prepared, so `write` may run later, on another thread, from copies of `arrays`.

    Args:
        arrays: the NumPy arrays the file stores, in the order `write` expects them.
        write: `write(arrays)` writes the file(s) atomically and returns the saved path.
        paths: the files or checkpoint prefixes written (for waiting on a path, and for messages).
    """

    def __init__(self, arrays, write, paths):
        self.arrays = [np.asarray(a) for a in arrays]
        self._write = write
        self.paths = tuple(_storage.absolute(_storage.normalize(p)) for p in paths)
        self.label = _storage.normalize(paths[0]) if paths else "?"

    def write(self, arrays=None):
        """Write the file from `arrays` (default: the live arrays, i.e. a foreground save)."""
        return self._write(self.arrays if arrays is None else arrays)

    def run_first(self, step):
        """Make `write` call `step()` first, on whichever thread writes (work kept off the training thread)."""
        write = self._write

        def stepped(arrays):
            step()
            return write(arrays)
        self._write = stepped

    @property
    def nbytes(self):
        return sum(a.nbytes for a in self.arrays)


class SnapshotBuffers:
    """Copies of arrays in buffers kept from one save to the next (one snapshot's worth of memory)."""

    def __init__(self):
        self._buffers = []

    def copy(self, arrays):
        out = []
        for i, arr in enumerate(arrays):
            buf = self._buffers[i] if i < len(self._buffers) else None
            if buf is None or buf.shape != arr.shape or buf.dtype != arr.dtype:
                buf = np.empty(arr.shape, arr.dtype)  # C order: what every writer wants
                if i < len(self._buffers):
                    self._buffers[i] = buf
                else:
                    self._buffers.append(buf)
            np.copyto(buf, arr)
            out.append(buf)
        del self._buffers[len(arrays):]
        return out

    @property
    def nbytes(self):
        return sum(b.nbytes for b in self._buffers)

    def release(self):
        self._buffers = []


WRITER_NICE = 10  # how much lower the writer threads' CPU priority is than the training thread's (Linux)


def _lower_priority():
    """Lower the calling thread's CPU priority by `WRITER_NICE` (Linux; elsewhere nothing).

    Waking a writer thread of equal priority often preempted the training thread on a busy machine,
    holding it for milliseconds right after the copy; at a lower priority the writer waits for the CPU
    the training thread leaves, which is also what a background save is for.
    """
    if not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + WRITER_NICE))
    except OSError:  # not permitted (some sandboxes): keep the priority
        pass


class _Worker:
    """A daemon thread that runs the jobs handed to `run`, one at a time, until `stop`.

    `run` returns at once: the caller never waits for the thread to be scheduled. It keeps no
    reference to a job once the job has run. The thread runs at a lower CPU priority (`_lower_priority`).
    """

    def __init__(self, name):
        self.pid = os.getpid()  # a forked child has no copy of the thread
        self._cv = threading.Condition(threading.Lock())
        self._job = None
        self._stopped = False
        self.thread = threading.Thread(target=self._loop, daemon=True, name=name)
        self.thread.start()

    def alive(self):
        return self.pid == os.getpid() and not self._stopped and self.thread.is_alive()

    def run(self, job):
        with self._cv:
            self._job = job
            self._cv.notify()

    def stop(self):
        with self._cv:
            self._stopped = True
            self._cv.notify()

    def _loop(self):
        _lower_priority()
        while True:
            with self._cv:
                while self._job is None and not self._stopped:
                    self._cv.wait()
                if self._job is None:
                    return
                job, self._job = self._job, None
            job()
            del job


class BackgroundWriter:
    """At most one save in flight: `submit` waits for the previous save, snapshots, starts the writer.

    Args:
        owner: who owns it, for messages (e.g. `"ModelCheckpoint"`).
    """

    def __init__(self, owner):
        self.owner = owner
        self._buffers = SnapshotBuffers()
        self._worker = None
        self._job = None
        self._error = None
        self._done = threading.Event()
        self._done.set()
        self.last_stall = 0.0  # seconds the last submit() held the caller: waiting + copying
        self.last_copy = 0.0   # of which copying

    @property
    def busy(self):
        """Whether a save is being written now."""
        return not self._done.is_set()

    @property
    def snapshot_nbytes(self):
        return self._buffers.nbytes

    def submit(self, prepared, on_success=None):
        """Wait for the previous save (raising its error), copy `prepared.arrays`, write in the background.

        `on_success(path)` runs on the writer thread once the file is complete (not after a failure).
        """
        start = time.perf_counter()
        self.wait()
        copy_start = time.perf_counter()
        copies = self._buffers.copy(prepared.arrays)
        self.last_copy = time.perf_counter() - copy_start
        self._job, self._error = prepared, None
        self._done.clear()
        with _lock:
            _inflight.add(self)
        try:
            if self._worker is None or not self._worker.alive():
                self._worker = _Worker(f"kerasckpt-writer-{self.owner}")
                weakref.finalize(self, self._worker.stop)
            self._worker.run(lambda: self._run(prepared, copies, on_success))
        except BaseException:
            self._finished()
            raise
        self.last_stall = time.perf_counter() - start

    def _run(self, prepared, copies, on_success):
        try:
            path = prepared.write(copies)
            if on_success is not None:
                on_success(path)
        except BaseException as err:  # noqa: BLE001  kept for the owner, raised in its thread
            self._error = err
            with _lock:
                _unclaimed.add(self)
        finally:
            self._finished()

    def _finished(self):
        with _lock:
            _inflight.discard(self)
        self._done.set()

    def wait(self, raise_error=True):
        """Block until no save is in flight; then raise the error of a failed save (once)."""
        self._done.wait()
        if raise_error and self._error is not None:
            err, self._error = self._error, None
            with _lock:
                _unclaimed.discard(self)
            if hasattr(err, "add_note"):
                err.add_note(
                    f"kerasckpt: raised by the background save of {self._job.label!r} ({self.owner}). That file was "
                    "not written and the files saved before it are unchanged. Fix the cause (e.g. free disk space "
                    "or fix permissions) and save again.")
            raise err

    def release_buffers(self):
        """Free the snapshot buffers and stop the writer thread (after the last save of a run); the next save
        allocates them and starts it again."""
        self.wait(raise_error=False)
        self._buffers.release()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()


def wait_for_paths(paths):
    """Wait for any save of this process in flight to one of `paths`; errors stay with their owners."""
    wanted = {_storage.absolute(_storage.normalize(p)) for p in paths}
    with _lock:
        writers = list(_inflight)
    for writer in writers:
        job = writer._job
        if job is not None and wanted.intersection(job.paths):
            writer.wait(raise_error=False)


def wait_under(directory):
    """Wait for any save of this process in flight to a path inside `directory`."""
    root = _storage.join(_storage.absolute(_storage.normalize(directory)), "")
    with _lock:
        writers = list(_inflight)
    for writer in writers:
        job = writer._job
        if job is not None and any(p.startswith(root) for p in job.paths):
            writer.wait(raise_error=False)


def wait_all():
    """Wait until no background save of this process is in flight (errors stay with their owners)."""
    with _lock:
        writers = list(_inflight)
    for writer in writers:
        writer.wait(raise_error=False)


def _finish_at_exit():
    """Let every save in flight finish; report failures nobody collected, and fail the exit status for them."""
    with _lock:
        writers = list(_inflight)
    if writers:
        print(f"kerasckpt: waiting for {len(writers)} background save(s) to finish before exiting...", file=sys.stderr)
    for writer in writers:
        writer._done.wait()
    with _lock:
        failed = list(_unclaimed)
        _unclaimed.clear()
    reported = 0
    for writer in failed:
        err = writer._error
        if err is not None:
            reported += 1
            print(f"kerasckpt: the background save of {writer._job.label!r} ({writer.owner}) failed and was never "
                  f"reported: {type(err).__name__}: {err}. That file was not written; the files saved before it "
                  "are unchanged.", file=sys.stderr)
    if reported and not _exits_with_error():
        print(f"kerasckpt: exiting with status 1: {reported} background save(s) failed.", file=sys.stderr)
        if _register is not None:  # exit once the other exit hooks and non-daemon threads are done
            atexit.register(_exit_failed)
        else:  # pragma: no cover  (this hook is itself an atexit hook: a new one would not run)
            _exit_failed()


def _exits_with_error():
    """Whether the interpreter is exiting because of an uncaught exception (its status is 1 already)."""
    return getattr(sys, "last_exc", None) is not None or getattr(sys, "last_value", None) is not None


def _exit_failed():
    """Exit with status 1 as the last exit step: run the remaining atexit hooks, flush files, `os._exit(1)`."""
    # Python offers no way to set the exit status once the program has ended, and the code of a
    # SystemExit is gone by then: a program ending with sys.exit(n) exits with 1 (non-zero either way).
    # os._exit skips the finalization that flushes files left open, so they are flushed here.
    atexit.unregister(_exit_failed)
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if run_exitfuncs is not None:
        run_exitfuncs()  # the handlers registered before this one (atexit runs the newest first)
    for stream in _open_files():
        try:
            stream.flush()
        except Exception:  # noqa: BLE001  a stream that cannot flush loses what it would lose anyway
            pass
    os._exit(1)


def _open_files():
    """Every open Python file object (what finalization would flush), the standard streams last."""
    import gc
    import io
    std = [s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s is not None]
    found = []
    for obj in gc.get_objects():
        try:  # some objects fail even isinstance (a proxy to a dead object)
            if isinstance(obj, io.IOBase) and all(obj is not s for s in std) and not obj.closed:
                found.append(obj)
        except Exception:  # noqa: BLE001
            continue
    return found + [s for s in std if not getattr(s, "closed", True)]


def _after_fork_in_child():
    global _lock
    _lock = threading.Lock()
    for writer in list(_inflight):  # the parent writes these; the child has no writer thread
        writer._worker, writer._error = None, None
        writer._done = threading.Event()
        writer._done.set()
    _inflight.clear()
    _unclaimed.clear()


# threading's exit hooks run before non-daemon threads are joined and before concurrent.futures
# refuses new work (registered earlier, called in reverse order); plain atexit would be too late.
_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_finish_at_exit)
else:  # pragma: no cover  (other Python implementations)
    atexit.register(_finish_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
