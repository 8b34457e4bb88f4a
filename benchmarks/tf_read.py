"""Reading every tensor of a TensorFlow-written checkpoint: kerasckpt against TensorFlow and raw reads.

TensorFlow writes the checkpoint (`tf.train.Checkpoint(...).write`, float32 variables, about `--params`
parameters over `--tensors` variables). Then, in the same run and alternately, three readers read every
value of it into fresh arrays:
    kerasckpt           `kerasckpt.load_checkpoint(p)` + `read(key)` of every key (index block CRCs and every
                        tensor's CRC-32C checked before a value is returned)
    TensorFlow          `tf.train.load_checkpoint(p)` + `get_tensor(key)` of every key (TensorFlow checks the
                        CRC-32C too), timed inside a TensorFlow process (its import is not counted)
    raw np.fromfile     the data file's bytes into one fresh array, no parsing and no checksum
Files stay in the page cache (read speed, not disk speed). Ratio = reference time / kerasckpt time (> 1:
kerasckpt is faster).

TensorFlow runs in a child process: this python when it has TensorFlow, else `--tf-python` (or the
KERASCKPT_TF_PYTHON environment variable). kerasckpt itself never imports TensorFlow.

    OMP_NUM_THREADS=1 python benchmarks/tf_read.py [--params 1e7] [--tensors 40] [--repeats 5] [--tf-python PY]
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import _bench
import numpy as np

import kerasckpt

TF_SIDE = textwrap.dedent("""
    import json, os, statistics, sys, time
    import numpy as np
    import tensorflow as tf
    mode, prefix = sys.argv[1], sys.argv[2]
    if mode == "write":
        params, tensors = int(sys.argv[3]), int(sys.argv[4])
        rng = np.random.default_rng(0)
        n = params // tensors
        variables = {f"layer_{i:03d}": tf.Variable(rng.standard_normal(n).astype(np.float32)) for i in range(tensors)}
        tf.train.Checkpoint(**variables).write(prefix)
        print(json.dumps({"written": prefix}))
    else:
        names = [k for k, _ in tf.train.list_variables(prefix)]
        times = []
        for _ in range(int(sys.argv[3])):
            start = time.perf_counter()
            reader = tf.train.load_checkpoint(prefix)
            values = [reader.get_tensor(k) for k in names]
            times.append(time.perf_counter() - start)
            del values, reader
        print(json.dumps({"times": times, "tf": tf.__version__}))
""")


def tf_python(explicit=None):
    if explicit:
        return explicit
    if importlib.util.find_spec("tensorflow") is not None:
        return sys.executable
    return os.environ.get("KERASCKPT_TF_PYTHON")


def run_tf(python, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONPATH", None)
    out = subprocess.run([python, "-c", TF_SIDE, *map(str, args)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"TensorFlow side failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def read_all_kerasckpt(prefix):
    with kerasckpt.load_checkpoint(prefix) as reader:
        return [reader.read(k) for k in reader.keys()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=1e7)
    parser.add_argument("--tensors", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--tf-python", default=None, help="a python with TensorFlow (default: this one, or "
                                                         "$KERASCKPT_TF_PYTHON)")
    args = parser.parse_args(argv)
    python = tf_python(args.tf_python)
    if not python:
        print("# tf_read: skipped, no python with TensorFlow (pass --tf-python or set KERASCKPT_TF_PYTHON)")
        return None
    print(f"# reading every tensor of a TensorFlow checkpoint; medians of {args.repeats}; {_bench.machine()}")
    with tempfile.TemporaryDirectory(prefix="kerasckpt-bench-", dir=args.dir) as directory:
        prefix = os.path.join(directory, "ckpt")
        run_tf(python, "write", prefix, int(args.params), args.tensors)
        data = prefix + ".data-00000-of-00001"
        nbytes = os.path.getsize(data)
        read_all_kerasckpt(prefix)  # warm the page cache and imports
        ours, raw, tf_times = [], [], []
        for _ in range(args.repeats):  # alternately, so the machine's load hits all three alike
            start = time.perf_counter()
            read_all_kerasckpt(prefix)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            np.fromfile(data, dtype=np.uint8)
            raw.append(time.perf_counter() - start)
            got = run_tf(python, "read", prefix, 1)
            tf_times += got["times"]
        k, t, r = statistics.median(ours), statistics.median(tf_times), statistics.median(raw)
    rows = [["raw np.fromfile", f"{r * 1e3:.1f} ms", f"{r / k:.2f}"],
            [f"TensorFlow {got['tf']} load_checkpoint + get_tensor", f"{t * 1e3:.1f} ms", f"{t / k:.2f}"],
            ["kerasckpt load_checkpoint + read (verified)", f"{k * 1e3:.1f} ms", "1.00"]]
    print(f"{_bench.params_label(int(args.params))} float32 parameters in {args.tensors} tensors, "
          f"{nbytes / 1e6:.1f} MB; ratio = reader time / kerasckpt time (> 1: kerasckpt faster)")
    print(_bench.table(["reader", "median", "time / kerasckpt's"], rows))
    print(f"# after: {_bench.machine()}")
    return {"kerasckpt": k, "tensorflow": t, "raw": r}


if __name__ == "__main__":
    main()
