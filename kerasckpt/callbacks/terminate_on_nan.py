"""`TerminateOnNaN`: stop training as soon as a batch's loss is NaN or infinite."""
import numpy as np

from kerasckpt.callbacks.base import Callback


class TerminateOnNaN(Callback):
    """Callback that terminates training when a NaN or Inf loss is encountered.

    By default training stops gracefully through `model.stop_training = True`, so `on_train_end`
    of every callback still runs. With `raise_error=True` a `RuntimeError` is raised at once
    instead, skipping that cleanup (useful to keep backups untouched when training fails).

    Args:
        raise_error: Boolean, default False. If False, uses graceful stop via
            `model.stop_training = True`. If True, immediately raises RuntimeError on NaN/Inf loss.
    """

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        """Check the `loss` of training batch `batch` (0-based)."""
        loss = (logs or {}).get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   "Terminating training immediately. Lower the learning rate or check the "
                                   "inputs for NaN or infinite values.")
            print(f"Batch {batch}: Invalid loss, terminating training (loss={loss})")
            self.model.stop_training = True
