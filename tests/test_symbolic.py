"""kerasckpt.ops and Python operators on symbolic tensors: op nodes of functional models, as Keras 3 records them."""
import json

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers, ops


def _model_with_ops():
    a, b = layers.Input((4, 6), name="a"), layers.Input((4, 6), name="b")
    dense = layers.Dense(6, activation="tanh")
    y = dense(a) + 1.0
    y = y + b                                            # two symbolic operands
    sliced = y[:, 1:3, ::2]                              # slices with steps
    last = y[..., 0] * np.arange(4, dtype="float32")     # Ellipsis, an array constant
    flat = ops.reshape(a, (-1, 24))
    joined = ops.concatenate([a, ops.cast(a != 0, "float32")], axis=-1)
    pooled = ops.mean(dense(b), axis=1)                  # the Dense layer shared by both inputs
    return kerasckpt.Model({"a": a, "b": b}, [sliced, last, flat, joined, pooled], name="with_ops")


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=(3, 4, 6)).astype("float32"), "b": rng.normal(size=(3, 4, 6)).astype("float32")}


def test_ops_on_symbolic_tensors_record_op_nodes_named_and_configured_like_keras():
    x = layers.Input((4, 6))
    assert type((x + 1)._keras_history[0]).__name__ == "Add"
    mean = ops.mean(x, axis=(1, 2), keepdims=True)
    node = mean._keras_history[0]
    assert type(node).__name__ == "Mean" and node.keras_module == "keras.src.ops.numpy"
    assert node.get_config() == {"name": "mean", "axis": (1, 2), "keepdims": True}
    assert mean.shape == (None, 1, 1)
    assert ops.max(x, axis=1)._keras_history[0].get_config() == {"name": "max", "axis": 1, "keepdims": False,
                                                                   "initial": None}
    assert ops.reshape(x, (-1, 24))._keras_history[0].get_config() == {"name": "reshape", "newshape": (-1, 24)}
    assert (x != 0).dtype == "bool" and type((x != 0)._keras_history[0]).__name__ == "NotEqual"
    assert ops.softmax(x)._keras_history[0].keras_module == "keras.src.ops.nn"
    assert ops.cast(x, "int32")._keras_history[0].get_config() == {"name": "cast", "dtype": "int32"}
    assert ops.sum(x, axis=0).shape == (4, 6)  # the batch axis is reduced: no unknown size is left
    assert ops.shape(x) == (None, 4, 6) and ops.convert_to_tensor(x) is x
    assert (np.ones(6, "float32") + x).shape == (None, 4, 6)  # an ndarray on the left defers to the tensor


def test_a_functional_model_with_op_nodes_computes_what_eager_ops_compute():
    model = _model_with_ops()
    assert [layer.name for layer in model.layers] == ["a", "dense", "b"]  # op nodes are not layers
    assert [op.name for op in model.operations][:5] == ["a", "dense", "add", "b", "add_1"]
    x = _inputs()
    out = model.predict(x, verbose=0)
    dense = model.get_layer("dense")
    y = dense(x["a"]).numpy() + 1.0 + x["b"]
    expected = [y[:, 1:3, ::2], y[..., 0] * np.arange(4), x["a"].reshape(-1, 24),
                np.concatenate([x["a"], (x["a"] != 0).astype("float32")], -1), dense(x["b"]).numpy().mean(1)]
    for got, want in zip(out, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_op_nodes_round_trip_through_get_config_and_every_file_format(tmp_path):
    model = _model_with_ops()
    x = _inputs()
    expected = model.predict(x, verbose=0)
    config = model.get_config()
    entry = next(e for e in config["layers"] if e["name"] == "get_item")
    assert entry["module"] == "keras.src.ops.numpy" and entry["class_name"] == "GetItem"
    assert entry["inbound_nodes"][0]["args"][1][1] == {"class_name": "__slice__",
                                                        "config": {"start": 1, "stop": 3, "step": None}}
    json.dumps(config)  # plain JSON
    rebuilt = kerasckpt.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    for got, want in zip(rebuilt.predict(x, verbose=0), expected):
        np.testing.assert_array_equal(got, want)
    for name in ("m.keras", "m.h5"):
        model.save(tmp_path / name)
        loaded = kerasckpt.models.load_model(tmp_path / name)
        for got, want in zip(loaded.predict(x, verbose=0), expected):
            np.testing.assert_array_equal(got, want)


def test_a_keras_legacy_h5_op_node_without_module_is_not_mistaken_for_the_merge_layer(tmp_path):
    """Keras's legacy configs drop modules, so its own loader reads an op `Multiply` as the merge layer."""
    a = layers.Input((3,))
    model = kerasckpt.Model(a, a * 2.0)
    config = model.get_config()
    for entry in config["layers"]:
        entry.pop("module")
    rebuilt = kerasckpt.Model.from_config(config)
    assert type(rebuilt.operations[-1]).__name__ == "Multiply" and rebuilt.layers == [rebuilt.operations[0]]
    np.testing.assert_array_equal(rebuilt.predict(np.ones((2, 3)), verbose=0), np.full((2, 3), 2.0))


def test_gradients_flow_through_op_nodes_in_fit():
    inputs = layers.Input((5,))
    hidden = layers.Dense(8, activation="relu")(inputs)
    out = layers.Dense(1)(ops.concatenate([hidden, inputs * 0.5], axis=-1)) - ops.mean(inputs, axis=-1, keepdims=True)
    model = kerasckpt.Model(inputs, out)
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 5)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    losses = model.fit(x, y, epochs=5, verbose=0).history["loss"]
    assert losses[-1] < losses[0]


def test_symbolic_tensors_refuse_numpy_booleans_and_iteration():
    x = layers.Input((3,))
    for action in (lambda: np.asarray(x), lambda: bool(x), lambda: list(x)):
        with pytest.raises(TypeError, match="symbolic tensor"):
            action()


def test_unknown_op_in_a_file_is_named(tmp_path):
    a = layers.Input((3,))
    config = kerasckpt.Model(a, a + 1.0).get_config()
    config["layers"][1]["class_name"] = config["layers"][1]["registered_name"] = "Fft2"
    with pytest.raises(kerasckpt.errors.UnknownObjectError, match="Fft2"):
        kerasckpt.Model.from_config(config)


def test_keras_only_op_arguments_are_refused_unless_at_their_default():
    a = layers.Input((3,))
    config = kerasckpt.Model(a, ops.max(a, axis=1)).get_config()
    config["layers"][1]["config"]["initial"] = 5.0
    with pytest.raises(ValueError, match="initial"):
        kerasckpt.Model.from_config(config)


@pytest.mark.keras
def test_summary_lists_op_nodes_as_keras_does():
    keras = pytest.importorskip("keras")
    tables = []
    for lib in (kerasckpt, keras):
        lib.utils.clear_session()
        a = lib.Input((4,))
        model = lib.Model(a, lib.ops.mean(lib.layers.Dense(3)(a) + 1.0, axis=-1))
        lines = []
        model.summary(print_fn=lambda text, line_break=False: lines.extend(text.splitlines()))
        tables.append([line for line in lines if line.strip()])
    assert tables[0] == tables[1]
    assert any("mean (Mean)" in line and "(None)" in line for line in tables[0])
