"""TensorFlow checkpoints restored into kerasckpt objects by their object graph: the TF guide's checkpoint
(tf.keras's new and legacy optimizers), tf.keras 2 `save_weights("cp.ckpt")` of Sequential, functional and
subclassed models, Keras 3 on TensorFlow; values equal to TensorFlow's, predictions as tf_keras gave."""
import gc
import os
import warnings

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.checkpoint import bundle, trackable_graph
from kerasckpt.errors import CheckpointMismatchError

from tests.checkpoint.ckpt_helpers import TwoDense
from tests.checkpoint.tf_fixtures import TF_DATA, decode, expected


def tf_value(part, prefix, key):
    return decode(expected(part)["checkpoints"][prefix]["values"][key])


class Net(kerasckpt.Model):
    """The guide's model: one Dense(5) as `l1`."""

    def __init__(self):
        super().__init__()
        self.l1 = layers.Dense(5)

    def call(self, x):
        return self.l1(x)


def guide_objects():
    net, optimizer = Net(), kerasckpt.optimizers.Adam(0.1)
    step = kerasckpt.Variable(1, dtype="int32")
    return net, optimizer, step, kerasckpt.Checkpoint(step=step, optimizer=optimizer, net=net)


def guide_step(net, optimizer):
    """The guide's 50th training step: the batch `[8, 9]`, loss mean(|net(x) - y|)."""
    x = np.array([[8.0], [9.0]], "float32")
    y = x * 5 + np.arange(5, dtype="float32")[None]
    with kerasckpt.GradientTape() as tape:
        loss = kerasckpt.ops.mean(kerasckpt.ops.abs(net(x) - y))
    grads = tape.gradient(loss, net.trainable_weights)
    optimizer.apply_gradients(zip(grads, net.trainable_weights))


@pytest.mark.parametrize("part", ["guide", "guide_legacy"])
def test_guide_checkpoint_restores_into_the_same_structure(part):
    net, optimizer, step, ckpt = guide_objects()
    status = ckpt.restore(os.path.join(TF_DATA, part, "tf_ckpts", "ckpt-5"))  # deferred: `net` is not built yet
    assert int(step.numpy()) == 50 and int(ckpt.save_counter.numpy()) == 5
    assert int(optimizer.iterations.numpy()) == 49 and optimizer.learning_rate.numpy() == np.float32(0.1)
    net(np.zeros((1, 1), "float32"))
    kernel = "net/l1/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    assert np.array_equal(net.l1.kernel.numpy(), tf_value(part, "tf_ckpts/ckpt-5", kernel))
    status.assert_existing_objects_matched()
    optimizer.build(net.trainable_weights)  # the slots exist now: their held values are assigned
    slot_keys = {"guide": ["optimizer/_variables/1", "optimizer/_variables/2"],
                 "guide_legacy": ["net/l1/kernel/.OPTIMIZER_SLOT/optimizer/m",
                                  "net/l1/kernel/.OPTIMIZER_SLOT/optimizer/v"]}[part]
    momentum, velocity = (tf_value(part, "tf_ckpts/ckpt-5", k + trackable_graph.VALUE_SUFFIX) for k in slot_keys)
    assert np.array_equal(optimizer._momentums[0].numpy(), momentum)
    assert np.array_equal(optimizer._velocities[0].numpy(), velocity)
    # One more step of the guide's loop gives TensorFlow's own predictions after step 50, to the bit.
    guide_step(net, optimizer)
    inputs = decode(expected(part)["inputs"]["x"])
    assert np.array_equal(net(inputs).numpy(), decode(expected(part)["predictions"]))
    status.expect_partial()


def test_guide_iterator_state_is_named_and_expect_partial_silences_it():
    net, optimizer, _, ckpt = guide_objects()
    path = os.path.join(TF_DATA, "guide", "tf_ckpts", "ckpt-5")
    status = ckpt.restore(path)
    net(np.zeros((1, 1), "float32"))
    optimizer.build(net.trainable_weights)
    with pytest.raises(AssertionError) as info:
        status.assert_consumed()
    message = str(info.value)
    assert "1 checkpoint value(s) were not used" in message
    assert "iterator/.ATTRIBUTES/ITERATOR_STATE  [TensorFlow-only state (ITERATOR_STATE, a tf.data iterator)" in message
    del info  # its traceback holds the status
    with pytest.warns(UserWarning, match="ITERATOR_STATE.*TensorFlow-only state"):
        del status
        gc.collect()
    status = ckpt.restore(path).expect_partial()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del status
        gc.collect()


def test_guide_checkpoint_with_a_renamed_attribute_suggests_the_saved_one():
    class Renamed(kerasckpt.Model):
        def __init__(self):
            super().__init__()
            self.l2 = layers.Dense(5)

        def call(self, x):
            return self.l2(x)
    net = Renamed()
    net(np.zeros((1, 1), "float32"))
    status = kerasckpt.Checkpoint(net=net).read(os.path.join(TF_DATA, "guide", "tf_ckpts", "ckpt-5"))
    with pytest.raises(AssertionError,
                       match=r"net/l2/kernel  \(did you mean `net/l1/kernel/.ATTRIBUTES/VARIABLE_VALUE`"):
        status.assert_existing_objects_matched()
    status.expect_partial()


def tf_keras_model(kind):
    L = layers
    if kind == "sequential":
        return kerasckpt.Sequential([L.Input((6,)), L.Dense(8, activation="relu"), L.Dropout(0.2), L.Dense(3)])
    if kind == "functional":
        inputs = kerasckpt.Input((6,))
        h = L.BatchNormalization()(L.Dense(8)(inputs))
        return kerasckpt.Model(inputs, L.Dense(3)(h))

    class TwoDense(kerasckpt.Model):
        def __init__(self):
            super().__init__()
            self.dense1 = L.Dense(8, activation="relu")
            self.dense2 = L.Dense(3)

        def call(self, x):
            return self.dense2(self.dense1(x))
    model = TwoDense()
    model(np.zeros((1, 6), "float32"))
    return model


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_tf_keras_save_weights_loads_with_the_optimizer_state(kind):
    record = expected("tf_keras")["models"][kind]
    x = decode(expected("tf_keras")["inputs"]["x"])
    model = tf_keras_model(kind)
    model.compile(optimizer="adam", loss=kerasckpt.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.load_weights(os.path.join(TF_DATA, "tf_keras", kind, "training_1", "cp.ckpt"))
    np.testing.assert_allclose(model.predict(x, verbose=0), decode(record["predictions"]), rtol=1e-5, atol=1e-6)
    for var, (name, value) in zip(model.weights, record["weights"]):  # the same order as tf_keras's
        assert np.array_equal(var.numpy(), decode(value)), name
    model.optimizer.build(model.trainable_weights)
    ours = [model.optimizer.iterations] + [v for v in model.optimizer.variables[2:]]  # no learning rate in tf.keras's
    theirs = record["optimizer_variables"]
    assert len(ours) == len(theirs)
    for var, (name, value) in zip(ours, theirs):
        assert np.array_equal(var.numpy().reshape(-1), decode(value).reshape(-1)), name


def test_tf_keras_weights_load_into_an_uncompiled_model():
    model = tf_keras_model("sequential")
    model.load_weights(os.path.join(TF_DATA, "tf_keras", "sequential", "training_1", "cp.ckpt"))
    record = expected("tf_keras")["models"]["sequential"]
    x = decode(expected("tf_keras")["inputs"]["x"])
    np.testing.assert_allclose(model.predict(x, verbose=0), decode(record["predictions"]), rtol=1e-5, atol=1e-6)


def test_tf_keras_sequential_built_without_input_loads_through_layer_edges():
    L = layers
    model = kerasckpt.Sequential([L.Dense(8, activation="relu"), L.Dropout(0.2), L.Dense(3)])
    model.build((None, 6))
    model.load_weights(os.path.join(TF_DATA, "tf_keras", "sequential", "training_1", "cp.ckpt"))
    assert np.array_equal(model.layers[2].bias.numpy(),
                          tf_value("tf_keras", "sequential/training_1/cp.ckpt",
                                   "layer_with_weights-1/bias/.ATTRIBUTES/VARIABLE_VALUE"))


def test_tf_keras_weights_into_another_architecture_change_nothing():
    L = layers
    model = kerasckpt.Sequential([L.Input((6,)), L.Dense(4, activation="relu"), L.Dropout(0.2), L.Dense(3)])
    before = model.get_weights()
    with pytest.raises(CheckpointMismatchError, match=r"layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE': the "
                                                      r"checkpoint holds shape \(6, 8\)"):
        model.load_weights(os.path.join(TF_DATA, "tf_keras", "sequential", "training_1", "cp.ckpt"))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("kind", ["subclassed", "sequential"])
def test_keras3_tensorflow_checkpoint_restores_model_adam_and_step(kind):
    record = expected("keras3_tf")["models"][kind]
    x = decode(expected("keras3_tf")["inputs"]["x"])
    model = TwoDense(units=4, outputs=2) if kind == "subclassed" else kerasckpt.Sequential(
        [layers.Input((3,)), layers.Dense(4, activation="relu"), layers.Dense(2)])
    optimizer, step = kerasckpt.optimizers.Adam(0.5), kerasckpt.Variable(0, dtype="int64")
    model.compile(optimizer=optimizer, loss="mse")
    status = kerasckpt.Checkpoint(model=model, optimizer=optimizer, step=step).restore(
        os.path.join(TF_DATA, "keras3_tf", kind, "ckpt-1"))
    np.testing.assert_allclose(model.predict(x, verbose=0), decode(record["predictions"]), rtol=1e-5, atol=1e-6)
    assert int(step.numpy()) == 8 and optimizer.learning_rate.numpy() == np.float32(0.01)
    optimizer.build(model.trainable_weights)
    for var, (name, value) in zip(optimizer.variables, record["optimizer_variables"]):  # Keras 3's own order
        assert np.array_equal(var.numpy(), decode(value)), name
    status.assert_consumed()


def test_ambiguous_slot_names_are_refused_and_nothing_changes(tmp_path):
    """A tf.keras optimizer slot names its variable; two variables of that name: kerasckpt does not guess."""
    prefix = os.path.join(TF_DATA, "guide", "tf_ckpts", "ckpt-5")
    with bundle.CheckpointReader(prefix) as reader:
        nodes = trackable_graph.parse(reader.object_graph)
        entries = [(k, reader.read(k)) for k in reader.keys() if k not in (bundle.GRAPH_KEY,) and "ITERATOR" not in k]
    for node in nodes:
        for attribute in node.attributes:
            attribute.full_name = attribute.full_name.replace("bias", "kernel")  # bias and kernel share a name now
    copy = str(tmp_path / "ckpt-5")
    bundle.write_bundle(copy, entries + [(bundle.GRAPH_KEY, trackable_graph.serialize(nodes))])
    net, optimizer, step, ckpt = guide_objects()
    net(np.zeros((1, 1), "float32"))
    before = net.get_weights()
    with pytest.raises(CheckpointMismatchError, match=r"(?s)does not say which variable 4 slot\(s\) belong to.*"
                                                      r"optimizer/_variables/1/.ATTRIBUTES/VARIABLE_VALUE \(slot "
                                                      r"_momentums/0, named 'Adam/m/net/dense/kernel'\): 2 variables "
                                                      r"are named 'net/dense/kernel'.*Restore the model alone"):
        ckpt.restore(copy)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.get_weights())) and int(step.numpy()) == 1
    status = kerasckpt.Checkpoint(net=net).read(copy)  # without the optimizer it restores
    assert np.array_equal(net.l1.kernel.numpy(), entries[[k for k, _ in entries].index(
        "net/l1/kernel/.ATTRIBUTES/VARIABLE_VALUE")][1])
    status.expect_partial()


def test_keras3_tensorflow_functional_with_sgd_momentum():
    """Keras 3's functional layers are `model/_operations/N` (BatchNormalization's moving statistics only there)."""
    part = expected("keras3_tf_functional")
    record, x = part["models"]["functional"], decode(part["inputs"]["x"])
    inputs = kerasckpt.Input((3,))
    h = layers.BatchNormalization()(layers.Dense(4)(inputs))
    model = kerasckpt.Model(inputs, layers.Dense(2)(h))
    optimizer = kerasckpt.optimizers.SGD(0.5, momentum=0.9)
    model.compile(optimizer=optimizer, loss="mse")
    status = kerasckpt.Checkpoint(model=model, optimizer=optimizer).restore(
        os.path.join(TF_DATA, "keras3_tf_functional", "functional", "ckpt-1"))
    np.testing.assert_allclose(model.predict(x, verbose=0), decode(record["predictions"]), rtol=1e-5, atol=1e-6)
    optimizer.build(model.trainable_weights)
    assert len(optimizer.variables) == len(record["optimizer_variables"]) == 8
    for var, (name, value) in zip(optimizer.variables, record["optimizer_variables"]):
        assert np.array_equal(var.numpy(), decode(value)), name
    status.assert_consumed()


def test_variables_dicts_with_slashes_and_dots_and_every_dtype():
    """`tf.train.Checkpoint(**variables).write()` of every dtype, and a dict with keys `a/b` and `c.d`."""
    prefix = os.path.join(TF_DATA, "dtypes", "object", "ckpt")
    seen = expected("dtypes")["checkpoints"]["object/ckpt"]
    names = ["f16", "f32", "f64", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "flag", "c64", "c128", "step",
             "empty"]
    values = {n: tf_value("dtypes", "object/ckpt", f"{n}/.ATTRIBUTES/VARIABLE_VALUE") for n in names}
    roots = {n: kerasckpt.Variable(np.zeros(v.shape, v.dtype), dtype=v.dtype) for n, v in values.items()}
    table = {"a/b": kerasckpt.Variable(0.0), "c.d": kerasckpt.Variable(0.0)}
    bits = tf_value("dtypes", "object/ckpt", "bf16/.ATTRIBUTES/VARIABLE_VALUE")  # bfloat16: its 16 bits
    roots["bf16"] = kerasckpt.Variable(np.zeros(bits.shape, "float32"))  # read exactly widened to float32
    values["bf16"] = (bits.astype(np.uint32) << 16).view(np.float32)
    status = kerasckpt.Checkpoint(table=table, **roots).read(prefix)
    for name, value in values.items():
        got = roots[name].numpy()
        assert got.dtype == value.dtype and got.tobytes() == value.tobytes(), name  # bit for bit (NaNs too)
    assert float(table["a/b"].numpy()) == 1.0 and float(table["c.d"].numpy()) == 2.0
    with pytest.raises(AssertionError, match=r"(?s)1 checkpoint value\(s\) were not used:\n    s/.ATTRIBUTES"):
        status.assert_consumed()  # a string tensor has no kerasckpt Variable to go to
    assert "table/a.Sb/.ATTRIBUTES/VARIABLE_VALUE" in seen["values"]  # TensorFlow's escaped key for `a/b`
    status.expect_partial()
