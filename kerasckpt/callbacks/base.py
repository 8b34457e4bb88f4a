"""`Callback` (the hooks a training loop calls), `CallbackList` (calls them on many callbacks) and
`HOOK_ORDER`, the one written record of hook names and their order; `CallbackList` dispatches from it.
"""
# The order in which `fit()` calls the hooks (SPEC §3); `evaluate()` uses the `on_test_*` block alone,
# `predict()` the `on_predict_*` block. Epoch and batch indices passed to hooks are 0-based.
HOOK_ORDER = (
    "on_train_begin",          # once per fit()
    "on_epoch_begin",          # per epoch
    "on_train_batch_begin",    # per training batch
    "on_train_batch_end",
    "on_test_begin",           # validation (or evaluate())
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_test_end",
    "on_epoch_end",            # logs: loss, metrics, val_*
    "on_train_end",            # once per fit()
    "on_predict_begin",        # predict()
    "on_predict_batch_begin",
    "on_predict_batch_end",
    "on_predict_end",
)
# Older names Keras keeps: `Callback.on_train_batch_begin/end` forward to them, so a callback that
# overrides only an alias is still called for every training batch.
HOOK_ALIASES = {"on_batch_begin": "on_train_batch_begin", "on_batch_end": "on_train_batch_end"}
ALL_HOOKS = HOOK_ORDER + tuple(HOOK_ALIASES)
_INDEX_NAME = {h: ("epoch" if "epoch" in h else "batch") for h in ALL_HOOKS if "epoch" in h or "batch" in h}
_BATCH_HOOKS = frozenset(h for h in ALL_HOOKS if "batch" in h)  # Keras passes their logs by keyword
_BEGIN_HOOKS = frozenset(("on_train_begin", "on_test_begin", "on_predict_begin"))
_ALIAS_OF = {hook: alias for alias, hook in HOOK_ALIASES.items()}


class Callback:
    """Base class of callbacks: override the hooks for the stages you care about.

    `fit()`, `evaluate()` and `predict()` call the hooks in `HOOK_ORDER`; a `CallbackList` can drive
    them by hand from a custom loop. Epoch and batch indices are 0-based; `logs` values are floats.

    Attributes:
        params: Dict of training parameters (`epochs`, `steps`, `verbose`).
        model: The model being trained (`stop_training`, `optimizer`, `get_weights()`, ...).
        state_key: Name under which `get_state()` is saved; defaults to the class name.

    Note:
        Callbacks whose state matters for resuming a run exactly implement `get_state()` /
        `set_state(state)` with plain numbers, strings, lists and dicts, and NumPy arrays and scalars
        anywhere inside (BackupAndRestore stores those as checkpoint values). A state restored before
        `on_train_begin` survives it: that hook resets only a callback that was not just restored.
        A run resumed inside an epoch calls `on_epoch_begin` for that epoch again, on the restored
        state: what it sets there must come out the same when it runs twice for one epoch.
    """

    def __init__(self):
        self.params = None
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self.__dict__.get("_model")  # tolerate subclasses that skip super().__init__()

    @property
    def state_key(self):
        return self.__dict__.get("_state_key") or type(self).__name__

    @state_key.setter
    def state_key(self, key):
        if not isinstance(key, str) or not key:
            raise ValueError(f"A callback's state_key must be a non-empty string. Received: state_key={key!r}")
        self._state_key = key

    def get_state(self):
        """The state to save for resuming, or `None` when the callback keeps none."""
        return None

    def set_state(self, state):
        """Restore what `get_state()` returned."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, so it cannot restore state={state!r}. "
                             "Override get_state() and set_state() to make it resumable.")

    def _take_restored(self):
        """True once after `set_state()`: the next `on_train_begin` keeps the restored state."""
        return self.__dict__.pop("_state_restored", False)

    def on_batch_begin(self, batch, logs=None):
        """Alias of `on_train_batch_begin`, kept for Keras compatibility."""

    def on_batch_end(self, batch, logs=None):
        """Alias of `on_train_batch_end`, kept for Keras compatibility."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of epoch `epoch` (0-based) in `fit()`."""

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of epoch `epoch` (0-based); `logs` has `loss`, metrics and `val_*`."""

    def on_train_batch_begin(self, batch, logs=None):
        """Called before training batch `batch` (0-based within the epoch)."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """Called after training batch `batch` (0-based); `logs` has the running metrics."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        """Called before evaluation or validation batch `batch` (0-based)."""

    def on_test_batch_end(self, batch, logs=None):
        """Called after evaluation or validation batch `batch` (0-based)."""

    def on_predict_batch_begin(self, batch, logs=None):
        """Called before prediction batch `batch` (0-based)."""

    def on_predict_batch_end(self, batch, logs=None):
        """Called after prediction batch `batch` (0-based)."""

    def on_train_begin(self, logs=None):
        """Called once at the start of `fit()`."""

    def on_train_end(self, logs=None):
        """Called once at the end of `fit()`; `logs` are the last epoch's logs."""

    def on_test_begin(self, logs=None):
        """Called at the start of `evaluate()` or of validation inside `fit()`."""

    def on_test_end(self, logs=None):
        """Called at the end of `evaluate()` or of validation; `logs` has the results."""

    def on_predict_begin(self, logs=None):
        """Called at the start of `predict()`."""

    def on_predict_end(self, logs=None):
        """Called at the end of `predict()`."""



def _overrides(callback, hook):
    """Whether calling `hook` on `callback` can do anything (class override or instance attribute)."""
    if hook in getattr(callback, "__dict__", ()):
        return True
    return getattr(type(callback), hook, None) is not getattr(Callback, hook)


def _pythonify(logs):
    """A new dict, keys sorted, nested dicts flattened, scalar values as `float` (as Keras does)."""
    if not logs:
        return {}
    result = {}
    for key in sorted(logs):
        value = logs[key]
        if type(value) is not float:
            if isinstance(value, dict):
                result.update(_pythonify(value))
                continue
            if hasattr(type(value), "__float__") and not getattr(value, "ndim", 0):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    pass
        result[key] = value
    return result


def _flatten(callbacks):
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    flat = []
    for item in callbacks:
        flat.extend(_flatten(item) if isinstance(item, (list, tuple)) else [item])
    for position, item in enumerate(flat):
        if not isinstance(item, Callback):
            raise TypeError(f"CallbackList expects Callback instances, but item {position} is {item!r} "
                            f"(type {type(item).__name__}). Subclass kerasckpt.callbacks.Callback, or wrap "
                            "functions in kerasckpt.callbacks.LambdaCallback.")
    return flat


class CallbackList(Callback):
    """Calls every hook on a list of callbacks, in list order.

    `fit()` builds one; a custom training loop can build and drive one by hand. For each hook the
    list precomputes which callbacks actually override it, so a hook nobody overrides costs one
    method call and nothing per callback.

    Args:
        callbacks: List of `Callback` instances (nested lists are flattened).
        add_history: Whether to append a `History` if the list has none.
        add_progbar: Whether to append a `ProgbarLogger` if the list has none.
        model: The model these callbacks are used with.
        **params: Training parameters (`epochs`, `steps`, `verbose`) passed to each callback.

    Example:
    ```python
    cbs = CallbackList([EarlyStopping(monitor="loss")], model=model, epochs=5, steps=10)
    cbs.on_train_begin()
    for epoch in range(5):
        cbs.on_epoch_begin(epoch); ...; cbs.on_epoch_end(epoch, {"loss": loss})
    cbs.on_train_end()
    ```

    Note:
        An exception raised by a callback is re-raised unchanged, with `exc.callback` (the callback),
        `exc.hook` (the hook name) and a note naming both. `get_state()` / `set_state()` save and
        restore every callback's state by state key (`Name`, `Name_1`, ... for repeated keys).
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        super().__init__()
        self.callbacks = _flatten(callbacks)
        self._add_default_callbacks(add_history, add_progbar)
        self.set_model(model)
        self.set_params(params)
        self._build_dispatch()

    def _add_default_callbacks(self, add_history, add_progbar):
        from kerasckpt.callbacks.history import History
        from kerasckpt.callbacks.progbar import ProgbarLogger
        self._history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        self._progbar = next((cb for cb in self.callbacks if isinstance(cb, ProgbarLogger)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)

    def _build_dispatch(self):
        # hook -> bound methods of the callbacks that override it (or its alias), in list order,
        # and the callbacks themselves in the same order (to name the one that raised)
        self._dispatch, self._owners = {}, {}
        for hook in ALL_HOOKS:
            alias = _ALIAS_OF.get(hook)
            owners = [cb for cb in self.callbacks if _overrides(cb, hook) or (alias and _overrides(cb, alias))]
            self._owners[hook] = owners
            self._dispatch[hook] = [getattr(cb, hook) for cb in owners]

    def set_params(self, params):
        self.params = params
        if params:
            for callback in self.callbacks:
                callback.set_params(params)

    def set_model(self, model):
        if model is None:
            return
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for callback in self.callbacks:
            callback.set_model(model)

    def append(self, callback):
        """Add `callback` at the end, giving it this list's model and params."""
        from kerasckpt.callbacks.history import History
        from kerasckpt.callbacks.progbar import ProgbarLogger
        added = _flatten(callback)
        self.callbacks.extend(added)
        for cb in added:
            if self.model is not None:
                cb.set_model(self.model)
            if self.params:
                cb.set_params(self.params)
            if self._history is None and isinstance(cb, History):
                self._history = cb
            if self._progbar is None and isinstance(cb, ProgbarLogger):
                self._progbar = cb
        self._build_dispatch()

    def callbacks_by_state_key(self):
        """`{state_key: callback}` in list order; a repeated key becomes `key_1`, `key_2`, ..."""
        base_keys = [cb.state_key for cb in self.callbacks]
        reserved, used, keyed = set(base_keys), set(), {}
        for key, callback in zip(base_keys, self.callbacks):
            if key in used:
                n = 1
                while f"{key}_{n}" in reserved or f"{key}_{n}" in used:
                    n += 1
                key = f"{key}_{n}"
            used.add(key)
            keyed[key] = callback
        return keyed

    def get_state(self):
        """`{state_key: state}` for every callback whose `get_state()` is not `None`."""
        states = {}
        for key, callback in self.callbacks_by_state_key().items():
            state = callback.get_state()
            if state is not None:
                states[key] = state
        return states

    def set_state(self, state):
        """Give each callback its entry of `state` (a dict from `get_state()`), matched by state key."""
        import warnings
        keyed = self.callbacks_by_state_key()
        unknown = [key for key in (state or {}) if key not in keyed]
        if unknown:
            warnings.warn(f"Callback states for {unknown} match no callback in this list, so they are "
                          f"ignored. State keys here: {', '.join(keyed) or '(none)'}. Pass the same "
                          "callbacks, in the same order, as the run that saved the state.", stacklevel=2)
        for key, callback in keyed.items():
            if state and key in state:
                callback.set_state(state[key])

    def _record_failure(self, exc, hook, fn, index):
        if getattr(exc, "_kerasckpt_hook_recorded", False):
            return  # an inner CallbackList already named the callback that raised
        position = next((i for i, f in enumerate(self._dispatch[hook]) if f is fn), None)
        callback = self._owners[hook][position] if position is not None else getattr(fn, "__self__", fn)
        key = next((k for k, cb in self.callbacks_by_state_key().items() if cb is callback),
                   getattr(callback, "state_key", None))
        where = f"{hook}({_INDEX_NAME[hook]}={index})" if hook in _INDEX_NAME else f"{hook}()"
        try:
            exc.callback, exc.hook, exc._kerasckpt_hook_recorded = callback, hook, True
        except AttributeError:  # exception classes with __slots__
            pass
        if hasattr(exc, "add_note"):
            exc.add_note(f"Raised by callback {type(callback).__name__} (state key {key!r}) in {where}.")


def _make_dispatch(hook):
    """The `CallbackList` method for `hook`: a tight loop over the callbacks that override it."""
    rebuild = hook in _BEGIN_HOOKS  # pick up callbacks added to `.callbacks` directly since the last run
    if hook in _BATCH_HOOKS:
        def dispatch(self, batch, logs=None):
            fns = self._dispatch[hook]
            if fns:
                logs = _pythonify(logs)
                try:
                    for fn in fns:
                        fn(batch, logs=logs)
                except Exception as exc:
                    self._record_failure(exc, hook, fn, batch)
                    raise
    elif hook in _INDEX_NAME:
        def dispatch(self, epoch, logs=None):
            fns = self._dispatch[hook]
            if fns:
                logs = _pythonify(logs)
                try:
                    for fn in fns:
                        fn(epoch, logs)
                except Exception as exc:
                    self._record_failure(exc, hook, fn, epoch)
                    raise
    else:
        def dispatch(self, logs=None):
            if rebuild:
                self._build_dispatch()
            fns = self._dispatch[hook]
            if fns:
                logs = _pythonify(logs)
                try:
                    for fn in fns:
                        fn(logs)
                except Exception as exc:
                    self._record_failure(exc, hook, fn, None)
                    raise
    dispatch.__name__ = hook
    dispatch.__qualname__ = f"CallbackList.{hook}"
    dispatch.__doc__ = f"Call `{hook}` on every callback that overrides it, in list order."
    return dispatch


for _hook in ALL_HOOKS:
    setattr(CallbackList, _hook, _make_dispatch(_hook))
del _hook
