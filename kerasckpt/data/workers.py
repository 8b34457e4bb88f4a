"""Loading a PyDataset's batches ahead of the model in worker threads or processes, delivered in order.

A fetcher is given the dataset indices of an epoch in the order the model takes them; it keeps up to
`max_queue_size` of them loading and hands the batches back in that same order. Worker processes are
plain child processes talking over two pipes: they exit when the pipes close (the end of `fit()`,
or the death of the training process) and watch their parent in case it is killed mid-batch.
"""
import collections
import concurrent.futures
import multiprocessing.spawn
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback

from kerasckpt.random import batch_draws

_HEADER = struct.Struct("<Q")
_THREAD_PREFIX = "kerasckpt-data-worker"
_BOOT = "import sys; from kerasckpt.data.workers import worker_main; worker_main(int(sys.argv[1]), int(sys.argv[2]))"


def load_batch(dataset, epoch, index, seed):
    """`dataset[index]`, its random draws keyed by (epoch, index), any error noted with the index."""
    try:
        with batch_draws(epoch, index, seed):
            return dataset[index]
    except Exception as exc:
        _note(exc, _raised_by(type(dataset).__name__, index))
        raise


def _raised_by(dataset_name, index):
    return f"Raised by {dataset_name}.__getitem__({index}) (the batch at index {index})."


def _note(exc, text):
    if text in getattr(exc, "__notes__", ()):
        return
    if hasattr(exc, "add_note"):
        exc.add_note(text)
    else:  # Python 3.10: kept where 3.11's tracebacks would show it
        exc.__notes__ = list(getattr(exc, "__notes__", ())) + [text]


def check_settings(dataset):
    """`(workers, use_multiprocessing, max_queue_size)` of `dataset`, refused when out of range."""
    workers, multi, queue = dataset.workers, dataset.use_multiprocessing, dataset.max_queue_size
    name = type(dataset).__name__
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"{name}(workers=...) must be a non-negative integer (1: load batches in the training "
                         f"thread). Received: workers={workers!r}")
    if isinstance(queue, bool) or not isinstance(queue, int) or queue < 1:
        raise ValueError(f"{name}(max_queue_size=...) must be a positive integer. Received: max_queue_size={queue!r}")
    return workers, bool(multi), queue


def make_fetcher(dataset):
    """A ProcessFetcher, a ThreadFetcher or None (load in the calling thread), as Keras decides."""
    workers, multi, queue = check_settings(dataset)
    if multi and workers >= 1:
        return ProcessFetcher(workers, queue)
    if workers > 1:
        return ThreadFetcher(workers, queue)
    return None


class _Fetcher:
    """What both fetchers share: the epoch's tasks and the queue of those in flight, oldest first."""

    def __init__(self, max_queue_size):
        self.max_queue_size = max_queue_size
        self._pending = collections.deque()  # (index, handle) in the order the batches are taken
        self._tasks = None
        self._epoch = self._seed = self._dataset = None

    def start_epoch(self, dataset, epoch, seed, indices):
        """Start loading `indices` (an iterable of dataset indices, in order) of data epoch `epoch`."""
        self.stop_epoch()
        self._dataset, self._epoch, self._seed = dataset, epoch, seed
        self._tasks = iter(indices)
        self._fill()

    def _fill(self):
        while self._tasks is not None and len(self._pending) < self.max_queue_size:
            index = next(self._tasks, None)
            if index is None:
                self._tasks = None
                return
            self._pending.append((index, self._submit(index)))

    def next(self):
        """The next batch of the epoch (blocking until it is loaded); a worker's error is raised here."""
        if not self._pending:
            raise RuntimeError("The data workers were asked for a batch beyond the epoch's indices.")
        index, handle = self._pending.popleft()
        self._fill()
        return self._result(index, handle)


class ThreadFetcher(_Fetcher):
    """Batches loaded by a pool of `workers` threads sharing the dataset object."""

    def __init__(self, workers, max_queue_size):
        super().__init__(max_queue_size)
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix=_THREAD_PREFIX)

    def _submit(self, index):
        return self._pool.submit(load_batch, self._dataset, self._epoch, index, self._seed)

    def _result(self, index, future):
        return future.result()

    def stop_epoch(self):
        """Drop the batches not started; wait for those being loaded (epoch hooks must not overlap them)."""
        futures = [future for _, future in self._pending]
        for future in futures:
            future.cancel()
        concurrent.futures.wait(futures)
        self._pending.clear()
        self._tasks = None

    def close(self):
        """Stop and join every worker thread."""
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._tasks = None
        self._pool.shutdown(wait=True, cancel_futures=True)


class ProcessFetcher(_Fetcher):
    """Batches loaded by `workers` child processes, each with its own copy of the dataset (sent pickled
    at every epoch); batch `k` of an epoch goes to worker `k % workers`, so results come back in order."""

    def __init__(self, workers, max_queue_size):
        super().__init__(max_queue_size)
        self._workers = []
        try:
            for _ in range(workers):
                self._workers.append(_WorkerProcess())
        except BaseException:
            self.close()
            raise
        self._turn = 0
        self._sent_dataset = None

    @property
    def pids(self):
        return [w.proc.pid for w in self._workers]

    @staticmethod
    def _pickle(dataset):
        try:
            return pickle.dumps(dataset, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            _note(exc, f"use_multiprocessing=True sends the dataset to each worker process with pickle, and "
                       f"pickling {type(dataset).__name__} failed. Define its class at the top level of a module, "
                       "keep only picklable attributes (open files in __getitem__, not in __init__), or load in "
                       "threads with use_multiprocessing=False.")
            raise

    def start_epoch(self, dataset, epoch, seed, indices):
        self.stop_epoch()
        payload = self._pickle(dataset)
        for worker in self._workers:
            worker.send(("dataset", payload))
        self._turn = 0
        super().start_epoch(dataset, epoch, seed, indices)

    def load_one(self, dataset, epoch, index, seed):
        """One batch outside any epoch (the sample that builds the model), loaded by the first worker."""
        self.stop_epoch()
        self._workers[0].send(("dataset", self._pickle(dataset)))
        self._workers[0].send(("get", epoch, index, seed))
        kind, payload = self._workers[0].receive([index])
        if kind == "ok":
            return payload
        raise _remote_error(payload, index, type(dataset).__name__, self._workers[0].proc.pid)

    def _submit(self, index):
        worker = self._workers[self._turn % len(self._workers)]
        self._turn += 1
        worker.send(("get", self._epoch, index, self._seed))
        return worker

    def _result(self, index, worker):
        kind, payload = worker.receive([index] + [i for i, w in self._pending if w is worker])
        if kind == "ok":
            return payload
        raise _remote_error(payload, index, type(self._dataset).__name__, worker.proc.pid)

    def stop_epoch(self):
        """Wait for the batches in flight and drop them, so the next epoch starts from empty pipes."""
        while self._pending:
            index, worker = self._pending.popleft()
            worker.receive([index])
        self._tasks = None

    def close(self):
        """Close the pipes and end every worker process (terminated if it does not exit at once)."""
        self._pending.clear()
        self._tasks = None
        for worker in self._workers:
            worker.close_pipes()
        deadline = time.monotonic() + 0.5
        for worker in self._workers:
            worker.end(max(0.0, deadline - time.monotonic()))
        self._workers = []


def _remote_error(payload, index, dataset_name, pid):
    """The exception a worker process sent back, with the batch index and its traceback as notes."""
    pickled, text, summary = payload
    exc = None
    if pickled is not None:
        try:
            exc = pickle.loads(pickled)
        except Exception:  # noqa: BLE001  an exception class the parent cannot rebuild: keep the text
            exc = None
    if not isinstance(exc, BaseException):
        exc = RuntimeError(f"{dataset_name}.__getitem__({index}) failed in a worker process: {summary}")
    _note(exc, _raised_by(dataset_name, index))
    _note(exc, f"In the data worker process {pid}; its traceback there:\n{text.rstrip()}")
    return exc


class _WorkerProcess:
    """One child process and its two pipes (tasks in, results out), length-prefixed pickles."""

    def __init__(self):
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # kerasckpt's parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", _BOOT, str(task_r), str(result_w)],
                                         pass_fds=(task_r, result_w), stdin=subprocess.DEVNULL, env=env)
        except BaseException:
            for fd in (task_r, task_w, result_r, result_w):
                os.close(fd)
            raise
        os.close(task_r)
        os.close(result_w)
        self._out, self._in = task_w, result_r
        # sys.path, the working directory and the main module as the parent has them (multiprocessing's
        # spawn does the same), so classes defined in the script or a test module unpickle in the child
        preparation = multiprocessing.spawn.get_preparation_data("kerasckpt-data-worker")
        preparation.pop("authkey", None)  # multiprocessing's connection key: these pipes do not use it
        self.send(("prepare", preparation))

    def send(self, message):
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            _write_all(self._out, _HEADER.pack(len(data)) + data)
        except OSError as exc:
            raise RuntimeError(f"The data worker process {self.proc.pid} is gone (exit code {self.proc.poll()}); "
                               "it cannot take more batches. See its output above for the reason.") from exc

    def receive(self, asked):
        """The next (kind, payload) this worker sent; its death is an error naming the batches `asked` of it."""
        header = _read_exact(self._in, _HEADER.size)
        data = None if header is None else _read_exact(self._in, _HEADER.unpack(header)[0])
        if data is None:
            code = self.proc.wait()
            raise RuntimeError(f"The data worker process {self.proc.pid} died (exit code {code}) before sending the "
                               f"batch at index {asked[0]} (it had been asked for the batches at indices {asked}). "
                               "See its output above; a crash in native code or the system's out-of-memory killer "
                               "ends a process without a Python error.")
        return pickle.loads(data)

    def close_pipes(self):
        for fd in (self._out, self._in):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._out = self._in = None

    def end(self, grace):
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd, n):
    """`n` bytes from `fd`, or None at end of file."""
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------------------------------- the child
def worker_main(task_fd, result_fd):
    """The loop of a data worker process: load the batches asked for until the task pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent decides
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), name="kerasckpt-watch-parent", daemon=True).start()
    results = collections.deque()
    ready = threading.Condition()
    writer = threading.Thread(target=_write_results, args=(result_fd, results, ready), daemon=True)
    writer.start()
    dataset, dataset_error = None, None
    while True:
        header = _read_exact(task_fd, _HEADER.size)
        data = None if header is None else _read_exact(task_fd, _HEADER.unpack(header)[0])
        if data is None:
            break  # the parent closed the pipe (end of fit()) or died
        message = pickle.loads(data)
        if message[0] == "prepare":
            multiprocessing.spawn.prepare(message[1])
            continue
        if message[0] == "dataset":
            try:
                dataset, dataset_error = pickle.loads(message[1]), None
            except Exception as exc:  # noqa: BLE001  reported with every batch asked for
                dataset, dataset_error = None, _error_payload(exc, "The worker process could not unpickle the "
                                                                   "dataset. Define its class at the top level of an "
                                                                   "importable module or of the script.")
            continue
        _, epoch, index, seed = message
        if dataset_error is not None:
            out = ("error", dataset_error)
        else:
            try:
                out = ("ok", load_batch(dataset, epoch, index, seed))
                out = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001  sent back to the training process, which raises it
                out = ("error", _error_payload(exc))
        if not isinstance(out, bytes):
            out = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
        with ready:
            results.append(out)
            ready.notify()
    with ready:
        results.append(None)
        ready.notify()
    writer.join()


def _error_payload(exc, extra=None):
    text = "".join(traceback.format_exception(exc))
    if extra:
        text += extra + "\n"
    try:
        pickled = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001  an unpicklable exception travels as its text
        pickled = None
    summary = traceback.format_exception_only(exc)[0].strip()  # "module.Class: message"
    return pickled, text, summary


def _write_results(fd, results, ready):
    while True:
        with ready:
            while not results:
                ready.wait()
            out = results.popleft()
        if out is None:
            return
        try:
            _write_all(fd, _HEADER.pack(len(out)) + out)
        except OSError:  # the parent is gone
            os._exit(0)


def _watch_parent(parent):
    while True:
        time.sleep(0.2)
        if os.getppid() != parent:  # the training process died (even by SIGKILL): no orphan stays behind
            os._exit(0)
