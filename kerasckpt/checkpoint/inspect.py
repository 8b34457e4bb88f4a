"""Read a checkpoint without building anything: `list_variables`, `load_variable`, `load_checkpoint`.

TensorFlow's functions of the same names (`tf.train.*`), for every tensor-bundle checkpoint TensorFlow
or kerasckpt wrote (and kerasckpt 0.1's), with TensorFlow's names, shapes and values; TensorFlow is never
imported.
"""
from kerasckpt.checkpoint import bundle
from kerasckpt.checkpoint.state import resolve_checkpoint


def load_checkpoint(ckpt_dir_or_file, storage_options=None):
    """A `CheckpointReader` for a checkpoint prefix, or for a directory's latest checkpoint.

    The reader has TensorFlow's methods: `get_tensor(name)`, `has_tensor(name)`,
    `get_variable_to_shape_map()`, `get_variable_to_dtype_map()`; every value is checked against its
    CRC-32C before it is returned.

    Args:
        ckpt_dir_or_file: a checkpoint prefix (`dir/ckpt-3`, `training_1/cp.ckpt`), its `.index`, or a
            directory with a `checkpoint` state file; a path or an fsspec URL (`s3://bucket/run`).
        storage_options: options of the store a URL names (credentials, endpoint; see fsspec).

    Note: dtypes are `bundle.DType` objects with `tf.DType`'s `name`, `as_numpy_dtype` and
    `as_datatype_enum` (TensorFlow's own type needs TensorFlow); bfloat16 values come back as float32,
    exactly widened (NumPy has no bfloat16; TensorFlow returns `ml_dtypes.bfloat16`).
    """
    return bundle.CheckpointReader(resolve_checkpoint(ckpt_dir_or_file, storage_options), storage_options)


def list_variables(ckpt_dir_or_file, storage_options=None):
    """`[(name, shape)]` of every tensor in a checkpoint, sorted by name; shapes are lists.

    Args:
        ckpt_dir_or_file: a checkpoint prefix, or a directory (meaning its latest checkpoint); a path or an
            fsspec URL. Only the index is read.
        storage_options: options of the store a URL names (credentials, endpoint; see fsspec).
    """
    with load_checkpoint(ckpt_dir_or_file, storage_options) as reader:
        return [(key, list(reader.shape(key))) for key in reader.keys()]


def load_variable(ckpt_dir_or_file, name, storage_options=None):
    """The value stored under `name`, checksum-verified: an ndarray, or a NumPy scalar for 0-d values.

    Args:
        ckpt_dir_or_file: a checkpoint prefix, or a directory (meaning its latest checkpoint); a path or an
            fsspec URL (the data file holding the value is downloaded, checked as it streams).
        name: the key as `list_variables` shows it (`model/dense_1/kernel/.ATTRIBUTES/VARIABLE_VALUE`);
            a variable's object path (`model/dense_1/kernel`) works too.
        storage_options: options of the store a URL names (credentials, endpoint; see fsspec).

    Note: a damaged value raises `CheckpointDamagedError` naming the file and the value (TensorFlow's
    truncated-file error is a bare IndexError); an unknown name raises `CheckpointKeyError` (a KeyError)
    with the closest names.
    """
    def read():
        with load_checkpoint(ckpt_dir_or_file, storage_options) as reader:
            return reader.get(name)
    return bundle.read_again_if_replaced(read)
