"""TensorFlow restores what kerasckpt writes: `tf.train.Checkpoint(...).read()` of plain variables, dicts, lists
and `tf.Module`-like structures, and Keras 3 on TensorFlow restoring kerasckpt models with their Adam state
through `tf.train.Checkpoint(model=..., optimizer=...)`. TensorFlow runs once, in a child process."""
import os

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers

from tests.checkpoint.ckpt_helpers import TwoDense
from tests.checkpoint.tf_runner import run_tf, tensorflow_python

pytestmark = [pytest.mark.slow, pytest.mark.skipif(tensorflow_python() is None, reason="needs TensorFlow "
                                                   "(tensorflow-cpu), or KERASCKPT_TF_PYTHON naming a python that has it")]

TF_SCRIPT = r'''
import json, sys
import numpy as np
import tensorflow as tf
import keras

spec = json.loads(sys.argv[1])
out = {}

# ---- plain variables, a dict, a list and a module, by attribute names
class Inner(tf.Module):
    def __init__(self):
        super().__init__()
        self.v = tf.Variable(tf.zeros([2], tf.int64))

class Block(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.zeros([2, 3]))
        self.inner = Inner()

w, table = tf.Variable(tf.zeros([2, 3])), {"a/b": tf.Variable(0.0), "c.d": tf.Variable(0.0)}
blocks, block = [tf.Variable(0.0), tf.Variable(tf.zeros([2], tf.float64))], Block()
tf.train.Checkpoint(w=w, table=table, blocks=blocks, block=block).read(spec["plain"]).assert_consumed()
out["plain"] = {"w": w.numpy().tolist(), "a/b": float(table["a/b"].numpy()), "c.d": float(table["c.d"].numpy()),
                "blocks": [blocks[0].numpy().tolist(), blocks[1].numpy().tolist()],
                "block.w": block.w.numpy().tolist(), "block.inner.v": block.inner.v.numpy().tolist()}

# ---- Keras 3 models of the same architectures
class TwoDense(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense_1 = keras.layers.Dense(4, activation="relu")
        self.dense_2 = keras.layers.Dense(2)

    def build(self, input_shape):
        self.dense_1.build(input_shape)
        self.dense_2.build((None, 4))

    def call(self, x):
        return self.dense_2(self.dense_1(x))

def make(kind):
    if kind == "subclassed":
        model = TwoDense()
        model.build((None, 3))
        return model
    if kind == "sequential":
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dropout(0.1),
                                 keras.layers.Dense(2)])
    inputs = keras.Input((3,))
    h = keras.layers.BatchNormalization()(keras.layers.Dense(4)(inputs))
    return keras.Model(inputs, keras.layers.Dense(2)(h))

for case in spec["models"]:
    model, optimizer = make(case["kind"]), keras.optimizers.Adam(0.5)
    step = tf.Variable(0, dtype=tf.int64)
    roots = {"model": model, "optimizer": optimizer}
    if case["step"]:
        roots["step"] = step
    ckpt = tf.train.Checkpoint(**roots)
    status = ckpt.restore(case["prefix"]) if case["step"] else ckpt.read(case["prefix"])  # save() / write()
    status.assert_existing_objects_matched()
    x = np.load(case["x"])
    predictions = model.predict(x, verbose=0)
    optimizer.build(model.trainable_variables)  # the slots: restored as they are created
    status.assert_consumed()
    np.savez(case["out"], predictions=predictions, step=step.numpy(),
             **{f"opt_{i}": v.numpy() for i, v in enumerate(optimizer.variables)})
print(json.dumps(out))
'''


class Inner(layers.Layer):
    def __init__(self):
        super().__init__()
        self.v = kerasckpt.Variable(np.array([7, -8], "int64"))


class Block(layers.Layer):
    def __init__(self):
        super().__init__()
        self.w = kerasckpt.Variable(np.arange(6, dtype="float32").reshape(2, 3) / 4)
        self.inner = Inner()


def make(kind):
    if kind == "subclassed":
        return TwoDense(units=4, outputs=2)  # Keras 3's: dense_1 Dense(4, relu), dense_2 Dense(2)
    if kind == "sequential":
        return kerasckpt.Sequential([layers.Input((3,)), layers.Dense(4, activation="relu"), layers.Dropout(0.1),
                                     layers.Dense(2)])
    inputs = kerasckpt.Input((3,))
    h = layers.BatchNormalization()(layers.Dense(4)(inputs))
    return kerasckpt.Model(inputs, layers.Dense(2)(h))


CASES = [("subclassed", "checkpoint"), ("sequential", "checkpoint"), ("functional", "checkpoint"),
         ("sequential", "save_weights")]


@pytest.fixture(scope="module")
def tensorflow_read(tmp_path_factory):
    """Write every case with kerasckpt, then let TensorFlow read them all in one process."""
    d = tmp_path_factory.mktemp("tf_reads")
    plain = kerasckpt.Checkpoint(w=kerasckpt.Variable(np.arange(6, dtype="float32").reshape(2, 3)),
                                 table={"a/b": kerasckpt.Variable(1.5), "c.d": kerasckpt.Variable(-2.0)},
                                 blocks=[kerasckpt.Variable(3.0),
                                         kerasckpt.Variable(np.array([0.25, 1e300]), dtype="float64")],
                                 block=Block())
    spec = {"plain": plain.write(str(d / "plain" / "ckpt")), "models": []}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = rng.normal(size=(32, 2)).astype("float32")
    np.save(d / "x.npy", x)
    written = {}
    for kind, how in CASES:
        kerasckpt.utils.set_random_seed(1)
        model = make(kind)
        model.compile(optimizer=kerasckpt.optimizers.Adam(0.01), loss="mse")
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        if how == "checkpoint":
            step = kerasckpt.Variable(8, dtype="int64")
            prefix = kerasckpt.Checkpoint(model=model, optimizer=model.optimizer, step=step).save(
                str(d / f"{kind}_{how}" / "ckpt"))
        else:
            prefix = str(d / f"{kind}_{how}" / "weights")
            model.save_weights(prefix)  # a checkpoint prefix: the roots are `model` and `optimizer`
        out = str(d / f"{kind}_{how}.npz")
        spec["models"].append({"kind": kind, "prefix": prefix, "x": str(d / "x.npy"), "out": out,
                               "step": how == "checkpoint"})
        written[(kind, how)] = (model.predict(x, verbose=0), [v.numpy() for v in model.optimizer.variables], out)
    return run_tf(TF_SCRIPT, spec), written


def test_tensorflow_reads_plain_variables_dicts_lists_and_modules(tensorflow_read):
    plain = tensorflow_read[0]["plain"]
    assert plain["w"] == [[0, 1, 2], [3, 4, 5]] and plain["a/b"] == 1.5 and plain["c.d"] == -2.0
    assert plain["blocks"] == [3.0, [0.25, 1e300]]
    assert plain["block.w"] == (np.arange(6).reshape(2, 3) / 4).tolist() and plain["block.inner.v"] == [7, -8]


@pytest.mark.parametrize("kind, how", CASES)
def test_keras3_on_tensorflow_restores_model_adam_and_iterations(tensorflow_read, kind, how):
    predictions, optimizer_variables, out = tensorflow_read[1][(kind, how)]
    got = np.load(out)
    np.testing.assert_allclose(got["predictions"], predictions, rtol=1e-5, atol=1e-6)
    theirs = [got[f"opt_{i}"] for i in range(len(optimizer_variables))]
    assert len([k for k in got.files if k.startswith("opt_")]) == len(optimizer_variables)
    for ours, tf_value in zip(optimizer_variables, theirs):  # iterations, learning rate, every Adam slot
        assert ours.dtype == tf_value.dtype and np.array_equal(ours, tf_value)
    assert int(got["step"]) == (8 if how == "checkpoint" else 0)
    assert os.path.exists(out)
