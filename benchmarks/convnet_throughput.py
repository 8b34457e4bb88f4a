"""fit() throughput of the keras.io "Simple MNIST convnet" against hand-written NumPy doing the same math,
with Keras 3 on torch's CPU build beside them, in the same run.

Model: Conv2D 32 (3x3, relu) -> MaxPooling2D 2 -> Conv2D 64 (3x3, relu) -> MaxPooling2D 2 -> Flatten ->
Dropout 0.5 -> Dense 10 softmax; categorical cross-entropy, Adam(1e-3), batch 128, 28x28x1 inputs. The
reference loop starts from the same weights and does the same forward pass (im2col + one matmul per
convolution, max pooling on a reshaped view), the same backward pass (the convolution's input gradient
added back one kernel offset at a time) and the same Adam update, by hand. Every repeat runs the three
one after the other (one epoch each, shuffled), so drift in the machine's load hits all alike; the ratios
are medians of each repeat's ratio, by the wall clock and by the process's CPU time (which a shared
machine's load does not inflate).

Run (one BLAS and torch thread, so ratios mean something on a shared machine):
    OMP_NUM_THREADS=1 python benchmarks/convnet_throughput.py
"""
import argparse
import os
import statistics
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import kerasckpt


def build(lib):
    """The example's model and compile() call, in `lib` (kerasckpt or keras)."""
    layers = lib.layers
    model = lib.Sequential([
        lib.Input(shape=(28, 28, 1)), layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)), layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)), layers.Flatten(), layers.Dropout(0.5),
        layers.Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=lib.optimizers.Adam(1e-3), metrics=["accuracy"])
    return model


def _im2col(x, k):
    """(N*OH*OW, k*k*C) windows of channels-last `x` (valid padding, stride 1), in the kernel's order."""
    n, h, w, c = x.shape
    windows = sliding_window_view(x, (k, k), axis=(1, 2))  # (N, OH, OW, C, k, k)
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * (h - k + 1) * (w - k + 1), k * k * c)


def _col2im(cols, shape, k):
    """The input gradient of `_im2col`: each window's gradient added back, one kernel offset at a time."""
    n, h, w, c = shape
    oh, ow = h - k + 1, w - k + 1
    cols = cols.reshape(n, oh, ow, k, k, c)
    out = np.zeros(shape, cols.dtype)
    for i in range(k):
        for j in range(k):
            out[:, i:i + oh, j:j + ow] += cols[:, :, :, i, j]
    return out


def _pool(a):
    """2x2 max pooling (floor) on a reshaped view, and the mask of the chosen values."""
    n, h, w, c = a.shape
    oh, ow = h // 2, w // 2
    view = a[:, :oh * 2, :ow * 2].reshape(n, oh, 2, ow, 2, c)
    out = view.max(axis=(2, 4))
    return out, view == out[:, :, None, :, None]


def _unpool(g, mask, shape):
    n, oh, ow, c = g.shape
    out = np.zeros(shape, g.dtype)
    out[:, :oh * 2, :ow * 2] = (mask * g[:, :, None, :, None]).reshape(n, oh * 2, ow * 2, c)
    return out


def reference_epoch(weights, x, y, batch_size, rng, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
    """One epoch of the same training by hand; `weights` = [K1, c1, K2, c2, W, c] (updated in place)."""
    ms, vs = [np.zeros_like(w) for w in weights], [np.zeros_like(w) for w in weights]
    order = rng.permutation(len(x))
    step, total, correct = 0, 0.0, 0
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        xb, yb, n = x[idx], y[idx], len(idx)
        k1, c1, k2, c2, w3, c3 = weights
        cols1 = _im2col(xb, 3)                                     # (n*26*26, 9)
        z1 = cols1 @ k1.reshape(9, 32) + c1
        a1 = np.maximum(z1, 0).reshape(n, 26, 26, 32)
        p1, m1 = _pool(a1)                                         # (n, 13, 13, 32)
        cols2 = _im2col(p1, 3)                                     # (n*11*11, 288)
        z2 = cols2 @ k2.reshape(288, 64) + c2
        a2 = np.maximum(z2, 0).reshape(n, 11, 11, 64)
        p2, m2 = _pool(a2)                                         # (n, 5, 5, 64)
        keep = (rng.random((n, 1600), dtype=np.float32) >= 0.5) * np.float32(2.0)
        flat = p2.reshape(n, 1600) * keep
        logits = flat @ w3 + c3
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
        total += float(-(yb * np.log(np.clip(probs, 1e-7, 1 - 1e-7))).sum())
        correct += int((probs.argmax(1) == yb.argmax(1)).sum())
        d3 = (probs - yb) / n
        g3, gc3 = flat.T @ d3, d3.sum(axis=0)
        dp2 = ((d3 @ w3.T) * keep).reshape(n, 5, 5, 64)
        dz2 = (_unpool(dp2, m2, a2.shape).reshape(-1, 64)) * (z2 > 0)
        g2, gc2 = (cols2.T @ dz2).reshape(k2.shape), dz2.sum(axis=0)
        dp1 = _col2im(dz2 @ k2.reshape(288, 64).T, p1.shape, 3)
        dz1 = _unpool(dp1, m1, a1.shape).reshape(-1, 32) * (z1 > 0)
        g1, gc1 = (cols1.T @ dz1).reshape(k1.shape), dz1.sum(axis=0)
        step += 1
        alpha = np.float32(lr * np.sqrt(1 - np.float32(b2) ** step) / (1 - np.float32(b1) ** step))
        for w, g, m, v in zip(weights, (g1, gc1, g2, gc2, g3, gc3), ms, vs):
            m += (g - m) * (1 - b1)
            v += (g * g - v) * (1 - b2)
            w -= (m * alpha) / (np.sqrt(v) + eps)
    return total / len(x), correct / len(x)


def _timed(fn, samples):
    """(samples/s by the wall clock, samples/s by this process's CPU time) of one call of `fn`."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return samples / (time.perf_counter() - wall), samples / (time.process_time() - cpu)


def time_fit(model, init, x, y, batch_size):
    model.set_weights(init)
    return _timed(lambda: model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0), len(x))


def time_reference(init, x, y, batch_size, seed):
    weights = [w.copy() for w in init]
    return _timed(lambda: reference_epoch(weights, x, y, batch_size, np.random.default_rng(seed)), len(x))


def keras_model():
    """Keras 3 on torch's CPU build with one thread, or None when it is not installed."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import torch
        import keras
    except ImportError:
        return None
    torch.set_num_threads(1)
    return build(keras) if keras.backend.backend() == "torch" else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-keras", action="store_true", help="leave out Keras 3 on torch")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, args.samples)]
    kerasckpt.utils.set_random_seed(0)
    ours = build(kerasckpt)
    init = ours.get_weights()
    theirs = None if args.no_keras else keras_model()
    batch = 128
    time_fit(ours, init, x[:256], y[:256], batch)  # warm-up (one epoch of each, not timed)
    if theirs is not None:
        time_fit(theirs, init, x[:256], y[:256], batch)
    ref, mine, keras_rates = [], [], []
    for repeat in range(args.repeats):
        ref.append(time_reference(init, x, y, batch, repeat))
        mine.append(time_fit(ours, init, x, y, batch))
        if theirs is not None:
            keras_rates.append(time_fit(theirs, init, x, y, batch))
    median = statistics.median
    print(f"MNIST convnet (keras.io example), batch {batch}, Adam, {args.samples} samples, median of "
          f"{args.repeats} epochs each; ratio = median of the per-repeat ratios (wall clock | CPU time)")
    print(f"{'hand-written NumPy':>20} {'kerasckpt fit()':>17} {'ratio':>13} {'Keras 3 (torch CPU) fit()':>27} "
          f"{'ratio':>13}")
    ratio = lambda runs, i: median(o[i] / r[i] for o, r in zip(runs, ref))  # noqa: E731
    keras_text = f"{median(k[0] for k in keras_rates):,.0f} smp/s" if keras_rates else "n/a"
    keras_ratio = f"{ratio(keras_rates, 0):.3f} | {ratio(keras_rates, 1):.3f}" if keras_rates else ""
    print(f"{median(r[0] for r in ref):>14,.0f} smp/s {median(o[0] for o in mine):>11,.0f} smp/s "
          f"{ratio(mine, 0):.3f} | {ratio(mine, 1):.3f} {keras_text:>27} {keras_ratio:>13}")


if __name__ == "__main__":
    main()
