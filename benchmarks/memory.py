"""Peak memory during a save: how much a save adds to the process's resident memory, per format.

Each case runs in a fresh subprocess: build the model (an input and four square Dense layers,
uncompiled), settle (`malloc_trim`, so memory freed by the build does not hide new allocations), read
the resident set size (VmRSS), reset the peak (`/proc/self/clear_refs`), save once in the foreground or
with `ModelCheckpoint(..., save_in_background=True)` (waiting until the file is complete), then read the
peak (VmHWM). Reported: the model's bytes, what the save added at its
peak, and the peak over what the save needs at least: the model (foreground) or model + snapshot
(background). Target (issue 7): at most model + snapshot + 10%, i.e. a ratio <= 1.10.
Linux only (it reads /proc); prints "n/a" elsewhere.

Run:
    OMP_NUM_THREADS=1 python benchmarks/memory.py [--params 1e8] [--formats native weights.h5 h5 keras]
"""
import argparse
import gc
import json
import os
import re
import subprocess
import sys
import tempfile

import _bench

FORMATS = {"native": ("ckpt", True), "weights.h5": ("m.weights.h5", True), "h5": ("m.h5", False),
           "keras": ("m.keras", False)}
LABELS = {"native": "native prefix", "weights.h5": ".weights.h5", "h5": "legacy .h5 model", "keras": ".keras"}


def _status(key):
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def child(params, fmt, mode, directory):
    """Runs in the subprocess: one save; prints JSON with the model bytes, baseline and peak RSS."""
    from kerasckpt.callbacks import ModelCheckpoint
    model = _bench.build_model(params)
    nbytes = sum(w.value.nbytes for w in model.weights)
    name, weights_only = FORMATS[fmt]
    path = os.path.join(directory, name)
    kwargs = {"save_in_background": True} if mode == "background" else {}
    cb = ModelCheckpoint(path, save_weights_only=weights_only, **kwargs)
    cb.set_model(model)
    cb.on_train_begin()
    gc.collect()
    try:  # give freed heap memory (the build's temporaries) back, so the baseline holds none of it
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    base = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    cb.on_epoch_end(0, {"loss": 1.0})
    if mode == "background":
        cb.wait_until_finished()
    peak = _status("VmHWM")
    cb.on_train_end()
    print(json.dumps({"bytes": nbytes, "base": base, "peak": peak}))


def measure(params, fmt, mode, directory):
    """Run one case in a fresh interpreter; None where it cannot be measured."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); import memory; "
            f"memory.child({int(params)}, {fmt!r}, {mode!r}, {directory!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        print(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"case {fmt}/{mode} failed")
        return None
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["added"] = result["peak"] - result["base"]
    snapshot = result["bytes"] if mode == "background" else 0
    result["ratio"] = (result["bytes"] + result["added"]) / (result["bytes"] + snapshot)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, nargs="+", default=[1e8])
    parser.add_argument("--formats", nargs="+", choices=list(FORMATS), default=list(FORMATS))
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    print(f"# peak memory during a save (VmHWM - VmRSS before it), one subprocess per case; {_bench.machine()}")
    supported = os.path.exists("/proc/self/clear_refs")
    modes = ["foreground", "background"]
    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="kerasckpt-bench-", dir=args.dir) as directory:
        for params in args.params:
            for fmt in args.formats:
                for mode in modes:
                    r = measure(params, fmt, mode, directory) if supported else None
                    results.append({"params": params, "format": fmt, "mode": mode, **(r or {})})
                    need = "model + snapshot" if mode == "background" else "model"
                    rows.append([_bench.params_label(params), LABELS[fmt], mode,
                                 "n/a" if r is None else f"{r['bytes'] / 1e6:.0f} MB",
                                 "n/a" if r is None else f"{r['added'] / 1e6:+.1f} MB",
                                 "n/a" if r is None else f"{r['ratio']:.3f} of {need}"])
                for name in os.listdir(directory):
                    os.remove(os.path.join(directory, name))
    print(_bench.table(["params", "format", "save", "model", "added at peak", "peak / minimum"], rows))
    _bench.save_json(args.json, {"benchmark": "memory", "machine": _bench.machine(), "results": results})
    return results


if __name__ == "__main__":
    main()
