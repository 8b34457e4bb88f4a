"""`ProgbarLogger`: the progress display of `fit()`, `evaluate()` and `predict()`, on tqdm."""
import sys
import time

from kerasckpt.callbacks.base import Callback


def _format_logs(logs):
    """` - loss: 0.1234 - accuracy: 0.5000` as Keras prints metrics (`.4e` for tiny values)."""
    parts = []
    for key, value in logs.items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            parts.append(f" - {key}: {value}")
            continue
        parts.append(f" - {key}: {value:.4f}" if abs(value) > 1e-3 else f" - {key}: {value:.4e}")
    return "".join(parts)


def _format_time(time_per_unit, unit_name="step"):
    if time_per_unit >= 1 or time_per_unit == 0:
        return f" {time_per_unit:.0f}s/{unit_name}"
    if time_per_unit >= 1e-3:
        return f" {time_per_unit * 1e3:.0f}ms/{unit_name}"
    return f" {time_per_unit * 1e6:.0f}us/{unit_name}"


class _Bar:
    """One pass (an epoch, an evaluation, a prediction): a live tqdm bar (1) or one line at the end (2)."""

    _BAR = "{n_fmt}/{total_fmt} |{bar:20}| {elapsed}<{remaining}, {rate_fmt}"
    _NO_TOTAL = "{n_fmt}/Unknown {elapsed}, {rate_fmt}"

    def __init__(self, target, verbose, interval=0.1, timer=None):
        self.target, self.verbose, self.interval = target, verbose, interval
        self.start = time.time()
        self.timer = timer  # a data source's `wait_seconds` (a PyDataset or a generator), or None
        self.wait_start = timer.wait_seconds if timer is not None else 0.0
        self.seen = 0
        self._next_refresh = 0.0
        self.tqdm = None
        if verbose == 1:
            from tqdm import tqdm  # on first use: `import kerasckpt` does not pay for it
            self._format = self._BAR if target else self._NO_TOTAL
            self.tqdm = tqdm(total=target or None, unit="step", file=sys.stdout, leave=True, mininterval=interval,
                             bar_format=self._format, dynamic_ncols=True)

    def _data_wait(self, final):
        """` - data wait 35%`: the share of this pass spent waiting for batches (with the seconds at the end)."""
        if self.timer is None:
            return ""
        waited = self.timer.wait_seconds - self.wait_start
        share = waited / max(time.time() - self.start, 1e-9)
        return f" - data wait {waited:.1f}s ({share:.0%})" if final else f" - data wait {share:.0%}"

    def _show_logs(self, logs, final=False):
        suffix = (_format_logs(logs or {}) + self._data_wait(final)).replace("{", "{{").replace("}", "}}")
        self.tqdm.bar_format = self._format + suffix

    def update(self, seen, logs):
        self.seen = seen
        if self.tqdm is not None:
            self.tqdm.n = seen
            now = time.monotonic()
            if now >= self._next_refresh:  # format the metrics only when the bar is redrawn
                self._next_refresh = now + self.interval
                if logs or self.timer is not None:
                    self._show_logs(logs)
                self.tqdm.refresh()

    def finalize(self, logs):
        if self.target is None:
            self.target = self.seen
        if self.tqdm is not None:
            self.tqdm.total = self.target
            self.tqdm.n = self.target
            if logs or self.timer is not None:
                self._show_logs(logs, final=True)
            self.tqdm.close()
            self.tqdm = None
        elif self.verbose == 2 and self.target:
            elapsed = time.time() - self.start
            digits = len(str(self.target))
            line = f"{self.target:{digits}d}/{self.target} - {elapsed:.0f}s -"
            line += _format_time(elapsed / self.target) + _format_logs(logs or {}) + self._data_wait(True)
            print(line, file=sys.stdout)

    def close(self):
        if self.tqdm is not None:
            self.tqdm.close()
            self.tqdm = None


class ProgbarLogger(Callback):
    """Callback that prints metrics to stdout.

    `fit()`, `evaluate()` and `predict()` add one unless `verbose=0`. The verbosity comes from the
    `verbose` param: 1 (and `"auto"`) shows a live bar per epoch with the running metrics, 2 prints
    `Epoch 3/10` and one line per epoch, 0 is silent. Validation metrics appear at the epoch's end;
    validation inside `fit()` shows no bar of its own. Epochs are printed 1-based.

    Note:
        The live bar is drawn with tqdm, so its layout differs from Keras's bar; the metrics text
        (Keras's format) is only built when the bar is redrawn, so a batch costs next to nothing.
        The `verbose=2` line is Keras's. Reading a PyDataset or a generator, the bar (and the
        `verbose=2` line) also shows ` - data wait 1.2s (35%)`: the time the model waited for
        batches, so whether data or compute is the bottleneck shows; the bar's rate is batches/s.
    """

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        super().set_params(params)
        params = params or {}
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else int(verbose)
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def on_train_begin(self, logs=None):
        self._called_in_fit = True  # validation inside fit() is silent

    def on_train_end(self, logs=None):
        self._called_in_fit = False
        self._reset_progbar()

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        if self.verbose and self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", file=sys.stdout)
        self._maybe_init_progbar()

    def on_train_batch_end(self, batch, logs=None):
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update_progbar(batch, None)  # never show the predictions

    def on_epoch_end(self, epoch, logs=None):
        self._finalize_progbar(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs=None):
        self._finalize_progbar(None)

    def _reset_progbar(self):
        self.seen = 0
        if self.progbar is not None:
            self.progbar.close()
        self.progbar = None

    def _maybe_init_progbar(self):
        if self.progbar is None:
            self.progbar = _Bar(self.target, self.verbose, timer=getattr(self.model, "_data_timer", None))

    def _update_progbar(self, batch, logs):
        self._maybe_init_progbar()
        self.seen = batch + 1  # 1-based count of batches done
        if self.verbose == 1:
            self.progbar.update(self.seen, logs)
        else:
            self.progbar.seen = self.seen

    def _finalize_progbar(self, logs):
        self._maybe_init_progbar()
        if self.target is None:
            self.target = self.seen
        if self.progbar.target is None:
            self.progbar.target = self.target
        self.progbar.finalize(logs)
        self.progbar = None
