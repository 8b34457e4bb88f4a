"""A callback that simulates a crash at a chosen point of fit(), shared by the resume tests."""
from kerasckpt.callbacks import Callback


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
