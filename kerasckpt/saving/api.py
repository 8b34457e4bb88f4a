"""save_model / load_model / save_weights / load_weights: the file's ending picks the format."""
# `.keras` (zip, whole model), `.weights.h5` (Keras 3 weights layout), `.h5` / `.hdf5` (Keras 2 layout:
# whole model from `save_model`, weights from `save_weights`); any other path is a native checkpoint
# prefix (`kerasckpt.checkpoint`).
import os

from kerasckpt import _storage, initializers
from kerasckpt.errors import CheckpointFormatError
from kerasckpt.saving import _files, h5, h5file, keras_zip, legacy_h5


def _kind(filepath):
    name = _storage.normalize(filepath).lower()
    if name.endswith(".keras"):
        return "keras"
    if name.endswith(".weights.h5"):
        return "weights.h5"
    if name.endswith((".h5", ".hdf5")):
        return "h5"
    return "native"


def save_model(model, filepath, overwrite=True, include_optimizer=True, storage_options=None, **kwargs):
    """Save architecture, weights, compile arguments and optimizer state of `model`.

    `.keras` writes the zip archive of Keras 3; `.h5` / `.hdf5` the legacy Keras 2 layout. Every
    byte is checksummed where Keras ignores it, and the file is replaced atomically (temp file,
    fsync, rename): a crash mid-save leaves the previous file intact.

    Args:
        model: the model to save.
        filepath: a path or fsspec URL (`s3://bucket/run/model.keras`) ending in `.keras`, `.h5` or `.hdf5`.
        overwrite: replace an existing file; with False an existing file raises FileExistsError.
        include_optimizer: also save the compile arguments and the optimizer state.
        storage_options: options of the store a URL names (credentials, endpoint; see fsspec).

    Note: the legacy `.h5` writes canonical loss names (`mean_squared_error` for `"mse"`), which
    Keras 3 needs to compile the loaded model, and `overwrite=False` raises instead of prompting.
    """
    if kwargs.pop("zipped", None) not in (None, True):
        raise ValueError("kerasckpt always writes .keras files zipped. Remove zipped=False.")
    if kwargs:
        raise TypeError(f"save_model() got unexpected keyword arguments {sorted(kwargs)}.")
    prepare_save_model(model, filepath, overwrite, include_optimizer, storage_options).write()


def prepare_save_model(model, filepath, overwrite=True, include_optimizer=True, storage_options=None):
    """`save_model` split in two: a `PreparedSave` whose `write(arrays)` writes the file.

    Configs and state are fixed now; only the weight arrays are read when it is written (from copies
    of them, for a background save; see `kerasckpt._background`).
    """
    kind = _kind(filepath)
    if kind == "keras":
        return keras_zip.prepare_save_model(model, filepath, overwrite, include_optimizer, storage_options)
    if kind == "h5":
        return legacy_h5.prepare_save_model(model, filepath, overwrite, include_optimizer, storage_options)
    raise ValueError(
        f"Invalid filepath extension for saving: {_storage.normalize(filepath)!r}. Use a `.keras` extension for the "
        "native Keras format (recommended) or `.h5` for the legacy format; use save_weights() for "
        "`.weights.h5` and checkpoint prefixes.")


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, storage_options=None):
    """Rebuild a model saved by `save_model` (or by Keras 3) from a `.keras` or legacy `.h5` file.

    Only kerasckpt's built-in classes, classes registered with `register_serializable` and
    `custom_objects` are instantiated; nothing named in the file is imported or run.

    Args:
        filepath: a `.keras`, `.h5` or `.hdf5` file, or an fsspec URL of one.
        custom_objects: `{name: class or function}` for custom layers, models, losses, metrics.
        compile: compile the model with the saved compile arguments and restore the optimizer.
        safe_mode: accepted for Keras compatibility; code-carrying objects (lambdas, Lambda
            layers) are refused whatever its value.
        storage_options: options of the store a URL names (credentials, endpoint; see fsspec).

    Note: kerasckpt restores the full optimizer state from legacy `.h5` files (Keras 3 keeps only
    the iteration count and learning rate), accepts `"mse"`/`"mae"` losses there, verifies every
    checksum before trusting a byte, and restores Dropout random streams for exact resumption.
    """
    path = _files.check_readable(filepath, "model file", storage_options)
    with _storage.open_read(path, storage_options) as fd:
        return _load_model_fd(path, fd, custom_objects, compile, safe_mode)


def _load_model_fd(path, fd, custom_objects, compile, safe_mode):
    kind = _kind(path)
    if kind == "native" or kind == "weights.h5":
        head = os.pread(fd, 16, 0)
        if head.startswith(b"PK\x03\x04"):
            kind = "keras"
        elif kind == "weights.h5":
            raise CheckpointFormatError(
                f"{path!r} holds weights only (.weights.h5), not a whole model. Build the model in Python and "
                "call model.load_weights() on it.")
        elif head[:8] == h5file.HDF5_SIGNATURE or head == h5file.MAGIC:
            kind = "h5"
        else:
            raise CheckpointFormatError(
                f"File format not supported: {path!r}. load_model reads `.keras` archives and legacy `.h5` "
                "files; for a checkpoint prefix use model.load_weights() or kerasckpt.Checkpoint.")
    # every weight is assigned from the file (a missing one raises), so skip drawing random initial values
    with initializers.skip_initialization():
        if kind == "keras":
            return keras_zip.load_model_fd(path, fd, custom_objects, compile, safe_mode)
        return legacy_h5.load_model_fd(path, fd, custom_objects, compile, safe_mode)


def save_weights(model, filepath, overwrite=True, storage_options=None):
    """Save the weights (and, when compiled, the optimizer state) in the format the ending picks.

    Args:
        model: the model.
        filepath: `.weights.h5` (Keras 3 layout), `.h5`/`.hdf5` (Keras 2 layout, which Keras 3 still
            loads), or any other path as a native checkpoint prefix; a path or an fsspec URL.
        overwrite: replace an existing file; with False an existing file raises FileExistsError.
        storage_options: options of the store a URL names (credentials, endpoint; see fsspec).
    """
    prepare_save_weights(model, filepath, overwrite, storage_options).write()


def prepare_save_weights(model, filepath, overwrite=True, storage_options=None):
    """`save_weights` split in two: a `PreparedSave` whose `write(arrays)` writes the file or prefix."""
    kind = _kind(filepath)
    if kind == "weights.h5":
        return h5.prepare_save_weights(model, filepath, overwrite, storage_options)
    if kind == "h5":
        return legacy_h5.prepare_save_weights(model, filepath, overwrite, storage_options)
    if kind == "keras":
        raise ValueError(f"save_weights() cannot write {os.fspath(filepath)!r}: a .keras file holds a whole model. "
                         "Use model.save() for .keras, or a name ending in .weights.h5 for weights.")
    from kerasckpt import checkpoint
    prefix = _storage.normalize(filepath)
    if not overwrite and _storage.isfile(f"{prefix}.index", storage_options):
        raise FileExistsError(f"{prefix!r} exists and overwrite=False.")
    return checkpoint.Checkpoint(**checkpoint._roots(model))._prepare_write(prefix, storage_options=storage_options)


def load_weights(model, filepath, skip_mismatch=False, storage_options=None):
    """Load weights (and the optimizer state, if the file has it) saved by `save_weights`, `save` or Keras.

    Nothing is assigned unless every weight fits; mismatches raise `CheckpointMismatchError`
    naming the file and each variable path, or with `skip_mismatch=True` are skipped with one warning.
    As in Keras, the ending picks the format: a file with another ending raises `CheckpointFormatError`
    naming the format it holds and the ending to give it.

    Args:
        model: a built model of the same architecture.
        filepath: a `.weights.h5`, `.keras`, `.h5`/`.hdf5` file or a checkpoint prefix (a path or an fsspec
            URL): kerasckpt's, or TensorFlow's (tf.keras 2 `save_weights("cp.ckpt")`, with the optimizer state).
        skip_mismatch: skip weights whose count or shape does not fit instead of raising.
        storage_options: options of the store a URL names (credentials, endpoint; see fsspec).

    Note: unlike Keras, the optimizer state is restored even when the optimizer is not built yet
    (it is built from the model's trainable weights first), weights in the file that no layer of the
    model takes (a file of a bigger model) are a mismatch rather than silently dropped, and a damaged
    file is refused.
    """
    kind = _kind(filepath)
    if kind == "native":
        from kerasckpt import checkpoint
        prefix = _storage.normalize(filepath)
        if not _storage.is_url(prefix):
            _refuse_unnamed_file(prefix)
        return checkpoint.load_weights_native(model, prefix, skip_mismatch=skip_mismatch,
                                              storage_options=storage_options)
    path = _files.check_readable(filepath, "weights file", storage_options)
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built yet, so it has no weights to load {path!r} into. "
                         "Call the model on a batch of data or call model.build(input_shape) first.")
    with _storage.open_read(path, storage_options) as fd:
        if kind == "keras":
            return keras_zip.load_weights_fd(model, path, fd, skip_mismatch)
        src = h5file.H5Source(_files.label(path), fd)
        try:
            if h5.is_legacy_layout(src):
                legacy_h5.load_weights_from(model, src, skip_mismatch)
            else:
                h5.load_weights_from(model, src, skip_mismatch)
        finally:
            src.close()


def _refuse_unnamed_file(path):
    """A file whose ending names no format is not read as a checkpoint prefix: say what it is instead.

    Like Keras (`File format not supported`), the format comes from the ending and is never guessed;
    the error names the format the first bytes show and the ending that loads it.
    """
    from kerasckpt.checkpoint import bundle, legacy, sstable
    if not os.path.isfile(path) or os.path.exists(f"{path}.index") or bundle.strip_suffix(path) != path:
        return  # a checkpoint prefix (or its .index / .data file): the native reader takes it
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(max(0, os.fstat(f.fileno()).st_size - 8))
            tail = f.read(8)
    except OSError:
        return
    if head[:4] == b"PK\x03\x04":
        what, ending = "a .keras archive (zip)", "'.keras'"
    elif head[:8] == legacy.MAGIC or tail == sstable.MAGIC.to_bytes(8, "little"):
        raise CheckpointFormatError(
            f"{path!r} is a checkpoint index, but index files are named '<prefix>.index'. Rename it to "
            f"{path + '.index'!r} (beside its .data files) and pass the prefix {path!r}.")
    elif head[:8] == h5file.HDF5_SIGNATURE or head == h5file.MAGIC:
        what, ending = _h5_layout(path)
    else:
        raise CheckpointFormatError(
            f"File format not supported: {path!r} has no '.keras', '.weights.h5', '.h5' or '.hdf5' ending and is "
            f"not a checkpoint prefix (no {path + '.index'!r}; the file starts with {head[:8]!r}). Pass a file "
            "written by save_weights()/save(), or a checkpoint prefix.")
    raise CheckpointFormatError(
        f"File format not supported: {path!r} is {what}, but its name does not end in {ending}, and the name's "
        f"ending picks the format (as in Keras). Rename it to end in {ending} and load that.")


def _h5_layout(path):
    """What kind of HDF5 file `path` is, and the ending that loads it."""
    try:
        with _storage.open_read(path) as fd:
            src = h5file.H5Source(_files.label(path), fd)
            try:
                legacy = h5.is_legacy_layout(src)
            finally:
                src.close()
    except Exception:  # damaged: the loader for the right ending will say how
        return "an HDF5 file", "'.weights.h5' (Keras 3 weights) or '.h5' (Keras 2 layout)"
    if legacy:
        return "an HDF5 file in the Keras 2 (legacy .h5) layout", "'.h5'"
    return "an HDF5 weights file in the Keras 3 layout", "'.weights.h5'"
