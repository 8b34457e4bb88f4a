"""Damaged files written by Keras, which carry no kerasckpt checksums: a load raises a CheckpointError naming
the file (or, for damage only checksums could see, loads); never another exception, a crash or a hang.
HDF5 itself crashes or loops forever on some damage (a flipped type byte in seq_adam.h5 segfaults h5py, a
global heap object of size 0 hangs it; Keras too), so the loads run in a child process, and a crash or a
hang fails the test instead of killing pytest."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import kerasckpt
from kerasckpt.errors import CheckpointDamagedError, CheckpointError

H5_FILES = ("seq_adam.h5", "func_sgd.h5", "nested_adamw.h5")
WEIGHTS_FILES = ("seq_adam.weights.h5", "func_sgd.weights.h5", "nested_adamw.weights.h5")

# Each of these raised something other than a CheckpointError (or crashed) before HDF5 damage was handled:
# (file, [(offset, xor mask), ...]).
KNOWN_BAD = [
    ("seq_adam.h5", [(1897, 0xFF)]),  # 'layer_names' becomes a vlen sequence: h5py segfaults reading it
    ("seq_adam.h5", [(35482, 1)]),  # KeyError: dataspace dim larger than its maximum
    ("seq_adam.h5", [(25333, 32), (27585, 8)]),  # OSError: address of object past end of allocation
    ("seq_adam.h5", [(490, 4), (34648, 32), (32826, 128), (14793, 8), (20511, 128), (31380, 8), (27016, 32),
                     (18037, 8)]),  # UnicodeDecodeError
    ("func_sgd.h5", [(1210, 1)]),  # RuntimeError: Unable to get group info (addr overflow)
    ("func_sgd.h5", [(940, 32)]),  # RuntimeError: datatype has unusually large # of unused bits
    ("func_sgd.h5", [(2058, 128)]),  # OSError: actual len exceeds EOA
    ("func_sgd.h5", [(30947, 2), (6397, 4), (6144, 16), (30571, 64), (20108, 128), (11910, 1), (15969, 1),
                     (30475, 2)]),  # config damage ("class_name" -> "glass_name"): KeyError in a layer
    ("seq_adam.weights.h5", [(17620, 64)]),  # KeyError: Unable to synchronously open object
    ("seq_adam.weights.h5", [(13559, 16)]),  # RuntimeError: Unable to get group info
    ("seq_adam.weights.h5", [(27570, 8), (16473, 8), (10816, 32), (16689, 64), (19141, 128), (3430, 4),
                             (21383, 128), (17162, 1)]),  # ValueError: Insufficient precision
    ("nested_adamw.weights.h5", [(19413, 128), (1122, 2), (4376, 128), (18507, 4), (6849, 32), (23226, 4),
                                 (9176, 32), (2125, 64)]),  # RuntimeError: Link iteration failed
    ("seq_adam.h5", [(15360, 0xFF)]),  # a global heap object of size 0: HDF5 loops forever reading a string
    ("func_sgd.h5", [(2057, 0x08)]),  # a global heap collection grown over garbage: the same endless loop
]

# Loads each case and prints a JSON line before and after it: a crash or a hang (ended by SIGALRM) shows as
# a case that started and never ended.
CHILD = r"""
import json, os, signal, sys, warnings
import kerasckpt
from kerasckpt.errors import CheckpointError
warnings.simplefilter("ignore")
data_dir, out_dir = sys.argv[1], sys.argv[2]
twins = {}
for i, (name, flips, cut) in enumerate(json.loads(sys.stdin.read())):
    data = bytearray(open(os.path.join(data_dir, name), "rb").read())
    for offset, mask in flips:
        data[offset] ^= mask
    if cut is not None:
        data = data[:cut]
    path = os.path.join(out_dir, f"case{i}-" + name)
    with open(path, "wb") as f:
        f.write(bytes(data))
    print(json.dumps([i, "start"]), flush=True)
    signal.alarm(60)
    try:
        if name.endswith(".weights.h5"):
            model_file = os.path.join(data_dir, name.replace(".weights.h5", ".keras"))
            twins.setdefault(name, kerasckpt.saving.load_model(model_file)).load_weights(path)
        else:
            kerasckpt.saving.load_model(path)
        result = "loaded"
    except CheckpointError as err:
        result = "named" if os.path.basename(path) in str(err) else f"unnamed {type(err).__name__}: {err}"
    except Exception as err:
        result = f"{type(err).__name__}: {err}"
    signal.alarm(0)
    print(json.dumps([i, result[:300]]), flush=True)
"""


def run_cases(cases, data_dir, tmp_path):
    """{case index: outcome} for `(file, flips, cut)` cases, loaded in one child process."""
    proc = subprocess.run([sys.executable, "-c", CHILD, str(data_dir), str(tmp_path)], input=json.dumps(cases),
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    results = {}
    for line in proc.stdout.splitlines():
        i, outcome = json.loads(line)
        if outcome != "start" or i not in results:
            results[i] = outcome
    crashed = [cases[i] for i, outcome in results.items() if outcome == "start"]
    assert proc.returncode == 0 and not crashed, \
        f"the process died or hung (return code {proc.returncode}) loading {crashed}:\n{proc.stderr[-3000:]}"
    assert len(results) == len(cases)
    return results


def test_known_damage_raises_a_checkpoint_error_naming_the_file(data_dir, tmp_path):
    cases = [(name, flips, None) for name, flips in KNOWN_BAD]
    results = run_cases(cases, data_dir, tmp_path)
    wrong = {f"{cases[i][0]} {cases[i][1]}": outcome for i, outcome in results.items() if outcome != "named"}
    assert not wrong


@pytest.mark.parametrize("name", ("seq_adam.h5", "func_sgd.h5", "seq_adam.weights.h5", "nested_adamw.weights.h5"))
def test_flips_and_truncations_never_escape_as_other_errors(name, data_dir, tmp_path):
    size = (data_dir / name).stat().st_size
    # every 37th byte of the first 4 KiB (superblock, root group, attributes), then across the file
    offsets = list(range(0, 4096, 37)) + list(range(4096, size, size // 40))
    cases = [(name, [(offset, 0xFF)], None) for offset in offsets]
    cases += [(name, [], cut) for cut in range(0, size, size // 16)]
    results = run_cases(cases, data_dir, tmp_path)
    wrong = {f"{'cut at %d' % cases[i][2] if cases[i][2] is not None else cases[i][1]}": outcome
             for i, outcome in results.items() if outcome not in ("named", "loaded")}
    assert not wrong
    unnoticed_cuts = [cases[i][2] for i, outcome in results.items() if cases[i][2] is not None and outcome != "named"]
    assert not unnoticed_cuts  # a truncated file never loads


def test_the_segfaulting_flip_is_refused_before_its_value_is_read(data_dir, tmp_path):
    path = tmp_path / "flipped.h5"
    data = bytearray((data_dir / "seq_adam.h5").read_bytes())
    data[1897] ^= 0xFF
    path.write_bytes(bytes(data))
    code = ("import kerasckpt, sys\n"
            "try:\n    kerasckpt.saving.load_model(sys.argv[1])\n"
            "except kerasckpt.errors.CheckpointDamagedError as err:\n    print(err)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"crashed with return code {proc.returncode}:\n{proc.stderr[-2000:]}"
    assert "flipped.h5" in proc.stdout and "layer_names" in proc.stdout and "backup" in proc.stdout


@pytest.mark.parametrize("name", H5_FILES + WEIGHTS_FILES)
def test_intact_keras_files_still_load(name, data_dir):
    if name.endswith(".weights.h5"):
        model = kerasckpt.saving.load_model(data_dir / name.replace(".weights.h5", ".keras"))
        model.load_weights(data_dir / name)
    else:
        kerasckpt.saving.load_model(data_dir / name)


def test_damaged_attribute_read_raises_a_checkpoint_error(data_dir, tmp_path):
    """`read_attr` turns any HDF5 or decoding failure into CheckpointDamagedError naming the file."""
    import h5py
    from kerasckpt.saving import h5file
    path = tmp_path / "attrs.h5"
    with h5py.File(path, "w") as f:
        f.attrs["text"] = b"\xff\xfe not utf-8"
        seq = np.empty(1, dtype=object)
        seq[0] = np.arange(2, dtype="int32")
        f.attrs.create("seq", seq, dtype=h5py.vlen_dtype("int32"))  # a type neither Keras nor kerasckpt writes
    with h5py.File(path, "r") as f:
        with pytest.raises(CheckpointDamagedError, match="attrs.h5.*'text'.*UTF-8"):
            h5file.read_attr(f, "text", "'attrs.h5'")
        with pytest.raises(CheckpointDamagedError, match="attrs.h5.*'seq'.*variable-length"):
            h5file.read_attr(f, "seq", "'attrs.h5'")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(CheckpointError, match="attrs.h5.*'seq'"):
            h5file.H5Source("'attrs.h5'", fd)
    finally:
        os.close(fd)
