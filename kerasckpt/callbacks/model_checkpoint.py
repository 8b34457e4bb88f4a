"""ModelCheckpoint: save the model or its weights during fit(), crash-safe, with the best one known."""
import datetime
import os
import re
import string
import threading
import time
import warnings

from kerasckpt import _background, _storage
from kerasckpt.callbacks.monitor import MonitorCallback, is_nan
from kerasckpt.checkpoint import bundle
from kerasckpt.errors import CheckpointIsADirectoryError, CheckpointNotADirectoryError
from kerasckpt.saving import api as saving_api


class FilepathTemplate(string.Formatter):
    """`filepath` with `{name:spec}` (or `<name:spec>`) fields filled from `epoch`, `batch` and logs.

    A field name is looked up verbatim, so metric names containing `.`, `[` or `/` work
    (`{val_out/acc:.2f}`) instead of being parsed as attribute access; a filled-in value never adds
    a directory level (path separators in values become `_`).
    """

    _ANGLE = re.compile(r"<([A-Za-z_][^<>:]*(?::[^<>]*)?)>")

    def __init__(self, filepath):
        super().__init__()
        self.template = _storage.normalize(filepath)
        self.pattern = self._ANGLE.sub(r"{\1}", self.template)
        self.fields = [field for _, field, _, _ in self.parse(self.pattern) if field is not None]

    def get_field(self, field_name, args, kwargs):
        return kwargs[field_name], field_name

    def format_field(self, value, format_spec):
        text = super().format_field(value, format_spec)
        return text.replace(os.sep, "_").replace("/", "_")

    def fill(self, epoch, batch, logs):
        values = dict(logs or {})
        values["epoch"] = epoch + 1
        if batch is not None and "batch" not in values:
            values["batch"] = batch + 1
        try:
            return self.format(self.pattern, **values)
        except KeyError as e:
            raise KeyError(
                f"cannot fill filepath '{self.template}' at epoch {epoch + 1}: no value for {e.args[0]!r}. "
                f"Available keys: {', '.join(values)}") from None
        except (ValueError, TypeError) as e:
            raise ValueError(f"cannot fill filepath '{self.template}' at epoch {epoch + 1}: {e}. "
                             "Check the format specs in the template (e.g. {epoch:02d}, {val_loss:.2f}).") from None


def file_kind(path, save_weights_only):
    """`"keras"`, `"weights"` or `"model"` for HDF5 files, or `"prefix"` for the native checkpoint format."""
    if path.endswith(".keras"):
        if save_weights_only:
            raise ValueError(
                f"ModelCheckpoint(save_weights_only=True) cannot write '{path}': a .keras file holds the whole "
                "model. End the filepath in .weights.h5 (or .h5) to save weights, or drop save_weights_only.")
        return "keras"
    if path.endswith(".weights.h5"):
        return "weights"
    if path.endswith((".h5", ".hdf5")):
        return "weights" if save_weights_only else "model"
    return "prefix"


def file_identity(path, storage_options=None):
    """`[inode, mtime_ns, size]` of a saved file (of a prefix's `.index`), its ETag on a store; None when absent."""
    for candidate in (path, path + ".index"):
        identity = _storage.identity(candidate, storage_options)
        if identity is None:
            continue
        if candidate != path and not bundle.is_complete(path, storage_options):
            return None
        return identity
    return None


def blocking_file(directory):
    """The outermost existing non-directory among `directory` and its parents (what stops makedirs), or None.

    Object stores (URLs) have no directories to block: an object and a "directory" of the same name coexist.
    """
    if _storage.is_url(directory):
        return None
    chain = []
    while directory and directory not in chain:
        chain.append(directory)
        directory = os.path.dirname(directory)
    for candidate in reversed(chain):
        if os.path.lexists(candidate) and not os.path.isdir(candidate):
            return candidate
    return None


def blocked_directory_error(filepath, blocker):
    return CheckpointNotADirectoryError(
        f"ModelCheckpoint cannot save to '{filepath}': '{blocker}' is an existing file, not a directory, so the "
        f"checkpoint directory cannot be created. Move or rename '{blocker}', or pass a filepath in another directory.")


def remove_checkpoint_file(path, storage_options=None):
    """Delete a file this callback wrote, or every file of a native checkpoint prefix."""
    if _storage.isfile(path, storage_options):
        _storage.remove(path, storage_options)
    else:
        bundle.delete(path, storage_options)


class ModelCheckpoint(MonitorCallback):
    """Save the model or its weights at epoch ends or every `save_freq` batches.

    The file ending picks the format: `.keras` (whole model), `.weights.h5` (weights), `.h5` /
    `.hdf5` (weights with `save_weights_only=True`, else the whole legacy model), anything else a
    checkpoint prefix. `filepath` may hold `{epoch}`, `{batch}` and any logs key with format specs.

    Args:
        filepath: path or template, e.g. `"ckpt/weights.{epoch:02d}-{val_loss:.2f}.weights.h5"`.
        monitor: the logs key compared by `save_best_only`, `save_top_k` and `best`.
        verbose: 0 silent, 1 prints a message per save decision, as Keras.
        save_best_only: save only when `monitor` improves.
        save_weights_only: save weights only (not allowed with `.keras`).
        mode: `"auto"`, `"min"` or `"max"`.
        save_freq: `"epoch"`, a number of batches, or a `datetime.timedelta` of wall-clock time.
        initial_value_threshold: the value the first monitored value has to beat.
        save_top_k: keep only the k files with the best monitored values. Among equal values the file at
            `best_filepath` ranks first (`best` moves only on strict improvement, as in Keras, so it is the
            first file to reach that value), then newer files before older ones.
        max_to_keep: keep only the n newest files. With `save_top_k` too, a file is kept if either keeps it.
        save_in_background: copy the values in memory (training waits only for that copy) and write the
            file on a writer thread. One save in flight: the next one waits for it. `best`,
            `best_filepath`, `files` and retention advance once the file is complete, at the next save,
            `wait_until_finished()` or `on_train_end`; a failed write is raised there. The same keyword
            as `BackupAndRestore` and `CheckpointOptions(save_in_background=True)`.
        storage_options: options of the store when `filepath` is an fsspec URL (`s3://bucket/run/...`):
            credentials, endpoint, ... as fsspec takes them.

    Note: every write is atomic, so a crash mid-save never loses the previous file; a NaN monitored
    value is never "best" and does not block later improvements; with `save_best_only` or `save_top_k`
    a `val_` monitor that this `fit()` never logs (no validation, or saving on batches) raises a
    `ValueError` before training (Keras warns and saves every unscored model as the best); a `monitor`
    missing at some epochs warns once and saves nothing then (Keras saves), and `save_top_k` skips a
    NaN value, so a file that cannot be ranked never replaces ranked ones; `best`, `best_filepath` and the
    files written survive a resume through `get_state()`/`set_state()`; the file at `best_filepath`
    is never deleted by `save_top_k`/`max_to_keep`, and only files this callback wrote are deleted.
    Keras has no background saving; here the file holds the values of the moment of the save even if
    training changes them while it is written, and a save still in flight at exit is finished first.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None, save_top_k=None, max_to_keep=None,
                 save_in_background=False, storage_options=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.storage_options = storage_options
        self.template = FilepathTemplate(filepath)
        self.filepath = self.template.template
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        file_kind(self.template.pattern, self.save_weights_only)  # refuse .keras + weights-only now
        valid_freq = save_freq == "epoch" or isinstance(save_freq, datetime.timedelta) or (
            isinstance(save_freq, int) and not isinstance(save_freq, bool) and save_freq > 0)
        if not valid_freq:
            raise ValueError(f"Unrecognized save_freq: {save_freq!r}. Expected 'epoch', a positive number of "
                             "batches, or a datetime.timedelta.")
        self.save_freq = save_freq
        for name, value in (("save_top_k", save_top_k), ("max_to_keep", max_to_keep)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"ModelCheckpoint {name} must be a positive integer or None. Received: {name}={value!r}")
        self.save_top_k, self.max_to_keep = save_top_k, max_to_keep
        self.best_filepath = None
        self.files = []  # [{"path", "epoch", "batch", "value"}] of files this callback wrote, oldest first
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = None
        self._current_epoch = 0
        self._last_save_time = None
        self._warned_missing = False
        self.save_in_background = bool(save_in_background)
        self._writer = _background.BackgroundWriter("ModelCheckpoint") if self.save_in_background else None
        self._pending = None  # the save queued last, counted once its file is complete (JSON-ready, resumable)
        self._queued = False  # whether `_pending` is this object's writer's job (else: from set_state)
        self._before_known = threading.Event()  # `_pending["before"]` is set (on the writer thread, before it writes)
        self._before_known.set()

    # ------------------------------------------------------------------ hooks

    def on_train_begin(self, logs=None):
        self._finish_pending()  # a save left in flight by an interrupted fit() with this callback
        self._check_fixed_directory()
        self._check_monitor_can_appear()
        self._last_save_time = time.monotonic()

    def on_train_end(self, logs=None):
        self._finish_pending()
        if self._writer is not None:
            self._writer.release_buffers()

    def wait_until_finished(self):
        """Wait for a background save in flight, then count it (`best`, `files`, retention) or raise its error."""
        self._finish_pending()

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op_if_possible(logs)
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    # ------------------------------------------------------------------ when to save

    def _should_save_on_batch(self, batch):
        if self.save_freq == "epoch":
            return False
        if isinstance(self.save_freq, datetime.timedelta):
            return time.monotonic() - self._last_save_time >= self.save_freq.total_seconds()
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            add_batches = batch + 1  # a new epoch: batches are 0-based
        else:
            add_batches = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add_batches
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _set_monitor_op_if_possible(self, logs):
        try:
            self._set_monitor_op()
        except ValueError:
            if self.save_best_only or self.save_top_k:
                raise  # the direction matters; the error says to pass mode=

    def _should_save(self, epoch, current, filepath, logs):
        if current is None and (self.save_best_only or self.save_top_k):
            # An unscored file is neither an improvement nor rankable: top-k would delete it right after
            # writing it (or after it overwrote a ranked file), so save nothing, like save_best_only.
            if not self._warned_missing:
                option, kept = (("save_best_only=True", "the previous best file") if self.save_best_only else
                                (f"save_top_k={self.save_top_k}", "the files it ranked"))
                warnings.warn(
                    f"ModelCheckpoint({option}) found no '{self.monitor}' in the logs at epoch {epoch + 1}, so it "
                    f"saved nothing and kept {kept}. Available keys: {', '.join(logs) or '(none)'}. Set monitor= "
                    "to one of them ('val_' keys need validation data and exist only at epoch ends).", stacklevel=3)
                self._warned_missing = True
            return False
        if not self.save_best_only:
            if self.save_top_k and is_nan(current):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} is nan, which save_top_k cannot rank; not saving")
                return False
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        best_text = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_text} to {current:.5f}, "
                      f"saving model to {filepath}")
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_text}")
        return False

    # ------------------------------------------------------------------ saving

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self.template.fill(epoch, batch, logs)
        self._finish_pending()  # `best` must count the previous save before this one is decided
        current = logs.get(self.monitor)
        current = None if current is None else float(current)
        if not self._should_save(epoch, current, filepath, logs):
            return
        if _storage.is_directory_in_the_way(filepath, self.storage_options):
            raise CheckpointIsADirectoryError(
                f"ModelCheckpoint cannot save to '{filepath}': it is an existing directory. "
                "Give a file path (e.g. 'ckpt/model.keras').")
        dirname = _storage.dirname(filepath)
        if dirname:
            blocker = blocking_file(dirname)  # checked first: makedirs would fail with a bare errno message
            if blocker is not None:
                raise blocked_directory_error(filepath, blocker)
        _storage.makedirs_for(filepath, self.storage_options)  # on a store: its bucket is checked, nothing made
        if self._writer is not None:
            self._queue(filepath, epoch, batch, current)
            return
        self._write(filepath)
        self._last_save_time = time.monotonic()
        self._record(filepath, epoch, batch, current)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _check_monitor_can_appear(self):
        """Refuse before training a `val_` monitor that this fit() never logs where this callback saves."""
        if not (self.save_best_only or self.save_top_k) or not self.monitor.startswith("val_"):
            return
        loop = getattr(self.model, "_fit_loop", None)  # None when a CallbackList is driven by hand
        if loop is None or loop.epoch >= loop.fingerprint["epochs"]:  # no epoch will run
            return
        if self.save_freq != "epoch":
            reason = f"it saves on batches (save_freq={self.save_freq!r}), whose logs never hold 'val_' keys"
        elif not loop.validates:
            reason = ("this fit() validates at no epoch (no validation_data or validation_split, or a "
                      "validation_freq that selects none of its epochs)")
        else:
            return
        option = "save_best_only=True" if self.save_best_only else f"save_top_k={self.save_top_k}"
        keys = ", ".join(getattr(self.model, "metrics_names", None) or ["loss"])
        raise ValueError(
            f"ModelCheckpoint({option}, monitor={self.monitor!r}) would save nothing in this fit(): {reason}, so "
            f"{self.monitor!r} never reaches it. The logs will have: {keys}. Pass validation_data= (or "
            "validation_split=) to fit() with save_freq='epoch', or set monitor= to one of those keys.")

    def _check_fixed_directory(self):
        """Fail before training when the directory part that no field can change is blocked by a file."""
        prefix = ""
        for literal, field, _, _ in self.template.parse(self.template.pattern):
            prefix += literal
            if field is not None:
                break
        blocker = blocking_file(_storage.dirname(prefix))
        if blocker is not None:
            raise blocked_directory_error(self.filepath, blocker)

    def _write(self, filepath):
        kind = file_kind(filepath, self.save_weights_only)
        if kind in ("weights", "prefix"):
            self.model.save_weights(filepath, overwrite=True, storage_options=self.storage_options)
        else:
            self.model.save(filepath, overwrite=True, storage_options=self.storage_options)

    def _prepare(self, filepath):
        if file_kind(filepath, self.save_weights_only) in ("weights", "prefix"):
            return saving_api.prepare_save_weights(self.model, filepath, overwrite=True,
                                                   storage_options=self.storage_options)
        return saving_api.prepare_save_model(self.model, filepath, overwrite=True, storage_options=self.storage_options)

    def _queue(self, filepath, epoch, batch, current):
        prepared = self._prepare(filepath)  # configs and JSON state fixed now; arrays copied by submit()
        self._pending = {"path": filepath, "epoch": epoch, "batch": batch, "value": current, "before": None}
        self._before_known.clear()
        pending = self._pending

        def look():  # on the writer thread: a request on a store, the index parsed for a prefix
            try:
                pending["before"] = file_identity(filepath, self.storage_options)
            finally:
                self._before_known.set()
        prepared.run_first(look)
        try:
            self._writer.submit(prepared)
        except BaseException:
            self._pending = None
            raise
        self._queued = True
        self._last_save_time = time.monotonic()

    def _finish_pending(self):
        """Count the save in flight once its file is complete; raise its error if it failed."""
        pending = self._pending
        if pending is None:
            return
        if self._queued:
            self._queued = False
            try:
                self._writer.wait()
            except BaseException:
                self._pending = None
                raise
            complete = True
        else:  # restored by set_state(): queued by an interrupted run, which may have finished it
            _background.wait_for_paths([pending["path"]])
            complete = file_identity(pending["path"], self.storage_options) not in (None, pending["before"])
            if not complete:
                warnings.warn(
                    f"ModelCheckpoint: the save of '{pending['path']}' queued before training was interrupted did "
                    "not complete, so it is not counted (best, best_filepath and files keep their previous values). "
                    "The next save writes a new file.", stacklevel=3)
        self._pending = None
        if complete:
            self._record(pending["path"], pending["epoch"], pending["batch"], pending["value"])
            if self.verbose > 0:
                print(f"\nEpoch {pending['epoch'] + 1}: finished saving model to {pending['path']}")

    def _record(self, filepath, epoch, batch, current):
        """Note the new file, update `best`, then apply retention (the new file is complete by now)."""
        self.files = [f for f in self.files if f["path"] != filepath]
        self.files.append({"path": filepath, "epoch": epoch + 1, "batch": None if batch is None else batch + 1,
                           "value": current})
        improved = current is not None and not is_nan(current) and (
            self.save_best_only or self._monitor_op_ready() and self._is_improvement(current, self.best))
        if improved:
            self.best, self.best_filepath = current, filepath
        elif filepath == self.best_filepath:
            self.best_filepath = None  # overwritten by a state that is not the best
        self._apply_retention()

    def _monitor_op_ready(self):
        if self.monitor_op is None:
            try:
                self._set_monitor_op()
            except ValueError:
                return False
        return True

    def _apply_retention(self):
        if self.save_top_k is None and self.max_to_keep is None:
            return
        keep = {self.best_filepath}
        if self.max_to_keep is not None:
            keep.update(f["path"] for f in self.files[-self.max_to_keep:])
        if self.save_top_k is not None:
            scored = [(i, f) for i, f in enumerate(self.files) if f["value"] is not None and not is_nan(f["value"])]
            better_first = self.monitor_op is not None and self.monitor_op(1, 0)  # True when higher is better
            # Best value first; among equals best_filepath first (it is protected anyway, so ranking it
            # elsewhere would keep k + 1 files), then the newest.
            scored.sort(key=lambda item: ((item[1]["value"] if better_first else -item[1]["value"]),
                                          item[1]["path"] == self.best_filepath, item[0]), reverse=True)
            keep.update(f["path"] for _, f in scored[:self.save_top_k])
        for entry in [f for f in self.files if f["path"] not in keep]:
            remove_checkpoint_file(entry["path"], self.storage_options)
            self.files.remove(entry)

    # ------------------------------------------------------------------ state for resuming

    def get_state(self):
        return {"best": self.best, "best_filepath": self.best_filepath, "files": [dict(f) for f in self.files],
                "batches_seen_since_last_saving": self._batches_seen_since_last_saving,
                "last_batch_seen": self._last_batch_seen, "current_epoch": self._current_epoch,
                "warned_missing": self._warned_missing,
                "pending": None if self._pending is None else self._pending_state()}

    def _pending_state(self):
        if self._queued:
            self._before_known.wait()
        return dict(self._pending)

    def set_state(self, state):
        self.best, self.best_filepath = state["best"], state["best_filepath"]
        self.files = [dict(f) for f in state["files"]]
        self._batches_seen_since_last_saving = state["batches_seen_since_last_saving"]
        self._last_batch_seen = state["last_batch_seen"]
        self._current_epoch = state["current_epoch"]
        self._warned_missing = state["warned_missing"]
        self._pending, self._queued = state.get("pending"), False
