"""Fixtures for callback tests: a fake model with just what callbacks may use, scripted loops, Keras.

Everything is a fixture (never `from conftest import ...`: several conftest.py files share that name).
"""
import os

import numpy as np
import pytest

from kerasckpt.callbacks import CallbackList


class FakeMetric:
    def __init__(self, name, direction=None):
        self.name = name
        if direction is not None:
            self._direction = direction


class FakeOptimizer:
    def __init__(self, learning_rate=0.01):
        self.learning_rate = learning_rate


class FakeModel:
    """`stop_training`, `optimizer.learning_rate`, `get_weights`/`set_weights`, `metrics`, `history`."""

    def __init__(self, metrics=(), learning_rate=0.01):
        self.stop_training = False
        self.optimizer = FakeOptimizer(learning_rate)
        self.metrics = [FakeMetric("loss", "down")] + [m if hasattr(m, "name") else FakeMetric(*m) for m in metrics]
        self.weights = [np.zeros((2, 2)), np.zeros(2)]
        self.history = None

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]


@pytest.fixture
def fake_model():
    """`fake_model(metrics=(("accuracy", "up"), metric_object, ...), learning_rate=0.01)`."""
    return FakeModel


@pytest.fixture
def fake_metric():
    return FakeMetric


@pytest.fixture
def model():
    return FakeModel(metrics=[("accuracy", "up"), ("mae", "down")])


@pytest.fixture
def drive_epochs():
    """`drive_epochs(callback, model, values, monitor="val_loss")` calls the callback's epoch hooks
    directly, as fit() would, with `values[e]` monitored at epoch e and the weights set to e.
    Returns the number of epochs run."""
    def _drive(callback, model, values, monitor="val_loss"):
        model.stop_training = False
        callback.set_model(model)
        callback.on_train_begin()
        ran = 0
        for epoch, value in enumerate(values):
            model.set_weights([np.full_like(w, epoch) for w in model.weights])
            callback.on_epoch_end(epoch, {"loss": 1.0, monitor: value})
            ran += 1
            if model.stop_training:
                break
        callback.on_train_end()
        return ran
    return _drive


@pytest.fixture
def run():
    """`run(callbacks, model, epoch_logs, steps=2, validation=False)` drives a fit-like loop through a
    CallbackList (weights set to the epoch index); returns the number of epochs run."""
    def _run(callbacks, model, epoch_logs, steps=2, validation=False):
        cbs = CallbackList(callbacks, add_history=True, model=model, verbose=0, epochs=len(epoch_logs), steps=steps)
        model.stop_training = False
        cbs.on_train_begin()
        ran = 0
        for epoch, logs in enumerate(epoch_logs):
            cbs.on_epoch_begin(epoch)
            for batch in range(steps):
                cbs.on_train_batch_begin(batch)
                model.set_weights([np.full_like(w, epoch) for w in model.weights])
                cbs.on_train_batch_end(batch, {"loss": logs.get("loss", 0.0)})
            if validation:
                cbs.on_test_begin()
                cbs.on_test_batch_begin(0)
                cbs.on_test_batch_end(0, {})
                cbs.on_test_end({})
            cbs.on_epoch_end(epoch, dict(logs))
            ran += 1
            if model.stop_training:
                break
        cbs.on_train_end(dict(epoch_logs[ran - 1]) if ran else None)
        return ran
    return _run


@pytest.fixture(scope="session")
def keras_callbacks():
    """Keras's own callback classes (the behavioural oracle), or skip when Keras is absent."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    return keras.callbacks


@pytest.fixture
def real_fit():
    """`real_fit(callbacks, epochs=3, validation=True, **fit_kwargs)` trains a small kerasckpt model
    with real `fit()`; returns `(model, history)`."""
    import kerasckpt
    from kerasckpt import layers

    def _fit(callbacks, epochs=3, validation=True, metrics=("mae",), learning_rate=0.01, **kwargs):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(24, 3)).astype("float32")
        y = (x @ np.array([[1.0], [-2.0], [0.5]], "float32")).astype("float32")
        model = kerasckpt.Sequential([layers.Input(shape=(3,)), layers.Dense(1)])
        model.compile(optimizer=kerasckpt.optimizers.SGD(learning_rate), loss="mse", metrics=list(metrics))
        kwargs.setdefault("verbose", 0)
        history = model.fit(x, y, batch_size=8, epochs=epochs, callbacks=callbacks,
                            validation_data=(x[:8], y[:8]) if validation else None, **kwargs)
        return model, history
    return _fit


@pytest.fixture
def scripted_logs():
    """`scripted_logs(key, values)`: a callback, to list first, that sets `logs[key] = values[epoch]` in
    on_epoch_end; the callbacks after it in the same list see the scripted value."""
    from kerasckpt.callbacks import Callback

    class Scripted(Callback):
        def __init__(self, key, values):
            super().__init__()
            self.key, self.values = key, list(values)

        def on_epoch_end(self, epoch, logs=None):
            logs[self.key] = self.values[epoch]
    return Scripted
