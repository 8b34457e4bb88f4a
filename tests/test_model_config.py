"""Model get_config()/from_config(): Keras's schema for Sequential and functional models, the automatic
config of subclassed models, round trips (same predictions after set_weights) and Keras interop."""
import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.errors import UnknownObjectError
from kerasckpt.models import Functional

from conftest import SubMLP, make_model, tiny_data


def _keras():
    return pytest.importorskip("keras")


def _rebuilt(model, sample=None):
    twin = type(model).from_config(model.get_config())
    if not twin.built:  # a subclassed model is rebuilt unbuilt, as in Keras: its first call builds it
        twin(sample)
    twin.set_weights(model.get_weights())
    return twin


def _nested_functional():
    """Two inputs, a shared layer, a nested Sequential and two outputs."""
    a, b = layers.Input((6,), name="a"), layers.Input((6,), name="b")
    shared = layers.Dense(4, activation="tanh", name="shared")
    block = kerasckpt.Sequential([layers.Dense(5, activation="relu"), layers.BatchNormalization()], name="block")
    h = block(shared(a))
    return kerasckpt.Model([a, b], [layers.Dense(3, activation="softmax", name="cls")(h),
                                    layers.Dense(1, name="reg")(shared(b))], name="two_heads")


# ---------------------------------------------------------------- the audit's repro

def test_sequential_from_config_is_not_empty():
    model = kerasckpt.Sequential([layers.Input((3,)), layers.Dense(1)])
    twin = kerasckpt.Sequential.from_config(model.get_config())
    assert [type(layer).__name__ for layer in twin.layers] == ["Dense"] and twin.built
    twin.set_weights(model.get_weights())
    x = np.arange(6, dtype="float32").reshape(2, 3)
    assert np.array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))


def test_model_from_functional_config_is_functional():
    inp = layers.Input((3,))
    model = kerasckpt.Model(inp, layers.Dense(2)(inp))
    for cls in (kerasckpt.Model, Functional):
        twin = cls.from_config(model.get_config())
        assert type(twin) is Functional and [layer.name for layer in twin.layers] == [l.name for l in model.layers]


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("kind", ["sequential", "functional", "subclass"])
def test_round_trip_predicts_the_same(kind):
    x, _ = tiny_data(16)
    model = make_model(kind, dropout=0.3)
    model(x[:1])
    twin = _rebuilt(model, x[:1])
    assert type(twin) is type(model) and twin.name == model.name
    assert twin.get_config() == model.get_config()
    if kind != "subclass":  # a subclass makes new layers in __init__, with new default names (as in Keras)
        assert [w.path for w in twin.weights] == [w.path for w in model.weights]
    assert np.array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))


def test_nested_functional_round_trip():
    model = _nested_functional()
    twin = _rebuilt(model)
    assert twin.get_config() == model.get_config()
    xa, xb = tiny_data(8)[0], tiny_data(8, seed=1)[0]
    for ours, theirs in zip(twin.predict([xa, xb], verbose=0), model.predict([xa, xb], verbose=0)):
        assert np.array_equal(ours, theirs)


def test_config_is_what_the_keras_file_stores(tmp_path):
    import json
    import zipfile
    model = make_model("functional")
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        stored = json.loads(archive.read("config.json"))
    assert stored["config"] == json.loads(json.dumps(model.get_config()))


def test_unbuilt_sequential_round_trip_builds_later():
    model = kerasckpt.Sequential([layers.Dense(4), layers.Dense(2)], name="later")
    config = model.get_config()
    assert "build_input_shape" not in config and [e["class_name"] for e in config["layers"]] == ["Dense", "Dense"]
    twin = kerasckpt.Sequential.from_config(config)
    assert not twin.built and len(twin.layers) == 2
    model.build((None, 3))
    twin.build((None, 3))
    twin.set_weights(model.get_weights())
    x = np.ones((2, 3), "float32")
    assert np.array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))


def test_sequential_from_a_list_of_layer_configs():
    model = kerasckpt.Sequential([layers.Input((3,)), layers.Dense(2)])
    twin = kerasckpt.Sequential.from_config(model.get_config()["layers"])  # Keras 2's form
    assert len(twin.layers) == 1 and twin.built


def test_sequential_subclass_from_config_keeps_the_class():
    class Stack(kerasckpt.Sequential):
        pass

    model = Stack([layers.Input((3,)), layers.Dense(2)])
    twin = Stack.from_config(model.get_config())
    assert type(twin) is Stack and len(twin.layers) == 1 and twin.built


def test_custom_layer_needs_registration_or_custom_objects():
    class Scale(layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    model = kerasckpt.Sequential([layers.Input((3,)), Scale(), layers.Dense(1)])
    config = model.get_config()
    with pytest.raises(UnknownObjectError, match=r"Sequential.from_config\(\).*'Scale'.*custom_objects") as info:
        kerasckpt.Sequential.from_config(config)
    assert isinstance(info.value, TypeError)
    twin = kerasckpt.Sequential.from_config(config, custom_objects={"Scale": Scale})
    assert type(twin.layers[0]) is Scale


def test_model_from_config_refuses_a_sequential_config_with_advice():
    config = kerasckpt.Sequential([layers.Input((3,)), layers.Dense(1)]).get_config()
    with pytest.raises(ValueError, match=r"Sequential.from_config\(\)"):
        kerasckpt.Model.from_config(config)


def test_from_config_needs_a_dict():
    with pytest.raises(TypeError, match="needs the dict returned by get_config"):
        kerasckpt.Sequential.from_config("sequential")


# ---------------------------------------------------------------- subclassed models

class Auto(kerasckpt.Model):
    def __init__(self, units=4, activation="relu", sizes=(1, 2), **kwargs):
        super().__init__(**kwargs)
        self.units, self.activation, self.sizes = units, activation, sizes
        self.dense = layers.Dense(units, activation=activation)

    def call(self, inputs):
        return self.dense(inputs)


class TakesALayer(kerasckpt.Model):
    def __init__(self, head, **kwargs):
        super().__init__(**kwargs)
        self.head = head

    def call(self, inputs):
        return self.head(inputs)


class NoArguments(kerasckpt.Model):
    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(2)

    def call(self, inputs):
        return self.dense(inputs)


def test_subclass_config_records_the_arguments_passed():
    """Keras 3 records only the defaults (units=4 here); kerasckpt records what was passed."""
    model = Auto(units=7, activation="tanh", sizes=(3,), name="auto", trainable=False)
    config = model.get_config()
    assert config == {"units": 7, "activation": "tanh", "sizes": [3], "name": "auto", "trainable": False,
                      "dtype": layers.Dense(1).get_config()["dtype"]}
    twin = Auto.from_config(config)
    assert (twin.units, twin.activation, twin.name, twin.trainable) == (7, "tanh", "auto", False)
    assert twin.get_config() == config


def test_subclass_config_keeps_the_live_trainable_and_name():
    model = Auto()
    model.trainable = False
    config = model.get_config()
    assert config["trainable"] is False and config["name"] == model.name and config["units"] == 4


def test_subclass_without_name_or_kwargs_gets_only_its_arguments():
    model = NoArguments()
    assert model.get_config() == {}
    assert type(NoArguments.from_config({})) is NoArguments


def test_subclass_with_a_layer_argument_must_override_get_config():
    model = TakesALayer(layers.Dense(2))
    with pytest.raises(NotImplementedError, match=r"TakesALayer.*argument 'head' of type Dense.*Override get_config"):
        model.get_config()
    model(np.ones((1, 3), "float32"))
    with pytest.raises(NotImplementedError, match="argument 'head'"):
        model.get_config()


def test_subclass_that_overrides_get_config_extends_the_base_config():
    model = SubMLP(units=8, dropout=0.25)
    config = model.get_config()
    assert config["units"] == 8 and config["dropout"] == 0.25 and config["name"] == model.name
    assert {"name", "trainable", "dtype"} <= set(config)
    assert SubMLP.from_config(config).get_config() == config


def test_from_config_that_does_not_fit_init_says_what_to_do():
    with pytest.raises(TypeError, match=r"Unable to revive model NoArguments.*from_config\(cls, config\)"):
        NoArguments.from_config({"units": 3})


def test_plain_model_config_matches_keras():
    keras = _keras()
    assert set(kerasckpt.Model().get_config()) == set(keras.Model().get_config()) == {"name", "trainable", "dtype"}


# ---------------------------------------------------------------- Keras interop

def _keras_sequential(keras):
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.BatchNormalization(), keras.layers.Dropout(0.1),
                             keras.layers.Dense(3, activation="softmax")])


def _keras_functional(keras):
    inp = keras.Input((6,))
    x = keras.layers.Dense(16, activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.1)(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_config_keys_match_keras(kind):
    keras = _keras()
    theirs = (_keras_sequential if kind == "sequential" else _keras_functional)(keras).get_config()
    ours = make_model(kind, dropout=0.1).get_config()
    assert set(ours) == set(theirs)
    assert [e["class_name"] for e in ours["layers"]] == [e["class_name"] for e in theirs["layers"]]
    for mine, keras_entry in zip(ours["layers"], theirs["layers"]):
        assert set(mine) == set(keras_entry)
        assert set(mine["config"]) == set(keras_entry["config"])


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_from_keras_config_predicts_like_keras(kind):
    keras = _keras()
    theirs = (_keras_sequential if kind == "sequential" else _keras_functional)(keras)
    cls = kerasckpt.Sequential if kind == "sequential" else kerasckpt.Model
    ours = cls.from_config(theirs.get_config())  # tuples, not lists, in Keras's in-memory config
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    x = tiny_data(16)[0]
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_keras_rebuilds_our_config(kind):
    keras = _keras()
    model = make_model(kind)
    cls = keras.Sequential if kind == "sequential" else keras.Model
    theirs = cls.from_config(model.get_config())
    theirs.set_weights(model.get_weights())
    x = tiny_data(16)[0]
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
