"""`CSVLogger`: stream each epoch's logs to a CSV file."""
import collections
import csv
import warnings

import numpy as np

from kerasckpt import _storage
from kerasckpt.callbacks.base import Callback


def _handle_value(value):
    if isinstance(value, str):
        return value
    if isinstance(value, collections.abc.Iterable) and not (isinstance(value, np.ndarray) and value.ndim == 0):
        return f'"[{", ".join(map(str, value))}]"'
    return value


class CSVLogger(Callback):
    """Callback that streams epoch results to a CSV file.

    Columns are `epoch` (0-based) and the sorted log keys of the first epoch; when those have no
    `val_*` key, `val_<key>` columns are added for every key (filled with `NA`), as in Keras. Each
    row is flushed as soon as it is written. 1-D iterables are written as `"[a, b]"`.

    Args:
        filename: Filename of the CSV file, e.g. `'run/log.csv'`.
        separator: String used to separate elements in the CSV file.
        append: Boolean. True: append if file exists (useful for continuing training).
            False: overwrite existing file.
        storage_options: options of the store when `filename` is an fsspec URL (`s3://...`). A store
            cannot append, so there the whole file is uploaded again (atomically) after each row.

    Note:
        When appending to a file that already has a header, rows follow that header's columns
        (a warning names log keys it has no column for), so a resumed run never writes rows that
        are misaligned with the header. Keras computes new columns and may misalign them.
        `get_state()` records how many bytes of the file are written; with `BackupAndRestore`, a
        resumed run cuts the file back to that length and goes on without a second header, so the
        file equals that of an uninterrupted run byte for byte (Keras loses or repeats rows). Hence
        `append=False` empties the file at the first epoch's start, not when training starts.
    """

    def __init__(self, filename, separator=",", append=False, storage_options=None):
        super().__init__()
        self.sep = separator
        self.filename = _storage.normalize(filename)
        self.storage_options = storage_options
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None
        self._checked_keys = True
        self._size = 0  # bytes of the file that belong to this run's log so far (what get_state() saves)
        self._cut_to = None  # bytes to truncate the file to before the next row; None: keep it as it is
        self._existed = False
        self._resume = None  # a state from set_state(), applied when the file is next written

    def on_train_begin(self, logs=None):
        if not self._take_restored():
            self._resume = None
        existing_keys = None
        header = ""
        self._existed = _storage.exists(self.filename, self.storage_options)
        if self.append and self._existed:
            text = _storage.read_bytes(self.filename, self.storage_options).decode("utf-8", errors="replace")
            header = text.splitlines(keepends=True)[0] if text else ""
            if header:
                columns = next(csv.reader([header], delimiter=self.sep))
                if columns and columns[0] == "epoch":
                    existing_keys = columns[1:]
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        # Opened without truncating: BackupAndRestore may restore this callback's state later in this same
        # hook, and then the rows of the interrupted run must survive. append=False truncates the file in
        # the next hook (on_epoch_begin), once that is known.
        self.csv_file = _storage.AppendFile(self.filename, self.storage_options)
        self._size = self.csv_file.size() if self.append else 0
        self._cut_to = None if self.append else 0
        self.append_header = not header
        self.writer = None
        self.keys = existing_keys
        self._checked_keys = existing_keys is None

    def on_epoch_begin(self, epoch, logs=None):
        self._prepare_file()

    def on_epoch_end(self, epoch, logs=None):
        self._prepare_file()
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs.keys())
            if not any(key.startswith("val_") for key in self.keys) and self.keys:
                self.keys.extend([f"val_{k}" for k in self.keys])
        elif not self._checked_keys:
            self._checked_keys = True
            missing = sorted(set(logs) - set(self.keys))
            if missing:
                warnings.warn(f"CSVLogger is appending to {self.filename!r}, whose header has no column for "
                              f"{missing}; those values are not written. Log to a new file (append=False) to "
                              "record them.", stacklevel=2)
        if not self.writer:
            class CustomDialect(csv.excel):
                delimiter = self.sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + (self.keys or []),
                                         dialect=CustomDialect)
            if self.append_header:
                self.writer.writeheader()
                self.append_header = False
        row = {"epoch": epoch}
        row.update((key, _handle_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()
        self._size = self.csv_file.size()

    def on_train_end(self, logs=None):
        self._take_restored()
        if self.csv_file and not self.csv_file.closed:
            self._prepare_file()
            self.csv_file.close()
        self.writer = None

    def get_state(self):
        """`{"size", "header_written", "keys", "checked_keys"}`: how far the file is written."""
        if self._resume is not None:  # restored, and no row written since (resumed in mid-epoch)
            return dict(self._resume)
        return {"size": self._size, "header_written": not self.append_header, "keys": self.keys,
                "checked_keys": self._checked_keys}

    def set_state(self, state):
        self._resume = {"size": int(state["size"]), "header_written": bool(state["header_written"]),
                        "keys": None if state["keys"] is None else list(state["keys"]),
                        "checked_keys": bool(state["checked_keys"])}
        self._state_restored = True

    def _prepare_file(self):
        """Truncate the file as this run requires, once, before anything more is written to it."""
        if self.csv_file is None or self.csv_file.closed:
            return
        resume, self._resume = self._resume, None
        if resume is not None:
            size = self.csv_file.size()
            if size < resume["size"]:
                what = "is missing, so it starts anew" if not self._existed else f"has only {size} bytes"
                warnings.warn(f"CSVLogger is resuming {self.filename!r}, which {what}, but {resume['size']} bytes "
                              "had been written to it when the training state was backed up: the rows of earlier "
                              "epochs are lost, later rows are appended. Keep the log file in place between an "
                              "interrupted run and its resumption.", stacklevel=3)
                self._cut_to = None
                resume["header_written"] = resume["header_written"] and size > 0
            else:
                self._cut_to = resume["size"]  # drops rows written after the backup; they are written again
            self.append_header = not resume["header_written"]
            self.keys, self._checked_keys = resume["keys"], resume["checked_keys"]
        if self._cut_to is not None:
            self.csv_file.truncate(self._cut_to)
            self._size, self._cut_to = self._cut_to, None
        elif resume is not None:
            self._size = self.csv_file.size()
