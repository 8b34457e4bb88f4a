"""Crashes for the resume and crash tests: a callback that simulates one at a chosen point of fit(), and a
child process SIGKILLed once it is ready."""
import signal
import subprocess
import time

from kerasckpt.callbacks import Callback


def kill_when_ready(argv, delay, **popen_kwargs):
    """Run `argv`, wait for its line "ready", let it go on for `delay` seconds, then SIGKILL it."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, **popen_kwargs)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()


class Crash(Callback):
    """Raises KeyboardInterrupt once: after training batch `batch` of `epoch`, or in on_epoch_end
    of `epoch` when `batch` is None (0-based). Place it after the callbacks that must have run."""

    def __init__(self, epoch, batch=None):
        super().__init__()
        self.at, self.current = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == self.at:
            raise KeyboardInterrupt(f"simulated crash at epoch {self.current}, batch {batch}")

    def on_epoch_end(self, epoch, logs=None):
        if self.at == (epoch, None):
            raise KeyboardInterrupt(f"simulated crash in on_epoch_end of epoch {epoch}")
