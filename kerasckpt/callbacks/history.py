"""`History`: the per-epoch record of logs that `fit()` returns."""
from kerasckpt.callbacks.base import Callback


class History(Callback):
    """Records each epoch's logs; `fit()` adds one and returns it, also as `model.history`.

    Attributes:
        history: Dict from each log key (`loss`, metrics, `val_*`) to its list of per-epoch values.
        epoch: The 0-based indices of the epochs recorded by the current `fit()`.

    Note:
        `get_state()` / `set_state()` carry `history` and `epoch`, so a resumed run returns the
        record of the whole run, not only of the epochs after the restart.
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        if not self._take_restored():
            self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:  # set every epoch so that the model always holds the latest record
            self.model.history = self

    def on_train_end(self, logs=None):
        self._take_restored()

    def get_state(self):
        """`{"epoch": [int, ...], "history": {key: [value, ...]}}` (copies)."""
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()}}

    def set_state(self, state):
        self.epoch = list(state["epoch"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self._state_restored = True
