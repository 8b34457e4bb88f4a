"""Write checkpoints in kerasckpt 0.1's native format (JSON index `KCKPTIDX`, `.data-*[.gN]` files).

    git worktree add /tmp/k01 e37e5ba && PYTHONPATH=/tmp/k01 python tests/data/v0_1/make_v0_1_fixtures.py

Made with kerasckpt 0.1.0 (commit e37e5ba, before checkpoints became TensorFlow tensor bundles): later
versions must keep loading them (tests/checkpoint/test_v0_1_files.py). `expected.npz` holds every
value under `<checkpoint>::<key>`, and the data and predictions of the saved models.
"""
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # tests/ for conftest's models

import kerasckpt  # noqa: E402
from conftest import make_model, tiny_data  # noqa: E402
from kerasckpt import CheckpointOptions  # noqa: E402


def main():
    for name in os.listdir(HERE):
        if name != os.path.basename(__file__):
            path = os.path.join(HERE, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    expected = {}
    kerasckpt.utils.set_random_seed(1234)
    x, y = tiny_data(n=16)
    expected["x"] = x

    # A trained model + optimizer + step through a CheckpointManager (ckpt-2, ckpt-3 kept).
    model = make_model("functional", units=4)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    step = kerasckpt.Variable(0, dtype="int64", trainable=False)
    manager = kerasckpt.CheckpointManager(kerasckpt.Checkpoint(model=model, optimizer=model.optimizer, step=step),
                                          os.path.join(HERE, "manager"), max_to_keep=2)
    for _ in range(3):
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        step.assign(step.numpy() + 1)
        manager.save()
    expected["manager_predictions"] = model.predict(x, verbose=0)

    # save_weights to a prefix (roots model + optimizer), overwritten once: data files of generation 1.
    sub = make_model("subclass", units=4)
    sub.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    sub.fit(x, y, epochs=1, batch_size=8, verbose=0)
    sub.save_weights(os.path.join(HERE, "weights", "ckpt"))
    sub.fit(x, y, epochs=1, batch_size=8, verbose=0)
    sub.save_weights(os.path.join(HERE, "weights", "ckpt"))
    expected["weights_predictions"] = sub.predict(x, verbose=0)

    # Every dtype, several data files (a value split across two of them).
    values = {"f16": np.array([1.5, -2.0], np.float16), "f32": np.arange(40, dtype=np.float32).reshape(10, 4),
              "f64": np.array([np.pi]), "i8": np.array([-128, 127], np.int8), "i64": np.array([-(2 ** 63)]),
              "u16": np.array([65535], np.uint16), "flag": np.array([True, False]), "scalar": np.float32(2.5),
              "empty": np.zeros((0, 3), np.float32)}
    variables = {k: kerasckpt.Variable(v, trainable=False) for k, v in values.items()}
    kerasckpt.Checkpoint(**variables).write(os.path.join(HERE, "sharded", "c"), CheckpointOptions(max_shard_size=64))

    for prefix in ("manager/ckpt-2", "manager/ckpt-3", "weights/ckpt", "sharded/c"):
        for key, _ in kerasckpt.list_variables(os.path.join(HERE, prefix)):
            expected[f"{prefix}::{key}"] = np.asarray(kerasckpt.load_variable(os.path.join(HERE, prefix), key))
    np.savez(os.path.join(HERE, "expected.npz"), **expected)


if __name__ == "__main__":
    main()
