"""Randomness that can be saved and replayed: the one global generator and counter-based streams.

Every random draw in kerasckpt comes either from the global generator (initial weights, seeds for
layers created without one) or from a `SeedGenerator`, a counter-based stream whose whole state is
two integers, so a resumed run draws exactly the numbers the uninterrupted run would have drawn.
"""
import random as _pyrandom

import numpy as np

_global = np.random.default_rng()


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


class SeedGenerator:
    """A counter-based random stream: draw `k` uses Philox(key=seed, counter=k).

    Its state is `(seed, counter)`; saving and restoring those two integers replays the stream
    exactly. Used by Dropout and by `fit()`'s shuffling.
    """

    def __init__(self, seed=None):
        self.seed = draw_seed() if seed is None else int(seed)
        self.counter = 0

    def next(self):
        """A NumPy Generator for the next draw; each call advances the stream by one."""
        gen = np.random.Generator(np.random.Philox(key=self.seed, counter=self.counter))
        self.counter += 1
        return gen

    def get_state(self):
        return {"seed": self.seed, "counter": self.counter}

    def set_state(self, state):
        self.seed, self.counter = int(state["seed"]), int(state["counter"])
