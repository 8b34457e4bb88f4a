"""Train on data that stays on disk: .npy shards read batch by batch by a PyDataset with workers, shuffled
and augmented with kerasckpt.random, with ModelCheckpoint keeping the best model and BackupAndRestore
making an interrupted run resume exactly.

The run is interrupted in the middle of epoch 3 (a callback raises, as Ctrl-C would), started again
from scratch objects as a new process would, and compared with a run that was never interrupted.

Run: python examples/stream_from_disk.py [--processes]
"""
import argparse
import math
import os
import tempfile

import numpy as np

import kerasckpt
from kerasckpt import layers

SHARD_SIZE, BATCH = 500, 50


def write_shards(directory, shards=6, seed=0):
    """A 4-class problem in .npy shards: x_000.npy, y_000.npy, ... (the data a real job would stream)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 0.5, size=(4, 16))
    for i in range(shards):
        labels = rng.integers(0, 4, size=SHARD_SIZE)
        np.save(os.path.join(directory, f"x_{i:03d}.npy"),
                (centers[labels] + rng.normal(size=(SHARD_SIZE, 16))).astype("float32"))
        np.save(os.path.join(directory, f"y_{i:03d}.npy"), labels.astype("int64"))


class Shards(kerasckpt.utils.PyDataset):
    """Batches of samples from .npy shards, in an order reshuffled every epoch, with noise added."""

    def __init__(self, directory, shards, augment=True, **kwargs):
        super().__init__(**kwargs)
        self.paths = [(os.path.join(directory, f"x_{i:03d}.npy"), os.path.join(directory, f"y_{i:03d}.npy"))
                      for i in shards]
        self.order = np.arange(len(self.paths) * SHARD_SIZE)
        self.augment = augment
        self.seed_generator = kerasckpt.random.SeedGenerator()  # seeded by set_random_seed; saved in backups
        self._open = None  # memory-mapped shards, opened in each worker: never pickled

    def __getstate__(self):
        return {**self.__dict__, "_open": None}

    def __len__(self):
        return math.ceil(len(self.order) / BATCH)

    def __getitem__(self, index):
        if self._open is None:
            self._open = [(np.load(x, mmap_mode="r"), np.load(y, mmap_mode="r")) for x, y in self.paths]
        rows = np.sort(self.order[index * BATCH:(index + 1) * BATCH])
        x = np.stack([self._open[r // SHARD_SIZE][0][r % SHARD_SIZE] for r in rows])
        y = np.array([self._open[r // SHARD_SIZE][1][r % SHARD_SIZE] for r in rows])
        if self.augment:
            x = x + kerasckpt.random.normal(x.shape, stddev=0.3, seed=self.seed_generator)
        return x, y

    def on_epoch_end(self):
        if self.augment:
            self.order = kerasckpt.random.shuffle(self.order, seed=self.seed_generator)


class Interrupt(kerasckpt.callbacks.Callback):
    """Raises KeyboardInterrupt once, at training batch 4 of epoch 3 (1-based), as a Ctrl-C would."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == (2, 3):
            raise KeyboardInterrupt("interrupted in the middle of epoch 3")


def train(data_dir, run_dir, processes, interrupt=False):
    """What a training script looks like: everything built from scratch, fit() with both callbacks."""
    kerasckpt.utils.set_random_seed(42)
    workers = {"workers": 2, "use_multiprocessing": processes}
    train_data = Shards(data_dir, range(5), **workers)
    val_data = Shards(data_dir, [5], augment=False)
    model = kerasckpt.Sequential([layers.Input(shape=(16,)), layers.Dense(64, activation="relu"),
                                  layers.Dropout(0.2), layers.Dense(4, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    best = kerasckpt.callbacks.ModelCheckpoint(os.path.join(run_dir, "best.keras"), monitor="val_accuracy",
                                               save_best_only=True)
    backup = kerasckpt.callbacks.BackupAndRestore(os.path.join(run_dir, "backup"), save_freq=5)
    callbacks = [best, backup] + ([Interrupt()] if interrupt else [])
    history = model.fit(train_data, epochs=5, validation_data=val_data, callbacks=callbacks, verbose=0)
    return model, history, best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", action="store_true", help="load in worker processes instead of threads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "shards")
        os.makedirs(data_dir)
        write_shards(data_dir)
        straight, history, best = train(data_dir, os.path.join(tmp, "straight"), args.processes)
        print(f"uninterrupted: val_accuracy by epoch {[round(a, 3) for a in history.history['val_accuracy']]}")
        reloaded = kerasckpt.models.load_model(best.best_filepath)
        print(f"best model (val_accuracy {best.best:.3f}) reloaded from {os.path.basename(best.best_filepath)}")
        try:
            train(data_dir, os.path.join(tmp, "resumed"), args.processes, interrupt=True)
        except KeyboardInterrupt as stop:
            print(f"{stop}; starting again")
        resumed, _, _ = train(data_dir, os.path.join(tmp, "resumed"), args.processes)
        same = all(np.array_equal(a, b) for a, b in zip(straight.get_weights(), resumed.get_weights()))
        assert reloaded.count_params() == straight.count_params()
    print(f"resumed run bit-identical to the uninterrupted run: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
