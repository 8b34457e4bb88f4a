"""Functional graphs with several inputs and outputs, shared layers, merge layers and op nodes go both ways
between kerasckpt and a live Keras 3: the same file predicts the same numbers in both."""
import numpy as np
import pytest

import kerasckpt

keras = pytest.importorskip("keras")


def build(lib):
    """The same graph in either library: dict inputs, a shared Dense, merges, operators and ops functions."""
    L, ops = lib.layers, lib.ops
    a, b = L.Input((4, 6), name="a"), L.Input((6,), name="b")
    shared = L.Dense(6, activation="tanh", name="shared")
    x = shared(a) + ops.expand_dims(b, 1)               # broadcasting operator between two branches
    x = L.LayerNormalization(name="norm")(x)
    y = L.Add(name="add_merge")([shared(a), x])          # the shared layer's second call
    masked = ops.where(a != 0, y, 0.0)
    pooled = L.GlobalAveragePooling1D(name="pool")(masked)
    both = L.Concatenate(name="cat")([pooled, ops.max(x, axis=1), b * 2.0])
    out1 = L.Dense(3, activation="softmax", name="head")(both)
    out2 = ops.sum(ops.square(y[:, 1:, ::2]), axis=-1)
    return lib.Model({"a": a, "b": b}, [out1, out2], name="graph")


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(5, 4, 6)).astype("float32")
    a[:, 0, :2] = 0.0
    return {"a": a, "b": rng.normal(size=(5, 6)).astype("float32")}


def assert_same(ours, theirs):
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(np.asarray(o), np.asarray(t), rtol=1e-5, atol=1e-5)


@pytest.mark.keras
def test_our_graph_has_kerass_layer_and_operation_order():
    kerasckpt.utils.clear_session()
    keras.utils.clear_session()  # default names count from the start in both libraries
    ours, theirs = build(kerasckpt), build(keras)
    assert [op.name for op in ours.operations] == [op.name for op in theirs.operations]
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]


@pytest.mark.keras
@pytest.mark.parametrize("name", ["m.keras", "m.weights.h5"])
def test_keras_reads_our_graph(tmp_path, name):
    model, x = build(kerasckpt), inputs()
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"])
    model.fit(x, [np.arange(5) % 3, np.zeros((5, 3), "float32")], epochs=2, verbose=0)
    model.save(tmp_path / name) if name.endswith(".keras") else model.save_weights(tmp_path / name)
    if name.endswith(".keras"):
        theirs = keras.saving.load_model(tmp_path / name)
    else:
        theirs = build(keras)
        theirs.load_weights(tmp_path / name)
    assert_same(model.predict(x, verbose=0), theirs.predict(x, verbose=0))


@pytest.mark.keras
@pytest.mark.parametrize("name", ["m.keras", "m.weights.h5", "m.h5"])
def test_we_read_kerass_graph(tmp_path, name):
    model, x = build(keras), inputs()
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"])
    model.fit(x, [np.arange(5) % 3, np.zeros((5, 3), "float32")], epochs=2, verbose=0)
    if name.endswith(".weights.h5"):
        model.save_weights(tmp_path / name)
        ours = build(kerasckpt)
        ours.load_weights(tmp_path / name)
    else:
        model.save(tmp_path / name)  # Keras cannot load its own legacy .h5 of this graph; kerasckpt can
        ours = kerasckpt.models.load_model(tmp_path / name)
        if name.endswith(".keras"):
            assert int(ours.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy())
    assert_same(ours.predict(x, verbose=0), model.predict(x, verbose=0))
