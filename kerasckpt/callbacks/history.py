"""`History`: the per-epoch record of logs that `fit()` returns."""
from kerasckpt.callbacks.base import Callback


class History(Callback):
    """Records each epoch's logs; `fit()` adds one and returns it, also as `model.history`.

    Attributes:
        history: Dict from each log key (`loss`, metrics, `val_*`) to its list of per-epoch values,
            for the epochs this `fit()` call ran (kept across calls with the same History, as Keras).
        epoch: The 0-based indices of the epochs run by the current `fit()` call.
        run_history: Like `history`, for the whole run: after `BackupAndRestore` resumed it, the
            epochs the interrupted processes finished come first (to plot the whole run).
        run_epoch: The 0-based indices of the epochs of the whole run.

    Note:
        As in Keras, a resumed `fit()` returns the record of its own epochs: resumed at epoch 4 of 10,
        `len(history.history["loss"]) == 6`. `get_state()` / `set_state()` carry the whole-run record,
        so `run_history` and `run_epoch` of a resumed run equal those of an uninterrupted one.
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []
        self.run_history = {}
        self.run_epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []
        if not self._take_restored():
            self.run_history, self.run_epoch = {}, []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        self.run_epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
            self.run_history.setdefault(key, []).append(value)
        if self.model is not None:  # set every epoch so that the model always holds the latest record
            self.model.history = self

    def on_train_end(self, logs=None):
        self._take_restored()

    def get_state(self):
        """`{"epoch": [int, ...], "history": {key: [value, ...]}}` of the whole run (copies)."""
        return {"epoch": list(self.run_epoch), "history": {k: list(v) for k, v in self.run_history.items()}}

    def set_state(self, state):
        self.run_epoch = list(state["epoch"])
        self.run_history = {k: list(v) for k, v in state["history"].items()}
        self._state_restored = True
