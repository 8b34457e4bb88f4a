"""Every format x model kind x optimizer: same predictions after loading, and one more epoch of
training after loading is bit-identical to a model that was never saved."""
import numpy as np
import pytest

import kerasckpt
from kerasckpt import optimizers

OPTIMIZERS = {
    "sgd_momentum": lambda: optimizers.SGD(0.05, momentum=0.9),
    "adam": lambda: optimizers.Adam(1e-2),
    "adamw": lambda: optimizers.AdamW(1e-2),
    "rmsprop": lambda: optimizers.RMSprop(1e-2),
}
FORMATS = ("keras", "h5_model", "weights_h5", "h5_weights")
MODEL_KINDS = ("sequential", "functional", "subclass")


def compiled(kit, kind, opt="adam"):
    model = kit.make_model(kind, dropout=0.3)
    model.compile(optimizer=OPTIMIZERS[opt](), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def state(model):
    return [w.numpy() for w in model.weights] + [v.numpy() for v in model.optimizer.variables]


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


def save_and_load(kit, model, fmt, tmp_path, kind, opt):
    """Save `model` in `fmt` and bring it back (into a differently seeded twin for weights formats)."""
    if fmt in ("keras", "h5_model"):
        path = tmp_path / ("m.keras" if fmt == "keras" else "m.h5")
        model.save(path)
        return kerasckpt.saving.load_model(path)
    path = tmp_path / ("m.weights.h5" if fmt == "weights_h5" else "m.h5")
    model.save_weights(path)
    kerasckpt.utils.set_random_seed(999)  # other initial weights and another Dropout seed
    twin = compiled(kit, kind, opt)
    twin(kit.tiny_data()[0][:2])
    twin.load_weights(path)
    return twin


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_then_train_is_bit_identical(kit, fmt, kind, opt, tmp_path):
    x, y = kit.tiny_data()
    model = compiled(kit, kind, opt)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    loaded = save_and_load(kit, model, fmt, tmp_path, kind, opt)

    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert same(state(loaded), state(model))
    assert [v.dtype for v in loaded.optimizer.variables] == [v.dtype for v in model.optimizer.variables]

    for m in (model, loaded):  # the same shuffling for both; the Dropout streams come from the file
        kerasckpt.utils.set_random_seed(5)
        m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert same(state(loaded), state(model))


@pytest.mark.parametrize("name", ["m.keras", "m.h5"])
def test_load_model_restores_compile_arguments(kit, name, tmp_path):
    x, y = kit.tiny_data()
    onehot = np.eye(3, dtype="float32")[y]
    model = kit.make_model("functional")
    model.compile(optimizer=optimizers.Adam(3e-3, beta_1=0.8), loss="mse", metrics=["mae"])
    model.fit(x, onehot, epochs=1, verbose=0)
    model.save(tmp_path / name)
    loaded = kerasckpt.models.load_model(tmp_path / name)
    assert type(loaded.optimizer) is optimizers.Adam
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy())
    logs = loaded.evaluate(x, onehot, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "mae"}
    assert logs == model.evaluate(x, onehot, verbose=0, return_dict=True)


@pytest.mark.parametrize("name", ["m.keras", "m.h5"])
def test_load_model_without_compile(kit, name, tmp_path):
    model = compiled(kit, "sequential")
    model.fit(*kit.tiny_data(), epochs=1, verbose=0)
    kerasckpt.saving.save_model(model, tmp_path / name)
    loaded = kerasckpt.saving.load_model(tmp_path / name, compile=False)
    assert not loaded.compiled
    assert same(loaded.get_weights(), model.get_weights())


def test_uncompiled_model_and_include_optimizer_false(kit, tmp_path):
    x = kit.tiny_data()[0]
    model = kit.make_model("sequential")
    model.save(tmp_path / "plain.keras")
    assert not kerasckpt.saving.load_model(tmp_path / "plain.keras").compiled
    trained = compiled(kit, "sequential")
    trained.fit(*kit.tiny_data(), epochs=1, verbose=0)
    for name in ("noopt.keras", "noopt.h5"):
        trained.save(tmp_path / name, include_optimizer=False)
        again = kerasckpt.saving.load_model(tmp_path / name)
        assert not again.compiled
        assert np.array_equal(again.predict(x, verbose=0), trained.predict(x, verbose=0))


def test_nested_models_round_trip(kit, tmp_path):
    layers = kerasckpt.layers
    inner = kerasckpt.Sequential([layers.Input(shape=(6,)), layers.Dense(5, activation="relu"),
                                  layers.BatchNormalization()], name="inner")
    inp = layers.Input(shape=(6,))
    model = kerasckpt.Model(inp, layers.Dense(3, activation="softmax")(inner(inp)), name="outer")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = kit.tiny_data()
    model.fit(x, y, epochs=1, verbose=0)
    for name in ("n.keras", "n.h5"):
        model.save(tmp_path / name)
        loaded = kerasckpt.saving.load_model(tmp_path / name)
        assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
        assert same(state(loaded), state(model))


def test_custom_objects_rebuild_an_unregistered_subclass(kit, tmp_path):
    class Unregistered(kerasckpt.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = kerasckpt.layers.Dense(2)

        def call(self, inputs, training=False):
            return self.dense(inputs)

    x = kit.tiny_data()[0]
    model = Unregistered()
    model(x[:1])
    model.save(tmp_path / "u.keras")
    with pytest.raises(kerasckpt.errors.UnknownObjectError, match="Unregistered") as info:
        kerasckpt.saving.load_model(tmp_path / "u.keras")
    assert isinstance(info.value, TypeError)  # what Keras raises for a class it cannot locate
    loaded = kerasckpt.saving.load_model(tmp_path / "u.keras", custom_objects={"Unregistered": Unregistered})
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_load_weights_builds_an_unbuilt_optimizer(kit, tmp_path):
    """Keras skips the optimizer state when the optimizer is not built yet; kerasckpt builds it."""
    model = compiled(kit, "sequential")
    model.fit(*kit.tiny_data(), epochs=1, verbose=0)
    model.save_weights(tmp_path / "w.weights.h5")
    twin = compiled(kit, "sequential")
    assert not twin.optimizer.built
    twin.load_weights(tmp_path / "w.weights.h5")
    assert twin.optimizer.built
    assert same(state(twin), state(model))


def test_load_weights_from_a_keras_archive_and_whole_model_h5(kit, tmp_path):
    model = compiled(kit, "functional")
    model.fit(*kit.tiny_data(), epochs=1, verbose=0)
    for name in ("m.keras", "m.h5"):
        model.save(tmp_path / name)
        twin = compiled(kit, "functional")
        twin.load_weights(tmp_path / name)
        assert same(state(twin), state(model))


def test_different_optimizer_keeps_weights_and_warns(kit, tmp_path):
    model = compiled(kit, "sequential", "adam")
    model.fit(*kit.tiny_data(), epochs=1, verbose=0)
    model.save_weights(tmp_path / "w.weights.h5")
    twin = compiled(kit, "sequential", "sgd_momentum")
    twin.fit(*kit.tiny_data(), epochs=1, verbose=0)
    with pytest.warns(UserWarning, match="optimizer"):
        twin.load_weights(tmp_path / "w.weights.h5")
    assert same(twin.get_weights(), model.get_weights())


def test_zip64_records_round_trip(kit, tmp_path, monkeypatch):
    """Archives over 4 GiB need zip64 records; force them on a small model and read them back."""
    import zipfile
    from kerasckpt.saving import keras_zip
    monkeypatch.setattr(keras_zip, "ZIP64_FROM", 0)
    model = compiled(kit, "functional")
    model.fit(*kit.tiny_data(), epochs=1, verbose=0)
    model.save(tmp_path / "z.keras")
    with zipfile.ZipFile(tmp_path / "z.keras") as zf:
        assert zf.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        assert zf.testzip() is None
    assert b"PK\x06\x06" in (tmp_path / "z.keras").read_bytes()  # the zip64 end of central directory
    loaded = kerasckpt.saving.load_model(tmp_path / "z.keras")
    assert same(state(loaded), state(model))


def test_custom_loss_function_through_custom_objects(kit, tmp_path):
    def doubled_mse(y_true, y_pred):
        return kerasckpt.losses.mean_squared_error(y_true, y_pred) * 2.0

    x, y = kit.tiny_data()
    model = kit.make_model("sequential")
    model.compile(optimizer="sgd", loss=doubled_mse)
    model.fit(x, np.eye(3, dtype="float32")[y], epochs=1, verbose=0)
    model.save(tmp_path / "c.keras")
    with pytest.raises(kerasckpt.errors.UnknownObjectError, match="doubled_mse"):
        kerasckpt.saving.load_model(tmp_path / "c.keras")
    loaded = kerasckpt.saving.load_model(tmp_path / "c.keras", custom_objects={"doubled_mse": doubled_mse})
    assert loaded.loss is doubled_mse


def test_other_paths_are_native_checkpoints(kit, tmp_path):
    model = compiled(kit, "sequential")
    model.fit(*kit.tiny_data(), epochs=1, verbose=0)
    model.save_weights(tmp_path / "ckpt" / "weights")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["weights.data-00000-of-00001", "weights.index"]
    twin = compiled(kit, "sequential")
    twin.load_weights(tmp_path / "ckpt" / "weights")
    assert same(twin.get_weights(), model.get_weights())


def test_never_trained_optimizer_state_loads_without_warning(kit, tmp_path):
    import warnings
    model = compiled(kit, "sequential")
    model.optimizer.learning_rate = 0.123
    model.save(tmp_path / "fresh.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = kerasckpt.saving.load_model(tmp_path / "fresh.keras")
    assert abs(loaded.optimizer.learning_rate - 0.123) < 1e-7


@pytest.mark.parametrize("name", ["u.keras", "u.h5"])
def test_unbuilt_model_round_trips_unbuilt(name, tmp_path):
    model = kerasckpt.Sequential([kerasckpt.layers.Dense(4), kerasckpt.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / name)
    loaded = kerasckpt.saving.load_model(tmp_path / name)
    assert not loaded.built and loaded.compiled and len(loaded.layers) == 2
