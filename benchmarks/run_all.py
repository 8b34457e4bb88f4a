"""Run the whole benchmark suite, each benchmark in its own process with one BLAS thread.

    python benchmarks/run_all.py --quick     # small sizes, about 2 minutes: a smoke test of every figure
    python benchmarks/run_all.py             # the sizes of benchmarks/README.md (1e6..1e8 parameters)
    python benchmarks/run_all.py --only save_speed stall --out results.md

Every figure is measured beside its reference in the same run (see each script's docstring); the
load average before and after each benchmark is printed with it, since the machine may be shared.
"""
import argparse
import os
import subprocess
import sys
import time

from _bench import load_average as load

HERE = os.path.dirname(os.path.abspath(__file__))

FULL = {
    "fit_throughput": ["--samples", "8192", "--repeats", "5"],
    "import_time": ["--repeats", "15"],
    "convnet_throughput": ["--samples", "2048", "--repeats", "5"],
    "lstm_throughput": ["--samples", "1024", "--repeats", "5"],
    "callback_cost": ["--repeats", "5"],
    "save_speed": ["--params", "1e6", "1e7", "1e8", "--repeats", "5"],
    "stall": ["--params", "1e8", "--repeats", "5"],
    "memory": ["--params", "1e8"],
    "data_pipeline": ["--batches", "40", "--repeats", "3"],
    "s3_speed": ["--params", "1e7", "--repeats", "5"],
    "tf_read": ["--params", "1e7", "--repeats", "5"],
    "restore_many_variables": ["--layers", "100", "400", "--repeats", "5"],
    "speed_table": ["--params", "1e6", "1e7", "1e8", "--repeats", "5"],
}
QUICK = {
    "fit_throughput": ["--samples", "4096", "--repeats", "3"],
    "import_time": ["--repeats", "5"],
    "convnet_throughput": ["--samples", "512", "--repeats", "2"],
    "lstm_throughput": ["--samples", "256", "--repeats", "2"],
    "callback_cost": ["--repeats", "3"],
    "save_speed": ["--params", "1e6", "1e7", "--repeats", "3"],
    "stall": ["--params", "1e7", "--repeats", "3"],
    "memory": ["--params", "1e7", "--formats", "native", "weights.h5", "keras"],
    "data_pipeline": ["--batches", "16", "--repeats", "1"],
    "s3_speed": ["--params", "1e6", "--repeats", "3"],
    "tf_read": ["--params", "1e6", "--repeats", "3"],
    "restore_many_variables": ["--layers", "100", "--repeats", "3"],
    "speed_table": ["--params", "1e6", "--repeats", "3"],
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about 2 minutes)")
    parser.add_argument("--only", nargs="+", choices=list(FULL), help="run only these benchmarks")
    parser.add_argument("--dir", default=None, help="where the benchmarks write their files")
    parser.add_argument("--out", default=None, help="also write everything printed to this file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    report, failed = [], []
    started = time.perf_counter()
    for name in args.only or list(plan):
        command = [sys.executable, os.path.join(HERE, f"{name}.py")] + plan[name]
        if args.dir and name in ("save_speed", "stall", "memory", "tf_read", "speed_table"):
            command += ["--dir", args.dir]
        shown = "OMP_NUM_THREADS=1 python benchmarks/" + " ".join([f"{name}.py"] + plan[name])
        header = f"\n## {name}\n$ {shown}\nload average before: {load()}"
        print(header, flush=True)
        start = time.perf_counter()
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        text = out.stdout + (out.stderr if out.returncode else "")
        footer = f"({time.perf_counter() - start:.0f} s; load average after: {load()})"
        print(text.rstrip() + "\n" + footer, flush=True)
        report.append(header + "\n" + text.rstrip() + "\n" + footer)
        if out.returncode:
            failed.append(name)
    summary = f"\nsuite finished in {time.perf_counter() - started:.0f} s" + (f"; FAILED: {failed}" if failed else "")
    print(summary)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(report) + summary + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
