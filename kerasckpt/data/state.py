"""A dataset's state as JSON data: its SeedGenerators, its epoch count, and its own `get_state()`
with NumPy arrays stored exactly (base64 of the bytes), never pickled."""

import numpy as np

from kerasckpt.random import SeedGenerator

_ARRAY = "__ndarray__"  # {"__ndarray__": [dtype, shape, base64 bytes]}
_EPOCHS = "_kerasckpt_epochs"  # on the dataset: [epochs completed, whether one has begun and not ended]


def seed_generators(dataset):
    """`{path: SeedGenerator}` of the dataset's attributes (and lists, tuples and dicts in them)."""
    found = {}

    def visit(value, path, depth):
        if isinstance(value, SeedGenerator):
            found.setdefault(path, value)
        elif depth < 3 and isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                visit(item, f"{path}/{i}", depth + 1)
        elif depth < 3 and isinstance(value, dict):
            for key, item in value.items():
                visit(item, f"{path}/{key}", depth + 1)

    for name, value in vars(dataset).items():
        if not name.startswith("__"):
            visit(value, name, 0)
    return found


def epochs_of(dataset):
    """`(completed, begun)`: the epochs the dataset has completed through kerasckpt, and whether the
    next one has begun (its `on_epoch_begin` ran, its `on_epoch_end` not yet)."""
    completed, begun = vars(dataset).get(_EPOCHS, (0, False))
    return int(completed), bool(begun)


def set_epochs(dataset, completed, begun):
    vars(dataset)[_EPOCHS] = (int(completed), bool(begun))


def has_own_state(dataset):
    """Whether the dataset defines `get_state()` and `set_state(state)`."""
    return callable(getattr(dataset, "get_state", None)) and callable(getattr(dataset, "set_state", None))


def encode(value, owner):
    """`value` as JSON data; NumPy arrays and scalars become exact base64 records.

    `owner` names the state in errors (`"MyData.get_state()"`)."""
    def enc(v, where):
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, (np.ndarray, np.generic)):
            a = np.asarray(v)
            if a.dtype.kind not in "biufc":
                raise TypeError(f"{owner}{where} is a NumPy value of dtype {a.dtype}, which cannot be saved. Return "
                                "NumPy arrays of numbers or bools (or plain JSON data).")
            import base64
            return {_ARRAY: [a.dtype.str, list(a.shape), base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()]}
        if isinstance(v, (list, tuple)):
            return [enc(item, f"{where}[{i}]") for i, item in enumerate(v)]
        if isinstance(v, dict):
            out = {}
            for k, item in v.items():
                if not isinstance(k, str) or k == _ARRAY:
                    raise TypeError(f"{owner}{where} has the dict key {k!r}; use string keys (other than {_ARRAY!r}).")
                out[k] = enc(item, f"{where}[{k!r}]")
            return out
        raise TypeError(f"{owner}{where} is {v!r} of type {type(v).__qualname__}, which cannot be saved. Return only "
                        "None, bool, int, float, str, lists, dicts with string keys, and NumPy arrays of numbers.")
    return enc(value, "")


def decode(value):
    """The inverse of `encode` (arrays come back with their dtype and shape, bit for bit)."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {_ARRAY}:
            dtype, shape, data = value[_ARRAY]
            if np.dtype(dtype).kind not in "biufc":
                raise ValueError(f"A saved dataset state holds an array of dtype {dtype!r}; only arrays of numbers "
                                 "can be restored.")
            import base64
            return np.frombuffer(base64.b64decode(data), dtype=np.dtype(dtype)).reshape(shape).copy()
        return {k: decode(v) for k, v in value.items()}
    return value
