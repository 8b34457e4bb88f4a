"""`PyDataset`: Keras 3's base class for datasets written in Python, loaded batch by batch."""
import warnings

from kerasckpt.data.iterator import DatasetIterator


class PyDataset:
    """Base class of datasets that load their batches in Python (`__getitem__`), Keras 3's interface.

    Implement `__getitem__(index)` returning one batch — `x`, `(x,)`, `(x, y)` or
    `(x, y, sample_weight)`, with dicts or lists of arrays for several inputs — and `__len__`
    (the number of batches), or a `num_batches` property that is None for an endless dataset (then
    pass `steps_per_epoch`). `on_epoch_begin()` / `on_epoch_end()` run around every epoch.

    Args:
        workers: threads (or processes) loading batches ahead of the model; 1 loads them in the
            training thread.
        use_multiprocessing: load in worker processes instead of threads. The dataset is pickled and
            sent to each worker at the start of every epoch, so its class must be importable (defined
            at the top level of a module or of the script) and its attributes picklable; a script
            needs the `if __name__ == "__main__":` guard.
        max_queue_size: the most batches loaded ahead of the model.

    Note: whatever the workers, batches reach the model in the order `workers=1` gives, and draws from
    `kerasckpt.random` in `__getitem__` and the epoch hooks are keyed by the batch's (epoch, index),
    so a run is the same with threads, processes or none. `BackupAndRestore` and `Checkpoint`
    (`iterator=DatasetIterator(...)`) save the position, the dataset's SeedGenerators and its
    `get_state()` if it defines `get_state()` / `set_state(state)`; without them the epoch hooks are
    replayed on resume. Unlike Keras, `fit()` does not call `on_epoch_end()` once before training.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    def _warn_if_super_not_called(self):
        missing = [name for name in ("_workers", "_use_multiprocessing", "_max_queue_size") if name not in vars(self)]
        if missing:
            self._workers = vars(self).get("_workers", 1)
            self._use_multiprocessing = vars(self).get("_use_multiprocessing", False)
            self._max_queue_size = vars(self).get("_max_queue_size", 10)
            warnings.warn("Your `PyDataset` class should call `super().__init__(**kwargs)` in its constructor. "
                          "`**kwargs` can include `workers`, `use_multiprocessing`, `max_queue_size`. Do not pass "
                          "these arguments to `fit()`, as they will be ignored.", stacklevel=3)

    @property
    def workers(self):
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        """The batch at position `index` (0-based)."""
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(self, index) returning a batch.")

    @property
    def num_batches(self):
        """The number of batches, or None for an endless dataset (`len(self)` by default)."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must implement __len__, or the `num_batches` property "
                                  "(returning None for an endless dataset).")

    def on_epoch_begin(self):
        """Called at the beginning of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch."""

    def __iter__(self):
        """The batches of one pass, in order, in this thread (no workers, no epoch hooks), as in Keras;
        the iterator is a `DatasetIterator`, so `Checkpoint(iterator=iter(dataset))` saves its position."""
        return DatasetIterator(self, epochs=1, _plain=True)
