"""`EarlyStopping`: stop `fit()` when a monitored quantity has stopped improving."""
import warnings

import numpy as np

from kerasckpt.callbacks.monitor import MonitorCallback


class EarlyStopping(MonitorCallback):
    """Stop training when a monitored metric has stopped improving.

    At the end of every epoch the monitored value is compared with the best so far; after
    `patience` epochs without an improvement larger than `min_delta`, `model.stop_training` is set.

    Args:
        monitor: Quantity to be monitored. Defaults to `"val_loss"`.
        min_delta: Minimum change in the monitored quantity to qualify as an improvement.
        patience: Number of epochs with no improvement after which training is stopped.
        verbose: 0 is silent, 1 prints a message when the callback takes an action.
        mode: One of `{"auto", "min", "max"}`; `"auto"` infers the direction from the metric.
        baseline: Training stops unless the model improves on this value within `patience` epochs.
        restore_best_weights: Whether to restore the weights of the best epoch at the end of
            training (also when no epoch beat `baseline`: then the best of those epochs).
        start_from_epoch: Number of warm-up epochs before improvement is monitored.

    Attributes:
        stopped_epoch: 0-based epoch at which training was stopped (0 if it was not).
        best, best_epoch, wait: Best monitored value, its 0-based epoch, epochs since it.

    Note:
        A NaN monitored value never counts as an improvement. `get_state()` returns plain numbers
        and, under `"best_weights"`, `None` or the best weights as a list of NumPy arrays.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.best_epoch = 0
        self.start_from_epoch = start_from_epoch

    def on_train_begin(self, logs=None):
        if self._take_restored():
            return  # resuming: keep the restored wait/best instead of starting over
        # allow instances to be re-used across fit() calls
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()  # delayed until the model's metrics are built
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return  # no monitored value, or still in the warm-up epochs
        if self.restore_best_weights and self.best_weights is None:
            # best weights never set: the current weights are the best
            self.best_weights = self._copy_weights()
            self.best_epoch = epoch

        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self._copy_weights()
            # restart the wait only when beating both the baseline and the previous best
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return

        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self._take_restored()
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        monitor_value = logs.get(self.monitor)
        if monitor_value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(list(logs.keys()))}. Pass one of these as "
                          "`monitor`, or pass validation data to fit() for `val_*` metrics.", stacklevel=2)
        return monitor_value

    def _copy_weights(self):
        # copies, so that later in-place updates of the model cannot change the saved best
        return [np.array(w, copy=True) for w in self.model.get_weights()]

    def get_state(self):
        best = None if self.best is None else float(self.best)
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": best, "best_epoch": self.best_epoch,
                "best_weights": self.best_weights}

    def set_state(self, state):
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.best = None if state["best"] is None else float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        weights = state.get("best_weights")
        self.best_weights = None if weights is None else [np.array(w, copy=True) for w in weights]
        self._state_restored = True
