"""fit() throughput against a hand-written NumPy loop doing the same math, in the same run.

Model: 784-256-256-10 MLP (ReLU), sparse categorical cross-entropy from logits, Adam(1e-3),
shuffled batches. The reference loop starts from the same weights and does the same forward pass,
backward pass and Adam update (Keras's formulas) with NumPy by hand. Every repeat runs the reference,
fit() and fit() with 10 no-op callbacks in turn; the ratio is the median of the per-repeat ratios, by the
wall clock and by this process's CPU time (which moves less when other jobs share the machine), and the
ratio of the fastest epochs of each (the least disturbed ones, "best").

Run (one BLAS thread, so ratios mean something on a shared machine):
    OMP_NUM_THREADS=1 python benchmarks/fit_throughput.py
"""
import argparse
import statistics
import time

import numpy as np

import kerasckpt
from _bench import load_average, timed
from kerasckpt import layers


class NoOp(kerasckpt.callbacks.Callback):
    """A callback that overrides every per-batch and per-epoch hook and does nothing."""

    def on_train_batch_begin(self, batch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass


def build_model():
    model = kerasckpt.Sequential([layers.Input(shape=(784,)), layers.Dense(256, activation="relu"),
                                  layers.Dense(256, activation="relu"), layers.Dense(10)])
    model.compile(optimizer=kerasckpt.optimizers.Adam(1e-3),
                  loss=kerasckpt.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def reference_epoch(weights, x, y, batch_size, rng, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
    """One epoch of the same training by hand. `weights` = [W1, b1, W2, b2, W3, b3] (updated in place)."""
    ms = [np.zeros_like(w) for w in weights]
    vs = [np.zeros_like(w) for w in weights]
    order = rng.permutation(len(x))
    total, count, step = 0.0, 0, 0
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        xb, yb = x[idx], y[idx]
        w1, c1, w2, c2, w3, c3 = weights
        h1 = xb @ w1 + c1
        a1 = np.maximum(h1, 0)
        h2 = a1 @ w2 + c2
        a2 = np.maximum(h2, 0)
        logits = a2 @ w3 + c3
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        n = len(idx)
        loss = -logp[np.arange(n), yb].mean()
        d = np.exp(logp)
        d[np.arange(n), yb] -= 1
        d /= n
        g3, gc3 = a2.T @ d, d.sum(axis=0)
        d2 = (d @ w3.T) * (h2 > 0)
        g2, gc2 = a1.T @ d2, d2.sum(axis=0)
        d1 = (d2 @ w2.T) * (h1 > 0)
        g1, gc1 = xb.T @ d1, d1.sum(axis=0)
        step += 1
        alpha = np.float32(lr * np.sqrt(1 - np.float32(b2) ** step) / (1 - np.float32(b1) ** step))
        for w, g, m, v in zip(weights, (g1, gc1, g2, gc2, g3, gc3), ms, vs):
            m += (g - m) * (1 - b1)
            v += (g * g - v) * (1 - b2)
            w -= (m * alpha) / (np.sqrt(v) + eps)
        total += float(loss) * n
        count += n
    return total / count


def time_kerasckpt(x, y, batch_size, callbacks, init):
    """(samples/s by the wall clock, by CPU time) of one fit() epoch of a fresh model from `init`."""
    model = build_model()
    model.set_weights(init)
    return timed(lambda: model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=callbacks), len(x))


def time_reference(x, y, batch_size, init):
    weights = [w.copy() for w in init]
    return timed(lambda: reference_epoch(weights, x, y, batch_size, np.random.default_rng(0)), len(x))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 784)).astype("float32")
    y = rng.integers(0, 10, size=args.samples)
    kerasckpt.utils.set_random_seed(0)
    init = build_model().get_weights()
    started = time.perf_counter()
    print(f"784-256-256-10 MLP, Adam, {args.samples} samples, median of {args.repeats} epochs each; ratio = median "
          f"of the per-repeat ratios (wall clock | CPU time); load average {load_average()}")
    print(f"{'batch':>5} {'hand-written NumPy':>20} {'kerasckpt fit()':>17} {'ratio: wall | CPU | best':>24} "
          f"{'fit()+10 no-op callbacks':>25} {'slowdown':>9}")
    for batch_size in (32, 256):
        ref, ours, with_cbs = [], [], []
        time_kerasckpt(x, y, batch_size, None, init)  # warm-up
        for _ in range(args.repeats):  # interleaved so drift on the shared machine hits all three alike
            ref.append(time_reference(x, y, batch_size, init))
            ours.append(time_kerasckpt(x, y, batch_size, None, init))
            with_cbs.append(time_kerasckpt(x, y, batch_size, [NoOp() for _ in range(10)], init))
        median = statistics.median
        r, o, c = (median(run[0] for run in v) for v in (ref, ours, with_cbs))
        wall, cpu = (median(a[i] / b[i] for a, b in zip(ours, ref)) for i in (0, 1))
        best = max(run[0] for run in ours) / max(run[0] for run in ref)
        print(f"{batch_size:>5} {r:>14,.0f} smp/s {o:>11,.0f} smp/s   {wall:.3f} | {cpu:.3f} | {best:.3f} "
              f"{c:>19,.0f} smp/s "
              f"{(1 - c / o) * 100:>8.1f}%")
    print(f"({time.perf_counter() - started:.0f} s; load average after: {load_average()})")


if __name__ == "__main__":
    main()
