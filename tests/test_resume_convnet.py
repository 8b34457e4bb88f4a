"""BackupAndRestore with a convnet: fit() interrupted mid-epoch and started again equals an uninterrupted run."""
import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers, ops
from kerasckpt.callbacks import BackupAndRestore
from crashing import Crash


def _convnet(kind):
    if kind == "sequential":  # the keras.io MNIST convnet, small
        return kerasckpt.Sequential([
            layers.Input((10, 10, 1)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
            layers.Conv2D(6, 3, padding="same"), layers.BatchNormalization(), layers.ReLU(), layers.Flatten(),
            layers.Dropout(0.5), layers.Dense(3, activation="softmax")])
    inp = layers.Input((10, 10, 1))
    h = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    h = layers.Add()([h, ops.repeat(inp, 4, axis=-1)])  # a residual connection through an op node
    h = layers.AveragePooling2D(2)(layers.LayerNormalization()(h))
    h = layers.Conv2DTranspose(2, 2, strides=2)(h)
    h = layers.Dropout(0.3)(layers.GlobalMaxPooling2D()(h))
    return kerasckpt.Model(inp, layers.Dense(3, activation="softmax")(h))


def _fit(directory, kind, save_freq, crash=None):
    kerasckpt.utils.clear_session()
    kerasckpt.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 10, 10, 1)).astype("float32")
    y = (x[:, :5].mean(axis=(1, 2, 3)) > 0).astype("int64") + (x[:, 5:].mean(axis=(1, 2, 3)) > 0)
    model = _convnet(kind)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = [BackupAndRestore(str(directory / "backup"), save_freq=save_freq)]
    if crash is not None:
        callbacks.append(Crash(*crash))
    model.fit(x, y, batch_size=8, epochs=3, validation_split=0.2, verbose=0, callbacks=callbacks)
    return model


@pytest.mark.parametrize("kind, save_freq, crash", [("sequential", 3, (1, 2)), ("functional", "epoch", (2, 1))])
def test_interrupted_convnet_fit_resumes_to_the_same_run(tmp_path, kind, save_freq, crash):
    straight = _fit(tmp_path / "straight", kind, save_freq)
    with pytest.raises(KeyboardInterrupt, match="simulated crash"):
        _fit(tmp_path / "resumed", kind, save_freq, crash=crash)
    assert any((tmp_path / "resumed" / "backup").iterdir())  # the rerun starts from a backup, not from scratch
    resumed = _fit(tmp_path / "resumed", kind, save_freq)
    for a, b in zip(straight.weights + straight.optimizer.variables, resumed.weights + resumed.optimizer.variables,
                    strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), a.path
    assert resumed.history.run_history == straight.history.history  # the whole run's history, all epochs
