"""`CSVLogger`: stream each epoch's logs to a CSV file."""
import collections
import csv
import os
import warnings

import numpy as np

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

    Note:
        When appending to a file that already has a header, rows follow that header's columns
        (a warning names log keys it has no column for), so a resumed run never writes rows that
        are misaligned with the header. Keras computes new columns and may misalign them.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        existing_keys = None
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, "r", newline="") as f:
                    header = f.readline()
                self.append_header = not bool(len(header))
                if header:
                    columns = next(csv.reader([header], delimiter=self.sep))
                    if columns and columns[0] == "epoch":
                        existing_keys = columns[1:]
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode)
        self.writer = None
        self.keys = existing_keys
        self._checked_keys = existing_keys is None

    def on_epoch_end(self, epoch, logs=None):
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
        row = {"epoch": epoch}
        row.update((key, _handle_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None
