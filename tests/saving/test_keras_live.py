"""Files written by kerasckpt load in a live Keras 3 and predict the same numbers, optimizer state included."""
import importlib.util

import numpy as np
import pytest

import kerasckpt

keras = pytest.importorskip("keras")
MODEL_KINDS = ("sequential", "functional", "subclass")


@pytest.fixture(scope="module")
def keras_fixtures(request):
    """tests/data/make_keras_fixtures.py as a module: it registers the Keras twin of SubMLP."""
    path = request.config.rootpath / "tests" / "data" / "make_keras_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_keras_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def keras_twin(kind, keras_fixtures):
    """The Keras version of tests/conftest.py's make_model(kind, dropout=0.2), compiled, optimizer built."""
    L = keras.layers
    if kind == "sequential":
        model = keras.Sequential([L.Input((6,)), L.Dense(16, activation="relu"), L.BatchNormalization(),
                                  L.Dropout(0.2), L.Dense(3, activation="softmax")])
    elif kind == "functional":
        inp = L.Input((6,))
        h = L.Dropout(0.2)(L.BatchNormalization()(L.Dense(16, activation="relu")(inp)))
        model = keras.Model(inp, L.Dense(3, activation="softmax")(h))
    else:
        model = keras_fixtures.SubMLP(16, 3, 0.2)
        model(np.zeros((1, 6), "float32"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    return model


@pytest.fixture(scope="module")
def trained(request):
    """One trained kerasckpt model of each kind (Adam, Dropout 0.2)."""
    kit = request.config.pluginmanager.get_plugin((request.config.rootpath / "tests" / "conftest.py").as_posix())
    x, y = kit.tiny_data()
    models = {}
    for kind in MODEL_KINDS:
        kerasckpt.utils.set_random_seed(3)
        model = kit.make_model(kind, dropout=0.2)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        models[kind] = model
    return models, x


def _check(keras_model, model, x):
    np.testing.assert_allclose(keras_model.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_keras_loads_our_keras_archive(trained, keras_fixtures, kind, tmp_path):
    models, x = trained
    models[kind].save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    _check(loaded, models[kind], x)
    ours = models[kind].optimizer.variables
    assert len(loaded.optimizer.variables) == len(ours)
    for theirs, mine in zip(loaded.optimizer.variables, ours):
        np.testing.assert_array_equal(np.asarray(theirs), mine.numpy())


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_keras_loads_our_legacy_h5_model(trained, kind, tmp_path):
    models, x = trained
    models[kind].save(tmp_path / "m.h5")
    loaded = keras.saving.load_model(tmp_path / "m.h5")  # compiles: canonical loss name in training_config
    _check(loaded, models[kind], x)
    assert int(loaded.optimizer.iterations.numpy()) == int(models[kind].optimizer.iterations.numpy())


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5"])
def test_keras_loads_our_weights(trained, keras_fixtures, kind, name, tmp_path):
    models, x = trained
    models[kind].save_weights(tmp_path / name)
    twin = keras_twin(kind, keras_fixtures)
    twin.load_weights(tmp_path / name)
    _check(twin, models[kind], x)
    if name.endswith(".weights.h5"):  # Keras reads optimizer state from .weights.h5 only
        for theirs, mine in zip(twin.optimizer.variables, models[kind].optimizer.variables):
            np.testing.assert_array_equal(np.asarray(theirs), mine.numpy())


def test_keras_trains_on_after_loading_our_archive(trained, tmp_path):
    models, x = trained
    model = models["functional"]
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    loaded.fit(x, np.zeros(len(x), "int64"), epochs=1, verbose=0)
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) + 2


def test_keras_reads_zip64_archives(trained, tmp_path, monkeypatch):
    from kerasckpt.saving import keras_zip
    monkeypatch.setattr(keras_zip, "ZIP64_FROM", 0)
    models, x = trained
    models["sequential"].save(tmp_path / "z.keras")
    _check(keras.saving.load_model(tmp_path / "z.keras"), models["sequential"], x)


def test_keras_compiles_our_legacy_h5_with_mse_alias(kit, tmp_path):
    """Keras cannot compile its own legacy .h5 with loss="mse"; kerasckpt writes the canonical name."""
    x = kit.tiny_data()[0]
    model = kit.make_model("functional")
    onehot = np.eye(3, dtype="float32")[np.arange(len(x)) % 3]
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit(x, onehot, epochs=1, verbose=0)
    model.save(tmp_path / "mse.h5")
    loaded = keras.saving.load_model(tmp_path / "mse.h5")
    assert loaded.compiled
    np.testing.assert_allclose(loaded.evaluate(x, onehot, verbose=0)[0], model.evaluate(x, onehot, verbose=0)[0],
                               rtol=1e-5)
