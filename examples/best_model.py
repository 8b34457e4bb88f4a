"""Keep the best model while training, then reload it with one line.

Trains with `ModelCheckpoint(save_best_only=True)` and a templated file name, reloads
`checkpoint.best_filepath`, and shows the reloaded model scores the best validation loss seen.

Run: python examples/best_model.py
"""
import os
import tempfile

import numpy as np

import kerasckpt
from kerasckpt import layers


def main():
    kerasckpt.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 16)).astype("float32")
    y = (x[:, :3].sum(axis=1) + 0.5 * rng.normal(size=600) > 0).astype("int64")
    x_val, y_val = x[480:], y[480:]
    model = kerasckpt.Sequential([layers.Input(shape=(16,)), layers.Dense(64, activation="relu"),
                                  layers.Dense(64, activation="relu"), layers.Dense(2, activation="softmax")])
    model.compile(optimizer=kerasckpt.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = kerasckpt.callbacks.ModelCheckpoint(
            os.path.join(directory, "model.{epoch:02d}-{val_loss:.3f}.keras"), monitor="val_loss",
            save_best_only=True)
        history = model.fit(x[:480], y[:480], validation_data=(x_val, y_val), epochs=25, batch_size=32,
                            callbacks=[checkpoint], verbose=0)
        val_losses = history.history["val_loss"]
        best_epoch = int(np.argmin(val_losses)) + 1
        print(f"best val_loss {min(val_losses):.5f} at epoch {best_epoch}; last {val_losses[-1]:.5f}")
        print(f"files kept: {sorted(os.listdir(directory))}")
        best = kerasckpt.models.load_model(checkpoint.best_filepath)
        reloaded_loss = best.evaluate(x_val, y_val, verbose=0)[0]
    print(f"reloaded {os.path.basename(checkpoint.best_filepath)}: val_loss {reloaded_loss:.5f}")
    if abs(reloaded_loss - min(val_losses)) > 1e-6 or checkpoint.best != min(val_losses):
        raise SystemExit("the reloaded model does not score the best validation loss seen")


if __name__ == "__main__":
    main()
