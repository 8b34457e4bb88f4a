"""BackupAndRestore with convolutional and recurrent models: fit() interrupted (mid-epoch or at an epoch's
end) and started again equals an uninterrupted run, bit for bit: weights, optimizer slots, the random
streams of Dropout and of the recurrent cells' dropout masks, and the whole run's history."""
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


def _images(rng):
    x = rng.normal(size=(40, 10, 10, 1)).astype("float32")
    y = (x[:, :5].mean(axis=(1, 2, 3)) > 0).astype("int64") + (x[:, 5:].mean(axis=(1, 2, 3)) > 0)
    return x, y


def _text_model(kind):
    if kind == "sequential":  # Embedding + LSTM with both dropouts: the cells' random streams must resume
        return kerasckpt.Sequential([
            layers.Input((None,), dtype="int32"), layers.Embedding(20, 6, mask_zero=True),
            layers.SpatialDropout1D(0.2), layers.LSTM(5, dropout=0.2, recurrent_dropout=0.3),
            layers.Dense(1, activation="sigmoid")])
    inp = layers.Input((None,), dtype="int32")
    h = layers.Embedding(20, 6, mask_zero=True)(inp)
    h = layers.Bidirectional(layers.GRU(4, return_sequences=True, dropout=0.1))(h)
    h = layers.MultiHeadAttention(2, 3, dropout=0.2)(h, h)
    h = layers.SimpleRNN(3, recurrent_dropout=0.2)(h)
    return kerasckpt.Model(inp, layers.Dense(1, activation="sigmoid")(h))


def _padded_text(rng):
    x = rng.integers(1, 20, (40, 7)).astype("int32")
    x[np.arange(7)[None, :] >= rng.integers(2, 8, 40)[:, None]] = 0
    return x, (x[:, 0] > 10).astype("float32")


FAMILIES = {"convnet": (_convnet, _images, "sparse_categorical_crossentropy"),
            "recurrent": (_text_model, _padded_text, "binary_crossentropy")}


def _fit(directory, family, kind, save_freq, crash=None):
    build, data, loss = FAMILIES[family]
    kerasckpt.utils.clear_session()
    kerasckpt.utils.set_random_seed(7)
    x, y = data(np.random.default_rng(0))
    model = build(kind)
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    callbacks = [BackupAndRestore(str(directory / "backup"), save_freq=save_freq)]
    if crash is not None:
        callbacks.append(Crash(*crash))
    model.fit(x, y, batch_size=8, epochs=3, validation_split=0.2, verbose=0, callbacks=callbacks)
    return model


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("kind, save_freq, crash", [("sequential", 3, (1, 2)), ("functional", "epoch", (2, 1))])
def test_interrupted_fit_resumes_to_the_same_run(tmp_path, family, kind, save_freq, crash):
    straight = _fit(tmp_path / "straight", family, kind, save_freq)
    with pytest.raises(KeyboardInterrupt, match="simulated crash"):
        _fit(tmp_path / "resumed", family, kind, save_freq, crash=crash)
    assert any((tmp_path / "resumed" / "backup").iterdir())  # the rerun starts from a backup, not from scratch
    resumed = _fit(tmp_path / "resumed", family, kind, save_freq)
    for a, b in zip(straight.weights + straight.optimizer.variables, resumed.weights + resumed.optimizer.variables,
                    strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), a.path
    assert resumed.history.run_history == straight.history.history  # the whole run's history, all epochs
