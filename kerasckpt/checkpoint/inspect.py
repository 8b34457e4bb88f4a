"""Read a checkpoint without building anything: `list_variables`, `load_variable`, `load_checkpoint`."""
import difflib
import os

from kerasckpt.checkpoint import files
from kerasckpt.checkpoint.manager import latest_checkpoint
from kerasckpt.errors import CheckpointKeyError, CheckpointNotFoundError

_TF_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def _resolve(ckpt_dir_or_file):
    path = os.fspath(ckpt_dir_or_file)
    if os.path.isdir(path) and not os.path.isfile(path + ".index"):
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointNotFoundError(
                f"'{path}' is a directory without a recorded checkpoint (no usable 'checkpoint' state file, and no "
                "complete checkpoint named like 'ckpt-1'). Pass a checkpoint prefix such as 'dir/ckpt-1' (the path "
                "save() returned).")
        return latest
    return path


def load_checkpoint(ckpt_dir_or_file):
    """A `CheckpointReader` for a checkpoint prefix, or for a directory's latest checkpoint."""
    return files.CheckpointReader(_resolve(ckpt_dir_or_file))


def list_variables(ckpt_dir_or_file):
    """`[(key, shape)]` of every value in a checkpoint, sorted by key; shapes are lists.

    Args:
        ckpt_dir_or_file: a checkpoint prefix, or a directory (meaning its latest checkpoint).
    """
    with load_checkpoint(ckpt_dir_or_file) as reader:
        return sorted((key, list(reader.shape(key))) for key in reader.keys())


def load_variable(ckpt_dir_or_file, name):
    """The value stored under `name`, checksum-verified: an ndarray, or a NumPy scalar for 0-d values.

    Args:
        ckpt_dir_or_file: a checkpoint prefix, or a directory (meaning its latest checkpoint).
        name: the full key, e.g. `model/dense_1/kernel` (see `list_variables`).
    """
    with load_checkpoint(ckpt_dir_or_file) as reader:
        key = name[:-len(_TF_SUFFIX)] if name.endswith(_TF_SUFFIX) else name
        if key not in reader.entries:
            close = difflib.get_close_matches(key, reader.keys(), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise CheckpointKeyError(f"Key {name!r} not found in checkpoint '{reader.prefix}'.{hint} "
                                     "list_variables(path) shows every key.")
        value = reader.read(key)
    return value[()] if value.ndim == 0 else value
