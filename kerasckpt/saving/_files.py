"""Opening files for the savers: clear errors for missing paths and directories, atomic writes."""
import contextlib
import os

from kerasckpt import _fileio
from kerasckpt.errors import CheckpointIsADirectoryError, CheckpointNotFoundError


def label(path):
    return repr(os.fspath(path))


def check_readable(path, what="file"):
    """`path` as a str; missing files and directories raise CheckpointError subclasses naming it."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointIsADirectoryError(
            f"{path!r} is a directory, but a {what} was expected. Pass the path of the file itself "
            "(for example 'run/model.keras').")
    if not os.path.exists(path):
        parent = os.path.dirname(path) or "."
        near = sorted(n for n in os.listdir(parent) if n.startswith(os.path.basename(path)[:4]))[:5] \
            if os.path.isdir(parent) else []
        raise CheckpointNotFoundError(
            f"No such {what}: {path!r}." + (f" Files nearby: {near}." if near else "") +
            " Check the path, or save the model there first.")
    return path


@contextlib.contextmanager
def open_fd(path):
    """A read-only descriptor of an existing file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        yield fd
    finally:
        os.close(fd)


def check_writable(path, overwrite):
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointIsADirectoryError(
            f"Cannot save to {path!r}: it is a directory. Pass a file name such as "
            f"{os.path.join(path, 'model.keras')!r}.")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False. Pass overwrite=True or choose another name.")
    _fileio.makedirs_for(path)
    return path
