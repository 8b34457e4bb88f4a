"""The CheckpointError family: every error kerasckpt raises about a file it reads or writes.

Each subclass also inherits the built-in exception Keras raises in the same case, so existing
`except FileNotFoundError` / `except ValueError` clauses keep working.
"""


class CheckpointError(Exception):
    """Base of every checkpoint or saving error about a file."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The file or checkpoint prefix does not exist."""


class CheckpointIsADirectoryError(CheckpointError, IsADirectoryError):
    """A directory was given where a file was expected."""


class CheckpointDamagedError(CheckpointError, ValueError):
    """The file exists but is truncated, corrupted or fails a checksum."""


class CheckpointFormatError(CheckpointError, ValueError):
    """The file is of the wrong kind, or of a version this kerasckpt cannot read."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """The values in the file do not fit the objects they are restored into (shape, count, path)."""


class UnsafeCheckpointError(CheckpointError, ValueError):
    """The file asks for something that loading refuses to do (code, imports, links, bombs)."""
