"""Object-based checkpoints (`Checkpoint`, `CheckpointManager`) in TensorFlow's tensor-bundle format.

`prefix.index` (a sorted table: dtypes, shapes, offsets, CRC-32Cs) + `prefix.data-0000k-of-0000n` (raw
little-endian bytes): TensorFlow reads what kerasckpt writes and the other way round. `bundle.py` reads
and writes the files (and how writes stay crash-safe), `state.py` the `checkpoint` state file.
"""
from kerasckpt.checkpoint.checkpoint import (Checkpoint, CheckpointLoadStatus, CheckpointOptions,
                                             InitializationOnlyStatus)
from kerasckpt.checkpoint.bundle import CheckpointReader
from kerasckpt.checkpoint.graph import ObjectGraph
from kerasckpt.checkpoint.inspect import list_variables, load_checkpoint, load_variable
from kerasckpt.checkpoint.manager import CheckpointManager
from kerasckpt.checkpoint.name_based import init_from_checkpoint
from kerasckpt.checkpoint.state import CheckpointState, latest_checkpoint, resolve_checkpoint

__all__ = ["Checkpoint", "CheckpointManager", "CheckpointOptions", "CheckpointLoadStatus", "InitializationOnlyStatus",
           "CheckpointReader", "CheckpointState", "ObjectGraph", "latest_checkpoint", "list_variables",
           "load_variable", "load_checkpoint", "init_from_checkpoint", "save_weights_native", "load_weights_native"]


def _roots(model):
    roots = {"model": model}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        roots["optimizer"] = optimizer
    return roots


def save_weights_native(model, path, options=None, storage_options=None):
    """Write `model`'s weights (and its optimizer's state when compiled) to the checkpoint `path`.

    The roots are `model` and `optimizer`, so the file is a regular checkpoint:
    `Checkpoint(model=model).restore(path)` and `list_variables(path)` work on it.

    Args:
        model: a Layer or Model.
        path: the checkpoint prefix (`.index` and `.data-*` are appended); a path or an fsspec URL.
        options: a `CheckpointOptions`.
        storage_options: options of the store a URL names (credentials, endpoint; see fsspec).
    """
    return Checkpoint(**_roots(model)).write(path, options, storage_options=storage_options)


def load_weights_native(model, path, skip_mismatch=False, storage_options=None):
    """Load weights written by `save_weights_native` (or any checkpoint with a `model` root), or by tf.keras 2's
    `save_weights` in the TensorFlow format (the file's root is the model; its optimizer a child).

    The model must be built. Every weight it has must be in the file with the same shape and dtype,
    and every model value in the file must find a built layer, else a `CheckpointMismatchError` (a
    ValueError) is raised and nothing is changed. Optimizer state is restored when the file has it
    and the model is compiled; slots the optimizer has not created yet are assigned when it does.

    Args:
        model: a built Layer or Model.
        path: the checkpoint prefix, or a directory (its latest checkpoint); a path or an fsspec URL.
        skip_mismatch: skip (with a warning) weights that are missing or do not fit, instead of raising.
        storage_options: options of the store a URL names (credentials, endpoint; see fsspec).

    Returns:
        The restore status (already `expect_partial()`).

    Note: like `.weights.h5` (and unlike TensorFlow's `load_weights`, which holds the values of an
    unbuilt model and never checks them), an unbuilt model is refused: build it first.
    """
    path = resolve_checkpoint(path, storage_options)

    def must_be_built():
        if getattr(model, "built", True) is False:
            raise ValueError(f"Model '{model.name}' is not built yet, so it has no weights to load {path!r} into. "
                             "Call the model on a batch of data or call model.build(input_shape) first.")
    ckpt = Checkpoint(**_roots(model))
    weights = {id(w) for w in getattr(model, "weights", [])}
    required = [(f"model/{p}", obj) for p, obj in ObjectGraph(model).state_objects() if id(obj) in weights]

    def root_of(nodes):  # tf.keras's save_weights: the file's root is the model itself (its optimizer a child)
        return ckpt if any(name == "model" for name, _ in nodes[0].get("children", [])) else model
    return ckpt._restore(path, skip_mismatch=skip_mismatch, required=required, check=must_be_built,
                         root_of=root_of, storage_options=storage_options).expect_partial()
