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


class CheckpointNotADirectoryError(CheckpointError, NotADirectoryError):
    """A file stands where a directory of checkpoints has to be."""


class CheckpointDamagedError(CheckpointError, ValueError):
    """The file exists but is truncated, corrupted or fails a checksum."""


class CheckpointFormatError(CheckpointError, ValueError):
    """The file is of the wrong kind, or of a version this kerasckpt cannot read."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """The values in the file do not fit the objects they are restored into (shape, count, path)."""


class UnsafeCheckpointError(CheckpointError, ValueError):
    """The file asks for something that loading refuses to do (code, imports, links, bombs)."""


class UnknownObjectError(CheckpointFormatError, TypeError):
    """The file names a class or function that kerasckpt does not have or that is not registered.

    Also a `TypeError`, which Keras raises when it cannot locate a class.
    """


class CheckpointKeyError(CheckpointError, KeyError):
    """The checkpoint holds no value under the requested key."""

    def __str__(self):  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


class StorageUnavailableError(CheckpointError, ImportError):
    """A URL names a store whose package (fsspec, s3fs, gcsfs, ...) is not installed; nothing was written."""


class StorageAccessError(CheckpointError, PermissionError):
    """The store refused access: no credentials, wrong credentials, or no permission."""


class StorageConnectionError(CheckpointError, ConnectionError):
    """The store could not be reached (after the retries), or a transfer broke off."""


class StorageConflictError(CheckpointError, FileExistsError):
    """A conditional write failed: another writer changed the object first."""


class StorageError(CheckpointError, OSError):
    """Any other failure of a store, with the URL and the store's answer."""


class CheckpointReplacedError(CheckpointNotFoundError):
    """A checkpoint was overwritten or deleted by another save while it was being read; reading it again works."""
