"""`LearningRateScheduler`: set the learning rate at the start of every epoch from a function."""
import inspect
import numbers

import numpy as np

from kerasckpt.callbacks.base import Callback


def _accepts_two_args(schedule):
    """Whether `schedule(epoch, lr)` fits its signature (`None` when the signature is unknown)."""
    try:
        signature = inspect.signature(schedule)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(0, 0.0)
        return True
    except TypeError:
        return False


class LearningRateScheduler(Callback):
    """Learning rate scheduler.

    At the beginning of every epoch, this callback gets the learning rate from `schedule` and sets
    it on `model.optimizer`; at the end it adds the rate to `logs` as `learning_rate`.

    Args:
        schedule: A function taking the epoch index (integer, 0-based) and the current learning
            rate (float), returning the new learning rate (float). A function of the epoch alone
            is accepted too.
        verbose: Integer. 0: quiet, 1: log update messages.

    Example:
    ```python
    def scheduler(epoch, lr):
        return lr if epoch < 10 else lr * math.exp(-0.1)
    model.fit(x, y, epochs=15, callbacks=[LearningRateScheduler(scheduler)])
    ```

    Note:
        Which form `schedule` has is read from its signature: Keras instead retries `schedule(epoch)`
        after any `TypeError`, which hides a `TypeError` raised inside a two-argument schedule.
        Integer rates and 0-d arrays or tensors are accepted and converted to float.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler needs a callable `schedule(epoch, lr)`. "
                            f"Received: schedule={schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def _new_lr(self, epoch, optimizer):
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError(f'Optimizer must have a "learning_rate" attribute. Received: {optimizer!r}. '
                             "Compile the model with a kerasckpt optimizer.")
        two_args = _accepts_two_args(self.schedule)
        if two_args is None:  # no signature: Keras's way
            try:
                lr = self.schedule(epoch, float(optimizer.learning_rate))
            except TypeError:
                lr = self.schedule(epoch)
        elif two_args:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        else:
            lr = self.schedule(epoch)
        scalar = isinstance(lr, numbers.Real) or (hasattr(type(lr), "__float__") and getattr(lr, "ndim", 1) == 0)
        if isinstance(lr, (bool, np.bool_)) or not scalar:
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {lr!r} "
                             f"(type {type(lr).__name__}) at epoch {epoch}. Return the learning rate as a float, "
                             "e.g. `return lr * 0.9`.")
        return float(lr)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        learning_rate = self._new_lr(epoch, optimizer)
        optimizer.learning_rate = learning_rate
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)
