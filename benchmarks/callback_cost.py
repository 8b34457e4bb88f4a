"""What checkpointing callbacks cost when they do not save, and what a backup stalls, in the same run.

1. fit() of a 784-256-256-10 MLP (batch 32) with no callback, with ModelCheckpoint(save_freq=1000) and
   with BackupAndRestore(save_freq=1000): neither saves during the measured epoch, so the difference
   is their per-batch cost.
2. A 1e7-parameter model: the stall of one BackupAndRestore backup against model.save_weights of the
   same model to the native format and to .weights.h5.

Run: OMP_NUM_THREADS=1 python benchmarks/callback_cost.py
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import kerasckpt
from kerasckpt import layers


def mlp(widths):
    model = kerasckpt.Sequential([layers.Input(shape=(widths[0],))] +
                                 [layers.Dense(w, activation="relu") for w in widths[1:-1]] + [layers.Dense(widths[-1])])
    model.compile(optimizer="adam", loss=kerasckpt.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def per_batch_cost(repeats, directory):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8192, 784)).astype("float32"), rng.integers(0, 10, size=8192)
    model = mlp([784, 256, 256, 10])
    make = {
        "none": lambda: [],
        "ModelCheckpoint(save_freq=1000)": lambda: [kerasckpt.callbacks.ModelCheckpoint(
            os.path.join(directory, "mc.weights.h5"), save_freq=1000)],
        "BackupAndRestore(save_freq=1000)": lambda: [kerasckpt.callbacks.BackupAndRestore(
            os.path.join(directory, "backup"), save_freq=1000)],
    }
    times = {name: [] for name in make}
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # warm-up
    for _ in range(repeats):
        for name, callbacks in make.items():  # interleaved: drift on a shared machine hits all alike
            start = time.perf_counter()
            model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=callbacks())
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["none"])
    print("per-batch cost when not saving (256 batches of 32, median of", repeats, "epochs)")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"  {name:<34} {t * 1e3:8.1f} ms/epoch  ratio {t / base:6.3f}  ({(t - base) / 256 * 1e6:+.1f} us/batch)")


def backup_stall(repeats, directory):
    model = mlp([1000, 3000, 2000, 10])  # ~9.0e6 weights + 1.8e7 Adam slots
    n_params = model.count_params()
    x, y = np.zeros((32, 1000), "float32"), np.zeros(32, "int64")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    backup = kerasckpt.callbacks.BackupAndRestore(os.path.join(directory, "stall"), delete_checkpoint=False)
    stalls = {"BackupAndRestore backup (weights+optimizer+loop)": [], "save_weights native prefix": [],
              "save_weights .weights.h5": []}

    class Timed(kerasckpt.callbacks.Callback):
        def on_train_begin(self, logs=None):
            loop = self.model._fit_loop
            start = time.perf_counter()
            backup._save()
            stalls["BackupAndRestore backup (weights+optimizer+loop)"].append(time.perf_counter() - start)
            self.model.stop_training = True
            del loop

    for _ in range(repeats):
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[backup, Timed()])
        for name, path in (("save_weights native prefix", "w"), ("save_weights .weights.h5", "w.weights.h5")):
            start = time.perf_counter()
            model.save_weights(os.path.join(directory, path))
            stalls[name].append(time.perf_counter() - start)
    print(f"stall per checkpoint, {n_params:,} weights + Adam slots (median of {repeats})")
    for name, values in stalls.items():
        print(f"  {name:<50} {statistics.median(values) * 1e3:8.1f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as directory:
        per_batch_cost(args.repeats, directory)
        backup_stall(args.repeats, directory)


if __name__ == "__main__":
    main()
