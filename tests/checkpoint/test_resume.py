"""Save -> restore in a new process -> continue: a custom GradientTape loop (subclassed model with
Dropout, Adam, a shuffling SeedGenerator) ends bit-identical to the uninterrupted loop."""
import subprocess

import numpy as np

from .ckpt_helpers import PYTHON, child_env

SCRIPT = r'''
import sys
import numpy as np
import kerasckpt
from kerasckpt import layers, ops
from kerasckpt.checkpoint import Checkpoint, CheckpointManager
from kerasckpt.random import SeedGenerator


class Net(kerasckpt.Model):
    def __init__(self, seed):
        super().__init__()
        self.dense_1 = layers.Dense(8, activation="relu")
        self.drop = layers.Dropout(0.3, seed=seed)
        self.dense_2 = layers.Dense(1)

    def call(self, x, training=False):
        return self.dense_2(self.drop(self.dense_1(x), training=training))


data = np.random.default_rng(0)
x = data.standard_normal((32, 3)).astype(np.float32)
y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)


def train(model, opt, order, steps):
    for _ in range(steps):
        idx = order.next().permutation(32)[:8]
        with kerasckpt.GradientTape() as tape:
            loss = ops.mean((model(x[idx], training=True) - y[idx]) ** 2)
        grads = tape.gradient(loss, model.trainable_weights)
        opt.apply_gradients(zip(grads, model.trainable_weights))


def dump(path, model, opt):
    state = {"w/" + v.path: v.numpy() for v in model.weights}
    state.update({"opt/" + n + "/" + r.path: s.numpy() for n, r, s in opt.slot_variables()})
    state["iterations"] = np.asarray(opt.iterations.numpy())
    np.savez(path, **state)


mode, directory = sys.argv[1], sys.argv[2]
if mode == "first":
    kerasckpt.utils.set_random_seed(1)
    model, opt, order = Net(5), kerasckpt.optimizers.Adam(0.01), SeedGenerator(7)
    train(model, opt, order, 6)
    dump(directory + "/uninterrupted.npz", model, opt)
    kerasckpt.utils.clear_session()
    kerasckpt.utils.set_random_seed(1)
    model, opt, order = Net(5), kerasckpt.optimizers.Adam(0.01), SeedGenerator(7)
    train(model, opt, order, 3)
    CheckpointManager(Checkpoint(model=model, optimizer=opt, order=order), directory, max_to_keep=2).save()
else:
    kerasckpt.utils.set_random_seed(999)  # other initial weights, other seeds: the checkpoint decides
    model, opt, order = Net(None), kerasckpt.optimizers.Adam(0.5), SeedGenerator(0)
    manager = CheckpointManager(Checkpoint(model=model, optimizer=opt, order=order), directory, max_to_keep=2)
    assert manager.restore_or_initialize() is not None  # model and slots not built yet: deferred
    train(model, opt, order, 3)
    dump(directory + "/resumed.npz", model, opt)
'''


def test_resume_in_new_process_is_bit_identical(tmp_path):
    script = tmp_path / "loop.py"
    script.write_text(SCRIPT)
    for mode in ("first", "second"):
        out = subprocess.run([PYTHON, str(script), mode, str(tmp_path)], capture_output=True, text=True,
                             env=child_env(), timeout=120)
        assert out.returncode == 0, out.stderr
    full, resumed = np.load(tmp_path / "uninterrupted.npz"), np.load(tmp_path / "resumed.npz")
    assert sorted(full.files) == sorted(resumed.files) and len(full.files) == 13
    for key in full.files:
        assert full[key].dtype == resumed[key].dtype and np.array_equal(full[key], resumed[key]), key
    assert int(resumed["iterations"]) == 6
