"""Exact resume through real process death: examples/resume_after_crash.py SIGKILLs its training process."""
import os
import subprocess
import sys

import pytest

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "resume_after_crash.py")


@pytest.mark.slow
@pytest.mark.parametrize("seed,kills", [(1, 3), (2, 5)])
def test_sigkilled_training_restarted_until_done_is_bit_identical(seed, kills):
    done = subprocess.run([sys.executable, EXAMPLE, "--kills", str(kills), "--seed", str(seed)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    restarts = int(summary.split("killed and restarted ")[1].split()[0])
    assert restarts == kills  # kills are aimed at training steps, so every one lands before the run ends
    assert summary.endswith("final weights bit-identical to the uninterrupted run: True")
