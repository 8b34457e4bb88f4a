"""Round trips through real TensorFlow: what kerasckpt writes, TensorFlow reads (list/load/latest/restore),
and what TensorFlow writes now (a multi-block index) kerasckpt reads bit for bit.

TensorFlow runs in a child process: the python running the tests when it has TensorFlow (CI installs
tensorflow-cpu and tf_keras beside keras and torch), else the one named by KERASCKPT_TF_PYTHON; the
tests skip cleanly when there is neither. kerasckpt itself never imports TensorFlow.
"""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.checkpoint import Checkpoint, CheckpointManager, CheckpointOptions, CheckpointReader
from kerasckpt.variables import Variable


def _tf_python():
    if importlib.util.find_spec("tensorflow") is not None:
        return sys.executable
    candidate = os.environ.get("KERASCKPT_TF_PYTHON")
    return candidate if candidate and os.path.exists(candidate) else None


TF_PYTHON = _tf_python()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(TF_PYTHON is None, reason="needs TensorFlow (tensorflow-cpu), or "
                                                   "KERASCKPT_TF_PYTHON naming a python that has it")]


def run_tf(code, *args):
    """Run `code` with TensorFlow in a child process; returns what it printed last, parsed as JSON."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # TensorFlow's python needs nothing of kerasckpt
    out = subprocess.run([TF_PYTHON, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


READ_ALL = """
import json, sys
import numpy as np
import tensorflow as tf
out = {}
for prefix in sys.argv[1:]:
    listed = tf.train.list_variables(prefix)
    reader = tf.train.load_checkpoint(prefix)
    values = {}
    for name, _ in listed:
        if name.startswith("_"):
            continue
        v = np.asarray(tf.train.load_variable(prefix, name))
        values[name] = [v.dtype.name, list(v.shape), v.tobytes().hex()]
    out[prefix] = {"listed": [[n, list(s)] for n, s in listed], "values": values,
                   "dtypes": {k: v.name for k, v in reader.get_variable_to_dtype_map().items()}}
print(json.dumps(out))
"""

DTYPES = {"f16": np.array([1.5, -2.0, np.inf], np.float16), "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
          "f64": np.array([np.pi, -0.0, 5e-324]), "i8": np.array([-128, 127], np.int8),
          "i16": np.array([-7], np.int16), "i32": np.array([[1, -2]], np.int32), "i64": np.array(2 ** 62 + 3),
          "u8": np.array([0, 255], np.uint8), "u16": np.array([65535], np.uint16), "u32": np.array([7], np.uint32),
          "u64": np.array([2 ** 64 - 1], np.uint64), "flag": np.array([True, False]),
          "c64": np.array([1 + 2j], np.complex64), "c128": np.array([-3j]), "empty": np.zeros((0, 3), np.float32),
          "scalar": np.float32(0.25), "big": np.random.default_rng(0).standard_normal((300, 5)).astype(np.float32)}


def _model():
    x = np.random.default_rng(1).normal(size=(32, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = kerasckpt.Sequential([layers.Input(shape=(6,)), layers.Dense(4, activation="relu"), layers.Dense(2)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    return model


def test_tensorflow_reads_every_checkpoint_kerasckpt_writes(tmp_path):
    variables = {k: Variable(v, dtype=v.dtype, trainable=False) for k, v in DTYPES.items()}
    ckpt = Checkpoint(**variables)
    prefixes = [ckpt.write(tmp_path / "plain" / "c"),
                ckpt.write(tmp_path / "sliced" / "c", CheckpointOptions(max_shard_size=1500))]
    ckpt.write(tmp_path / "over" / "c")
    prefixes.append(ckpt.write(tmp_path / "over" / "c"))  # overwritten: data files -of-00002
    assert any("-of-00002" in n for n in os.listdir(tmp_path / "over"))
    model = _model()
    model.save_weights(str(tmp_path / "weights" / "ckpt"))
    prefixes.append(str(tmp_path / "weights" / "ckpt"))
    manager = CheckpointManager(Checkpoint(model=model, optimizer=model.optimizer), tmp_path / "mgr", max_to_keep=2)
    for _ in range(3):
        manager.save()
    prefixes.append(manager.latest_checkpoint)
    got = run_tf(READ_ALL, *prefixes)
    for prefix in prefixes:
        with CheckpointReader(prefix) as reader:
            assert got[prefix]["listed"] == [[k, list(reader.shape(k))] for k in reader.keys()]
            assert got[prefix]["dtypes"] == {k: reader.tf_dtype(k).name for k in reader.keys()}
            for key, (dtype, shape, raw) in got[prefix]["values"].items():
                value = reader.read(key)
                assert (dtype, shape, raw) == (value.dtype.name, list(value.shape), value.tobytes().hex()), key
    assert len(got[prefixes[1]]["values"]) == len(DTYPES)


RESTORE = """
import json, sys
import numpy as np
import tensorflow as tf
spec = json.loads(open(sys.argv[1]).read())
out = {}
# plain variables and a tf.Module structure with the same attribute names
variables = {k: tf.Variable(tf.zeros(s, dtype=d)) for k, (s, d) in spec["plain"].items()}
status = tf.train.Checkpoint(**variables).read(spec["plain_path"])
status.assert_consumed()
out["plain"] = {k: v.numpy().tobytes().hex() for k, v in variables.items()}
class Dense(tf.Module):
    def __init__(self, shape):
        super().__init__()
        self.kernel = tf.Variable(tf.zeros(shape))
        self.bias = tf.Variable(tf.zeros(shape[-1:]))
net = tf.Module()
net.dense = Dense(spec["kernel_shape"])
step = tf.Variable(0, dtype=tf.int64)
tf.train.Checkpoint(net=net, step=step).read(spec["module_path"]).assert_consumed()
out["module"] = [net.dense.kernel.numpy().tobytes().hex(), net.dense.bias.numpy().tobytes().hex(), int(step)]
out["latest"] = tf.train.latest_checkpoint(spec["manager_dir"])
print(json.dumps(out))
"""


def test_tensorflow_restores_variables_and_modules_from_kerasckpt_checkpoints(tmp_path):
    plain = {k: v for k, v in DTYPES.items() if k in ("f32", "f64", "i64", "flag", "c64", "scalar", "big")}
    plain_path = Checkpoint(**{k: Variable(v, dtype=v.dtype) for k, v in plain.items()}).write(tmp_path / "p")
    dense = layers.Dense(3)
    dense.build((None, 5))
    module_path = Checkpoint(net={"dense": dense}, step=Variable(7, dtype="int64")).write(tmp_path / "m")
    manager = CheckpointManager(Checkpoint(v=Variable(1.0)), tmp_path / "mgr", max_to_keep=1)
    manager.save()
    latest = manager.save()
    spec = {"plain": {k: [list(np.shape(v)), np.asarray(v).dtype.name] for k, v in plain.items()},
            "plain_path": plain_path, "module_path": module_path, "kernel_shape": [5, 3], "manager_dir": str(tmp_path / "mgr")}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    got = run_tf(RESTORE, tmp_path / "spec.json")
    assert got["plain"] == {k: np.asarray(v).tobytes().hex() for k, v in plain.items()}
    assert got["module"] == [dense.kernel.numpy().tobytes().hex(), dense.bias.numpy().tobytes().hex(), 7]
    assert got["latest"] == latest


WRITE_BIG = """
import json, sys
import numpy as np
import tensorflow as tf
prefix = sys.argv[1]
names = [f"bert/encoder/layer_{i}/attention/self/{p}/kernel" for i in range(2000) for p in ("query", "key", "value", "output", "intermediate", "dense")]
names += ["bert/embeddings/word_embeddings"]
tensors = [tf.constant(np.full(2, i, np.float32)) for i in range(len(names) - 1)] + [tf.constant(np.arange(40.).reshape(10, 4))]
tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)
print(json.dumps({"n": len(names)}))
"""


def test_a_multi_block_index_tensorflow_writes_reads_bit_for_bit(tmp_path):
    prefix = str(tmp_path / "bundle")
    assert run_tf(WRITE_BIG, prefix)["n"] == 12001
    with CheckpointReader(prefix) as reader:
        keys = reader.keys()
        assert len(keys) == 12001 and keys == sorted(keys)
        assert os.path.getsize(prefix + ".index") > 256 << 10  # more than one 256 KiB block
        np.testing.assert_array_equal(reader.read("bert/encoder/layer_999/attention/self/value/kernel"),
                                      np.full(2, 999 * 6 + 2, np.float32))
        np.testing.assert_array_equal(reader.read("bert/embeddings/word_embeddings"), np.arange(40.).reshape(10, 4))
        reader.verify()
