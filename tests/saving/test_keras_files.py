"""Files written by Keras 3 (tests/data, made by make_keras_fixtures.py) load in kerasckpt, predict the
same numbers and continue training with the same optimizer state; kerasckpt writes the same layout."""
import h5py
import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers, optimizers

FIXTURES = ("seq_adam", "func_sgd", "sub_rmsprop", "nested_adamw")


def twin(kit, name):
    """The kerasckpt model (compiled, unbuilt optimizer) of each Keras fixture's architecture."""
    if name == "seq_adam":
        model = kerasckpt.Sequential([layers.Input(shape=(6,)), layers.Dense(16, activation="relu"), layers.Dropout(0.0),
                                      layers.BatchNormalization(), layers.Dense(3, activation="softmax")])
        model.compile(optimizer=optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    elif name == "func_sgd":
        inp = layers.Input(shape=(3, 4))
        h = layers.Flatten(name="flat")(inp)
        h = layers.Dense(12, name="hidden")(h)
        h = layers.BatchNormalization(name="bn")(h)
        h = layers.Activation("tanh", name="act")(h)
        h = layers.Dropout(0.0, name="drop")(h)
        model = kerasckpt.Model(inp, layers.Dense(2, name="out")(h))
        model.compile(optimizer=optimizers.SGD(0.05, momentum=0.9), loss="mean_squared_error", metrics=["mae"])
    elif name == "sub_rmsprop":
        model = kit.SubMLP(16, 3, 0.0)
        model.compile(optimizer=optimizers.RMSprop(1e-2, momentum=0.5, centered=True),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model(np.zeros((1, 6), "float32"))
    else:
        inner = kerasckpt.Sequential([layers.Input(shape=(4,)), layers.Dense(6, activation="relu", name="i1"),
                                      layers.Dense(4, name="i2")], name="inner")
        inp = layers.Input(shape=(4,))
        model = kerasckpt.Model(inp, layers.Dense(1, name="head")(inner(inp)), name="outer")
        model.compile(optimizer=optimizers.AdamW(1e-2), loss="mae")
    return model


def expected(data_dir, name):
    return np.load(data_dir / f"{name}.expected.npz")


def check_predicts_and_trains_like_keras(model, exp):
    np.testing.assert_allclose(model.predict(exp["x"], verbose=0), exp["pred"], atol=1e-6)
    model.train_on_batch(exp["step_x"], exp["step_y"])
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, exp[f"w{i}"], atol=2e-6, err_msg=f"weight {i} after one more step")
    opt = model.optimizer.variables
    assert len(opt) == len([k for k in exp.files if k.startswith("o")])
    for i, v in enumerate(opt):
        np.testing.assert_allclose(v.numpy(), exp[f"o{i}"], atol=2e-6, err_msg=f"optimizer variable {v.path}")


@pytest.mark.parametrize("name, ext", [(name, ext) for name in FIXTURES for ext in (".keras", ".h5")
                                       if (name, ext) != ("sub_rmsprop", ".h5")])  # Keras cannot write that one
def test_keras_model_files_load_predict_and_train_the_same(data_dir, name, ext):
    model = kerasckpt.saving.load_model(data_dir / f"{name}{ext}")
    check_predicts_and_trains_like_keras(model, expected(data_dir, name))


@pytest.mark.parametrize("name", FIXTURES)
def test_keras_weights_files_load_into_a_twin(kit, data_dir, name):
    model = twin(kit, name)
    model.load_weights(data_dir / f"{name}.weights.h5")  # the optimizer is not built: kerasckpt builds it
    check_predicts_and_trains_like_keras(model, expected(data_dir, name))


def _tree(path):
    out = {}

    def visit(key, obj):
        if key.startswith(".kerasckpt"):
            return
        if isinstance(obj, h5py.Dataset):
            out[key] = ("D", obj.shape, obj.dtype.kind)
        else:
            out[key] = ("G", "name" in obj.attrs)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
        assert not [k for k in f.attrs if k]  # Keras writes no root attributes in .weights.h5
    return out


@pytest.mark.parametrize("name", FIXTURES)
def test_weights_layout_is_exactly_what_keras_writes(kit, data_dir, name, tmp_path):
    model = twin(kit, name)
    model.load_weights(data_dir / f"{name}.weights.h5")
    model.save_weights(tmp_path / "ours.weights.h5")
    assert _tree(tmp_path / "ours.weights.h5") == _tree(data_dir / f"{name}.weights.h5")
    with h5py.File(tmp_path / "ours.weights.h5", "r") as f:
        assert f["optimizer/vars/0"].dtype == np.int64  # iteration as TensorFlow-backend Keras writes it
        datasets = []
        f.visititems(lambda k, o: datasets.append(o) if isinstance(o, h5py.Dataset) else None)
        assert all("kerasckpt_crc32" in d.attrs for d in datasets)


@pytest.mark.parametrize("name", ["seq_adam", "func_sgd", "nested_adamw"])
def test_legacy_h5_layout_matches_keras(kit, data_dir, name, tmp_path):
    model = kerasckpt.saving.load_model(data_dir / f"{name}.h5")
    model.save(tmp_path / "ours.h5")
    with h5py.File(tmp_path / "ours.h5", "r") as ours, h5py.File(data_dir / f"{name}.h5", "r") as theirs:
        assert set(ours) - {".kerasckpt"} == set(theirs)
        assert set(ours.attrs) == set(theirs.attrs)
        names = lambda f, g: [n.decode() if isinstance(n, bytes) else n for n in f[g].attrs["weight_names"]]  # noqa
        assert len(names(ours, "optimizer_weights")) == len(names(theirs, "optimizer_weights"))
        assert [s.decode() if isinstance(s, bytes) else s for s in ours["model_weights"].attrs["layer_names"]] == \
            [s.decode() if isinstance(s, bytes) else s for s in theirs["model_weights"].attrs["layer_names"]]
        for group in theirs["model_weights"]:
            assert len(names(ours, f"model_weights/{group}")) == len(names(theirs, f"model_weights/{group}"))
    again = kerasckpt.saving.load_model(tmp_path / "ours.h5")
    check_predicts_and_trains_like_keras(again, expected(data_dir, name))


def test_legacy_h5_with_mse_alias_and_full_optimizer_state(data_dir):
    """Keras 3 cannot compile a legacy .h5 whose loss is "mse" and drops its optimizer slots; kerasckpt can."""
    model = kerasckpt.saving.load_model(data_dir / "nested_adamw.h5")  # compiled with loss="mae" in Keras
    assert model.compiled and model.loss == "mae"
    for slot in model.optimizer.variables[2:]:  # the slots came back, not just iteration and learning_rate
        assert np.abs(slot.numpy()).sum() > 0


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_keras_object_without_equivalent_is_named(data_dir, ext):
    with pytest.raises(kerasckpt.errors.UnknownObjectError, match="PReLU"):
        kerasckpt.saving.load_model(data_dir / f"unsupported_prelu{ext}")


@pytest.mark.parametrize("change, name", [
    (lambda c: c["compile_config"]["optimizer"].update(class_name="Nadam", registered_name=None), "Nadam"),
    (lambda c: c["compile_config"].update(loss="huber"), "huber"),
    (lambda c: c["compile_config"].update(metrics=["auc_of_roc"]), "auc_of_roc"),
])
def test_compile_objects_without_equivalent_are_named(data_dir, tmp_path, change, name):
    import json
    import zipfile
    with zipfile.ZipFile(data_dir / "seq_adam.keras") as src:
        members = {n: src.read(n) for n in src.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "x.keras", "w") as dst:
        for n, data in members.items():
            dst.writestr(n, data)
    with pytest.raises(kerasckpt.errors.UnknownObjectError, match=name):
        kerasckpt.saving.load_model(tmp_path / "x.keras")
    assert not kerasckpt.saving.load_model(tmp_path / "x.keras", compile=False).compiled
