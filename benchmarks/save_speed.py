"""Save and load speed of every format against raw NumPy I/O of the same bytes, in the same run.

For models of about 1e6, 1e7 and 1e8 float32 parameters (an input and four square Dense layers,
uncompiled, so the files hold exactly the weights), times
    save_weights / load_weights   native checkpoint prefix, `.weights.h5`, legacy `.h5`
    save / load_model             `.keras`, legacy `.h5`
next to `ndarray.tofile` + fsync (writes) and `np.fromfile` (reads) of the same bytes; loads are also
compared with `readinto` existing arrays, the stricter reference (no allocation, like a load into a
built model). `load_model, skip_initialization()` is load_model building the model without random
initial values (`kerasckpt.initializers.skip_initialization`). Every save is
complete as the user gets it: checksums, fsync, rename, directory fsync; every load verifies every
checksum and assigns into the model (load_model also builds it). Each repeat runs the references and
all formats once, alternately, so drift in the machine's load hits all alike; medians are printed.
Files stay in the page cache, as they do right after a save (read speed, not disk speed); each
written file is deleted (untimed) before the next write of it, as for the raw reference.

Throughput ratio = reference time / format time (1.00: as fast as raw NumPy; target >= 0.8).

Run (one BLAS thread, so ratios mean something on a shared machine):
    OMP_NUM_THREADS=1 python benchmarks/save_speed.py [--params 1e6 1e7 1e8] [--repeats 5] [--dir DIR]
"""
import argparse
import os
import tempfile

import _bench
import numpy as np

import kerasckpt

FORMATS = ("native", "weights.h5", "h5-weights", "keras", "h5-model")
_NAMES = {"native": ("ckpt", "save_weights", "load_weights", "native prefix (.index/.data)"),
          "weights.h5": ("m.weights.h5", "save_weights", "load_weights", ".weights.h5"),
          "h5-weights": ("w.h5", "save_weights", "load_weights", "legacy .h5 weights"),
          "keras": ("m.keras", "save", "load_model", ".keras"),
          "h5-model": ("m.h5", "save", "load_model", "legacy .h5 model")}


def _file_size(directory, name):
    if name == "ckpt":
        return sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory) if n.startswith("ckpt"))
    return os.path.getsize(os.path.join(directory, name))


def measure(params, repeats, directory, formats=FORMATS):
    """Median seconds of every save and load of `formats` and of the raw references for one model size."""
    model = _bench.build_model(params)
    arrays = [w.value for w in model.weights]
    nbytes = sum(a.nbytes for a in arrays)
    raw = os.path.join(directory, "raw.bin")
    saves, loads = {"raw tofile+fsync": (lambda: _bench.tofile_fsync(arrays, raw), lambda: _bench.remove(raw))}, {}
    for fmt in formats:
        name, save_op, load_op, _ = _NAMES[fmt]
        path = os.path.join(directory, name)
        cleanup = (lambda: _bench.remove_prefix(directory, "ckpt")) if fmt == "native" else \
            (lambda path=path: _bench.remove(path))
        save = (lambda path=path: model.save_weights(path)) if save_op == "save_weights" else \
            (lambda path=path: model.save(path))
        load = (lambda path=path: model.load_weights(path)) if load_op == "load_weights" else \
            (lambda path=path: kerasckpt.models.load_model(path))
        saves[fmt] = (save, cleanup)
        loads[fmt] = (load, None)
    for fn, setup in saves.values():  # warm-up, and the files the loads read
        setup()
        fn()
    for fn, _ in loads.values():
        fn()
    if any(_NAMES[f][2] == "load_model" for f in formats):  # what load_model costs once it builds this way
        path = os.path.join(directory, _NAMES["keras" if "keras" in formats else "h5-model"][0])
        loads["load_model, skip_initialization()"] = (lambda: _load_model_skipping(path), None)
    targets = [np.empty_like(a) for a in arrays]
    loads = {"raw np.fromfile": (lambda: _bench.fromfile(raw), None),
             "raw readinto": (lambda: _bench.readinto(raw, targets), None), **loads}
    t_save = _bench.interleaved(saves, repeats)
    for fn, setup in saves.values():  # the loads read files of the final state
        setup()
        fn()
    t_load = _bench.interleaved(loads, repeats)
    sizes = {fmt: _file_size(directory, _NAMES[fmt][0]) for fmt in formats}
    result = {"params": model.count_params(), "bytes": nbytes, "save": t_save, "load": t_load, "file_bytes": sizes}
    _bench.remove(raw)
    _bench.remove_prefix(directory, "ckpt")
    for fmt in formats:
        if fmt != "native":
            _bench.remove(os.path.join(directory, _NAMES[fmt][0]))
    return result


def _load_model_skipping(path):
    with kerasckpt.initializers.skip_initialization():
        return kerasckpt.models.load_model(path)


def rows(result):
    """Table rows: format, operation, median, reference, throughput ratio(s), file overhead."""
    out = []
    label = _bench.params_label(result["params"])
    w, r, ri = (result["save"]["raw tofile+fsync"], result["load"]["raw np.fromfile"],
                result["load"]["raw readinto"])
    out.append([label, "raw", "tofile+fsync", f"{w * 1e3:.1f} ms", "", "", ""])
    out.append([label, "raw", "np.fromfile / readinto", f"{r * 1e3:.1f} / {ri * 1e3:.1f} ms", "", "", ""])
    for fmt in result["file_bytes"]:
        _, save_op, load_op, name = _NAMES[fmt]
        t_s, t_l = result["save"][fmt], result["load"][fmt]
        extra = result["file_bytes"][fmt] / result["bytes"] * 100 - 100
        out.append([label, name, save_op, f"{t_s * 1e3:.1f} ms", f"{w / t_s:.2f}", "", f"{extra:+.2f}%"])
        out.append([label, name, load_op, f"{t_l * 1e3:.1f} ms", f"{r / t_l:.2f}", f"{ri / t_l:.2f}", ""])
    for op, t_l in result["load"].items():
        if op.startswith("load_model,"):
            out.append([label, "", op, f"{t_l * 1e3:.1f} ms", f"{r / t_l:.2f}", f"{ri / t_l:.2f}", ""])
    return out


HEADERS = ["params", "format", "operation", "median", "throughput vs raw (write: tofile+fsync; read: fromfile)",
           "read vs readinto", "file vs raw bytes"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, nargs="+", default=[1e6, 1e7, 1e8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    print(f"# save/load vs raw NumPy I/O: medians of {args.repeats} interleaved runs; {_bench.machine()}")
    results, all_rows = [], []
    with tempfile.TemporaryDirectory(prefix="kerasckpt-bench-", dir=args.dir) as directory:
        for params in args.params:
            result = measure(int(params), args.repeats, directory, args.formats)
            results.append(result)
            all_rows += rows(result)
    print("throughput = raw time / format time; raw: tofile+fsync for saves, np.fromfile (fresh array, the target's "
          "reference) and readinto (into existing arrays, like a load into a model) for loads")
    print(_bench.table(HEADERS, all_rows))
    print(f"# after: {_bench.machine()}")
    _bench.save_json(args.json, {"benchmark": "save_speed", "machine": _bench.machine(), "results": results})
    return results


if __name__ == "__main__":
    main()
