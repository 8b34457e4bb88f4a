"""The same model trained by kerasckpt and by Keras 3, from the same weights and batches, ends equal."""
import numpy as np
import pytest

import kerasckpt

keras = pytest.importorskip("keras")
if keras.backend.backend() == "numpy":
    pytest.skip("Keras's numpy backend cannot train; install torch's CPU build", allow_module_level=True)

OPTIMIZERS = {
    "sgd_momentum": ({"class_name": "SGD", "config": {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}}),
    "adam": ({"class_name": "Adam", "config": {"learning_rate": 0.01}}),
    "adamw": ({"class_name": "AdamW", "config": {"learning_rate": 0.01, "weight_decay": 0.01}}),
    "rmsprop": ({"class_name": "RMSprop", "config": {"learning_rate": 0.005, "momentum": 0.5, "centered": True}}),
}
LOSSES = {
    "sparse_categorical_crossentropy": "softmax",
    "categorical_crossentropy": "softmax",
    "mean_squared_error": "linear",
}


def _data(loss, n=64, features=5, classes=3):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, features)).astype("float32")
    labels = (x @ rng.normal(size=(features, classes))).argmax(axis=1)
    if loss == "sparse_categorical_crossentropy":
        return x, labels
    return x, np.eye(classes, dtype="float32")[labels]


def _layers(lib, batchnorm, activation):
    stack = [lib.layers.Input(shape=(5,)), lib.layers.Dense(8, activation="tanh")]
    if batchnorm:
        stack.append(lib.layers.BatchNormalization())
    stack += [lib.layers.Dense(6, activation="relu"), lib.layers.Dense(3, activation=activation)]
    return stack


def _optimizer(lib, spec):
    return getattr(lib.optimizers, spec["class_name"])(**spec["config"])


@pytest.mark.keras
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("batchnorm", [False, True])
def test_one_epoch_matches_keras(optimizer, loss, batchnorm):
    x, y = _data(loss)
    ours = kerasckpt.Sequential(_layers(kerasckpt, batchnorm, LOSSES[loss]))
    ours.compile(optimizer=_optimizer(kerasckpt, OPTIMIZERS[optimizer]), loss=loss, metrics=["accuracy"])
    theirs = keras.Sequential(_layers(keras, batchnorm, LOSSES[loss]))
    theirs.compile(optimizer=_optimizer(keras, OPTIMIZERS[optimizer]), loss=loss, metrics=["accuracy"])
    theirs.set_weights(ours.get_weights())

    ours_history = ours.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    theirs_history = theirs.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history

    for mine, keras_value in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, np.asarray(keras_value), atol=1e-5, rtol=0)
    assert ours_history["loss"][0] == pytest.approx(theirs_history["loss"][0], abs=1e-5)
    assert ours_history["accuracy"][0] == pytest.approx(theirs_history["accuracy"][0], abs=1e-6)
    assert int(ours.optimizer.iterations.numpy()) == int(theirs.optimizer.iterations.numpy()) == 8


@pytest.mark.keras
def test_predictions_match_keras_for_the_same_weights():
    x, _ = _data("mean_squared_error")
    ours = kerasckpt.Sequential(_layers(kerasckpt, True, "softmax"))
    theirs = keras.Sequential(_layers(keras, True, "softmax"))
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours.predict(x, verbose=0), np.asarray(theirs.predict(x, verbose=0)), atol=1e-6)
