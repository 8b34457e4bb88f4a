"""Name-based restores, for checkpoints without an object graph (TensorFlow 1's `Saver`, keyed by variable
names): `init_from_checkpoint`, and the fallback of `Checkpoint.restore` matching variables by `.path`."""
import difflib
import gc
from collections.abc import Mapping

import numpy as np

from kerasckpt.checkpoint.graph import SLOT_MARK, ObjectGraph, is_checkpointable
from kerasckpt.errors import CheckpointMismatchError
from kerasckpt.variables import Variable, live_variables

_MAX_LISTED = 20


def name_based_nodes(root, keys):
    """The graph of `root` itself in the form the restore code walks, each Variable keyed by its `.path`
    when the checkpoint holds that name (TensorFlow's fallback for checkpoints without an object graph)."""
    keys = set(keys)
    nodes = []
    for node in ObjectGraph(root).nodes:
        entry = {"kind": node.kind}
        if node.children:
            entry["children"] = [[name, index] for name, index in node.children.items()]
        if isinstance(node.obj, Variable) and node.obj.path in keys:
            entry["key"] = node.obj.path
        nodes.append(entry)
    return nodes


def init_from_checkpoint(ckpt_dir_or_file, assignment_map, storage_options=None):
    """Assign variables from a checkpoint by name, as `tf.compat.v1.train.init_from_checkpoint` does.

    Keys are names in the checkpoint (`list_variables` shows them) or scopes ending in `/` (`"/"` is
    the checkpoint's root); values are a Variable, a list of Variables (the partitions of one tensor,
    split along the first axis), a model, layer or other trackable (its variables named by their paths
    inside it, `dense_1/kernel`, as in kerasckpt's checkpoints), or a name or scope of live Variables'
    `.path`s (`"bert/"`). A scope maps every variable under it: `{"bert/": model}` assigns
    `bert/dense_1/kernel` to `model`'s `dense_1/kernel`.

    Args:
        ckpt_dir_or_file: a checkpoint prefix, or a directory (its latest checkpoint); a path or an fsspec URL.
        assignment_map: a dict, or a list of `(name in checkpoint, target)` pairs.
        storage_options: options of the store a URL names (credentials, endpoint; see fsspec).

    Example:
        init_from_checkpoint("model.ckpt-1000", {"bert/encoder/": encoder, "cls/dense/kernel": head.kernel})

    Note: values are assigned at once (TensorFlow waits for the initializers to run) and only when every
    one of them fits: a missing name, a shape or dtype that differs (TensorFlow changes the variable's
    dtype), a scope without variables or an unbuilt model raise a `ValueError` and change nothing.
    """
    from kerasckpt.checkpoint.inspect import load_checkpoint
    pairs = list(assignment_map.items()) if isinstance(assignment_map, Mapping) else list(assignment_map)
    with load_checkpoint(ckpt_dir_or_file, storage_options) as reader:
        path = reader.prefix
        known = set(reader.keys())
        plan, problems = [], []  # plan: (checkpoint key, [variables]); several variables: its partitions
        for name, target in sorted(pairs, key=lambda pair: pair[0]):
            for key, variables in _targets(name, target, known, path):
                plan.append((key, variables))
        for key, variables in plan:
            problem = _mismatch(key, variables, reader)
            if problem:
                problems.append(problem)
        if problems:
            raise CheckpointMismatchError(
                f"init_from_checkpoint cannot assign {len(problems)} value(s) of checkpoint '{path}':\n  "
                + "\n  ".join(problems[:_MAX_LISTED]) + ("\n  ..." if len(problems) > _MAX_LISTED else "")
                + "\nNo variable was changed. Map each name to a variable of the saved shape and dtype "
                "(list_variables(path) shows them).")
        values = {key: reader.read(key) for key, _ in plan}  # every checksum verified before any assignment
    for key, variables in plan:
        start = 0
        for variable in variables:
            rows = variable.shape[0] if len(variables) > 1 else None
            variable.assign(values[key] if rows is None else values[key][start:start + rows])
            start += rows or 0


def _targets(name, target, known, path):
    """`[(checkpoint key, [variables])]` for one entry of the assignment map."""
    if isinstance(target, Variable):
        return [(_key(name, known, path), [target])]
    if isinstance(target, (list, tuple)) and target and all(isinstance(v, Variable) for v in target):
        return [(_key(name, known, path), list(target))]
    if isinstance(target, str):
        found = _live(lambda v: v.path == target)
        if found:
            return [(_key(name, known, path), found)]
        scope = target[:target.rindex("/")] if "/" in target else ""
        candidates = _live(lambda v: not scope or v.path.startswith(scope + "/"))
        if not candidates:
            raise ValueError(f"init_from_checkpoint: no Variable has the path {target!r} or lies in the scope "
                             f"{scope + '/' if scope else '/'!r}. Create (build) the model first, or pass the Variable "
                             "or model itself as the value.")
        pairs = [(v.path[len(scope):][0 if target == "/" else 1:], v) for v in candidates]
        return _scope(name, target, pairs, known, path)
    if is_checkpointable(target):
        if getattr(target, "built", True) is False:
            raise ValueError(f"init_from_checkpoint: '{getattr(target, 'name', target)}' is not built yet, so it has "
                             "no variables to assign. Build it first (call it on a batch, or build(input_shape)).")
        pairs = [(node.path, node.obj) for node in ObjectGraph(target).nodes
                 if isinstance(node.obj, Variable) and node.key is not None and SLOT_MARK not in node.path]
        if not pairs:
            raise ValueError(f"init_from_checkpoint: {target!r} holds no variables to assign.")
        return _scope(name, getattr(target, "name", type(target).__name__), pairs, known, path)
    raise TypeError(f"init_from_checkpoint: the value for {name!r} must be a Variable, a list of Variables, a model "
                    f"or layer, or a name of variables. Received: {target!r} of type {type(target).__name__}.")


def _scope(name, target, pairs, known, path):
    if not name.endswith("/"):
        raise ValueError(f"Assignment map with scope only name {target!r} should map to scope only {name!r}. "
                         "Should be 'scope/': 'other_scope/' (or 'scope/': model).")
    out = []
    for relative, variable in sorted(pairs, key=lambda pair: pair[0]):
        full = relative if name == "/" else name + relative
        out.append((_key(full.rstrip("/"), known, path, f" ({relative} in {name})"), [variable]))
    return out


def _key(name, known, path, where=""):
    if name in known:
        return name
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise CheckpointMismatchError(f"Tensor {name!r}{where} is not found in checkpoint '{path}'.{hint} "
                                  "list_variables(path) shows every name.")


def _mismatch(key, variables, reader):
    shape, dtype = tuple(reader.shape(key)), reader.dtype(key)
    paths = ", ".join(f"'{v.path}'" for v in variables)
    if len(variables) == 1:
        have = tuple(variables[0].shape)
    else:
        have = (sum(v.shape[0] for v in variables),) + tuple(variables[0].shape[1:])
        if any(tuple(v.shape[1:]) != have[1:] for v in variables):
            return f"'{key}': the partitions {paths} differ beyond their first axis"
    if have != shape:
        return f"'{key}': the checkpoint holds shape {shape} but {paths} {'has' if len(variables) == 1 else 'have'} " \
               f"shape {have}"
    wrong = [v for v in variables if dtype is None or np.dtype(v.dtype) != np.dtype(dtype)]
    if wrong:
        return f"'{key}': the checkpoint holds {dtype} but '{wrong[0].path}' is {wrong[0].dtype}"
    return None


def _live(keep):
    """The live Variables `keep(v)` selects; none of them may share a path (as TF1's names are unique)."""
    found = [v for v in live_variables() if keep(v)]
    if len({v.path for v in found}) < len(found):
        gc.collect()  # variables of models that are gone but not yet collected
        found = [v for v in live_variables() if keep(v)]
    paths = [v.path for v in found]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise ValueError(f"init_from_checkpoint: several live Variables have the path {twice[0]!r} (and "
                         f"{len(twice) - 1} more paths), so a name cannot choose between them. Pass the Variable "
                         "(or its model) itself as the value.")
    return found
