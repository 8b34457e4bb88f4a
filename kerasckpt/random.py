"""Randomness that can be saved and replayed: the one global generator, counter-based streams
(`SeedGenerator`), and Keras 3's `kerasckpt.random.normal/uniform/randint/shuffle/dropout`.

Every random draw in kerasckpt comes either from the global generator (initial weights, seeds for
layers created without one) or from a `SeedGenerator`, a counter-based stream whose whole state is
two integers, so a resumed run draws exactly the numbers the uninterrupted run would have drawn.
Draws made while a data pipeline loads a batch (`batch_draws`) are keyed by the batch's position
instead, so they are the same in every worker thread or process and after a resume.
"""
import contextlib
import random as _pyrandom
import threading

import numpy as np

_global = np.random.default_rng()
_local = threading.local()  # .scope: the BatchDraws of the batch this thread is loading, or None

# Tags that keep the key spaces of the different kinds of draws apart.
_TAG_INT_SEED, _TAG_SCOPED, _TAG_SCOPED_GLOBAL = 1, 2, 3


def global_generator():
    """The process-wide generator used for initial weights and default seeds."""
    return _global


def set_global_seed(seed):
    """Reseed the global generator, Python's `random` and NumPy's legacy global RNG."""
    global _global
    _global = np.random.default_rng(seed)
    _pyrandom.seed(seed)
    np.random.seed(seed % (2**32))


def get_global_state():
    """The global generator's state as plain Python data (JSON-safe)."""
    return _global.bit_generator.state


def set_global_state(state):
    """Restore a state returned by `get_global_state()`."""
    _global.bit_generator.state = state


def draw_seed():
    """A fresh 63-bit seed from the global generator."""
    return int(_global.integers(0, 2**63 - 1))


def stream_generator(seed, counter):
    """The NumPy Generator of draw `counter` of the stream `seed`.

    The counter sits above the 64-bit block counter Philox increments while it generates, so
    consecutive draws never share random numbers, however many each one takes.
    """
    return np.random.Generator(np.random.Philox(key=seed, counter=[0, counter, 0, 0]))


def _keyed_generator(words):
    """A NumPy Generator keyed by a tuple of non-negative integers of any size (hashed by SeedSequence)."""
    key = np.random.SeedSequence([int(w) for w in words]).generate_state(2, np.uint64)
    return np.random.Generator(np.random.Philox(key=key))


class SeedGenerator:
    """A counter-based random stream: draw `k` uses Philox keyed by `seed`, at stream position `k`.

    Its state is `(seed, counter)`; saving and restoring those two integers replays the stream
    exactly. Pass one as `seed=` to the functions of `kerasckpt.random` to get new numbers at every
    call (an int seed gives the same numbers every time, as in Keras). Used by Dropout and `fit()`.

    Args:
        seed: an integer; drawn from the global generator when None.

    Note: `next()` returns a NumPy Generator (Keras's returns a seed tensor). Draws made while a
    data pipeline loads a batch or runs an epoch hook of a `PyDataset` do not advance the counter:
    they are keyed by the batch's epoch and index, so every worker draws the same numbers.
    """

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"SeedGenerator needs a non-negative integer seed or None. Received: seed={seed!r}")
        self.seed = draw_seed() if seed is None else int(seed)
        self.counter = 0

    def next(self):
        """A NumPy Generator for the next draw; each call advances the stream by one."""
        scope = getattr(_local, "scope", None)
        if scope is not None:
            return scope.generator(_TAG_SCOPED, self.seed, self.counter)
        gen = stream_generator(self.seed, self.counter)
        self.counter += 1
        return gen

    def get_state(self):
        return {"seed": self.seed, "counter": self.counter}

    def set_state(self, state):
        self.seed, self.counter = int(state["seed"]), int(state["counter"])

    def __repr__(self):
        return f"<SeedGenerator seed={self.seed} counter={self.counter}>"


class BatchDraws:
    """The random draws of one batch (or one epoch hook): the k-th draw is keyed by
    (what it draws from, epoch, index, k), never by how many draws happened elsewhere."""

    __slots__ = ("epoch", "index", "seed", "count")

    def __init__(self, epoch, index, seed):
        self.epoch, self.index, self.seed, self.count = int(epoch), int(index), int(seed), 0

    def generator(self, tag, *words):
        self.count += 1
        return _keyed_generator((tag, *words, self.epoch, self.index, self.count - 1))


@contextlib.contextmanager
def batch_draws(epoch, index, seed):
    """Key this thread's draws by a batch's position while the block runs.

    Inside, a `SeedGenerator` passed as `seed=` (or Dropout's) draws from (its seed, its counter,
    `epoch`, `index`, draw number) without advancing, and `seed=None` draws from (`seed`, `epoch`,
    `index`, draw number) instead of the global generator. Data pipelines load batch `index` of
    data epoch `epoch` (and run epoch hooks, with a negative `index`) inside it.
    """
    previous = getattr(_local, "scope", None)
    _local.scope = BatchDraws(epoch, index % 2**64, seed)
    try:
        yield _local.scope
    finally:
        _local.scope = previous


def _generator(seed):
    """The NumPy Generator for one call of a random function, following Keras's `seed=` rules."""
    if seed is None:
        scope = getattr(_local, "scope", None)
        return _global if scope is None else scope.generator(_TAG_SCOPED_GLOBAL, scope.seed)
    if isinstance(seed, SeedGenerator):
        return seed.next()
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return _keyed_generator((_TAG_INT_SEED, int(seed)))
    raise ValueError(f"`seed` must be None, a non-negative int or a kerasckpt.random.SeedGenerator. "
                     f"Received: seed={seed!r} of type {type(seed).__name__}")


def _float_dtype(dtype, function):
    dtype = np.dtype(dtype or "float32")
    if dtype.kind != "f":
        raise ValueError(f"`kerasckpt.random.{function}` requires a floating point `dtype`. Received: dtype={dtype}")
    return dtype


def _shape(shape):
    return tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Samples of a normal distribution, as a NumPy array (float32 unless `dtype` says otherwise).

    Args:
        shape: the shape of the samples.
        mean, stddev: the distribution's mean and standard deviation.
        dtype: a floating point dtype.
        seed: None (the global generator), an int (the same numbers at every call) or a
            `SeedGenerator` (new numbers at every call, saved and replayed with its state).
    """
    dtype = _float_dtype(dtype, "normal")
    return (_generator(seed).standard_normal(_shape(shape)) * stddev + mean).astype(dtype)


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Samples of a uniform distribution on `[minval, maxval)`, as a NumPy array; `seed=` as in `normal`."""
    dtype = _float_dtype(dtype, "uniform")
    return _generator(seed).uniform(minval, maxval, _shape(shape)).astype(dtype)


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers drawn uniformly from `[minval, maxval)`, as a NumPy array; `seed=` as in `normal`."""
    dtype = np.dtype(dtype or "int32")
    if dtype.kind not in "iu":
        raise ValueError(f"`kerasckpt.random.randint` requires an integer `dtype`. Received: dtype={dtype}")
    if maxval <= minval:
        raise ValueError(f"`kerasckpt.random.randint` needs minval < maxval. Received: minval={minval!r}, "
                         f"maxval={maxval!r}")
    return _generator(seed).integers(minval, maxval, _shape(shape)).astype(dtype)


def shuffle(x, axis=0, seed=None):
    """A copy of `x` with its slices along `axis` in a random order (rows stay whole for axis 0).

    Args:
        x: an array (or anything `np.asarray` accepts).
        axis: the axis to shuffle along.
        seed: as in `normal`.

    Note: one permutation moves whole slices, as Keras's TensorFlow and torch backends do for axis
    0 (its NumPy and JAX backends shuffle every column independently, breaking rows apart).
    """
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("`kerasckpt.random.shuffle` needs an array with at least one axis. Received a scalar.")
    return np.take(x, _generator(seed).permutation(x.shape[axis]), axis=axis)


def dropout(inputs, rate, noise_shape=None, seed=None):
    """`inputs` with a random fraction `rate` set to 0 and the rest scaled by `1 / (1 - rate)`.

    Args:
        inputs: an array or a kerasckpt tensor (the result is differentiable through it).
        rate: the fraction to drop, in [0, 1].
        noise_shape: the shape of the keep/drop mask, broadcast over `inputs`; None entries take
            the inputs' size.
        seed: as in `normal`.
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) or not 0 <= rate <= 1:
        raise ValueError(f"`kerasckpt.random.dropout` needs 0 <= rate <= 1. Received: rate={rate!r}")
    shape = tuple(np.shape(inputs))
    dtype = getattr(inputs, "dtype", None)
    dtype = np.dtype(dtype) if dtype is not None and np.dtype(dtype).kind == "f" else np.dtype("float32")
    if rate == 0:
        return inputs
    if noise_shape is None:
        mask_shape = shape
    else:
        mask_shape = tuple(s if n is None else int(n) for s, n in zip(shape, noise_shape))
    if rate == 1:
        return inputs * np.zeros(shape, dtype=dtype)
    keep = _generator(seed).random(mask_shape, dtype=np.float32) >= rate
    mask = keep.astype(dtype) * dtype.type(1.0 / (1.0 - rate))
    return inputs * np.broadcast_to(mask, shape)
