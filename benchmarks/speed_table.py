"""Issue 13's I/O rows: every save, load and background-save stall against its raw reference, in one run.

For a compiled model of about 1e6, 1e7 and 1e8 float32 parameters with Adam's slots built (an input and
four square Dense layers; the files hold 3x the parameters: 12 MB, 120 MB, 1.2 GB), times, each beside its
reference in every repeat (alternating, medians of the repeats):

    stall           the time the training thread is held by one `save_in_background=True` save:
                    `ModelCheckpoint.on_epoch_end` to `.weights.h5`, `.keras` and a native prefix,
                    `BackupAndRestore`'s backup, `CheckpointManager.save`; the previous save is waited
                    for (untimed) before each. Reference: `np.copyto` of the same bytes into existing
                    arrays (memcpy), the least a consistent snapshot can cost.
    save            `save_weights` (`.weights.h5`, native prefix) and `model.save` (`.keras`), complete
                    as the user gets them (checksums, fsync, rename, directory fsync). Reference:
                    `ndarray.tofile` of the same bytes + one fsync.
    load, warm      `load_weights` into the model (`.weights.h5`, native prefix) and `load_model`
                    (`.keras`), every checksum verified. The file is in the page cache. Reference: a raw
                    read, `np.fromfile` of the same bytes (fresh arrays); `readinto` existing arrays is
                    printed beside it.
    load, cold      `load_model` (`.keras`) with the file evicted from the page cache first
                    (`posix_fadvise(DONTNEED)` after its fsync), against `np.fromfile` of the raw file
                    evicted the same way.
    floor (1e6)     fixed costs no save or load of a small model avoids: h5py writes one dataset of the
                    same bytes and the file is fsynced (no rename, no directory fsync, no checksum), and h5py
                    opens it and reads that dataset; the raw write made atomic (temp file, fsync, rename,
                    directory fsync), as every save is; building the model from its config with Adam's slots
                    (no value read), which `load_model` does before it reads.

Ratio = measured time / reference time (1.00: as fast as the raw operation); the target column is
issue 13's. Files are deleted (untimed) before each write of them, as for the raw reference.

Run (one BLAS thread, so ratios mean something on a shared machine):
    OMP_NUM_THREADS=1 python benchmarks/speed_table.py [--params 1e6 1e7 1e8] [--repeats 5] [--dir DIR]
"""
import argparse
import os
import statistics
import tempfile
import time

import _bench
import numpy as np

import kerasckpt
from kerasckpt.callbacks import BackupAndRestore, ModelCheckpoint

TARGETS = {"stall": 1.2, "save": 1.15, "save_1e8": 1.1, "load_weights": 1.15, "load_model": 1.5, "small": 1.5}


def build(params):
    """The benchmark model, compiled with Adam and its slots built (3x `params` values)."""
    model = _bench.build_model(params)
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_weights)
    return model


def all_arrays(model):
    seen, out = set(), []
    for v in list(model.weights) + list(model.optimizer.variables):
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v.value)
    return out


def evict(path):
    """Drop `path`'s (clean) pages from the page cache, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_stalls(model, arrays, repeats, directory):
    """Median stall of each background saver and of the memcpy reference (one fit() holds them all)."""
    targets = [np.empty_like(a) for a in arrays]
    for t in targets:
        t.fill(0)

    def memcpy():
        for dst, src in zip(targets, arrays):
            np.copyto(dst, src)

    savers = {}
    for name, path, weights_only in ((".weights.h5", "bg.weights.h5", True), (".keras", "bg.keras", False),
                                     ("native prefix", "bg-ckpt", True)):
        cb = ModelCheckpoint(os.path.join(directory, path), save_weights_only=weights_only, save_in_background=True)
        cb.set_model(model)
        cb.on_train_begin()
        savers[name] = (lambda cb=cb: cb.on_epoch_end(0, {"loss": 1.0}), cb.wait_until_finished, cb.on_train_end)
    ckpt = kerasckpt.Checkpoint(model=model, optimizer=model.optimizer)
    manager = kerasckpt.CheckpointManager(ckpt, os.path.join(directory, "manager"), max_to_keep=2)
    options = kerasckpt.CheckpointOptions(save_in_background=True)
    savers["CheckpointManager"] = (lambda: manager.save(options=options), manager.wait_until_finished, None)
    backup = BackupAndRestore(os.path.join(directory, "backup"), save_in_background=True)
    times = {name: [] for name in ["memcpy", "BackupAndRestore", *savers]}

    class Probe(kerasckpt.callbacks.Callback):  # BackupAndRestore saves inside fit() only: measure in there
        def on_train_begin(self, logs=None):
            for fn, wait, _ in savers.values():  # warm-up: the first background save allocates its buffers
                fn()
                wait()
            backup._save()
            backup.wait_until_finished()
            cases = {"memcpy": (memcpy, None), **{name: (fn, wait) for name, (fn, wait, _) in savers.items()},
                     "BackupAndRestore": (backup._save, backup.wait_until_finished)}
            names = list(cases)
            for repeat in range(repeats):  # each repeat starts one case later: no case always follows another
                for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                    fn, wait = cases[name]
                    times[name].append(_timed(fn))
                    if wait is not None:
                        wait()
            self.model.stop_training = True

    width = model.inputs[0].shape[-1] if hasattr(model, "inputs") else model.layers[0].kernel.shape[0]
    x = np.zeros((1, width), np.float32)
    model.fit(x, x, batch_size=1, epochs=1, verbose=0, callbacks=[backup, Probe()])
    for _, wait, end in savers.values():
        wait()
        if end is not None:
            end()
    return {name: statistics.median(t) for name, t in times.items()}


def measure_io(model, arrays, repeats, directory):
    """Median save, warm load and cold load times of each format and of the raw references."""
    raw = os.path.join(directory, "raw.bin")
    paths = {".weights.h5": os.path.join(directory, "m.weights.h5"), ".keras": os.path.join(directory, "m.keras"),
             "native prefix": os.path.join(directory, "ckpt")}
    clean = {name: (lambda p=p: _bench.remove(p)) for name, p in paths.items()}
    clean["native prefix"] = lambda: _bench.remove_prefix(directory, "ckpt")
    saves = {"raw": (lambda: _bench.tofile_fsync(arrays, raw), lambda: _bench.remove(raw)),
             ".weights.h5": (lambda: model.save_weights(paths[".weights.h5"]), clean[".weights.h5"]),
             ".keras": (lambda: model.save(paths[".keras"]), clean[".keras"]),
             "native prefix": (lambda: model.save_weights(paths["native prefix"]), clean["native prefix"])}
    for fn, setup in saves.values():  # warm-up
        setup()
        fn()
    t_save = _bench.interleaved(saves, repeats, rotate=True)
    for fn, setup in saves.values():  # the files the loads read
        setup()
        fn()
    fresh = [np.empty_like(a) for a in arrays]
    loads = {"raw": (lambda: _bench.fromfile(raw), None),
             "raw readinto": (lambda: _bench.readinto(raw, fresh), None),
             ".weights.h5": (lambda: model.load_weights(paths[".weights.h5"]), None),
             "native prefix": (lambda: model.load_weights(paths["native prefix"]), None),
             ".keras": (lambda: kerasckpt.models.load_model(paths[".keras"]), None)}
    for fn, _ in loads.values():  # warm-up
        fn()
    t_load = _bench.interleaved(loads, repeats, rotate=True)
    del fresh
    cold = {"raw": (lambda: _bench.fromfile(raw), lambda: evict(raw)),
            ".keras": (lambda: kerasckpt.models.load_model(paths[".keras"]), lambda: evict(paths[".keras"]))}
    t_cold = _bench.interleaved(cold, repeats)
    _bench.remove(raw, paths[".weights.h5"], paths[".keras"])
    _bench.remove_prefix(directory, "ckpt")
    return t_save, t_load, t_cold


def atomic_tofile(arrays, path):
    """The least an atomic, durable save costs: `tofile` into a temp file, fsync, rename, directory fsync."""
    tmp = path + ".tmp"
    _bench.tofile_fsync(arrays, tmp)
    os.replace(tmp, path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def measure_floor(model, arrays, repeats, directory):
    """The fixed costs no save or load of a small model avoids, each beside its raw reference: one HDF5
    file of the same bytes written by h5py (one dataset) and fsynced, and read back; the raw write made
    atomic (rename + directory fsync); building the model from its config without reading any value."""
    import h5py
    data = np.concatenate([a.reshape(-1) for a in arrays])
    path, raw = os.path.join(directory, "floor.h5"), os.path.join(directory, "floor.bin")
    atomic = os.path.join(directory, "atomic.bin")
    config = model.get_config()
    cls = type(model)

    def rebuild():
        with kerasckpt.initializers.skip_initialization():
            rebuilt = cls.from_config(config)
            rebuilt.compile(optimizer="adam", loss="mse")
            rebuilt.optimizer.build(rebuilt.trainable_weights)

    def write():
        with h5py.File(path, "w") as f:
            f.create_dataset("x", data=data)
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

    def read():
        with h5py.File(path, "r") as f:
            return f["x"][()]
    cases = {"raw": (lambda: _bench.tofile_fsync([data], raw), lambda: _bench.remove(raw)),
             "h5py": (write, lambda: _bench.remove(path)),
             "atomic": (lambda: atomic_tofile([data], atomic), lambda: _bench.remove(atomic))}
    t_write = _bench.interleaved(cases, repeats, rotate=True)
    t_read = _bench.interleaved({"raw": (lambda: _bench.fromfile(raw), None), "h5py": (read, None),
                                 "rebuild": (rebuild, None)}, repeats)
    _bench.remove(path, raw, atomic)
    return t_write, t_read


def rows(label, params, stalls, t_save, t_load, t_cold, floor):
    """Table rows: size, figure, reference, measured, ratio, target."""
    out = []

    def row(what, ref_name, ref, t, target):
        ratio = t / ref
        mark = "" if target is None else ("ok" if ratio <= target else "MISSED")
        out.append([label, what, f"{ref_name} {ref * 1e3:.1f} ms", f"{t * 1e3:.1f} ms", f"{ratio:.2f}x",
                    "" if target is None else f"<= {target:.2f}x {mark}"])

    small = label == "1e6"
    stall_target = TARGETS["small"] if small else TARGETS["stall"]
    for name in (".weights.h5", ".keras", "BackupAndRestore", "native prefix", "CheckpointManager"):
        if stalls is not None:
            row(f"stall, save_in_background, {name}", "memcpy", stalls["memcpy"], stalls[name], stall_target)
    if t_save is None:
        return out
    save_target = TARGETS["small"] if small else TARGETS["save_1e8" if params >= 1e8 else "save"]
    row("save_weights + fsync, .weights.h5", "tofile+fsync", t_save["raw"], t_save[".weights.h5"], save_target)
    row("model.save + fsync, .keras", "tofile+fsync", t_save["raw"], t_save[".keras"],
        TARGETS["small"] if small else TARGETS["save"])
    row("save_weights + fsync, native prefix", "tofile+fsync", t_save["raw"], t_save["native prefix"],
        TARGETS["small"] if small else None)
    row("load_weights, .weights.h5, warm", "fromfile", t_load["raw"], t_load[".weights.h5"],
        TARGETS["small"] if small else TARGETS["load_weights"])
    row("load_weights, native prefix, warm", "fromfile", t_load["raw"], t_load["native prefix"],
        TARGETS["small"] if small else None)
    row("load_model, .keras, warm", "fromfile", t_load["raw"], t_load[".keras"],
        TARGETS["small"] if small else (TARGETS["load_model"] if params >= 1e8 else None))
    row("load_model, .keras, cold", "fromfile (cold)", t_cold["raw"], t_cold[".keras"],
        TARGETS["small"] if small else (TARGETS["load_model"] if params >= 1e8 else None))
    out.append([label, "(raw readinto existing arrays, warm)", "", f"{t_load['raw readinto'] * 1e3:.1f} ms", "", ""])
    if floor is not None:
        t_write, t_read = floor
        row("floor: h5py, one dataset, + fsync", "tofile+fsync", t_write["raw"], t_write["h5py"], None)
        row("floor: tofile+fsync, atomic (+ rename, dir fsync)", "tofile+fsync", t_write["raw"], t_write["atomic"],
            None)
        row("floor: h5py open + read one dataset", "fromfile", t_read["raw"], t_read["h5py"], None)
        row("floor: build the model from its config (no I/O)", "fromfile", t_read["raw"], t_read["rebuild"], None)
    return out


HEADERS = ["params", "figure", "reference", "measured", "ratio", "target"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, nargs="+", default=[1e6, 1e7, 1e8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--parts", nargs="+", choices=["stall", "io"], default=["stall", "io"],
                        help="measure only these (stall: background-save stalls; io: saves, loads, the floor)")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    print(f"# issue 13 I/O table: medians of {args.repeats} interleaved runs; {_bench.machine()}")
    all_rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="kerasckpt-bench-", dir=args.dir) as directory:
        for params in args.params:
            model = build(int(params))
            arrays = all_arrays(model)
            label = _bench.params_label(int(params))
            nbytes = sum(a.nbytes for a in arrays)
            stalls = measure_stalls(model, arrays, args.repeats, directory) if "stall" in args.parts else None
            t_save, t_load, t_cold = measure_io(model, arrays, args.repeats, directory) if "io" in args.parts else \
                (None, None, None)
            small = params <= 1e6 and "io" in args.parts
            floor = measure_floor(model, arrays, args.repeats, directory) if small else None
            all_rows += rows(label, params, stalls, t_save, t_load, t_cold, floor)
            results.append({"params": model.count_params(), "bytes": nbytes, "stall": stalls, "save": t_save,
                            "load": t_load, "load_cold": t_cold, "floor": floor})
            print(f"# {label}: {model.count_params():,} parameters, {nbytes / 1e6:.0f} MB with Adam's slots; "
                  f"{_bench.machine()}", flush=True)
            del model, arrays
    print(_bench.table(HEADERS, all_rows))
    print(f"# after: {_bench.machine()}")
    _bench.save_json(args.json, {"benchmark": "speed_table", "machine": _bench.machine(), "results": results})
    return results


if __name__ == "__main__":
    main()
