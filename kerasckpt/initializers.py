"""Weight initializers with Keras's names, configs and formulas, drawing from kerasckpt.random.

Also `skip_initialization()`: building a model whose weights are loaded right after, without
computing random values that would be overwritten (and without changing the random streams).
"""
import contextlib
import math
import threading

import numpy as np

from kerasckpt import random as _random
from kerasckpt._registry import builtin, lookup


_skipping = threading.local()


@contextlib.contextmanager
def skip_initialization():
    """Inside, layers give new random-initialized weights zeros: for weights whose values are loaded next.

    `load_model` builds the model in this context and then assigns every weight from the file, so a
    large model's millions of random numbers are never computed. The global generator still ends in
    exactly the state drawing them would have left: uniform initializers (glorot_uniform, he_uniform,
    random_uniform: one 64-bit draw per value) advance it by the numbers they would have drawn, and
    initializers whose consumption cannot be predicted (normal and truncated normal draws, custom
    callables) still run. Seeds drawn later (layers created after loading, fit()'s shuffling) are
    therefore the same as without the context, and resumed runs stay bit-identical.
    Deterministic initializers (zeros, ones, constant) still run: their values stay right even for
    a weight the file does not hold. A weight that is skipped and then not loaded stays zero.

    Example:
        with kerasckpt.initializers.skip_initialization():
            model = build_model()          # no random values computed
        model.load_weights("run/best.weights.h5")
    """
    depth = getattr(_skipping, "depth", 0)
    _skipping.depth = depth + 1
    try:
        yield
    finally:
        _skipping.depth = depth


def skipping():
    """Whether `skip_initialization()` is active in this thread."""
    return getattr(_skipping, "depth", 0) > 0


def _advance_global(count):
    """Move the global generator past `count` 64-bit draws without making them; False if it cannot."""
    bitgen = _random.global_generator().bit_generator
    if type(bitgen).__name__ not in ("PCG64", "PCG64DXSM"):
        return False
    state = bitgen.state
    bitgen.advance(count)
    if state.get("has_uint32"):  # advance() drops the buffered half of a 64-bit draw; doubles never use it
        new = bitgen.state
        new["has_uint32"], new["uinteger"] = state["has_uint32"], state["uinteger"]
        bitgen.state = new
    return True


class Initializer:
    """A callable `(shape, dtype) -> ndarray`."""

    def __call__(self, shape, dtype="float32"):
        raise NotImplementedError

    def skip(self, shape, dtype="float32"):
        """Consume the global random numbers `self(shape, dtype)` would, without computing values.

        Returns True when done (the caller then never calls `self` for these values), False when
        this initializer's values must be computed (deterministic, or unpredictable consumption).
        """
        return False

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _fans(shape, input_axes=None, output_axes=None):
    if input_axes is not None and output_axes is not None:
        return int(np.prod([shape[a] for a in input_axes])), int(np.prod([shape[a] for a in output_axes]))
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class _Seeded(Initializer):
    def __init__(self, seed=None):
        self.seed = seed

    def _generator(self):
        return _random.global_generator() if self.seed is None else np.random.default_rng(self.seed)

    def _skip_uniform(self, shape):
        """Skip `prod(shape)` uniform doubles: nothing to do with a seed (a private generator)."""
        return self.seed is not None or _advance_global(int(np.prod(shape, dtype=np.int64)))

    def skip(self, shape, dtype="float32"):
        return self.seed is not None  # a private generator: nothing global is consumed

    def get_config(self):
        return {"seed": self.seed}


@builtin()
class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype="float32"):
        return np.zeros(shape, dtype=dtype)


@builtin()
class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype="float32"):
        return np.ones(shape, dtype=dtype)


@builtin()
class Constant(Initializer):
    """Every entry equal to `value`."""

    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype="float32"):
        return np.full(shape, self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


@builtin()
class RandomUniform(_Seeded):
    """Uniform in `[minval, maxval)`."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape, dtype="float32"):
        return self._generator().uniform(self.minval, self.maxval, size=shape).astype(dtype)

    def skip(self, shape, dtype="float32"):
        return self._skip_uniform(shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


@builtin()
class RandomNormal(_Seeded):
    """Normal with `mean` and `stddev`."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype="float32"):
        return self._generator().normal(self.mean, self.stddev, size=shape).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class _VarianceScaling(_Seeded):
    scale, mode, distribution = 1.0, "fan_avg", "uniform"

    def __init__(self, seed=None, input_axes=None, output_axes=None):  # Keras 3.15 writes the axes in configs
        super().__init__(seed)
        self.input_axes, self.output_axes = input_axes, output_axes

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}

    def skip(self, shape, dtype="float32"):
        return self._skip_uniform(shape) if self.distribution == "uniform" else super().skip(shape, dtype)

    def __call__(self, shape, dtype="float32"):
        fan_in, fan_out = _fans(shape, self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        gen = self._generator()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return gen.uniform(-limit, limit, size=shape).astype(dtype)
        stddev = math.sqrt(variance) / 0.87962566103423978  # truncated normal, as Keras
        values = gen.normal(0.0, 1.0, size=shape)
        bad = np.abs(values) > 2
        while bad.any():
            values[bad] = gen.normal(0.0, 1.0, size=int(bad.sum()))
            bad = np.abs(values) > 2
        return (values * stddev).astype(dtype)


@builtin()
class GlorotUniform(_VarianceScaling):
    """Uniform in `±sqrt(6 / (fan_in + fan_out))`: Keras's default kernel initializer."""


@builtin()
class GlorotNormal(_VarianceScaling):
    """Truncated normal with variance `2 / (fan_in + fan_out)`."""
    distribution = "truncated_normal"


@builtin()
class HeUniform(_VarianceScaling):
    """Uniform in `±sqrt(6 / fan_in)`."""
    scale, mode = 2.0, "fan_in"


@builtin()
class HeNormal(_VarianceScaling):
    """Truncated normal with variance `2 / fan_in`."""
    scale, mode, distribution = 2.0, "fan_in", "truncated_normal"


@builtin()
class Orthogonal(_Seeded):
    """A (semi-)orthogonal matrix times `gain`, from the QR decomposition of a normal sample: Keras's default
    `recurrent_initializer`. Shapes of rank > 2 are flattened to `(prod(shape[:-1]), shape[-1])`."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = gain

    def __call__(self, shape, dtype="float32"):
        if len(shape) < 2:
            raise ValueError(f"The Orthogonal initializer needs a shape of rank 2 or more. Received: shape={shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = self._generator().normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(dtype)

    def get_config(self):
        return {"seed": self.seed, "gain": self.gain}


_ALIASES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_uniform": RandomUniform, "uniform": RandomUniform,
    "random_normal": RandomNormal, "normal": RandomNormal, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal, "orthogonal": Orthogonal,
}


def get(identifier):
    """An initializer from a name (`"glorot_uniform"`), a config dict, an instance or a callable."""
    if identifier is None:
        return None
    if isinstance(identifier, Initializer) or callable(identifier) and not isinstance(identifier, type):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or lookup(identifier)
        if cls is None or not issubclass(cls, Initializer):
            raise ValueError(
                f"Unknown initializer: {identifier!r}. Use one of: {', '.join(sorted(_ALIASES))}.")
        return cls()
    if isinstance(identifier, dict):
        cls = lookup(identifier.get("class_name", ""))
        if cls is None or not issubclass(cls, Initializer):
            raise ValueError(f"Unknown initializer class: {identifier.get('class_name')!r}.")
        return cls.from_config(identifier.get("config", {}))
    raise ValueError(f"Could not interpret initializer: {identifier!r}.")


def serialize(initializer):
    """The Keras config dict of an initializer."""
    return {"module": "keras.initializers", "class_name": type(initializer).__name__,
            "config": initializer.get_config(), "registered_name": None}
