"""fit() on a PyDataset whose __getitem__ costs about as much as a training step: workers=1 against
workers=2 threads and workers=2 processes, with the time fit() waited for data, in the same run.

Two datasets slice a batch from arrays in memory: one "augments" it with NumPy matrix products (CPU
work that releases the GIL, as image decoding and resizing libraries do), calibrated at start-up to
cost about one training step of the model; the other waits one step's time (a read from a slow disk
or the network). The reference in the same run is fit() on the same arrays in memory (the compute
alone): with perfect overlap a dataset reaches that speed; loading in the training thread
(workers=1) reaches about half of it. CPU work can overlap only as far as free cores allow (the
model needs one of the 2); waiting overlaps fully. Each case runs 3 epochs; the figures are of the
last two (worker processes start during the first), median over the repeats.

Run (one BLAS thread per process, so the 2 cores are the workers' and the model's):
    OMP_NUM_THREADS=1 python benchmarks/data_pipeline.py
"""
import argparse
import statistics
import time

import numpy as np

import kerasckpt
from kerasckpt import layers

FEATURES, BATCH = 256, 64


def build_model():
    kerasckpt.utils.set_random_seed(0)
    model = kerasckpt.Sequential([layers.Input((FEATURES,)), layers.Dense(512, activation="relu"),
                                  layers.Dense(512, activation="relu"), layers.Dense(10)])
    model.compile(kerasckpt.optimizers.Adam(1e-3), kerasckpt.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class Augmenting(kerasckpt.utils.PyDataset):
    """Batch `i` of in-memory arrays through a random projection and tanh, computed `rounds` times."""

    def __init__(self, x, y, rounds, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.rounds = x, y, rounds
        self.mix = np.linalg.qr(np.random.default_rng(1).normal(size=(FEATURES, FEATURES)))[0].astype("float32")

    def __len__(self):
        return len(self.x) // BATCH

    def __getitem__(self, index):
        xb = self.x[index * BATCH:(index + 1) * BATCH]
        out = xb
        for _ in range(self.rounds):  # the same work every round, so the cost grows linearly with `rounds`
            out = np.tanh(xb @ self.mix)
        return out, self.y[index * BATCH:(index + 1) * BATCH]


class Waiting(Augmenting):
    """Batch `i` after a wait of `seconds` (a read from a slow disk or the network: no CPU used)."""

    def __init__(self, x, y, seconds, **kwargs):
        super().__init__(x, y, rounds=0, **kwargs)
        self.seconds = seconds

    def __getitem__(self, index):
        time.sleep(self.seconds)
        return super().__getitem__(index)


class EpochClock(kerasckpt.callbacks.Callback):
    """Seconds and data-wait seconds of every epoch."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def _wait(self):
        timer = getattr(self.model, "_data_timer", None)  # what the progress bar shows as "data wait"
        return 0.0 if timer is None else timer.wait_seconds

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._wait_start = time.perf_counter(), self._wait()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((time.perf_counter() - self._start, self._wait() - self._wait_start))


def best_ms(fn, repeats=15):
    """The fastest of `repeats` calls, in ms: on a shared machine the least disturbed one."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def calibrate(x, y):
    """`rounds` of augmentation that cost about one training step, and the step's time in ms."""
    model = build_model()
    step_ms = best_ms(lambda: model.train_on_batch(x[:BATCH], y[:BATCH]))
    plain, twenty = Augmenting(x, y, rounds=0), Augmenting(x, y, rounds=20)
    round_ms = max(best_ms(lambda: twenty[0]) - best_ms(lambda: plain[0]), 1e-3) / 20
    return max(1, round(step_ms / round_ms)), step_ms


def run(data, n_batches, epochs=3):
    model = build_model()
    clock = EpochClock()
    if isinstance(data, tuple):
        model.fit(*data, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, callbacks=[clock])
    else:
        model.fit(data, epochs=epochs, shuffle=False, verbose=0, callbacks=[clock])
    seconds = sum(s for s, _ in clock.epochs[1:])
    waited = sum(w for _, w in clock.epochs[1:])
    return n_batches * BATCH * (epochs - 1) / seconds, waited / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="batches per epoch")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batches * BATCH, FEATURES)).astype("float32")
    y = rng.integers(0, 10, size=len(x))
    rounds, step_ms = calibrate(x, y)
    calibrated = Augmenting(x, y, rounds)
    load_ms = best_ms(lambda: calibrated[0])
    print(f"MLP {FEATURES}-512-512-10, batches of {BATCH}: a training step takes {step_ms:.1f} ms, "
          f"__getitem__ {load_ms:.1f} ms ({rounds} rounds of augmentation)")
    settings = {"workers=1": {}, "workers=2 threads": {"workers": 2},
                "workers=2 processes": {"workers": 2, "use_multiprocessing": True}}
    cases = {"arrays in memory (reference)": lambda: (x, y)}
    for name, kwargs in settings.items():
        cases[f"augmenting (CPU), {name}"] = lambda kwargs=kwargs: Augmenting(x, y, rounds, **kwargs)
    for name, kwargs in settings.items():
        cases[f"waiting (I/O), {name}"] = lambda kwargs=kwargs: Waiting(x, y, step_ms / 1e3, **kwargs)
    results = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved, so drift in the machine's load hits every case alike
        for name, make in cases.items():
            results[name].append(run(make(), args.batches))
    reference = statistics.median(r[0] for r in results["arrays in memory (reference)"])
    title = "PyDataset whose __getitem__ costs a step"
    print(f"{title:<40} {'samples/s':>10} {'ratio':>6} {'fit() waited for data':>22}")
    for name, rows in results.items():
        speed = statistics.median(r[0] for r in rows)
        wait = statistics.median(r[1] for r in rows)
        print(f"{name:<40} {speed:>10,.0f} {speed / reference:>6.2f} {wait:>21.0%}")


if __name__ == "__main__":
    main()
