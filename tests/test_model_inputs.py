"""Models with several inputs and outputs: subclassed models called with dicts or lists, functional models with
list or dict inputs and outputs and shared layers; training, every file format, and Keras's weights."""
import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers, ops

FORMATS = ("m.keras", "m.weights.h5", "m.h5", "ckpt")


@kerasckpt.saving.register_serializable(package="tests")
class DictModel(kerasckpt.Model):
    """Two named inputs, each through its own Dense, joined."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.left = layers.Dense(units, activation="relu")
        self.right = layers.Dense(units)
        self.join = layers.Concatenate()
        self.head = layers.Dense(1)

    def call(self, inputs):
        return self.head(self.join([self.left(inputs["a"]), self.right(inputs["b"])]))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@kerasckpt.saving.register_serializable(package="tests")
class ListModel(kerasckpt.Model):
    """A list of two inputs through one shared Dense, added."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shared = layers.Dense(4, activation="tanh")
        self.head = layers.Dense(1)

    def call(self, inputs):
        first, second = inputs
        return self.head(layers.add([self.shared(first), self.shared(second)]))


def _dict_data(n=16):
    rng = np.random.default_rng(0)
    x = {"a": rng.normal(size=(n, 2)).astype("float32"), "b": rng.normal(size=(n, 5)).astype("float32")}
    return x, (x["a"].sum(1) - x["b"].mean(1)).reshape(-1, 1)


def _trained(model, x, y):
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    return model


def _save(model, path):
    model.save(path) if path.suffix in (".keras", ".h5") and not path.name.endswith(".weights.h5") \
        else model.save_weights(path)


@pytest.mark.parametrize("name", FORMATS)
def test_subclassed_model_called_with_a_dict_trains_saves_and_loads(tmp_path, name):
    x, y = _dict_data()
    model = _trained(DictModel(), x, y)
    shapes = model.get_build_config()["input_shape"]
    assert sorted(shapes) == ["a", "b"] and shapes["a"][1:] == (2,) and shapes["b"][1:] == (5,)
    _save(model, tmp_path / name)
    if name in ("m.keras", "m.h5"):
        loaded = kerasckpt.models.load_model(tmp_path / name)  # rebuilt from the dict build_config
    else:
        loaded = DictModel()
        loaded(x)
        loaded.compile(optimizer="adam", loss="mse")
        loaded.load_weights(tmp_path / name)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for mine, theirs in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_subclassed_model_called_with_a_list_builds_from_a_list_of_shapes(tmp_path):
    x = [np.ones((4, 3), "float32"), np.full((4, 3), 2.0, "float32")]
    model = ListModel()
    model.build([(None, 3), (None, 3)])
    assert [w.shape for w in model.weights] == [(3, 4), (4,), (4, 1), (1,)]  # the shared Dense once
    out = model(x)
    model.save(tmp_path / "l.keras")
    np.testing.assert_array_equal(kerasckpt.models.load_model(tmp_path / "l.keras")(x).numpy(), out.numpy())


def test_build_names_a_shape_it_cannot_use():
    with pytest.raises(TypeError, match="list or dict of shapes"):
        DictModel().build({"a": "wide"})


def test_functional_model_with_list_inputs_and_dict_outputs_trains_and_round_trips(tmp_path):
    a, b = layers.Input((3,)), layers.Input((2,))
    shared = layers.Dense(4, activation="relu", name="shared")
    joined = layers.Concatenate()([shared(ops.pad(b, [[0, 0], [0, 1]])), shared(a)])
    model = kerasckpt.Model([a, b], {"sum": layers.Dense(1, name="sum")(joined), "diff": a[:, :1] - b[:, :1]})
    assert len(model.weights) == 4  # the shared layer's weights once
    rng = np.random.default_rng(1)
    x = [rng.normal(size=(10, 3)).astype("float32"), rng.normal(size=(10, 2)).astype("float32")]
    model.compile(optimizer="sgd", loss={"sum": "mse", "diff": "mae"})
    model.fit(x, {"sum": np.ones((10, 1)), "diff": np.zeros((10, 1))}, epochs=1, verbose=0)
    expected = model.predict(x, verbose=0)
    assert sorted(expected) == ["diff", "sum"]
    for name in ("m.keras", "m.h5"):
        model.save(tmp_path / name)
        got = kerasckpt.models.load_model(tmp_path / name).predict(x, verbose=0)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])


@pytest.mark.keras
def test_dict_input_subclassed_weights_go_both_ways_with_keras(tmp_path):
    keras = pytest.importorskip("keras")

    class KerasDictModel(keras.Model):
        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.left = keras.layers.Dense(units, activation="relu")
            self.right = keras.layers.Dense(units)
            self.join = keras.layers.Concatenate()
            self.head = keras.layers.Dense(1)

        def call(self, inputs):
            return self.head(self.join([self.left(inputs["a"]), self.right(inputs["b"])]))

    x, y = _dict_data()
    ours = _trained(DictModel(), x, y)
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs = KerasDictModel()
    theirs(x)
    theirs.compile(optimizer="adam", loss="mse")
    theirs.optimizer.build(theirs.trainable_variables)
    theirs.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-6)
    theirs.fit(x, y, batch_size=8, epochs=1, verbose=0)
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    back = DictModel()
    back(x)
    back.load_weights(tmp_path / "theirs.weights.h5")
    np.testing.assert_allclose(back.predict(x, verbose=0), theirs.predict(x, verbose=0), atol=1e-6)
