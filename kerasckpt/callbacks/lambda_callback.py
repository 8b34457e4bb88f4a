"""`LambdaCallback`: a callback made of plain functions, one per hook."""

from kerasckpt.callbacks.base import ALL_HOOKS, Callback


class LambdaCallback(Callback):
    """Callback for creating simple, custom callbacks on-the-fly.

    Each function is called at its hook with the hook's arguments: `(epoch, logs)` for
    `on_epoch_begin/end`, `(logs)` for `on_train_begin/end`, `(batch, logs=logs)` for the batch hooks
    (epochs and batches 0-based).

    Args:
        on_epoch_begin: called at the beginning of every epoch.
        on_epoch_end: called at the end of every epoch.
        on_train_begin: called at the beginning of model training.
        on_train_end: called at the end of model training.
        on_train_batch_begin: called at the beginning of every train batch.
        on_train_batch_end: called at the end of every train batch.
        **kwargs: Any other hook of `Callback` as `hook_name=function`, e.g. `on_test_end=fn`.

    Example:
    ```python
    log = LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))
    model.fit(x, y, callbacks=[log])
    ```

    Note:
        A keyword that is not a hook name, or a value that is not callable, raises a `TypeError`
        naming the closest hook; Keras silently stores it, so a typo means the function never runs.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, function in hooks.items():
            if name not in ALL_HOOKS:
                import difflib
                close = difflib.get_close_matches(name, ALL_HOOKS, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"LambdaCallback got an unknown hook {name!r}.{hint} "
                                f"Valid hooks: {', '.join(ALL_HOOKS)}.")
            if function is None:
                continue
            if not callable(function):
                raise TypeError(f"LambdaCallback needs a function for {name}. Received: {name}={function!r}")
            setattr(self, name, function)  # an instance attribute: CallbackList dispatches to it
