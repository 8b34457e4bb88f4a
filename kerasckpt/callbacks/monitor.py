"""`MonitorCallback`: the shared base of callbacks that watch one logged quantity (mode, min_delta,
improvement test), used by `EarlyStopping`, `ReduceLROnPlateau` and `ModelCheckpoint`.
"""
import math
import operator
import os
import sys
import warnings

from kerasckpt.callbacks.base import Callback


def _model_metrics(model):
    """Every metric object on `model.metrics`, looking inside containers that hold `.metrics`."""
    found, stack = [], list(getattr(model, "metrics", None) or [])[::-1]
    while stack:
        metric = stack.pop()
        found.append(metric)
        inner = getattr(metric, "metrics", None)
        if isinstance(inner, (list, tuple)):
            stack.extend(list(inner)[::-1])
    return found


def direction_from_metrics(model, monitor):
    """Keras 3's `mode="auto"` rule: `"down"` for `loss`, else the matching metric's `_direction`.

    The `val_` prefix is ignored. Returns `"up"`, `"down"`, or `None` when nothing says.
    """
    name = monitor.removeprefix("val_")
    direction = "down" if name == "loss" else None
    for metric in _model_metrics(model):
        if getattr(metric, "name", None) == name and hasattr(metric, "_direction"):
            direction = "up" if metric._direction == "up" else "down"
    return direction


def direction_from_name(monitor):
    """The older Keras `ModelCheckpoint` rule: `"up"` when `"acc"` is in the name or it starts with
    `"fmeasure"`, else `"down"`."""
    return "up" if "acc" in monitor or monitor.startswith("fmeasure") else "down"


def _user_stacklevel():
    """The `stacklevel` for a warning raised here that points at the first frame outside this package."""
    frame, level, here = sys._getframe(1), 1, os.path.dirname(__file__)
    while frame is not None and os.path.dirname(frame.f_code.co_filename) == here:
        frame, level = frame.f_back, level + 1
    return level


def is_nan(value):
    """Whether `value` is a float NaN (anything not convertible to float is not)."""
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


class MonitorCallback(Callback):
    """Base of callbacks that monitor a quantity in `logs` and test it for improvement.

    Subclasses call `_set_monitor_op()` once the model's metrics exist (first `on_epoch_end`), then
    `_is_improvement(current, reference)`. To use another `mode="auto"` rule, override
    `_auto_direction()` to return `"up"`, `"down"` or `None`.

    Args:
        monitor: Quantity to be monitored. Defaults to `"val_loss"`.
        mode: One of `{"auto", "min", "max"}`; `"auto"` infers the direction from the model's
            metric of that name (`loss` is minimized). An unknown mode warns and falls back to
            `"auto"`, as in Keras. Defaults to `"auto"`.
        baseline: Initial "best" value; `None` lets the first monitored value be the best.
        min_delta: Minimum change in the monitored quantity that counts as an improvement.

    Note:
        NaN is never an improvement, not even as the first value, so a NaN epoch can never
        become `best` (in Keras a first NaN becomes `best` and blocks every later improvement).
    """

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode. "
                          "Pass mode='auto', 'min' or 'max'.", stacklevel=_user_stacklevel())
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None
        self._signed_delta = self.min_delta

    def _auto_direction(self):
        return direction_from_metrics(self.model, self.monitor)

    def _set_monitor_op(self):
        if self.mode == "min":
            self.monitor_op = operator.lt
        elif self.mode == "max":
            self.monitor_op = operator.gt
        else:
            direction = self._auto_direction()
            if direction is None:
                names = ", ".join(getattr(m, "name", "?") for m in _model_metrics(self.model)) or "(none)"
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={self.monitor}, but cannot tell "
                    "whether that metric should be maximized or minimized: no metric of the model named "
                    f"{self.monitor.removeprefix('val_')!r} has a direction (metrics: {names}). Pass "
                    "`mode='max'` to monitor the highest value, or `mode='min'` for the lowest.")
            self.monitor_op = operator.gt if direction == "up" else operator.lt
        # the delta is subtracted from the current value: negative when lower is better
        self._signed_delta = -self.min_delta if self.monitor_op is operator.lt else self.min_delta

    def _is_improvement(self, monitor_value, reference_value):
        if self.monitor_op is None:
            self._set_monitor_op()
        if monitor_value is None or is_nan(monitor_value):
            return False
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self._signed_delta, reference_value))
