"""Save/load speed of the Keras formats against raw NumPy I/O of the same bytes, in the same run.

For models of about 1e6, 1e7 and 1e8 parameters (a stack of four square Dense layers), times
`save_weights` / `load_weights` (`.weights.h5`, legacy `.h5`) and `save` / `load_model` (`.keras`,
legacy `.h5`) next to `ndarray.tofile` + fsync and `np.fromfile` of the same bytes (medians,
interleaved so drift on a shared machine hits all alike), and each file's size against the raw bytes.
Reads come from the page cache for both sides.

Run (one BLAS thread, so ratios mean something on a shared machine):
    OMP_NUM_THREADS=1 python benchmarks/save_speed_formats.py [--params 1e6 1e7 1e8] [--repeats 5]
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import kerasckpt
from kerasckpt import layers


def build_model(params):
    """Input(width) and four Dense(width) layers: about `params` parameters."""
    width = max(8, int(round((params / 4) ** 0.5)))
    model = kerasckpt.Sequential([layers.Input(shape=(width,))] + [layers.Dense(width) for _ in range(4)])
    return model


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _raw_write(arrays, path):
    with open(path, "wb") as f:
        for a in arrays:
            a.tofile(f)
        f.flush()
        os.fsync(f.fileno())


def run(param_counts=(1e6, 1e7, 1e8), repeats=5, directory=None):
    """Print, per model size, each format's save/load time and file size beside raw NumPy I/O.

    Args:
        param_counts: approximate parameter counts of the models.
        repeats: timings per operation (the median is printed).
        directory: where the files go (a temp directory by default).
    Returns a list of result dicts (one per size and operation).
    """
    results = []
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        for target in param_counts:
            kerasckpt.utils.set_random_seed(0)
            model = build_model(int(target))
            arrays = [w.value for w in model.weights]
            raw_bytes = sum(a.nbytes for a in arrays)
            raw = os.path.join(tmp, "raw.bin")
            ops = {
                "save_weights .weights.h5": (lambda: model.save_weights(os.path.join(tmp, "m.weights.h5")), "write"),
                "load_weights .weights.h5": (lambda: model.load_weights(os.path.join(tmp, "m.weights.h5")), "read"),
                "save_weights .h5": (lambda: model.save_weights(os.path.join(tmp, "w.h5")), "write"),
                "load_weights .h5": (lambda: model.load_weights(os.path.join(tmp, "w.h5")), "read"),
                "save .keras": (lambda: model.save(os.path.join(tmp, "m.keras")), "write"),
                "load_model .keras": (lambda: kerasckpt.saving.load_model(os.path.join(tmp, "m.keras")), "read"),
                "save .h5": (lambda: model.save(os.path.join(tmp, "m.h5")), "write"),
                "load_model .h5": (lambda: kerasckpt.saving.load_model(os.path.join(tmp, "m.h5")), "read"),
            }
            files = {"save_weights .weights.h5": "m.weights.h5", "save_weights .h5": "w.h5",
                     "save .keras": "m.keras", "save .h5": "m.h5"}
            times = {name: [] for name in ops}
            raw_w, raw_r = [], []
            for name, (fn, _) in ops.items():  # warm-up (and create the files the loads read)
                fn()
            for _ in range(repeats):
                raw_w.append(_timed(lambda: _raw_write(arrays, raw)))
                raw_r.append(_timed(lambda: np.fromfile(raw, dtype=np.float32)))
                for name, (fn, _) in ops.items():
                    times[name].append(_timed(fn))
            w, r = statistics.median(raw_w), statistics.median(raw_r)
            print(f"\n{model.count_params():,} parameters ({raw_bytes / 1e6:,.1f} MB of weights), median of {repeats}")
            print(f"  {'raw tofile+fsync':<27}{w * 1e3:>9.1f} ms")
            print(f"  {'raw np.fromfile':<27}{r * 1e3:>9.1f} ms")
            for name, (_, kind) in ops.items():
                t = statistics.median(times[name])
                base = w if kind == "write" else r
                size = ""
                if name in files:
                    nbytes = os.path.getsize(os.path.join(tmp, files[name]))
                    size = f"  file {nbytes / raw_bytes * 100 - 100:+.2f}% vs raw"
                print(f"  {name:<27}{t * 1e3:>9.1f} ms  {t / base:5.2f}x raw {kind}{size}")
                results.append({"params": model.count_params(), "op": name, "seconds": t, "ratio": t / base})
            del model, arrays
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, nargs="+", default=[1e6, 1e7, 1e8])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    run(args.params, args.repeats)


if __name__ == "__main__":
    main()
