"""Opening files for the savers: clear errors for missing paths and directories, atomic writes, and
errors naming the file when the model it describes cannot be rebuilt."""
import contextlib
import math
import os

from kerasckpt import _fileio, _storage
from kerasckpt.errors import CheckpointError, CheckpointFormatError, CheckpointIsADirectoryError, \
    CheckpointNotFoundError


def label(path):
    return repr(_storage.normalize(path))


def check_readable(path, what="file", storage_options=None):
    """`path` as a str (a URL stays one); missing files and directories raise CheckpointError subclasses naming it."""
    path = _storage.normalize(path)
    found = _storage.info(path, storage_options)
    if found is not None and found["type"] == "directory":
        raise CheckpointIsADirectoryError(
            f"{path!r} is a directory, but a {what} was expected. Pass the path of the file itself "
            "(for example 'run/model.keras').")
    if found is None:
        parent, name = _storage.split(path)
        try:
            near = sorted(n for n in _storage.listdir(parent or ".", storage_options) if n.startswith(name[:4]))[:5]
        except OSError:
            near = []
        raise CheckpointNotFoundError(
            f"No such {what}: {path!r}." + (f" Files nearby: {near}." if near else "") +
            " Check the path, or save the model there first.")
    return path


def check_writable(path, overwrite, storage_options=None):
    """`path` as a str, its directory created; also removes temp files earlier saves to it left behind.

    A save killed before its rename leaves `<name>.kctmp-<pid>-...`; those of processes that are gone
    (never of a save still running elsewhere) are deleted when the next save to the same name starts.
    On a store (a URL) nothing is created but the bucket must exist; an upload killed midway left nothing.
    """
    path = _storage.normalize(path)
    if _storage.is_directory_in_the_way(path, storage_options):
        raise CheckpointIsADirectoryError(
            f"Cannot save to {path!r}: it is a directory. Pass a file name such as "
            f"{_storage.join(path, 'model.keras')!r}.")
    if not overwrite and _storage.exists(path, storage_options):
        raise FileExistsError(f"{path!r} exists and overwrite=False. Pass overwrite=True or choose another name.")
    _storage.makedirs_for(path, storage_options)
    if not _storage.is_url(path):
        _fileio.cleanup_temp_files(os.path.dirname(path), os.path.basename(path) + _fileio.TEMP_MARK)
    return path


@contextlib.contextmanager
def rebuilding(label, what):
    """Around rebuilding the model a file's config describes: failures become CheckpointFormatError naming it.

    `serialization` checks the config as it goes; this catches what gets past it: a MemoryError from a
    layer asking for more memory than there is (a damaged or edited size), and the KeyError, TypeError,
    ... of a config damaged in a way no check foresaw (files written by Keras carry no checksums).
    """
    try:
        yield
    except CheckpointError:
        raise
    except MemoryError as err:
        raise CheckpointFormatError(_too_big(label, what, err)) from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RecursionError) as err:
        raise CheckpointFormatError(
            f"{label}: the model in {what} cannot be rebuilt ({type(err).__name__}: {err}). The file is damaged or "
            "its config was edited: restore it from a backup or save the model again.") from err


def _too_big(label, what, err):
    layer, tb = None, err.__traceback__
    while tb is not None:  # the innermost layer whose method was running: the one that asked for the memory
        obj = tb.tb_frame.f_locals.get("self")
        if hasattr(obj, "add_weight") and isinstance(getattr(obj, "name", None), str):
            layer = obj
        tb = tb.tb_next
    who = f"layer '{layer.name}' ({type(layer).__name__})" if layer is not None else "the model"
    shape, dtype = getattr(err, "shape", None), getattr(err, "dtype", None)
    if shape is not None and dtype is not None:
        nbytes = int(math.prod(shape)) * dtype.itemsize
        asks = f"an array of shape {tuple(shape)} and dtype {dtype} ({_size(nbytes)})"
    else:
        asks = f"more memory than is available ({err})"
    return (f"{label}: {what} describes a model too big for this machine: {who} needs {asks}. The config is "
            "damaged or was written for a much larger machine: restore the file from a backup, or load it where "
            "that much memory is available.")


def _size(nbytes):
    value, unit = float(nbytes), "bytes"
    for name in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024:
            break
        value, unit = value / 1024, name
    return f"{nbytes} bytes" if unit == "bytes" else f"{value:.1f} {unit}, {nbytes} bytes"
