"""`import kerasckpt` time against importing its dependencies alone, in fresh processes, in the same run.

Each repeat starts one fresh `python` per case, in turn (so drift in a shared machine's load hits all
alike), and each child times its own import statement with `time.perf_counter` (interpreter start-up
excluded; it is the same for every case). Bytecode is cached as after `pip install` (into a temporary
PYTHONPYCACHEPREFIX, written by an untimed warm-up run of each case), whatever PYTHONDONTWRITEBYTECODE
says: compiling the sources on every start would be measured otherwise. Cases:
    numpy             `import numpy`: the floor of any NumPy library
    numpy + h5py      `import numpy, h5py`: the floor the issue names (kerasckpt needs both to save)
    kerasckpt         `import kerasckpt`
The median of the repeats is reported, and which of the modules a script that only trains does not
need were loaded by `import kerasckpt` (h5py, tqdm, fsspec, concurrent.futures, multiprocessing, the CLI).

Run (one BLAS thread): OMP_NUM_THREADS=1 python benchmarks/import_time.py --repeats 15
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _bench import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = {"numpy": "import numpy", "numpy + h5py": "import numpy, h5py", "kerasckpt": "import kerasckpt"}
HEAVY = ["h5py", "tqdm", "fsspec", "concurrent.futures", "multiprocessing.pool", "zipfile", "json",
         "kerasckpt.cli", "kerasckpt._storage", "kerasckpt.saving.h5file", "kerasckpt.checkpoint.bundle"]
CHILD = ("import time, sys\nbefore = set(sys.modules)\nstart = time.perf_counter()\n{statement}\n"
         "print(time.perf_counter() - start)\n"
         "print(' '.join(m for m in {heavy!r} if m in sys.modules and m not in before))\n")


def run_child(statement, pycache):
    """(seconds the import took, the heavy modules it added to sys.modules) in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
               PYTHONPYCACHEPREFIX=pycache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run([sys.executable, "-c", CHILD.format(statement=statement, heavy=HEAVY)], env=env,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    return float(out[0]), out[1].split() if len(out) > 1 else []


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"# {machine()}")
    with tempfile.TemporaryDirectory(prefix="kerasckpt-pycache-") as pycache:
        measure(args.repeats, pycache)


def measure(repeats, pycache):
    for statement in CASES.values():  # warm-up: bytecode compiled and cached, files in the page cache
        run_child(statement, pycache)
    times = {name: [] for name in CASES}
    loaded = []
    started = time.perf_counter()
    for _ in range(repeats):
        for name, statement in CASES.items():
            seconds, heavy = run_child(statement, pycache)
            times[name].append(seconds)
            if name == "kerasckpt":
                loaded = heavy
    print(f"import time in a fresh process, median of {repeats} (min - max)")
    floor = statistics.median(times["numpy + h5py"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<14} {median * 1000:7.1f} ms  ({min(values) * 1000:.1f} - {max(values) * 1000:.1f})"
              f"  {median / floor:5.2f}x numpy + h5py")
    print(f"loaded by `import kerasckpt` that training alone does not need: {', '.join(loaded) or 'none'}")
    print(f"({time.perf_counter() - started:.0f} s; {machine()})")


if __name__ == "__main__":
    main()
