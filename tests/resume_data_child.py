"""The training process of tests/test_resume_datasets.py: fit() on a shuffling, augmenting PyDataset with
BackupAndRestore, or a custom loop with Checkpoint(iterator=...); it prints each finished step.

    python tests/resume_data_child.py fit|loop WORKDIR RESULT.npz [threads|processes|main]
"""
import os
import sys

import numpy as np

import kerasckpt
from kerasckpt import layers

from pipeline_datasets import Augmented, arrays

EPOCHS, BATCH = 3, 8
SETTINGS = {"main": {}, "threads": {"workers": 2}, "processes": {"workers": 2, "use_multiprocessing": True}}


def _model():
    model = kerasckpt.Sequential([layers.Input((5,)), layers.Dense(16, activation="relu"), layers.Dropout(0.2),
                                  layers.Dense(3)])
    model.compile(kerasckpt.optimizers.Adam(0.01), kerasckpt.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


class Report(kerasckpt.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        print(int(self.model.optimizer.iterations), flush=True)


def fit(workdir, settings):
    kerasckpt.utils.set_random_seed(11)
    x, y = arrays(96)
    log_dir = os.path.join(workdir, "pids")
    os.makedirs(log_dir, exist_ok=True)
    train = Augmented(x[:80], y[:80], batch_size=BATCH, delay=0.03, log_dir=log_dir, **SETTINGS[settings])
    val = Augmented(x[80:], y[80:], batch_size=BATCH, **SETTINGS["threads" if settings != "main" else "main"])
    model = _model()
    history = model.fit(train, epochs=EPOCHS, validation_data=val, verbose=0,
                        callbacks=[kerasckpt.callbacks.BackupAndRestore(os.path.join(workdir, "backup"), save_freq=1),
                                   Report()])
    return model.get_weights() + [np.array(history.run_history["val_loss"])]


def loop(workdir, settings):
    kerasckpt.utils.set_random_seed(11)
    x, y = arrays(96)
    data = Augmented(x, y, batch_size=BATCH, delay=0.03, **SETTINGS[settings])
    model, optimizer = _model(), kerasckpt.optimizers.Adam(0.01)
    iterator = kerasckpt.utils.DatasetIterator(data, epochs=EPOCHS, shuffle=True)
    step = kerasckpt.Variable(0, dtype="int64", trainable=False)
    manager = kerasckpt.CheckpointManager(
        kerasckpt.Checkpoint(model=model, optimizer=optimizer, step=step, iterator=iterator),
        os.path.join(workdir, "ckpt"), max_to_keep=2)
    manager.restore_or_initialize()
    loss_fn = kerasckpt.losses.SparseCategoricalCrossentropy(from_logits=True)
    with iterator:
        for xb, yb in iterator:
            with kerasckpt.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_weights)
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
            step.assign(step.numpy() + 1)
            manager.save()
            print(int(step.numpy()), flush=True)
    return model.get_weights() + [step.numpy()]


if __name__ == "__main__":
    mode, workdir, result = sys.argv[1:4]
    weights = (fit if mode == "fit" else loop)(workdir, sys.argv[4] if len(sys.argv) > 4 else "main")
    np.savez(result + ".tmp.npz", *weights)
    os.replace(result + ".tmp.npz", result)
