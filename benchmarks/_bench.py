"""Helpers shared by the benchmarks: interleaved timing, raw NumPy references, models, tables."""
import json
import os
import statistics
import sys
import time

import numpy as np


def load_average():
    """The 1, 5 and 15 minute load averages, as text."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def machine():
    """One line on the conditions: load average, cores, BLAS threads, Python and NumPy versions."""
    load = load_average()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    return (f"load average {load} on {os.cpu_count()} cores, OMP_NUM_THREADS={threads}, "
            f"Python {sys.version.split()[0]}, NumPy {np.__version__}")


def interleaved(cases, repeats, rotate=False):
    """Median seconds of each `name: (fn, setup)`; every repeat runs all cases once, in order.

    Running the reference and the measured code alternately makes drift in the machine's load hit
    both alike. `setup` (untimed, may be None) runs before each timed call. `rotate`: each repeat starts
    one case later, so no case always follows the same one (a save can find the disk still busy with the
    previous one's journal commit).
    """
    times = {name: [] for name in cases}
    names = list(cases)
    for repeat in range(repeats):
        shift = repeat % len(names) if rotate else 0
        for name in names[shift:] + names[:shift]:
            fn, setup = cases[name]
            if setup is not None:
                setup()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def tofile_fsync(arrays, path):
    """The raw write reference: every array's bytes with `ndarray.tofile`, then one fsync."""
    with open(path, "wb") as f:
        for a in arrays:
            a.tofile(f)
        f.flush()
        os.fsync(f.fileno())


def fromfile(path):
    """The raw read reference: `np.fromfile` of the whole file."""
    return np.fromfile(path, dtype=np.float32)


def readinto(path, arrays):
    """The strict raw read reference: the file's bytes into existing arrays (no allocation)."""
    with open(path, "rb", buffering=0) as f:
        for a in arrays:
            f.readinto(memoryview(a).cast("B"))


def remove(*paths):
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def remove_prefix(directory, prefix):
    """Delete every file in `directory` whose name starts with `prefix`."""
    for name in os.listdir(directory):
        if name.startswith(prefix):
            os.remove(os.path.join(directory, name))


def build_model(params, seed=0):
    """An uncompiled MLP of an input and four square Dense layers: about `params` float32 parameters."""
    import kerasckpt
    from kerasckpt import layers
    kerasckpt.utils.set_random_seed(seed)
    width = max(8, int(round((params / 4) ** 0.5)))
    return kerasckpt.Sequential([layers.Input(shape=(width,))] + [layers.Dense(width) for _ in range(4)])


def table(headers, rows):
    """A Markdown table (also readable as plain text)."""
    cells = [[str(c) for c in row] for row in [headers] + rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] +
                     [line(r) for r in cells[1:]])


def params_label(n):
    return f"{n:.0e}".replace("e+0", "e")


def save_json(path, payload):
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=1)


def timed(fn, samples):
    """(samples/s by the wall clock, samples/s by this process's CPU time) of one call of `fn`."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return samples / (time.perf_counter() - wall), samples / (time.process_time() - cpu)


def keras_on_torch(build):
    """`build(keras)` on torch's CPU build with one thread, or None when Keras or torch is not installed."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import torch
        import keras
    except ImportError:
        return None
    torch.set_num_threads(1)
    return build(keras) if keras.backend.backend() == "torch" else None


def compare_fit(title, build, x, y, batch_size, reference_epoch, repeats, with_keras=True, warmup=256):
    """Samples/s of one `fit()` epoch of `build(kerasckpt)` (and of `build(keras)` on torch) against
    `reference_epoch(weights, x, y, batch_size, rng)`, the same training by hand from the same weights;
    every repeat runs all three in turn. Prints the medians, and the medians of the per-repeat ratios by
    the wall clock and by CPU time (the latter barely moves when other jobs share the machine)."""
    import kerasckpt
    kerasckpt.utils.set_random_seed(0)
    ours = build(kerasckpt)
    init = ours.get_weights()
    theirs = keras_on_torch(build) if with_keras else None

    def fit(model):
        model.set_weights(init)
        return timed(lambda: model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0), len(x))

    for model in (ours, theirs):  # warm-up: one short epoch each, not timed
        if model is not None:
            model.set_weights(init)
            model.fit(x[:warmup], y[:warmup], batch_size=batch_size, epochs=1, verbose=0)
    ref, mine, keras_rates = [], [], []
    for repeat in range(repeats):
        weights = [w.copy() for w in init]
        ref.append(timed(lambda: reference_epoch(weights, x, y, batch_size, np.random.default_rng(repeat)), len(x)))
        mine.append(fit(ours))
        if theirs is not None:
            keras_rates.append(fit(theirs))
    median = statistics.median
    ratio = lambda runs, i: median(o[i] / r[i] for o, r in zip(runs, ref))  # noqa: E731
    print(f"{title}, {len(x)} samples, median of {repeats} epochs each; ratio = median of the per-repeat ratios "
          "(wall clock | CPU time)")
    print(f"{'hand-written NumPy':>20} {'kerasckpt fit()':>17} {'ratio':>13} {'Keras 3 (torch CPU) fit()':>27} "
          f"{'ratio':>13}")
    keras_text = f"{median(k[0] for k in keras_rates):,.0f} smp/s" if keras_rates else "n/a"
    keras_ratio = f"{ratio(keras_rates, 0):.3f} | {ratio(keras_rates, 1):.3f}" if keras_rates else ""
    print(f"{median(r[0] for r in ref):>14,.0f} smp/s {median(o[0] for o in mine):>11,.0f} smp/s "
          f"{ratio(mine, 0):.3f} | {ratio(mine, 1):.3f} {keras_text:>27} {keras_ratio:>13}")
