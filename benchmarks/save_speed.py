"""Save and restore speed of each checkpoint format against raw NumPy I/O of the same bytes.

Native checkpoint format (`Checkpoint.write` / `Checkpoint.read`): float32 parameters in 8 Variables,
compared with `ndarray.tofile` + fsync of one array holding the same bytes (save) and `np.fromfile`
of that file (restore). The checkpoint side includes everything a real save does: checksums, index,
fsync of every file, renames and directory fsyncs; restore verifies every checksum before
assigning into the existing Variables. Files stay in the page cache (read speed, not disk speed).

Run (one BLAS thread, so ratios mean something on a shared machine):
    OMP_NUM_THREADS=1 python benchmarks/save_speed.py [--sizes 1e6 1e7 1e8] [--repeats 5] [--dir DIR]
"""
import argparse
import os
import shutil
import statistics
import tempfile
import time

import numpy as np

from kerasckpt.checkpoint import Checkpoint
from kerasckpt.variables import Variable

PARTS = 8


def _paired_medians(a, b, repeats, setup=None):
    """Median times of `a` and `b`, run alternately so that both see the same machine load."""
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((a, times_a), (b, times_b)):
            if setup is not None:
                setup()
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b)


def _tofile_fsync(array, path):
    with open(path, "wb") as f:
        array.tofile(f)
        f.flush()
        os.fsync(f.fileno())


def native_section(sizes, repeats, directory):
    print("## native checkpoint (.index + .data) vs raw NumPy, medians of", repeats, "runs")
    print(f"{'params':>8} {'MB':>7} | {'tofile+fsync':>12} {'save':>8} {'ratio':>6} | {'fromfile':>9} "
          f"{'restore':>8} {'ratio':>6}")
    for n in sizes:
        n = int(n)
        rng = np.random.default_rng(0)
        flat = rng.standard_normal(n, dtype=np.float32)
        variables = {f"w{i}": Variable(part.copy(), name=f"w{i}") for i, part in enumerate(np.array_split(flat, PARTS))}
        ckpt = Checkpoint(weights=variables)
        raw = os.path.join(directory, "raw.bin")
        prefix = os.path.join(directory, "ckpt")

        def remove_raw():
            if os.path.exists(raw):
                os.remove(raw)

        def remove_ckpt():
            for name in os.listdir(directory):
                if name.startswith("ckpt"):
                    os.remove(os.path.join(directory, name))

        def remove_all():
            remove_raw()
            remove_ckpt()

        t_tofile, t_save = _paired_medians(lambda: _tofile_fsync(flat, raw), lambda: ckpt.write(prefix), repeats,
                                           setup=remove_all)
        _tofile_fsync(flat, raw)
        ckpt.write(prefix)
        target = Checkpoint(weights={k: Variable(np.zeros_like(v.value), name=k) for k, v in variables.items()})
        t_fromfile, t_restore = _paired_medians(lambda: np.fromfile(raw, dtype=np.float32),
                                                lambda: target.read(prefix), repeats)
        for k, v in variables.items():
            if not np.array_equal(v.value, target.weights[k].value):
                raise SystemExit(f"restore mismatch for {k}")
        print(f"{n:>8.0e} {flat.nbytes / 1e6:>7.1f} | {t_tofile:>11.4f}s {t_save:>7.4f}s {t_save / t_tofile:>5.2f}x | "
              f"{t_fromfile:>8.4f}s {t_restore:>7.4f}s {t_restore / t_fromfile:>5.2f}x")
        remove_raw()
        remove_ckpt()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7, 1e8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="kerasckpt-bench-", dir=args.dir)
    try:
        native_section(args.sizes, args.repeats, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
