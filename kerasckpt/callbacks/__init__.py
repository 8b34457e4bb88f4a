"""Callbacks: hooks into `fit()`, `evaluate()` and `predict()` (order in `HOOK_ORDER`)."""
from kerasckpt._lazy import lazy_attributes
from kerasckpt.callbacks.base import ALL_HOOKS, HOOK_ALIASES, HOOK_ORDER, Callback, CallbackList
from kerasckpt.callbacks.early_stopping import EarlyStopping
from kerasckpt.callbacks.history import History
from kerasckpt.callbacks.lambda_callback import LambdaCallback
from kerasckpt.callbacks.learning_rate_scheduler import LearningRateScheduler
from kerasckpt.callbacks.monitor import MonitorCallback
from kerasckpt.callbacks.progbar import ProgbarLogger
from kerasckpt.callbacks.reduce_lr_on_plateau import ReduceLROnPlateau
from kerasckpt.callbacks.terminate_on_nan import TerminateOnNaN

__all__ = ["Callback", "CallbackList", "HOOK_ORDER", "HOOK_ALIASES", "ALL_HOOKS", "History", "ProgbarLogger",
           "MonitorCallback", "EarlyStopping", "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger",
           "LambdaCallback", "TerminateOnNaN", "ModelCheckpoint", "BackupAndRestore"]

# The callbacks that write files load the file formats (HDF5, tensor bundles, fsspec) on first use.
__getattr__, __dir__ = lazy_attributes(__name__, globals(), {
    "BackupAndRestore": "kerasckpt.callbacks.backup_and_restore", "CSVLogger": "kerasckpt.callbacks.csv_logger",
    "ModelCheckpoint": "kerasckpt.callbacks.model_checkpoint"})
