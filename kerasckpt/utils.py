"""Small public helpers: seeding and session reset."""
import re

import numpy as np

from kerasckpt import random as _random

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
