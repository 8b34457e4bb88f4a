"""The stall per checkpoint: how long training waits for `ModelCheckpoint`, with and without background saving.

For a model of about 1e8 float32 parameters (an input and four square Dense layers, uncompiled), times
`ModelCheckpoint.on_epoch_end` (the whole time the training thread is held) in three setups per format,
interleaved in every repeat:
    memcpy          `np.copyto` of every weight into preallocated arrays: the reference, i.e. the
                    least a consistent in-memory snapshot can cost
    foreground      `ModelCheckpoint(path)`: training waits for the whole save
    background      `ModelCheckpoint(path, save_in_background=True)`: training waits for the snapshot;
                    the file is written on a writer thread (its time to completion is shown as well)
Before each background save the previous one is waited for (untimed), as when training between two
checkpoints takes longer than a write; the first background save (which allocates the snapshot
buffers) is a warm-up. Target (issue 7): background stall <= 1.5x memcpy.

Run (one BLAS thread, so ratios mean something on a shared machine):
    OMP_NUM_THREADS=1 python benchmarks/stall.py [--params 1e8] [--repeats 5] [--formats native weights.h5 keras]
"""
import argparse
import os
import statistics
import tempfile
import time

import _bench
import numpy as np

from kerasckpt.callbacks import ModelCheckpoint

FORMATS = {"native": ("ckpt", True), "weights.h5": ("m.weights.h5", True), "keras": ("m.keras", False)}
LABELS = {"native": "native prefix", "weights.h5": ".weights.h5", "keras": ".keras"}


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(params, repeats, directory, formats):
    model = _bench.build_model(params)
    arrays = [w.value for w in model.weights]
    targets = [np.empty_like(a) for a in arrays]
    for t in targets:
        t.fill(0)  # touch the pages: a memcpy into memory that is already there

    def memcpy():
        for dst, src in zip(targets, arrays):
            np.copyto(dst, src)

    results = {"params": model.count_params(), "bytes": sum(a.nbytes for a in arrays), "formats": {}}
    for fmt in formats:
        name, weights_only = FORMATS[fmt]
        fg_cb = ModelCheckpoint(os.path.join(directory, "fg-" + name), save_weights_only=weights_only)
        bg_cb = ModelCheckpoint(os.path.join(directory, "bg-" + name), save_weights_only=weights_only,
                                save_in_background=True)
        callbacks = [fg_cb, bg_cb]
        for cb in callbacks:
            cb.set_model(model)
            cb.on_train_begin()
        logs = {"loss": 1.0}
        t_copy, t_fg, t_bg, t_bg_done = [], [], [], []
        fg_cb.on_epoch_end(0, logs)  # warm-up (and the first background save allocates its buffers)
        bg_cb.on_epoch_end(0, logs)
        bg_cb.wait_until_finished()
        for epoch in range(1, repeats + 1):
            t_copy.append(_timed(memcpy))
            t_fg.append(_timed(lambda: fg_cb.on_epoch_end(epoch, logs)))
            start = time.perf_counter()
            bg_cb.on_epoch_end(epoch, logs)
            t_bg.append(time.perf_counter() - start)
            bg_cb.wait_until_finished()
            t_bg_done.append(time.perf_counter() - start)
        for cb in callbacks:
            cb.on_train_end()
        med = statistics.median
        results["formats"][fmt] = {"memcpy": med(t_copy), "foreground": med(t_fg), "background": med(t_bg),
                                   "background_complete": med(t_bg_done)}
        _bench.remove_prefix(directory, "fg-")
        _bench.remove_prefix(directory, "bg-")
    return results


def rows(result):
    out = []
    label = _bench.params_label(result["params"])
    for fmt, r in result["formats"].items():
        c, f, b = r["memcpy"], r["foreground"], r["background"]
        out.append([label, LABELS[fmt], f"{c * 1e3:.1f} ms", f"{f * 1e3:.1f} ms ({f / c:.1f}x)",
                    f"{b * 1e3:.1f} ms ({b / c:.2f}x)", f"{r['background_complete'] * 1e3:.1f} ms"])
    return out


HEADERS = ["params", "format", "memcpy (reference)", "stall, foreground", "stall, background (vs memcpy)",
           "background save complete after"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, nargs="+", default=[1e8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--formats", nargs="+", choices=list(FORMATS), default=list(FORMATS))
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    print(f"# stall per checkpoint (ModelCheckpoint.on_epoch_end), medians of {args.repeats} interleaved runs; "
          f"{_bench.machine()}")
    results, all_rows = [], []
    with tempfile.TemporaryDirectory(prefix="kerasckpt-bench-", dir=args.dir) as directory:
        for params in args.params:
            result = measure(int(params), args.repeats, directory, args.formats)
            results.append(result)
            all_rows += rows(result)
    print(_bench.table(HEADERS, all_rows))
    print(f"# after: {_bench.machine()}")
    _bench.save_json(args.json, {"benchmark": "stall", "machine": _bench.machine(), "results": results})
    return results


if __name__ == "__main__":
    main()
