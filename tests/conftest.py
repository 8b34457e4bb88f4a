"""Shared fixtures: a fixed seed for every test, tiny data sets, and the three model kinds."""
import os

import numpy as np
import pytest

# Keras (the behavioural oracle of the interop tests) trains on torch's CPU build when it is there.
try:
    import torch  # noqa: F401
    os.environ.setdefault("KERAS_BACKEND", "torch")
except ImportError:
    os.environ.setdefault("KERAS_BACKEND", "numpy")

import kerasckpt
from kerasckpt import layers

MODEL_KINDS = ("sequential", "functional", "subclass")


@pytest.fixture(autouse=True)
def _seed():
    kerasckpt.utils.clear_session()
    kerasckpt.utils.set_random_seed(1234)
    yield


def tiny_data(n=64, features=6, classes=3, seed=0):
    """A few dozen rows of separable classification data: (x float32, integer labels)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(classes, features))
    labels = rng.integers(0, classes, size=n)
    x = (centers[labels] + rng.normal(0, 1, size=(n, features))).astype("float32")
    return x, labels.astype("int64")


@kerasckpt.saving.register_serializable(package="tests")
class SubMLP(kerasckpt.Model):
    """The subclassed model of the tests: Dense -> BatchNormalization -> Dropout -> Dense."""

    def __init__(self, units=16, classes=3, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.classes, self.dropout = units, classes, dropout
        self.hidden = layers.Dense(units, activation="relu")
        self.bn = layers.BatchNormalization()
        self.drop = layers.Dropout(dropout)
        self.out = layers.Dense(classes, activation="softmax")

    def call(self, inputs, training=False):
        x = self.hidden(inputs)
        x = self.bn(x, training=training)
        x = self.drop(x, training=training)
        return self.out(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "classes": self.classes, "dropout": self.dropout}


def make_model(kind, features=6, classes=3, units=16, dropout=0.0):
    """The same architecture built as a Sequential, functional or subclassed model."""
    if kind == "sequential":
        return kerasckpt.Sequential([
            layers.Input(shape=(features,)), layers.Dense(units, activation="relu"), layers.BatchNormalization(),
            layers.Dropout(dropout), layers.Dense(classes, activation="softmax")])
    if kind == "functional":
        inp = layers.Input(shape=(features,))
        x = layers.Dense(units, activation="relu")(inp)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(dropout)(x)
        return kerasckpt.Model(inp, layers.Dense(classes, activation="softmax")(x))
    if kind == "subclass":
        return SubMLP(units, classes, dropout)
    raise ValueError(f"unknown model kind {kind!r}; use one of {MODEL_KINDS}")


# ------------------------------------------------------------------------------------------ S3 on loopback
class S3Target:
    """A fresh bucket on the test session's moto server: `url(name)` and the `storage_options` to reach it."""

    def __init__(self, server, bucket):
        self.server, self.bucket = server, bucket
        self.base = server.make_bucket(bucket)
        self.storage_options = server.storage_options()

    def url(self, *names):
        return "/".join([self.base, *names])

    def keys(self, prefix=""):
        pages = self.server.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def get(self, key):
        return self.server.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key, data):
        self.server.client().put_object(Bucket=self.bucket, Key=key, Body=data)


@pytest.fixture
def mem():
    """A fresh directory URL on fsspec's in-memory store (a store without a server, in this process)."""
    import uuid
    fsspec = pytest.importorskip("fsspec")
    base = f"memory://kc-{uuid.uuid4().hex[:8]}"
    yield base
    fs = fsspec.filesystem("memory")
    if fs.exists(base):
        fs.rm(base, recursive=True)


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server in a child process on 127.0.0.1, for the whole session (see tests/s3server.py)."""
    import s3server
    server = s3server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server):
    """A fresh, empty bucket on the loopback S3 server."""
    import uuid
    return S3Target(s3_server, f"kc-{uuid.uuid4().hex[:12]}")
