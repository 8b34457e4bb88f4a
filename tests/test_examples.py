"""Every example runs as written and reaches what it promises."""
import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


def _run(name, *args):
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_quickstart_reaches_95_percent_validation_accuracy_in_under_a_minute():
    out = _run("quickstart.py")
    seconds, accuracy = out.strip().splitlines()[-1].removeprefix("trained in ").split(" s; final validation accuracy ")
    assert float(accuracy) >= 0.95 and float(seconds) < 60


def test_best_model_reloads_the_best_validation_score():
    out = _run("best_model.py")
    best = float(out.split("best val_loss ")[1].split()[0])
    reloaded = float(out.split(": val_loss ")[1].split()[0])
    assert reloaded == pytest.approx(best, abs=1e-5)


def test_custom_training_loop_resumes_bit_identically():
    out = _run("custom_training_loop.py")
    assert "resumed from " in out
    assert out.strip().endswith("resumed run bit-identical to the uninterrupted run: True")


@pytest.mark.slow
def test_train_longer_after_a_finished_run_equals_one_long_run():
    out = _run("train_longer.py", "--first", "2", "--epochs", "4")
    assert "this fit() trained epochs 3-4 (2 entries in history.history['loss']); the whole run has 4 epochs" in out
    assert out.strip().endswith("bit-identical to one run of 4 epochs: True")


@pytest.mark.slow
def test_mnist_convnet_example_trains_and_reloads_its_best_model():
    out = _run("mnist_convnet.py")
    assert "best model reloaded: val_loss" in out and "Total params: 34,826" in out


@pytest.mark.slow
def test_timeseries_classification_example_trains_and_reloads_its_best_model():
    out = _run("timeseries_classification.py")
    assert "best model reloaded: val_loss" in out and "Test accuracy" in out
