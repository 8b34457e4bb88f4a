"""PyDatasets shared by the data-pipeline tests (a module of their own, so worker processes import them)."""
import math
import os
import time

import numpy as np

from kerasckpt import random as kr
from kerasckpt.utils import PyDataset


def process_alive(pid):
    """Whether process `pid` still runs (a zombie has exited: only its exit status waits to be read)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


def arrays(n=40, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64") * (classes > 2)


class Batches(PyDataset):
    """Batches `i*batch_size:(i+1)*batch_size` of in-memory arrays, nothing random; logs what it does."""

    def __init__(self, x, y=None, batch_size=8, sample_weight=None, log_dir=None, fail_at=None, delay=0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.sample_weight, self.batch_size = x, y, sample_weight, batch_size
        self.log_dir, self.fail_at, self.delay = log_dir, fail_at, delay
        self.events = []

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def _log(self, event):
        self.events.append(event)
        if self.log_dir is not None:  # seen from worker processes too
            with open(os.path.join(self.log_dir, f"{os.getpid()}.log"), "a") as f:
                f.write(f"{event}\n")

    def _start(self, index):
        """Log the call, fail or take time as asked."""
        self._log(f"get {index}")
        if self.fail_at is not None and index == self.fail_at:
            raise KeyError(f"no record for batch {index}")
        if self.delay:
            time.sleep(self.delay)

    def __getitem__(self, index):
        self._start(index)
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        if self.y is None:
            return self.x[part]
        if self.sample_weight is None:
            return self.x[part], self.y[part]
        return self.x[part], self.y[part], self.sample_weight[part]

    def on_epoch_begin(self):
        self._log("begin")

    def on_epoch_end(self):
        self._log("end")


class Augmented(Batches):
    """Shuffles its samples in `on_epoch_end` (cumulatively: each epoch's order builds on the last) and
    adds noise in `__getitem__`, both from `kerasckpt.random` with its SeedGenerator."""

    def __init__(self, x, y, batch_size=8, seed=None, noise=0.1, **kwargs):
        super().__init__(x, y, batch_size, **kwargs)
        self.seed_generator = kr.SeedGenerator(seed)
        self.order = np.arange(len(x))
        self.noise = noise

    def __getitem__(self, index):
        self._start(index)
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        x = self.x[rows] + kr.normal(self.x[rows].shape, stddev=self.noise, seed=self.seed_generator)
        return kr.dropout(x, 0.1, seed=self.seed_generator), self.y[rows]

    def on_epoch_end(self):
        self._log("end")
        self.order = kr.shuffle(self.order, seed=self.seed_generator)


class WithState(Augmented):
    """An Augmented dataset that also keeps a counter of its own, saved by get_state()/set_state()."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.level = 0

    def on_epoch_end(self):
        super().on_epoch_end()
        self.level += 1

    def get_state(self):
        return {"level": self.level, "order": self.order}

    def set_state(self, state):
        self.level, self.order = state["level"], state["order"]


class Endless(PyDataset):
    """Batch `i` is a function of `i` alone, without end (`num_batches` is None)."""

    def __init__(self, batch_size=4, features=5, **kwargs):
        super().__init__(**kwargs)
        self.batch_size, self.features = batch_size, features

    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        x = rng.normal(size=(self.batch_size, self.features)).astype("float32")
        return x, (x[:, 0] > 0).astype("int64")


class DiesAt(Batches):
    """Ends its whole process (as a crash in native code would) when asked for one batch."""

    def __getitem__(self, index):
        if index == self.fail_at:
            os._exit(3)
        return super().__getitem__(index)


class Unpicklable(Exception):
    """An exception the training process cannot rebuild from a pickle."""

    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")

    def __reduce__(self):
        raise TypeError("not picklable")


class RaisesUnpicklable(Batches):
    def __getitem__(self, index):
        if index == self.fail_at:
            raise Unpicklable(1, 2)
        return super().__getitem__(index)
