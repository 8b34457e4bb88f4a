"""`ReduceLROnPlateau`: lower the learning rate when a monitored quantity stops improving."""
import warnings

import numpy as np

from kerasckpt.callbacks.monitor import MonitorCallback


class ReduceLROnPlateau(MonitorCallback):
    """Reduce the learning rate when a metric has stopped improving.

    After `patience` epochs without improvement, `model.optimizer.learning_rate` becomes
    `max(lr * factor, min_lr)`, then `cooldown` epochs pass before epochs count again. Every epoch
    the current rate is added to `logs` as `learning_rate` (so `History` and `CSVLogger` record it).

    Args:
        monitor: String. Quantity to be monitored.
        factor: Float. Factor by which the learning rate will be reduced: `new_lr = lr * factor`.
        patience: Integer. Number of epochs with no improvement after which the rate is reduced.
        verbose: Integer. 0: quiet, 1: update messages.
        mode: One of `{"auto", "min", "max"}`; `"auto"` infers the direction from the metric.
        min_delta: Float. Threshold for measuring the new optimum, to only focus on significant changes.
        cooldown: Integer. Epochs to wait before resuming normal operation after a reduction.
        min_lr: Float. Lower bound on the learning rate.

    Note:
        A NaN monitored value never counts as an improvement. Unknown keyword arguments raise a
        `TypeError` (Keras accepts and ignores them). `get_state()` holds `best`, `wait` and
        `cooldown_counter`; the rate itself lives in the optimizer.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0. "
                             f"Received factor={factor}. Pass a factor below 1.0, e.g. factor=0.1 to divide "
                             "the learning rate by 10.")
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self):
        """Reset the wait and cooldown counters and the best value."""
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        if not self._take_restored():
            self._reset()

    def on_train_end(self, logs=None):
        self._take_restored()

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()  # delayed until the model's metrics are built
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(list(logs.keys()))}. Pass one of these "
                          "as `monitor`, or pass validation data to fit() for `val_*` metrics.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce_lr(epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def _reduce_lr(self, epoch):
        optimizer = self.model.optimizer
        old_lr = float(optimizer.learning_rate)
        if old_lr > np.float32(self.min_lr):  # as Keras: compare in float32, the optimizer's precision
            new_lr = max(old_lr * self.factor, self.min_lr)
            optimizer.learning_rate = new_lr
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
            return True
        return False

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def get_state(self):
        best = None if self.best is None else float(self.best)
        return {"best": best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def set_state(self, state):
        self.best = None if state["best"] is None else float(state["best"])
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self._state_restored = True
