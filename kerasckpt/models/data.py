"""Arrays in, batches out: input validation, validation split, and the resumable batch stream."""
import math

import numpy as np

from kerasckpt.layers.base import flatten, map_structure
from kerasckpt.random import SeedGenerator, stream_generator


def _as_array(x, what):
    if x is None:
        return None
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    arr = np.asarray(x)
    if arr.dtype == object:
        raise ValueError(f"`{what}` could not be converted to a numeric array (got dtype=object). "
                         "Pass a NumPy array of numbers, or a list/dict of such arrays for several inputs.")
    if arr.dtype == np.float64:
        arr = arr.astype("float32")
    return arr


class ArrayData:
    """Inputs, targets and sample weights of equal length, sliced into batches by index arrays."""

    def __init__(self, x, y=None, sample_weight=None, what="x"):
        if x is None:
            raise ValueError("fit/evaluate/predict need input data `x`. Received: x=None.")
        self.x = map_structure(lambda a: _as_array(a, what), x)
        self.y = None if y is None else map_structure(lambda a: _as_array(a, "y"), y)
        self.sample_weight = _as_array(sample_weight, "sample_weight")
        lengths = {}
        for name, part in (("x", self.x), ("y", self.y), ("sample_weight", self.sample_weight)):
            for arr in flatten(part) if part is not None else []:
                if arr.ndim == 0:
                    raise ValueError(f"`{name}` must have a batch axis; received a scalar. Pass an array of samples.")
                lengths.setdefault(name, set()).add(len(arr))
        all_lengths = set().union(*lengths.values())
        if len(all_lengths) > 1:
            detail = ", ".join(f"{k}: {sorted(v)}" for k, v in lengths.items())
            raise ValueError(f"Data cardinality is ambiguous: the arrays have different numbers of samples ({detail}). "
                             "Make sure all arrays contain the same number of samples.")
        self.size = all_lengths.pop()

    def __len__(self):
        return self.size

    def take(self, idx):
        """The batch at integer indices (or a slice) `idx`: (x, y, sample_weight)."""
        pick = lambda a: a[idx]  # noqa: E731
        x, y = self.x, self.y  # one array each: the common case, indexed directly
        return (x[idx] if x.__class__ is np.ndarray else map_structure(pick, x),
                None if y is None else y[idx] if y.__class__ is np.ndarray else map_structure(pick, y),
                None if self.sample_weight is None else self.sample_weight[idx])

    def split(self, validation_split):
        """(train, validation): the last `validation_split` fraction becomes validation, as in Keras."""
        if not 0 < validation_split < 1:
            raise ValueError(f"validation_split must be between 0 and 1 (exclusive). Received: {validation_split!r}")
        split_at = int(math.floor(self.size * (1.0 - validation_split)))
        if split_at == 0 or split_at == self.size:
            raise ValueError(f"validation_split={validation_split} leaves no samples for training or validation "
                             f"with {self.size} samples. Use a value that leaves at least one sample in each.")
        train, val = object.__new__(ArrayData), object.__new__(ArrayData)
        for part, sl in ((train, slice(0, split_at)), (val, slice(split_at, None))):
            part.x, part.y, part.sample_weight = self.take(sl)
            part.size = len(flatten(part.x)[0])
        return train, val

    def check_finite(self, what=""):
        """Refuse NaN or infinite values in floating inputs and targets, naming the first one.

        `what` names the data in the message ("validation " gives "`validation x`")."""
        for name, part in ((what + "x", self.x), (what + "y", self.y), (what + "sample_weight", self.sample_weight)):
            for arr in flatten(part) if part is not None else []:
                if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                    where = np.argwhere(~np.isfinite(arr))[0]
                    raise ValueError(
                        f"`{name}` contains a non-finite value ({arr[tuple(where)]}) at index {tuple(int(i) for i in where)}. "
                        "Clean or impute the data before training; a NaN input makes every loss NaN.")


def unpack_validation(validation_data):
    """`(x, y)` or `(x, y, sample_weight)` as ArrayData."""
    if isinstance(validation_data, ArrayData):
        return validation_data
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, val_sample_weight). "
                         f"Received: {type(validation_data).__name__} of length "
                         f"{len(validation_data) if hasattr(validation_data, '__len__') else '?'}.")
    return ArrayData(*validation_data, what="validation x")

def class_weights_to_sample_weights(class_weight, y, sample_weight):
    """Per-sample weights from `class_weight` and the labels `y` (times `sample_weight` when given)."""
    if isinstance(y, (list, tuple, dict)):
        raise ValueError("class_weight is only supported for models with a single output. "
                         "Pass per-sample weights with `sample_weight` instead.")
    y = np.asarray(y)
    labels = y.argmax(axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else np.round(y.reshape(len(y), -1)[:, 0]).astype(int)
    missing = sorted(set(np.unique(labels).tolist()) - set(class_weight))
    if missing:
        raise ValueError(f"class_weight has no entry for classes {missing} present in y. "
                         "Give a weight for every class.")
    weights = np.array([class_weight[int(c)] for c in labels], dtype="float32")
    return weights if sample_weight is None else weights * sample_weight


class BatchStream:
    """Index arrays of successive batches over passes through `size` samples.

    Pass `k` is ordered by a permutation from a counter-based stream (or in order without shuffling),
    so the stream's position is three integers: seed, pass, offset. Saving them replays the batches.
    """

    def __init__(self, size, batch_size, shuffle=True, seed=None):
        self.size, self.batch_size, self.shuffle = size, batch_size, shuffle
        self.seeds = SeedGenerator(seed)
        self.offset = 0
        self._order = None

    def batches_per_pass(self):
        return math.ceil(self.size / self.batch_size)

    def _current_order(self):
        if self._order is None:
            if self.shuffle:
                self._order = stream_generator(self.seeds.seed, self.seeds.counter).permutation(self.size)
            else:
                self._order = np.arange(self.size)
        return self._order

    def next(self):
        """The next batch's indices; a new pass (and permutation) starts when one is used up."""
        order = self._current_order()
        idx = order[self.offset:self.offset + self.batch_size]
        self.offset += len(idx)
        if self.offset >= self.size:
            self.offset, self._order = 0, None
            self.seeds.counter += 1
        return idx

    def skip(self, batches):
        """Move past `batches` batches without drawing them, as if `next()` had been called that often."""
        passes, rest = divmod(self.offset // self.batch_size + batches, self.batches_per_pass())
        if passes:
            self.seeds.counter += passes
            self._order = None
        self.offset = rest * self.batch_size

    def get_state(self):
        return {"seed": self.seeds.seed, "pass": self.seeds.counter, "offset": self.offset}

    def set_state(self, state):
        self.seeds.seed, self.seeds.counter = int(state["seed"]), int(state["pass"])
        self.offset, self._order = int(state["offset"]), None
