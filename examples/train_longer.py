"""Train for more epochs after a finished run: run the same script again with a larger `epochs`.

`BackupAndRestore(delete_checkpoint=False)` keeps the backup of a finished run, so running the script
again with `--epochs 8` after `--epochs 4` continues at epoch 5 instead of starting over; the
callbacks' state (ModelCheckpoint's best, the CSVLogger's file) carries over too. As in Keras, the
second `fit()` returns the History of its own epochs; `history.run_history` holds the whole run.

The example runs each training in its own process, as a user re-running a script would, and checks
that 4 + 4 epochs end bit-identical to 8 epochs in one go (weights, best file, CSV log).

Run: python examples/train_longer.py [--first 4] [--epochs 8]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np


def train(workdir, epochs):
    """The training script a user would write and run again with a larger `epochs`."""
    import kerasckpt
    from kerasckpt import layers

    os.makedirs(workdir, exist_ok=True)
    kerasckpt.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, 32)).astype("float32")
    y = (x[:, :8] @ rng.normal(size=(8, 4))).argmax(axis=1)
    model = kerasckpt.Sequential([layers.Input(shape=(32,)), layers.Dense(64, activation="relu"),
                                  layers.Dropout(0.2), layers.Dense(4, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=epochs, validation_split=0.1, verbose=0, callbacks=[
        kerasckpt.callbacks.BackupAndRestore(os.path.join(workdir, "backup"), delete_checkpoint=False),
        kerasckpt.callbacks.ModelCheckpoint(os.path.join(workdir, "best.weights.h5"), save_best_only=True),
        kerasckpt.callbacks.CSVLogger(os.path.join(workdir, "log.csv"))])
    if history.epoch:
        print(f"this fit() trained epochs {history.epoch[0] + 1}-{history.epoch[-1] + 1} "
              f"({len(history.history['loss'])} entries in history.history['loss']); the whole run has "
              f"{len(history.run_history['loss'])} epochs")
    np.savez(os.path.join(workdir, f"weights-{epochs}.npz"), *model.get_weights())


def run(workdir, epochs):
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", workdir, str(epochs)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the training process failed:\n{done.stdout}{done.stderr}")
    print("  " + done.stdout.strip())


def _same_files(a, b, names):
    def read(directory, name):
        with open(os.path.join(directory, name), "rb") as f:
            return f.read()
    return all(read(a, name) == read(b, name) for name in names)


def main():
    parser = argparse.ArgumentParser(description="Train longer after a finished run; compare with one long run.")
    parser.add_argument("--first", type=int, default=4, help="epochs of the first, finished run")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the run continued afterwards")
    parser.add_argument("--child", nargs=2, metavar=("WORKDIR", "EPOCHS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        train(args.child[0], int(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        straight, longer = os.path.join(tmp, "straight"), os.path.join(tmp, "longer")
        print(f"one run of {args.epochs} epochs ...")
        run(straight, args.epochs)
        print(f"a finished run of {args.first} epochs, then the same script with epochs={args.epochs} ...")
        run(longer, args.first)
        run(longer, args.epochs)
        with np.load(os.path.join(straight, f"weights-{args.epochs}.npz")) as a, \
                np.load(os.path.join(longer, f"weights-{args.epochs}.npz")) as b:
            identical = len(a.files) == len(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
        identical = identical and _same_files(straight, longer, ["log.csv", "best.weights.h5"])
    print(f"trained longer; weights, best file and CSV log bit-identical to one run of {args.epochs} epochs: "
          f"{identical}")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
