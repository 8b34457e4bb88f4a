"""BackupAndRestore with recurrent text models: fit() interrupted mid-epoch and started again equals an
uninterrupted run, bit for bit, the dropout masks of the recurrent cells included."""
import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.callbacks import BackupAndRestore
from crashing import Crash


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


def _fit(directory, kind, save_freq, crash=None):
    kerasckpt.utils.clear_session()
    kerasckpt.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, (40, 7)).astype("int32")
    x[np.arange(7)[None, :] >= rng.integers(2, 8, 40)[:, None]] = 0
    y = (x[:, 0] > 10).astype("float32")
    model = _text_model(kind)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    callbacks = [BackupAndRestore(str(directory / "backup"), save_freq=save_freq)]
    if crash is not None:
        callbacks.append(Crash(*crash))
    model.fit(x, y, batch_size=8, epochs=3, validation_split=0.2, verbose=0, callbacks=callbacks)
    return model


@pytest.mark.parametrize("kind, save_freq, crash", [("sequential", 3, (1, 2)), ("functional", "epoch", (2, 1))])
def test_interrupted_recurrent_fit_resumes_to_the_same_run(tmp_path, kind, save_freq, crash):
    straight = _fit(tmp_path / "straight", kind, save_freq)
    with pytest.raises(KeyboardInterrupt, match="simulated crash"):
        _fit(tmp_path / "resumed", kind, save_freq, crash=crash)
    assert any((tmp_path / "resumed" / "backup").iterdir())  # the rerun starts from a backup, not from scratch
    resumed = _fit(tmp_path / "resumed", kind, save_freq)
    for a, b in zip(straight.weights + straight.optimizer.variables, resumed.weights + resumed.optimizer.variables,
                    strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), a.path
    assert resumed.history.run_history == straight.history.history  # the whole run's history, all epochs
