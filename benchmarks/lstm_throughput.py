"""fit() throughput of an Embedding + LSTM text classifier against hand-written NumPy doing the same math,
with Keras 3 on torch's CPU build beside them, in the same run.

Model: int32 token ids (batch, 100) -> Embedding(5000, 64) -> LSTM(64) -> Dense(1, sigmoid); binary
cross-entropy, Adam(1e-3), batch 32 (the shape of the keras.io IMDB examples, smaller). The reference loop
starts from the same weights and does the same forward pass (the table lookup, the input projection of all
steps as one matrix product, one recurrent product per step), the same backward pass through time, the
table's gradient added up row by row with `np.add.at`, and the same Adam update of every weight, by hand.
Every repeat runs the three one after the other (one epoch each, shuffled), so drift in the machine's load
hits all alike; the ratios are medians of each repeat's ratio, by the wall clock and by the process's CPU
time (which a shared machine's load does not inflate).

Run (one BLAS and torch thread, so ratios mean something on a shared machine):
    OMP_NUM_THREADS=1 python benchmarks/lstm_throughput.py
"""
import argparse

import numpy as np

from _bench import compare_fit

VOCAB, EMBED, UNITS, MAXLEN, BATCH = 5000, 64, 64, 100, 32


def build(lib):
    """The model and compile() call, in `lib` (kerasckpt or keras)."""
    layers = lib.layers
    inputs = lib.Input(shape=(MAXLEN,), dtype="int32")
    x = layers.Embedding(VOCAB, EMBED)(inputs)
    x = layers.LSTM(UNITS)(x)
    model = lib.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    model.compile(loss="binary_crossentropy", optimizer=lib.optimizers.Adam(1e-3), metrics=["accuracy"])
    return model


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def reference_epoch(weights, x, y, batch_size, rng, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
    """One epoch of the same training by hand; `weights` = [E, W, R, b, Wd, bd] (updated in place)."""
    ms, vs = [np.zeros_like(w) for w in weights], [np.zeros_like(w) for w in weights]
    order = rng.permutation(len(x))
    u, step, total = UNITS, 0, 0.0
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        tokens, yb, n = x[idx], y[idx], len(idx)
        table, kernel, recurrent, bias, dense, dense_bias = weights
        steps = tokens.shape[1]
        flat_ids = tokens.T.reshape(-1)                                  # time-major
        xs = table[flat_ids]                                             # (T*n, D)
        proj = (xs @ kernel + bias).reshape(steps, n, 4 * u)
        h, c = np.zeros((n, u), np.float32), np.zeros((n, u), np.float32)
        gates, cs, tcs, hs = [], [], [], []
        for t in range(steps):
            hs.append(h)
            z = proj[t] + h @ recurrent
            g = np.empty_like(z)
            g[:, :2 * u] = _sigmoid(z[:, :2 * u])
            g[:, 2 * u:3 * u] = np.tanh(z[:, 2 * u:3 * u])
            g[:, 3 * u:] = _sigmoid(z[:, 3 * u:])
            cs.append(c)
            c = g[:, u:2 * u] * c + g[:, :u] * g[:, 2 * u:3 * u]
            tc = np.tanh(c)
            h = g[:, 3 * u:] * tc
            gates.append(g)
            tcs.append(tc)
        p = _sigmoid(h @ dense + dense_bias)
        pc = np.clip(p, 1e-7, 1 - 1e-7)
        total += float(-(yb * np.log(pc) + (1 - yb) * np.log(1 - pc)).sum())
        dlogit = (p - yb) / n
        g_dense, g_dense_bias = h.T @ dlogit, dlogit.sum(axis=0)
        dh, dc = dlogit @ dense.T, np.zeros((n, u), np.float32)
        dz_all = np.empty((steps, n, 4 * u), np.float32)
        for t in range(steps - 1, -1, -1):
            g, tc = gates[t], tcs[t]
            dc = dc + dh * g[:, 3 * u:] * (1 - tc * tc)
            dz = dz_all[t]
            dz[:, :u] = dc * g[:, 2 * u:3 * u] * g[:, :u] * (1 - g[:, :u])
            dz[:, u:2 * u] = dc * cs[t] * g[:, u:2 * u] * (1 - g[:, u:2 * u])
            dz[:, 2 * u:3 * u] = dc * g[:, :u] * (1 - g[:, 2 * u:3 * u] ** 2)
            dz[:, 3 * u:] = dh * tc * g[:, 3 * u:] * (1 - g[:, 3 * u:])
            dh = dz @ recurrent.T
            dc = dc * g[:, u:2 * u]
        dz_flat = dz_all.reshape(steps * n, 4 * u)
        g_kernel, g_bias = xs.T @ dz_flat, dz_flat.sum(axis=0)
        g_recurrent = np.stack(hs).reshape(steps * n, u).T @ dz_flat
        g_table = np.zeros_like(table)
        np.add.at(g_table, flat_ids, dz_flat @ kernel.T)
        step += 1
        alpha = np.float32(lr * np.sqrt(1 - np.float32(b2) ** step) / (1 - np.float32(b1) ** step))
        grads = (g_table, g_kernel, g_recurrent, g_bias, g_dense, g_dense_bias)
        for w, grad, m, v in zip(weights, grads, ms, vs):
            m += (grad - m) * (1 - b1)
            v += (grad * grad - v) * (1 - b2)
            w -= (m * alpha) / (np.sqrt(v) + eps)
    return total / len(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-keras", action="store_true", help="leave out Keras 3 on torch")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.integers(1, VOCAB, (args.samples, MAXLEN)).astype("int32")
    y = (x[:, :10].mean(axis=1) > VOCAB / 2).astype("float32")[:, None]
    compare_fit(f"Embedding({VOCAB}, {EMBED}) + LSTM({UNITS}) text model, length {MAXLEN}, batch {BATCH}, Adam",
                build, x, y, BATCH, reference_epoch, args.repeats, with_keras=not args.no_keras, warmup=128)


if __name__ == "__main__":
    main()
