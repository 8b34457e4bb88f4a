"""Write the Keras 3 fixture files of tests/saving (run with the torch backend; Keras 3.15.1 made them).

    KERAS_BACKEND=torch python tests/data/make_keras_fixtures.py [name ...]

For each model: `<name>.weights.h5`, `<name>.keras`, `<name>.h5` as Keras writes them, and
`<name>.expected.npz` with the data, Keras's predictions, and the weights after one more
`train_on_batch` on `step_x`/`step_y` (to check that kerasckpt continues with the same optimizer
state). Dropout rates are 0 so both libraries draw no random numbers while training.
"""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


@keras.saving.register_keras_serializable(package="tests")
class SubMLP(keras.Model):
    """The Keras twin of tests/conftest.py's SubMLP."""

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
        return {"name": self.name, "trainable": self.trainable, "units": self.units, "classes": self.classes,
                "dropout": self.dropout}


def tiny_data(n=64, features=6, classes=3, seed=0):
    """Same as tests/conftest.py's tiny_data."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(classes, features))
    labels = rng.integers(0, classes, size=n)
    x = (centers[labels] + rng.normal(0, 1, size=(n, features))).astype("float32")
    return x, labels.astype("int64")


def seq_adam():
    model = keras.Sequential([layers.Input(shape=(6,)), layers.Dense(16, activation="relu"), layers.Dropout(0.0),
                              layers.BatchNormalization(), layers.Dense(3, activation="softmax")], name="seq_adam")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = tiny_data()
    return model, x, y


def func_sgd():
    inp = layers.Input(shape=(3, 4))
    h = layers.Flatten(name="flat")(inp)
    h = layers.Dense(12, name="hidden")(h)
    h = layers.BatchNormalization(name="bn")(h)
    h = layers.Activation("tanh", name="act")(h)
    h = layers.Dropout(0.0, name="drop")(h)
    out = layers.Dense(2, name="out")(h)
    model = keras.Model(inp, out, name="func_sgd")
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mean_squared_error", metrics=["mae"])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(48, 3, 4)).astype("float32")
    y = np.stack([x.sum(axis=(1, 2)), x[:, 0, 0]], axis=1).astype("float32")
    return model, x, y


def sub_rmsprop():
    model = SubMLP(16, 3, 0.0, name="sub_mlp")
    model.compile(optimizer=keras.optimizers.RMSprop(1e-2, momentum=0.5, centered=True),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = tiny_data()
    model(x[:1])
    return model, x, y


def nested_adamw():
    inner = keras.Sequential([layers.Input(shape=(4,)), layers.Dense(6, activation="relu", name="i1"),
                              layers.Dense(4, name="i2")], name="inner")
    inp = layers.Input(shape=(4,))
    out = layers.Dense(1, name="head")(inner(inp))
    model = keras.Model(inp, out, name="outer")
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss="mae")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [0.0]])).astype("float32")
    return model, x, y


def unsupported():
    """A model with a layer kerasckpt does not have (PReLU): loading must name it."""
    model = keras.Sequential([layers.Input(shape=(4,)), layers.Dense(3), layers.PReLU()], name="unsupported")
    model.compile(optimizer="adam", loss="mse")
    return model


def main(only=()):
    """Write every fixture, or only those named in `only` (e.g. `unsupported_prelu`)."""
    keras.utils.set_random_seed(0)
    for name, make in (("seq_adam", seq_adam), ("func_sgd", func_sgd), ("sub_rmsprop", sub_rmsprop),
                       ("nested_adamw", nested_adamw)):
        if only and name not in only:
            continue
        model, x, y = make()
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        base = os.path.join(HERE, name)
        model.save_weights(base + ".weights.h5")
        model.save(base + ".keras")
        if name != "sub_rmsprop":
            model.save(base + ".h5")
        pred = model.predict(x, verbose=0)
        step_x, step_y = x[:16], y[:16]
        model.train_on_batch(step_x, step_y)
        after = {f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
        opt = {f"o{i}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)}
        np.savez(base + ".expected.npz", x=x, y=y, pred=pred, step_x=step_x, step_y=step_y, **after, **opt)
        print("wrote", name)
    if not only or "unsupported_prelu" in only:
        model = unsupported()
        model.save(os.path.join(HERE, "unsupported_prelu.keras"))
        model.save(os.path.join(HERE, "unsupported_prelu.h5"))


if __name__ == "__main__":
    main(sys.argv[1:])
