"""The models of tests/data/layer_zoo.py (convolution, pooling, merges, op nodes) and sequence_zoo.py
(Embedding, SimpleRNN, LSTM, GRU, Bidirectional, TimeDistributed, SpatialDropout1D, EinsumDense,
MultiHeadAttention, masks) in every file format: Keras-written files load, predict the same numbers and
continue training with the same optimizer state; kerasckpt writes Keras's layout, its own files round-trip
exactly (native format included), and a live Keras 3 reads them."""
import importlib.util
import json
import zipfile

import h5py
import numpy as np
import pytest

import kerasckpt

from .test_keras_files import _tree

ZOOS = {"layer_zoo": ("conv2d_seq", "conv1d_func", "merge_func", "conv_sub"),
        "sequence_zoo": ("masked_text_func", "rnn_seq", "attention_func", "sequence_sub")}
SUBCLASSED = ("conv_sub", "sequence_sub")  # not registered: weights files only
ZOO_OF = {name: zoo for zoo, names in ZOOS.items() for name in names}
ALL = tuple(ZOO_OF)
FUNCTIONAL_AND_SEQUENTIAL = tuple(name for name in ALL if name not in SUBCLASSED)


def _cases(paths, leave_out=()):
    """(name, path) pairs: every model with every path, but whole-model files of subclassed twins."""
    return [(name, path) for name in ALL for path in paths
            if not (name in SUBCLASSED and path.startswith("m.")) and (name, path) not in leave_out]


@pytest.fixture(scope="module")
def zoos(request):
    """tests/data/layer_zoo.py and sequence_zoo.py as modules, by name."""
    modules = {}
    for zoo in ZOOS:
        spec = importlib.util.spec_from_file_location(zoo, request.config.rootpath / "tests" / "data" / f"{zoo}.py")
        modules[zoo] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[zoo])
    return modules


@pytest.fixture
def zoo(zoos, name):
    return zoos[ZOO_OF[name]]


def _x(exp):
    xs = [exp[k] for k in sorted(k for k in exp.files if k.startswith("x"))]
    return xs if len(xs) > 1 else xs[0]


def _head(x, n=8):
    return [v[:n] for v in x] if isinstance(x, list) else x[:n]


def check_like_keras(model, exp, atol=2e-5):
    x = _x(exp)
    np.testing.assert_allclose(model.predict(x, verbose=0), exp["pred"], atol=atol)
    model.train_on_batch(_head(x), exp["y"][:8])
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, exp[f"w{i}"], atol=atol, err_msg=f"weight {i} after one more step")
    opt = model.optimizer.variables
    assert len(opt) == len([k for k in exp.files if k.startswith("o")])
    for i, v in enumerate(opt):
        np.testing.assert_allclose(v.numpy(), exp[f"o{i}"], atol=atol, err_msg=f"optimizer variable {v.path}")


def _trained(zoo, name, path):
    """Our model `name` after one epoch, with its data."""
    kerasckpt.utils.set_random_seed(0)
    model, (x, y) = zoo.build(kerasckpt, name), zoo.data(name)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    return model, x, y


@pytest.mark.parametrize("name", FUNCTIONAL_AND_SEQUENTIAL)
@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_keras_model_files_load_predict_and_train_the_same(data_dir, name, ext):
    model = kerasckpt.saving.load_model(data_dir / f"{name}{ext}")
    check_like_keras(model, np.load(data_dir / f"{name}.expected.npz"))


@pytest.mark.parametrize("name", ALL)
def test_keras_weights_files_load_into_a_twin_and_we_write_the_same_layout(zoo, data_dir, name, tmp_path):
    model = zoo.build(kerasckpt, name)
    model.load_weights(data_dir / f"{name}.weights.h5")
    model.save_weights(tmp_path / "ours.weights.h5")
    assert _tree(tmp_path / "ours.weights.h5") == _tree(data_dir / f"{name}.weights.h5")
    check_like_keras(model, np.load(data_dir / f"{name}.expected.npz"))


@pytest.mark.parametrize("name, path", _cases(["m.keras", "m.h5", "w.weights.h5", "ckpt"]))
def test_our_files_round_trip_exactly_with_every_optimizer_slot(zoo, name, path, tmp_path):
    model, x, y = _trained(zoo, name, path)
    if path.startswith("m."):
        model.save(tmp_path / path)
        loaded = kerasckpt.models.load_model(tmp_path / path)
    else:
        model.save_weights(tmp_path / path)
        loaded = zoo.build(kerasckpt, name)
        loaded.load_weights(tmp_path / path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    loaded.train_on_batch(_head(x), y[:8])  # the native format restores the slots when the optimizer builds
    model.train_on_batch(_head(x), y[:8])
    for mine, theirs in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables) > 2  # every weight has its slots
    for mine, theirs in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


@pytest.mark.keras
# Keras reads op nodes in a legacy .h5 as merge layers (it fails on its own merge_func.h5 too)
@pytest.mark.parametrize("name, path", _cases(["m.keras", "m.h5", "w.weights.h5"], [("merge_func", "m.h5")]))
def test_keras_reads_our_files(zoo, name, path, tmp_path):
    keras = pytest.importorskip("keras")
    model, x, y = _trained(zoo, name, path)
    if path.startswith("m."):
        model.save(tmp_path / path)
        theirs = keras.saving.load_model(tmp_path / path)
    else:
        model.save_weights(tmp_path / path)
        theirs = zoo.build(keras, name)
        theirs.optimizer.build(theirs.trainable_variables)
        theirs.load_weights(tmp_path / path)
    np.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x, verbose=0), atol=2e-5)
    if path != "m.h5":  # Keras drops a legacy .h5's optimizer slots
        assert len(theirs.optimizer.variables) == len(model.optimizer.variables)
        for a, b in zip(theirs.optimizer.variables, model.optimizer.variables):
            np.testing.assert_array_equal(np.asarray(a), b.numpy())


def test_legacy_h5_keeps_op_node_modules_so_ops_are_not_read_as_merge_layers(data_dir, tmp_path):
    model = kerasckpt.saving.load_model(data_dir / "merge_func.h5")
    model.save(tmp_path / "ours.h5")
    with h5py.File(tmp_path / "ours.h5", "r") as f:
        config = f.attrs["model_config"]
    assert '"module": "keras.src.ops.numpy", "class_name": "Multiply"' in config
    assert '"class_name": "Multiply", "config": {"name": "multiply", "trainable"' in config  # the merge layer


@pytest.mark.parametrize("name", ["masked_text_func"])
def test_a_masked_rnn_graph_is_written_as_keras_writes_it(zoo, data_dir, tmp_path, name):
    """Keras records the Embedding's mask as a NotEqual op node passed as `mask=` to the recurrent layers."""
    def graph(path):
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))["config"]
        return [(entry["class_name"], [sorted(k for k in node["kwargs"] if k != "training")
                                       for node in entry["inbound_nodes"]]) for entry in config["layers"]]

    model = kerasckpt.saving.load_model(data_dir / f"{name}.keras")
    model.save(tmp_path / "ours.keras")
    twin = zoo.build(kerasckpt, name)
    twin.save(tmp_path / "twin.keras")
    expected = graph(data_dir / f"{name}.keras")
    assert ("NotEqual", [[]]) in expected and ("LSTM", [["mask"]]) in expected
    assert graph(tmp_path / "ours.keras") == expected == graph(tmp_path / "twin.keras")
