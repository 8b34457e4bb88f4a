"""Helpers of the checkpoint tests: the two-Dense subclassed model of TF's docs, weight comparisons.

(Not a conftest.py: several test folders use that module name.)
"""
import os
import sys

import numpy as np

import kerasckpt
from kerasckpt import layers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


class TwoDense(kerasckpt.Model):
    """`dense_2(dense_1(x))`, built by its first call (no build()): where TensorFlow loses a value."""

    def __init__(self, units=4, outputs=1, **kwargs):
        super().__init__(**kwargs)
        self.dense_1 = layers.Dense(units, activation="relu")
        self.dense_2 = layers.Dense(outputs)

    def call(self, inputs, training=False):
        return self.dense_2(self.dense_1(inputs))


def same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(wa, wb))


def child_env():
    """Environment for child processes: the repo importable, one BLAS thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTHONWARNINGS", None)
    return env


PYTHON = sys.executable


VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def object_paths(path):
    """The object paths of a checkpoint's values: its keys (TensorFlow's `.../.ATTRIBUTES/VARIABLE_VALUE`)
    without the suffix, the entries that describe the checkpoint (object graph, metadata) left out."""
    return [k[:-len(VALUE_SUFFIX)] for k, _ in kerasckpt.list_variables(path) if k.endswith(VALUE_SUFFIX)]
