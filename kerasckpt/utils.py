"""Small public helpers: seeding, session reset, and the data-pipeline classes `PyDataset` and `DatasetIterator`."""
import re

import numpy as np

from kerasckpt import random as _random
from kerasckpt.data.iterator import DatasetIterator
from kerasckpt.data.py_dataset import PyDataset

__all__ = ["set_random_seed", "clear_session", "get_uid", "pack_x_y_sample_weight", "unpack_x_y_sample_weight",
           "PyDataset", "DatasetIterator"]

_uid_counters = {}


def set_random_seed(seed):
    """Seed every source of randomness kerasckpt uses, so that two runs are bit-identical.

    Seeds the global generator (initial weights, default layer seeds, `fit()` shuffling), Python's
    `random` and NumPy's legacy global RNG, as `keras.utils.set_random_seed` does.

    Args:
        seed: a non-negative integer.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"set_random_seed needs a non-negative integer. Received: seed={seed!r}")
    _random.set_global_seed(seed)


def get_uid(prefix):
    """`prefix`, then `prefix_1`, `prefix_2`, ... : Keras's unique default names."""
    count = _uid_counters.get(prefix, 0)
    _uid_counters[prefix] = count + 1
    return prefix if count == 0 else f"{prefix}_{count}"


def clear_session():
    """Reset the default-name counters, as `keras.utils.clear_session()` does."""
    _uid_counters.clear()


def snake_case(name):
    """`BatchNormalization` -> `batch_normalization`, `Conv2D` -> `conv2d`: Keras's default-name rule."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", name))
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def to_categorical(x, num_classes=None):
    """Integer class labels as one-hot rows, as `keras.utils.to_categorical` (float64, like Keras's).

    Args:
        x: integer labels of any shape (a trailing axis of length 1 is dropped).
        num_classes: the row length; `max(x) + 1` when None.
    """
    labels = np.asarray(x)
    if labels.size and (labels.dtype.kind not in "iub" and not np.array_equal(labels, np.round(labels))):
        raise ValueError(f"to_categorical needs integer class labels. Received values such as {labels.flat[0]!r}.")
    labels = labels.astype("int64")
    shape = labels.shape[:-1] if labels.ndim > 1 and labels.shape[-1] == 1 else labels.shape
    labels = labels.reshape(-1)
    num_classes = int(labels.max()) + 1 if not num_classes else int(num_classes)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must be in [0, {num_classes}). Received labels from {labels.min()} "
                         f"to {labels.max()}; pass num_classes > {labels.max()}.")
    categorical = np.zeros((labels.size, num_classes))
    categorical[np.arange(labels.size), labels] = 1
    return categorical.reshape(shape + (num_classes,))


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """Sequences of different lengths as one `(len(sequences), maxlen, ...)` array, as
    `keras.utils.pad_sequences`: longer ones cut, shorter ones filled with `value`.

    Args:
        sequences: a list of sequences (lists or arrays; their entries may be arrays of one shape).
        maxlen: the length of the result; the longest sequence's when None.
        dtype: the result's dtype.
        padding: "pre" (default) or "post": where the filling goes.
        truncating: "pre" (default) or "post": which end of a long sequence is cut.
        value: the filling.
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError(f"`sequences` must be iterable. Received: {type(sequences).__name__}")
    for arg, choice in (("padding", padding), ("truncating", truncating)):
        if choice not in ("pre", "post"):
            raise ValueError(f'{arg.capitalize()} type "{choice}" not understood. Use "pre" or "post".')
    lengths, sample_shape = [], None
    for s in sequences:
        if not hasattr(s, "__len__"):
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: {s!r}")
        lengths.append(len(s))
        if sample_shape is None and len(s):
            sample_shape = np.asarray(s).shape[1:]
    sample_shape = sample_shape or ()
    maxlen = int(max(lengths, default=0)) if maxlen is None else int(maxlen)
    out = np.full((len(lengths), maxlen) + tuple(sample_shape), value, dtype=dtype)
    for row, s in enumerate(sequences):
        kept = np.asarray(s[-maxlen:] if truncating == "pre" else s[:maxlen], dtype=dtype) if len(s) and maxlen \
            else np.zeros((0,) + tuple(sample_shape), dtype)
        if kept.shape[1:] != tuple(sample_shape):
            raise ValueError(f"Shape of sample {kept.shape[1:]} of sequence at position {row} is different from "
                             f"expected shape {tuple(sample_shape)}")
        if len(kept):
            if padding == "post":
                out[row, :len(kept)] = kept
            else:
                out[row, -len(kept):] = kept
    return out


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    """A step's `data` as Keras packs it: `(x,)`, `(x, y)` or `(x, y, sample_weight)`."""
    if y is None:
        return (x,)
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def unpack_x_y_sample_weight(data):
    """`(x, y, sample_weight)` from a step's `data`, with None for the parts it lacks (Keras's helper)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(f"A step's data must be x, (x,), (x, y) or (x, y, sample_weight); received a tuple of "
                     f"{len(data)} items. Pack it with kerasckpt.utils.pack_x_y_sample_weight.")
