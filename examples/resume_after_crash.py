"""Resume after a crash: a training process is SIGKILLed midway (several times), restarted until it
finishes, and its final weights are compared with a run that was never interrupted.

Each kill is aimed at a random training step: the child reports every step it finishes, and once it
passes the chosen step the parent waits a random few milliseconds (so the kill can land mid-batch or
mid-save) and sends SIGKILL. Aiming by step rather than by wall-clock time means every kill lands
before training ends, however fast or slow the machine is.

Run: python examples/resume_after_crash.py [--kills 3] [--seed 0]
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

TOTAL_STEPS = 928  # 8 epochs of ceil(7372 / 64) = 116 batches


def train(workdir, result_path):
    """The training script a user would write: BackupAndRestore makes a restart continue the same run."""
    import kerasckpt
    from kerasckpt import layers

    kerasckpt.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8192, 64)).astype("float32")
    y = (x[:, :10] @ rng.normal(size=(10, 10))).argmax(axis=1)
    model = kerasckpt.Sequential([
        layers.Input(shape=(64,)), layers.Dense(256, activation="relu"), layers.BatchNormalization(),
        layers.Dropout(0.2), layers.Dense(256, activation="relu"), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=8, validation_split=0.1, verbose=0,
              callbacks=[kerasckpt.callbacks.BackupAndRestore(os.path.join(workdir, "backup"), save_freq=10),
                         ReportSteps()])
    tmp = result_path + ".tmp.npz"
    np.savez(tmp, *model.get_weights())
    os.replace(tmp, result_path)


def ReportSteps():
    """A callback printing the optimizer's step count after every batch, for the parent to aim its kills."""
    import kerasckpt

    class _ReportSteps(kerasckpt.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            print(int(self.model.optimizer.iterations), flush=True)

    return _ReportSteps()


def run_until_finished(workdir, result_path, kills, rng):
    """Start the training process, SIGKILL it after `kills` random steps, restart until it finishes.

    Returns the number of kills that landed; a kill is counted only if the process was still running.
    """
    targets = sorted(rng.choice(np.arange(1, TOTAL_STEPS * 9 // 10), size=kills, replace=False))
    restarts = 0
    while True:
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", workdir, result_path],
                                 stdout=subprocess.PIPE, text=True)
        if targets:
            target = targets.pop(0)
            for line in child.stdout:
                if int(line) >= target:
                    break
            time.sleep(rng.uniform(0.0, 0.02))
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.communicate()
                restarts += 1
                print(f"  killed the training process after step {target} (SIGKILL); restarting it ({restarts})")
                continue
        child.communicate()
        if child.returncode != 0:
            raise SystemExit(f"the training process failed with exit status {child.returncode}")
        return restarts


def main():
    parser = argparse.ArgumentParser(description="Kill a training run midway, resume it, compare.")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, metavar=("WORKDIR", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        train(*args.child)
        return
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        print("uninterrupted run ...")
        straight = os.path.join(tmp, "straight.npz")
        run_until_finished(os.path.join(tmp, "a"), straight, 0, rng)
        print(f"run killed {args.kills} times ...")
        resumed = os.path.join(tmp, "resumed.npz")
        restarts = run_until_finished(os.path.join(tmp, "b"), resumed, args.kills, rng)
        with np.load(straight) as a, np.load(resumed) as b:
            identical = len(a.files) == len(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
    print(f"killed and restarted {restarts} times; final weights bit-identical to the uninterrupted run: {identical}")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
