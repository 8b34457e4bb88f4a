"""Where fit(), evaluate() and predict() read batches from: arrays, a PyDataset, or a generator / iterator.

Each source gives the loop the same few things: a sample to build the model from, the steps of an
epoch, the next batch as a step's `data` tuple, one evaluation run, and its position as JSON data.
Keras's rules apply: a dataset brings its own batches (`y`, `sample_weight` and `validation_split`
are refused, `batch_size` is ignored with a warning), a generator cannot restart.
"""
import math
import time
import types
import warnings

import numpy as np

from kerasckpt.data.py_dataset import PyDataset
from kerasckpt.data.stream import DatasetStream
from kerasckpt.models.data import ArrayData, BatchStream, class_weights_to_sample_weights, unpack_validation
from kerasckpt.random import draw_seed
from kerasckpt.utils import pack_x_y_sample_weight, unpack_x_y_sample_weight


class DataExhausted(Exception):
    """A generator or iterator has no batch left."""


def is_dataset(x):
    """Whether `x` is a source of whole batches (a PyDataset, a generator or another iterator)."""
    return isinstance(x, PyDataset) or _is_iterator(x)


def _is_iterator(x):
    return isinstance(x, types.GeneratorType) or (
        hasattr(type(x), "__next__") and hasattr(type(x), "__iter__") and not isinstance(x, (np.ndarray, dict)))


def _describe(x):
    if isinstance(x, PyDataset):
        return f"a PyDataset ({type(x).__name__})"
    return "a generator" if isinstance(x, types.GeneratorType) else f"an iterator ({type(x).__name__})"


def _refuse(arg, value, x, what):
    if value is not None:
        raise ValueError(f"When providing `x` as {_describe(x)}, `{arg}` should not be passed. Instead, {what} "
                         f"should be included as part of {_describe(x)}.")


def warn_ignored_batch_size(pairs):
    """One warning for the batch sizes given with datasets, which bring their own batches (Keras ignores them)."""
    given = [f"{name}={value!r}" for name, value, x in pairs if value is not None and is_dataset(x)]
    if given:
        warnings.warn(f"{' and '.join(given)} is ignored: the data is a dataset or generator, whose batches are "
                      "already made (their size is the one __getitem__ or the generator gives). Leave it out, or "
                      "change the batch size in the dataset.", UserWarning, stacklevel=3)


def training_source(x, y, sample_weight, batch_size, shuffle, class_weight, validation_split):
    """`(source, validation source from the split or None)` for fit()'s `x`."""
    if not is_dataset(x):
        data = ArrayData(x, y, sample_weight)
        if data.y is None:
            raise ValueError("fit() needs targets `y` for the compiled loss. Received: y=None.")
        val = None
        if validation_split:
            data, val = data.split(validation_split)
        data.check_finite()
        if val is not None:
            val.check_finite("validation ")
        if class_weight is not None:
            data.sample_weight = class_weights_to_sample_weights(class_weight, data.y, data.sample_weight)
        return ArraySource(data, batch_size, shuffle), None if val is None else ArraySource(val, batch_size, False)
    _refuse("y", y, x, "the targets")
    _refuse("sample_weight", sample_weight, x, "the sample weights")
    if validation_split:
        raise ValueError(f"validation_split is only supported for NumPy arrays, and `x` is {_describe(x)}. Pass "
                         "validation_data instead (a dataset or arrays).")
    if isinstance(x, PyDataset):
        return DatasetSource(x, shuffle, class_weight, "training data"), None
    if class_weight is not None:
        raise ValueError(f"Argument `class_weight` is not supported for Python generator inputs. Received: "
                         f"class_weight={class_weight}")
    if shuffle:
        warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was provided as a "
                      "generator. The generator is expected to yield already-shuffled data.", stacklevel=3)
    return IteratorSource(x, "training data"), None


def validation_source(validation_data, batch_size):
    """The source of fit()'s `validation_data`: arrays `(x, y[, sample_weight])`, a PyDataset or an iterator."""
    if isinstance(validation_data, PyDataset):
        return DatasetSource(validation_data, False, None, "validation data")
    if _is_iterator(validation_data):
        return IteratorSource(validation_data, "validation data")
    return ArraySource(unpack_validation(validation_data), batch_size, False, check="validation ")


def evaluation_source(x, y, sample_weight, batch_size, caller):
    """The source of evaluate()'s or predict()'s `x` (checked as Keras checks it)."""
    if not is_dataset(x):
        data = ArrayData(x, y, sample_weight)
        if caller == "evaluate" and data.y is None:
            raise ValueError("evaluate() needs targets `y` for the compiled loss. Received: y=None.")
        return ArraySource(data, batch_size, False, check="" if caller == "evaluate" else None)
    _refuse("y", y, x, "the targets")
    _refuse("sample_weight", sample_weight, x, "the sample weights")
    if isinstance(x, PyDataset):
        return DatasetSource(x, False, None, f"data of {caller}()")
    return IteratorSource(x, f"data of {caller}()")


class Source:
    """What every source offers the loops; the defaults are those of a source with nothing to do there."""

    positionable = True  # whether get_state()/set_state() put it back where it was
    timer = None  # an object with `wait_seconds` (time spent waiting for batches), or None
    need_targets = None  # the caller ("fit", "evaluate") when every batch must hold targets
    what = "data"

    def open(self):
        """Get ready to be read (after the model is built, so seeds are drawn in the same order)."""

    def has_data(self):
        """Whether another epoch can start (False once a generator is used up)."""
        return True

    def end_epoch(self):
        """Called at the end of every fit() epoch."""

    def plan(self, batches):
        """At most `batches` more batches will be taken (None: unknown); workers load no further."""

    def finish(self):
        """Called when fit() completed."""

    def close(self):
        """Stop whatever loads batches (called however fit(), evaluate() or predict() ends)."""

    def get_state(self):
        return None

    def set_state(self, state):
        pass


class ArraySource(Source):
    """Batches of in-memory arrays: shuffled passes for training, consecutive slices for evaluation."""

    def __init__(self, data, batch_size, shuffle, check=None):
        if check is not None:  # "" or "validation ": how errors name the data
            data.check_finite(check)
        self.data, self.batch_size, self.shuffle = data, batch_size, bool(shuffle)
        self.stream = None

    def describe(self):
        return len(self.data)

    def sample(self):
        return self.data

    def start(self, steps_per_epoch, initial_epoch):
        """The steps of an epoch; the shuffle seed is drawn here (after the model is built)."""
        self.stream = BatchStream(len(self.data), self.batch_size, shuffle=self.shuffle, seed=draw_seed())
        steps = steps_per_epoch or self.stream.batches_per_pass()
        self.stream.skip(initial_epoch * steps)  # epoch k sees the same batches whether or not fit() started at 0
        return steps

    def next(self):
        return pack_x_y_sample_weight(*self.data.take(self.stream.next()))

    def run_length(self, steps):
        n = math.ceil(len(self.data) / self.batch_size)
        return n if steps is None else min(steps, n)

    def run(self, steps):
        size = self.batch_size
        for step in range(self.run_length(steps)):
            yield pack_x_y_sample_weight(*self.data.take(slice(step * size, (step + 1) * size)))

    def get_state(self):
        return None if self.stream is None else self.stream.get_state()

    def set_state(self, state):
        if self.stream is not None:
            self.stream.set_state(state)


def _standardize(batch, where, class_weight, need_targets):
    """A dataset's or generator's batch as a step's `data` tuple of arrays (Keras's rules), checked."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        batch = (batch,)
    if len(batch) not in (1, 2, 3):
        raise ValueError(f"{where} must be a tuple (inputs,), (inputs, targets) or (inputs, targets, sample_weights), "
                         f"or the inputs alone. Received a tuple of {len(batch)} items.")
    x, y, sample_weight = unpack_x_y_sample_weight(batch)
    if need_targets and y is None:
        raise ValueError(f"{need_targets}() needs targets for the compiled loss, but {where} holds inputs only. Return "
                         "(inputs, targets) or (inputs, targets, sample_weights) for every batch.")
    try:
        data = ArrayData(x, y, sample_weight)
        data.check_finite()
        if class_weight is not None and data.y is not None:
            data.sample_weight = class_weights_to_sample_weights(class_weight, data.y, data.sample_weight)
    except ValueError as exc:
        if hasattr(exc, "add_note"):
            exc.add_note(f"In {where}.")
        raise
    return pack_x_y_sample_weight(data.x, data.y, data.sample_weight)


class DatasetSource(Source):
    """The batches of a PyDataset, read with its workers; its position is saved with the training state."""

    def __init__(self, dataset, shuffle, class_weight, what):
        self.dataset, self.shuffle, self.class_weight, self.what = dataset, bool(shuffle), class_weight, what
        self.stream = None
        self._name = type(dataset).__name__
        if shuffle and dataset.num_batches is None:
            warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was provided as an "
                          "infinite PyDataset. The PyDataset is expected to already be shuffled.", stacklevel=4)
        self._warned_short = False

    @property
    def timer(self):
        return self.stream

    def describe(self):
        return f"{type(self.dataset).__qualname__}: {self.dataset.num_batches} batches"

    def open(self):
        """Make the stream (its seed drawn now, before the model is built, so a built or loaded model gets the
        same seed as a new one) and start its workers."""
        if self.stream is None:
            self.stream = DatasetStream(self.dataset, shuffle=self.shuffle, seed=draw_seed())
        return self.stream

    def _where(self, index):
        return f"the batch at index {index} of {self._name} (its __getitem__({index}))"

    def sample(self):
        """A batch to build the model from (by a worker process if there are any), without epoch hooks."""
        index, batch = self.open().sample()
        return ArrayData(*unpack_x_y_sample_weight(_standardize(batch, self._where(index), self.class_weight,
                                                                self.need_targets)))

    def start(self, steps_per_epoch, initial_epoch):
        return steps_per_epoch or self.stream.num_batches

    def next(self):
        batch = self.stream.next()
        return _standardize(batch, self._where(self.stream.last_index), self.class_weight, self.need_targets)

    def end_epoch(self):
        """At the end of a fit() epoch: end the dataset's epoch when it is used up (always when endless)."""
        stream = self.stream
        if stream.epoch_complete or (stream.num_batches is None and stream.in_epoch):
            stream.end_epoch()

    def run_length(self, steps):
        n = self.open().num_batches
        if n is None:
            if steps is None:
                raise ValueError(f"The {self.what} is an endless PyDataset ({self._name}.num_batches is None), so the "
                                 "number of batches to use must be given: pass `steps` to evaluate()/predict(), or "
                                 "`validation_steps` to fit().")
            return steps
        if steps is not None and steps > n and not self._warned_short:
            self._warned_short = True
            warnings.warn(f"Your input ran out of data: the {self.what} ({self._name}) has {n} batches, fewer than the "
                          f"{steps} steps asked for; each pass uses its {n} batches.", stacklevel=4)
        return n if steps is None else min(steps, n)

    def run(self, steps):
        """One evaluation pass: an epoch of the dataset from its first batch, `steps` batches at most."""
        stream = self.open()
        n = self.run_length(steps)
        if stream.in_epoch:
            stream.end_epoch()
        stream.plan(n)
        for _ in range(n):
            yield self.next()
        stream.end_epoch()

    def plan(self, batches):
        self.stream.plan(batches)

    def finish(self):
        """After a fit() that completed: end the dataset's epoch in progress, as Keras ends every epoch."""
        if self.stream is not None and self.stream.in_epoch:
            self.stream.end_epoch()

    def close(self):
        if self.stream is not None:
            self.stream.close()

    def get_state(self):
        return self.stream.get_state()

    def set_state(self, state):
        self.stream.set_state(state, who="BackupAndRestore")


class IteratorSource(Source):
    """Batches from a generator or iterator: read once, never positioned (a restart takes a fresh one)."""

    positionable = False

    def __init__(self, iterator, what):
        self.iterator, self.what = iterator, what
        self._peeked = []
        self.wait_seconds, self.batches, self.taken = 0.0, 0, 0
        self._exhausted = False

    @property
    def timer(self):
        return self

    def describe(self):
        return _describe(self.iterator)

    def _pull(self):
        if self._peeked:
            return self._peeked.pop()
        if self._exhausted:
            raise DataExhausted
        start = time.perf_counter()
        try:
            return next(self.iterator)
        except StopIteration:
            self._exhausted = True
            raise DataExhausted from None
        finally:
            self.wait_seconds += time.perf_counter() - start
            self.batches += 1

    def _where(self):
        return f"batch {self.taken} of the {self.what} ({_describe(self.iterator)})"

    def sample(self):
        try:
            batch = self._pull()
        except DataExhausted:
            raise ValueError(f"The {self.what} is {_describe(self.iterator)} that yields no batch. Pass one that "
                             "yields at least one batch.") from None
        self._peeked.append(batch)
        return ArrayData(*unpack_x_y_sample_weight(_standardize(batch, self._where(), None, self.need_targets)))

    def start(self, steps_per_epoch, initial_epoch):
        return steps_per_epoch

    def has_data(self):
        try:
            self._peeked.append(self._pull())
        except DataExhausted:
            return False
        return True

    def next(self):
        batch = _standardize(self._pull(), self._where(), None, self.need_targets)
        self.taken += 1
        return batch

    def run_length(self, steps):
        return steps

    def run(self, steps):
        count = 0
        while steps is None or count < steps:
            try:
                batch = self.next()
            except DataExhausted:
                if steps is not None:
                    warnings.warn(f"Your input ran out of data: the {self.what} ({_describe(self.iterator)}) ended "
                                  f"after {count} of the {steps} steps asked for.", stacklevel=4)
                return
            count += 1
            yield batch

    def get_state(self):  # set_state() cannot put a generator back: BackupAndRestore says so at on_train_begin
        return {"iterator": _describe(self.iterator), "batches": self.taken}
