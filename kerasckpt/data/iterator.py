"""`DatasetIterator`: a PyDataset's batches for a custom loop, from a position a Checkpoint saves."""

import numpy as np

from kerasckpt.data.stream import DatasetStream
from kerasckpt.tracking import Trackable
from kerasckpt.variables import Variable


class DatasetIterator(Trackable):
    """The batches of a `PyDataset` for `epochs` epochs, trackable by `Checkpoint` like TensorFlow's iterators.

    Each epoch begins with the dataset's `on_epoch_begin()` and ends with its `on_epoch_end()`, as
    in `fit()`, and batches are loaded ahead by the dataset's workers (threads or processes, stopped
    when the iterator is used up, closed or garbage-collected). `iter(dataset)` gives one plain pass
    instead (no hooks, no workers, as in Keras). Either way, `Checkpoint(iterator=it)` saves where
    the iterator is and the dataset's state, and restoring puts a new iterator over a new dataset at
    the same batch: it then yields exactly the batches the saved one would have.

    Args:
        dataset: a `kerasckpt.utils.PyDataset`.
        epochs: how many epochs to yield; None for no end (an endless dataset has none either).
        shuffle: take each epoch's batches in a random order (saved and replayed with the position).

    Example:
        it = DatasetIterator(dataset, epochs=None)
        manager = CheckpointManager(Checkpoint(model=model, optimizer=opt, iterator=it), "ckpts", 3)
        manager.restore_or_initialize()
        x, y = next(it)  # the batch after the one the saved run took last

    Note: Keras has no iterator a checkpoint can hold; this one follows TensorFlow's
    `Checkpoint(iterator=iter(dataset))`, and its state is one uint8 vector of JSON in the checkpoint.
    """

    def __init__(self, dataset, epochs=1, shuffle=False, _plain=False):
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise ValueError(f"DatasetIterator needs a positive number of epochs or None. Received: epochs={epochs!r}")
        self._stream = DatasetStream(dataset, shuffle=shuffle, hooks=not _plain, workers=not _plain)
        self._plain = _plain
        self.epochs = epochs
        self._first_epoch = self._stream.epoch
        self._pending = None  # a state restored by a Checkpoint, applied at the next batch
        self._done = False
        self._state = _IteratorState(self)

    def _trackable_children(self):
        return {"state": self._state}

    @property
    def dataset(self):
        return self._stream.dataset

    def __iter__(self):
        return self

    def __next__(self):
        if self._pending is not None:
            state, self._pending = self._pending, None
            try:
                self.set_state(state)
            except (KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"The DatasetIterator state restored from a checkpoint is incomplete or damaged "
                                 f"({type(exc).__name__}: {exc}). Restore a checkpoint saved from a DatasetIterator "
                                 "over the same kind of dataset.") from exc
        stream = self._stream
        if not self._done and stream.epoch_complete and (self._plain or self._last_epoch()):
            if not self._plain:
                stream.end_epoch()
            self._done = True
        if not self._done and self.epochs is not None and not stream.in_epoch and \
                stream.epoch - self._first_epoch >= self.epochs:
            self._done = True
        if self._done:
            self.close()
            raise StopIteration
        return stream.next()

    def _last_epoch(self):
        return self.epochs is not None and self._stream.epoch - self._first_epoch + 1 >= self.epochs

    def close(self):
        """Stop the worker threads or processes now (also done when the iterator is used up)."""
        self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        stream = self.__dict__.get("_stream")
        if stream is not None:
            stream.close()

    def get_state(self):
        """Where the iterator is and the dataset's state, as JSON data."""
        if self._pending is not None:  # restored, not applied yet: saving now saves what was restored
            return self._pending
        return {"stream": self._stream.get_state(), "first_epoch": self._first_epoch, "epochs": self.epochs,
                "done": self._done}

    def set_state(self, state):
        """Continue from a state of `get_state()` (taken from an iterator over an equal dataset)."""
        self._stream.set_state(state["stream"], who="Restoring the DatasetIterator")
        self._first_epoch, self._done = int(state["first_epoch"]), bool(state["done"])


class _IteratorState(Variable):
    """The iterator's state as a uint8 Variable of JSON: made when a checkpoint reads it, applied when one
    assigns it (at the iterator's next batch). Its length follows the state (TensorFlow stores a string)."""

    any_shape = True  # a restore takes the saved length whatever the current one

    def __init__(self, iterator):
        self._iterator = iterator
        super().__init__(np.zeros((0,), np.uint8), dtype="uint8", trainable=False, name="state")

    @property
    def _value(self):
        import json
        text = json.dumps(self._iterator.get_state(), sort_keys=True, separators=(",", ":"))
        return np.frombuffer(text.encode(), dtype=np.uint8).copy()

    @_value.setter
    def _value(self, value):
        pass  # the value is always computed from the iterator

    def assign(self, value):
        value = np.asarray(value)
        if value.dtype != np.uint8 or value.ndim != 1:
            raise ValueError(f"An iterator state is a 1-D uint8 array of JSON; received shape {value.shape} "
                             f"dtype {value.dtype}. Restore it from a checkpoint saved with an iterator.")
        try:
            import json
            state = json.loads(value.tobytes().decode())
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"An iterator state in a checkpoint is not valid JSON ({exc}). Save the checkpoint "
                             "again from a DatasetIterator.") from None
        self._iterator._pending = state
        return self
