"""Run TensorFlow in a child process, for the tests that check what TensorFlow reads of kerasckpt's files.

TensorFlow is never imported in the test process (kerasckpt never imports it). The python used, as in
test_tf_interop.py: this interpreter when it has TensorFlow (CI installs it), else the one named by
$KERASCKPT_TF_PYTHON; without either, the tests skip.
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest


def tensorflow_python():
    if importlib.util.find_spec("tensorflow") is not None:
        return sys.executable
    chosen = os.environ.get("KERASCKPT_TF_PYTHON")
    return chosen if chosen and os.path.exists(chosen) else None


def run_tf(script, spec):
    """Run `script` with TensorFlow (Keras 3 on its backend), `spec` as JSON in argv[1]; returns its last stdout
    line parsed as JSON."""
    python = tensorflow_python()
    if python is None:
        pytest.skip("TensorFlow is not installed (set KERASCKPT_TF_PYTHON to a python that has it)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONWARNINGS")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    out = subprocess.run([python, "-c", script, json.dumps(spec)], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
