"""`DatasetStream`: a PyDataset's batches epoch after epoch, from a position that can be saved and restored.

The position is the dataset's epoch count (kept on the dataset, since its epoch hooks change it), the
batches taken in the current epoch, and the seed of the batch order and of `seed=None` draws. Loading
batch `i` of epoch `e` and running the epoch hooks draw from `kerasckpt.random` keyed by `(e, i)`, so
the numbers depend on the position only: a restored stream replays them exactly.
"""
import time
import warnings

import numpy as np

from kerasckpt.data import state as dstate
from kerasckpt.random import batch_draws, draw_seed, stream_generator

_BEGIN, _END = -1, -2  # the "index" of the epoch hooks' draws


def num_batches_of(dataset):
    """`dataset.num_batches` as a positive int or None (endless), refused otherwise."""
    n = dataset.num_batches
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{type(dataset).__name__}.num_batches (or __len__) must be a non-negative integer, or None "
                         f"for an endless dataset. Received: {n!r}")
    if n == 0:
        raise ValueError(f"{type(dataset).__name__} has no batches (its length is 0). Give it at least one batch.")
    return int(n)


class DatasetStream:
    """The batches of `dataset`, epoch after epoch, each epoch begun and ended with the dataset's hooks.

    Args:
        dataset: a PyDataset.
        shuffle: take each epoch's batches in a random order (drawn from `seed` and the epoch).
        seed: the stream's seed; drawn from the global generator when None.
        hooks: call `on_epoch_begin()` / `on_epoch_end()` and count epochs on the dataset (False: one
            plain pass, as Keras's `iter(dataset)`).
        workers: load ahead with the dataset's `workers` / `use_multiprocessing` (False: in this thread).
    """

    def __init__(self, dataset, shuffle=False, seed=None, hooks=True, workers=True):
        self.dataset = dataset
        self.num_batches = num_batches_of(dataset)
        self.shuffle = bool(shuffle) and self.num_batches is not None
        self.seed = draw_seed() if seed is None else int(seed)
        self.hooks = hooks
        self.index = 0  # batches taken in this epoch (finite); the next dataset index (endless)
        self.limit = None  # the most batches that will be asked for (prefetching stops there)
        self.last_index = None  # the dataset index of the batch next() returned last
        self.wait_seconds, self.batches = 0.0, 0  # time spent in next(), and its calls
        self._epochs = dstate.epochs_of(dataset) if hooks else (0, False)
        self._order = None
        # threads, processes and pickle load with the first dataset, not with `import kerasckpt`
        from kerasckpt.data import workers as loaders
        self._load_batch = loaders.load_batch
        self._fetcher = loaders.make_fetcher(dataset) if workers else None
        self._fetching = False

    # ------------------------------------------------------------------ position
    @property
    def epoch(self):
        """The data epoch batches are taken from (0-based; counts every epoch of the dataset)."""
        return self._epochs[0]

    @property
    def in_epoch(self):
        return self._epochs[1]

    def _set_epochs(self, completed, begun):
        self._epochs = (completed, begun)
        if self.hooks:
            dstate.set_epochs(self.dataset, completed, begun)

    @property
    def epoch_complete(self):
        """Whether every batch of the current (finite) epoch has been taken."""
        return self.in_epoch and self.num_batches is not None and self.index >= self.num_batches

    def remaining(self):
        """Batches left in the current epoch (None for an endless dataset)."""
        if self.num_batches is None:
            return None
        return self.num_batches - self.index if self.in_epoch else self.num_batches

    def _indices(self):
        """The dataset indices from the current position to the end of the epoch, in the order taken."""
        if self.num_batches is None:
            start = self.index
            stop = None if self.limit is None else start + self.limit
            return _count(start, stop)
        stop = self.num_batches if self.limit is None else min(self.num_batches, self.index + self.limit)
        return self._epoch_order()[self.index:stop].tolist()

    def _epoch_order(self):
        if self._order is None or self._order[0] != self.epoch:
            order = (stream_generator(self.seed, self.epoch).permutation(self.num_batches) if self.shuffle
                     else np.arange(self.num_batches))
            self._order = (self.epoch, order)
        return self._order[1]

    def sample(self):
        """`(index, batch)`: the first batch of the current epoch's order, without hooks or a change of position
        (to build a model from). With worker processes a worker loads it: this process never opens the files."""
        index = 0 if self.num_batches is None or self.in_epoch else int(self._epoch_order()[0])
        if hasattr(self._fetcher, "load_one"):
            return index, self._fetcher.load_one(self.dataset, self.epoch, index, self.seed)
        return index, self._load_batch(self.dataset, self.epoch, index, self.seed)

    # ------------------------------------------------------------------ epochs
    def begin_epoch(self):
        """Start the next epoch: the dataset's `on_epoch_begin()` (with hooks)."""
        if self.hooks:
            with batch_draws(self.epoch, _BEGIN, self.seed):
                self.dataset.on_epoch_begin()
        self.index = 0 if self.num_batches is not None else self.index
        self._set_epochs(self.epoch, True)

    def end_epoch(self):
        """End the current epoch: stop loading ahead, then the dataset's `on_epoch_end()` (with hooks)."""
        self._stop_fetching()
        if self.hooks:
            with batch_draws(self.epoch, _END, self.seed):
                self.dataset.on_epoch_end()
        if self.num_batches is not None:
            self.index = 0
        self._set_epochs(self.epoch + 1, False)

    def next(self):
        """The next batch as `__getitem__` returned it; a used-up epoch is ended and the next begun."""
        start = time.perf_counter()
        if self.limit is not None and self.limit <= 0:  # more than planned after all: load ahead as far as needed
            self.plan(None)
        try:
            if self.epoch_complete:
                self.end_epoch()
            if not self.in_epoch:
                self.begin_epoch()
            index = self.index if self.num_batches is None else int(self._epoch_order()[self.index])
            if self._fetcher is None:
                batch = self._load_batch(self.dataset, self.epoch, index, self.seed)
            else:
                if not self._fetching:
                    self._fetcher.start_epoch(self.dataset, self.epoch, self.seed, self._indices())
                    self._fetching = True
                batch = self._fetcher.next()
            self.index, self.last_index = self.index + 1, index
            if self.limit is not None:
                self.limit -= 1
            return batch
        finally:
            self.wait_seconds += time.perf_counter() - start
            self.batches += 1

    def plan(self, batches):
        """Load ahead no further than `batches` more batches (None: to the end of each epoch)."""
        if batches != self.limit:
            self._stop_fetching()
        self.limit = batches

    def _stop_fetching(self):
        if self._fetcher is not None and self._fetching:
            self._fetcher.stop_epoch()
        self._fetching = False

    def close(self):
        """Stop every worker thread or process (the stream cannot load batches afterwards)."""
        fetcher, self._fetcher, self._fetching = self._fetcher, None, False
        if fetcher is not None:
            fetcher.close()

    @property
    def worker_pids(self):
        """The process ids of the worker processes (empty without them)."""
        return list(getattr(self._fetcher, "pids", []))

    # ------------------------------------------------------------------ state
    def get_state(self):
        """The position and the dataset's state, as JSON data."""
        dataset = self.dataset
        own = dstate.encode(dataset.get_state(), f"{type(dataset).__name__}.get_state()") \
            if dstate.has_own_state(dataset) else None
        return {"dataset": type(dataset).__qualname__, "num_batches": self.num_batches, "shuffle": self.shuffle,
                "seed": self.seed, "epochs": self.epoch, "in_epoch": self.in_epoch, "index": self.index,
                "seed_generators": {path: [g.seed, g.counter] for path, g in dstate.seed_generators(dataset).items()},
                "state": own}

    def set_state(self, state, who="The restore"):
        """Move to a state from `get_state()`: the dataset's SeedGenerators and own state are set, and
        without `get_state()` its epoch hooks are replayed up to the saved epoch (no batch is loaded)."""
        dataset, name = self.dataset, type(self.dataset).__name__
        problems = []
        if state["dataset"] != type(dataset).__qualname__:
            problems.append(f"it was saved for a {state['dataset']}, this is a {type(dataset).__qualname__}")
        if state["num_batches"] != self.num_batches:
            problems.append(f"it was saved for {state['num_batches']} batches per epoch, this dataset has "
                            f"{self.num_batches}")
        generators = dstate.seed_generators(dataset)
        if sorted(state["seed_generators"]) != sorted(generators):
            problems.append(f"it holds SeedGenerators {sorted(state['seed_generators'])}, the dataset has "
                            f"{sorted(generators)}")
        if (state["state"] is not None) != dstate.has_own_state(dataset):
            problems.append("it was saved " + ("with" if state["state"] is not None else "without") +
                            " the dataset's get_state(), which this dataset " +
                            ("lacks" if state["state"] is not None else "defines"))
        if problems:
            raise ValueError(f"{who} cannot put {name} back where it was: " + "; ".join(problems) +
                             ". Resume with the same dataset class and arguments.")
        self._stop_fetching()
        for path, (seed, counter) in state["seed_generators"].items():
            generators[path].seed, generators[path].counter = int(seed), int(counter)
        self.seed, self.shuffle = int(state["seed"]), bool(state["shuffle"])
        target = (int(state["epochs"]), bool(state["in_epoch"]))
        if state["state"] is not None:
            dataset.set_state(dstate.decode(state["state"]))
            self._set_epochs(*target)
        elif self.hooks:
            self._replay_to(target, who)
        else:
            self._set_epochs(*target)
        self.index = int(state["index"])

    def _replay_to(self, target, who):
        if self._epochs > target:
            warnings.warn(
                f"{who} cannot move {type(self.dataset).__name__} back to epoch {target[0]}: this object has already "
                f"been through epoch {self.epoch} in this process, and without get_state()/set_state() its state is "
                "rebuilt by replaying its epoch hooks from the start. Batches continue from the saved position, but "
                "state its on_epoch_end() derived may differ. Create the dataset afresh before resuming, or give it "
                "get_state() and set_state().", stacklevel=3)
            self._set_epochs(*target)
            return
        while self._epochs < target:
            if not self.in_epoch:
                self.begin_epoch()
            if self._epochs < target:
                self.end_epoch()


def _count(start, stop):
    i = start
    while stop is None or i < stop:
        yield i
        i += 1
