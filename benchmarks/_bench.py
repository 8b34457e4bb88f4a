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


def interleaved(cases, repeats):
    """Median seconds of each `name: (fn, setup)`; every repeat runs all cases once, in order.

    Running the reference and the measured code alternately makes drift in the machine's load hit
    both alike. `setup` (untimed, may be None) runs before each timed call.
    """
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (fn, setup) in cases.items():
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
