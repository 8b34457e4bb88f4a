"""Checkpoint: save trackable objects by their paths in the object graph and restore them, now or
when they are created (deferred restoration); the restore statuses and their assertions.
"""
import difflib
import os
import threading
import warnings
import weakref
from collections import deque

import numpy as np

from kerasckpt import _background, _storage, tracking
from kerasckpt._background import BackgroundWriter, PreparedSave
from kerasckpt.checkpoint import bundle, trackable_graph
from kerasckpt.checkpoint.graph import (SEED_FIELDS, SLOT_MARK, ObjectGraph, aliases_of, children_of, is_checkpointable,
                                        slot_names, slots_of)
from kerasckpt.checkpoint.name_based import name_based_nodes
from kerasckpt.checkpoint.state import write_plain_state
from kerasckpt.checkpoint.trackable_graph import GRAPH_KEY, VALUE_SUFFIX
from kerasckpt.errors import CheckpointFormatError, CheckpointIsADirectoryError, CheckpointMismatchError
from kerasckpt.random import SeedGenerator
from kerasckpt.tracking import Trackable
from kerasckpt.variables import Variable

_MAX_LISTED = 20
_NOT_VALUES = frozenset({GRAPH_KEY, bundle.KERASCKPT_KEY})  # entries that describe a checkpoint, not values


class CheckpointOptions:
    """Options for `Checkpoint.save` / `write` and `CheckpointManager`.

    Args:
        max_shard_size: the largest data file in bytes; values continue in the next file
            (`prefix.data-00001-of-00003`, ...). None (default): one data file.
        save_in_background: copy the values in memory (the only time the caller waits) and write the
            files on a writer thread; `save()`/`write()` return at once. One save is in flight at a
            time per Checkpoint: the next one waits for it. A failed write raises at the next save,
            restore or `wait_until_finished()`. The same keyword as `ModelCheckpoint` and
            `BackupAndRestore(save_in_background=True)`.
        enable_async: TensorFlow's name for `save_in_background` (also accepted as
            `experimental_enable_async_checkpoint`).

    Note: unlike TensorFlow's async checkpoints, the state file and `CheckpointManager` retention
    advance only once the files are complete, and a failed background write is never lost: it is
    raised in the saving thread, or printed at exit if nobody asked.
    """

    def __init__(self, max_shard_size=None, save_in_background=False, enable_async=False,
                 experimental_enable_async_checkpoint=False):
        if max_shard_size is not None and (not isinstance(max_shard_size, int) or max_shard_size < 1):
            raise ValueError(f"`max_shard_size` must be a positive number of bytes or None. "
                             f"Received: max_shard_size={max_shard_size!r}")
        self.max_shard_size = max_shard_size
        self.save_in_background = bool(save_in_background or enable_async or experimental_enable_async_checkpoint)


def in_background(options):
    """Whether `options` (a CheckpointOptions or None) asks to save in the background."""
    return bool(getattr(options, "save_in_background", False))


def prepare_checkpoint_write(prefix, graph, metadata=None, max_shard_size=None, then=None, storage_options=None,
                             exclusive=False):
    """A PreparedSave of every value of `graph` at `prefix`; the graph and metadata are fixed now.

    `then(prefix)` runs after the files are complete (e.g. to record them in a state file). On a store
    (`prefix` an fsspec URL) `exclusive` refuses a prefix that exists already (a new numbered checkpoint).
    """
    prefix = _storage.normalize(prefix)
    if not _storage.basename(prefix) or prefix.endswith(("/", os.sep)):
        raise ValueError(f"Checkpoint prefix {prefix!r} ends with a path separator. Pass a file prefix such as "
                         f"{_storage.join(prefix, 'ckpt')!r}.")
    if _storage.is_directory_in_the_way(prefix + ".index", storage_options):
        raise CheckpointIsADirectoryError(f"Cannot write checkpoint '{prefix}': '{prefix}.index' is a directory. "
                                          "Choose another prefix or remove that directory.")
    keys, arrays, seen = [], [], set()
    for node in graph.value_nodes():
        if node.key in seen:
            raise ValueError(f"Two objects of this Checkpoint have the same path '{node.key}'. Rename one of "
                             "the attributes or roots.")
        seen.add(node.key)
        value = node.value()
        if np.asarray(value).dtype.kind not in "biufc":
            raise TypeError(f"Cannot checkpoint '{node.key}': dtype {np.asarray(value).dtype} is not numeric. Only "
                            "numeric and bool values are stored; keep other state out of Variables.")
        keys.append(node.key + VALUE_SUFFIX)
        arrays.append(value)
    # Fixed now, with the values: TensorFlow's object graph, and kerasckpt's own (its keys without the suffix)
    own = graph.to_json()
    extra = [(bundle.GRAPH_KEY, _tensorflow_graph(graph, own)),
             (bundle.KERASCKPT_KEY, bundle.kerasckpt_record(own, metadata))]

    def write(values):
        bundle.write_bundle(prefix, list(zip(keys, values)) + extra, max_shard_size=max_shard_size,
                            storage_options=storage_options, exclusive=exclusive)
        if then is not None:
            then(prefix)
        return prefix
    return PreparedSave(arrays, write, [prefix])


_tf_graphs = []  # [(kerasckpt graph as text, weak references to its objects, TensorFlow graph bytes)], newest last
_TF_GRAPHS_KEPT = 4
_tf_graphs_lock = threading.Lock()


def _tensorflow_graph(graph, own):
    """`trackable_graph.from_object_graph(graph)`, reused from an earlier save of the same objects.

    TensorFlow's graph (with every alias edge) takes milliseconds to build, more than copying the values
    of a small model: a save of the same objects with the same kerasckpt graph (paths, kinds, children,
    slots; `own` is `graph.to_json()`) reuses the bytes. The root and plain lists and dicts are compared by
    their place in `own` only: savers make a new `Checkpoint` (or roots dict) around the same model each time.
    """
    text = repr(own)
    objects = [n.obj for n in graph.nodes[1:] if not isinstance(n.obj, (list, tuple, dict))]  # (lists: in `own`)
    with _tf_graphs_lock:
        for known, refs, data in _tf_graphs:
            if known == text and len(refs) == len(objects) and all(r() is o for r, o in zip(refs, objects)):
                return data
    data = trackable_graph.from_object_graph(graph)
    try:
        refs = [weakref.ref(o) for o in objects]
    except TypeError:  # an object that cannot be weakly referenced: nothing is kept
        return data
    with _tf_graphs_lock:
        _tf_graphs.append((text, refs, data))
        del _tf_graphs[:-_TF_GRAPHS_KEPT]
    return data


class Checkpoint(Trackable):
    """Save and restore trackable objects (models, layers, optimizers, metrics, Variables) by path.

    Each keyword names a root; a value's key is its path of attribute names from a root
    (`model/dense_1/kernel`, `optimizer/iterations`). `save()` numbers checkpoints with the tracked
    `save_counter`; `restore()` applies values to existing variables at once and holds the others
    until their variables are created (an unbuilt layer, an optimizer's slots before its first step).

    Args:
        **kwargs: the roots: Variables, Trackables, other Checkpoints, or dicts and lists of these.

    Example:
        ckpt = Checkpoint(model=model, optimizer=optimizer, step=Variable(0))
        path = ckpt.save("run/ckpt")           # "run/ckpt-1"
        Checkpoint(model=new_model).restore(path).expect_partial()

    Note: slots are keyed by the path of their variable (TensorFlow keys them by position); a restore
    that fails (damaged file, wrong shape or dtype) changes no variable (TensorFlow's is partial);
    files are written under temporary names, fsynced and renamed, data before index.
    """

    def __init__(self, **kwargs):
        object.__setattr__(self, "_roots", {})
        object.__setattr__(self, "_save_counter", None)
        for name, value in kwargs.items():
            self._add_root(name, value)

    def _add_root(self, name, value):
        if name == "save_counter":
            raise ValueError("`save_counter` is the Checkpoint's own counter and cannot name a root. Choose "
                             "another keyword, e.g. Checkpoint(step=...).")
        if not is_checkpointable(value):
            raise ValueError(
                f"`Checkpoint` was expecting {name} to be a trackable object (a Variable, Layer, Model, Optimizer, "
                f"Metric, SeedGenerator, another Checkpoint, or a dict or list of these), got {value!r}. Wrap "
                f"plain numbers in a Variable: Checkpoint({name}=Variable({value!r})).")
        self._roots[name] = value

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        self._add_root(name, value)
        tracking.child_created(self, name, value)

    def __getattr__(self, name):
        roots = self.__dict__.get("_roots", {})
        if name in roots:
            return roots[name]
        raise AttributeError(f"'Checkpoint' object has no root {name!r}. Roots: {sorted(roots)}.")

    def _trackable_children(self):
        children = dict(self._roots)
        if self._save_counter is not None:
            children["save_counter"] = self._save_counter
        return children

    @property
    def save_counter(self):
        """The number of `save()` calls, an int64 Variable saved with the checkpoint (created on first use)."""
        self._maybe_create_save_counter()
        return self._save_counter

    def _maybe_create_save_counter(self):
        if self._save_counter is None:
            counter = Variable(0, dtype="int64", trainable=False, name="save_counter")
            object.__setattr__(self, "_save_counter", counter)
            tracking.child_created(self, "save_counter", counter)

    # ------------------------------------------------------------------ writing
    def _writer(self):
        """The one background writer of this Checkpoint (shared with its CheckpointManagers)."""
        writer = self.__dict__.get("_bg_writer")
        if writer is None:
            writer = BackgroundWriter("Checkpoint")
            object.__setattr__(self, "_bg_writer", writer)
        return writer

    def _prepare_write(self, prefix, options=None, then=None, storage_options=None, exclusive=False):
        metadata = {"save_counter": None if self._save_counter is None else int(self._save_counter._value)}
        return prepare_checkpoint_write(prefix, ObjectGraph(self), metadata,
                                        max_shard_size=getattr(options, "max_shard_size", None), then=then,
                                        storage_options=storage_options, exclusive=exclusive)

    def wait_until_finished(self):
        """Wait until no background save of this Checkpoint is in flight; raise the error of a failed one."""
        writer = self.__dict__.get("_bg_writer")
        if writer is not None:
            writer.wait()

    def sync(self):
        """TensorFlow's name for `wait_until_finished()`."""
        self.wait_until_finished()

    def write(self, file_prefix, options=None, storage_options=None):
        """Write exactly `file_prefix` (`.index` + `.data-*`), without numbering or a state file.

        Args:
            file_prefix: the path prefix (str or `pathlib.Path`), or an fsspec URL (`s3://bucket/run/ckpt`);
                parent directories are created.
            options: a `CheckpointOptions`; with `save_in_background=True` the values are copied now
                and written on a writer thread (see `wait_until_finished()`).
            storage_options: options of the store a URL names (credentials, endpoint; see fsspec).

        Returns:
            `file_prefix` as a string.
        """
        prefix = _storage.normalize(file_prefix)
        self.wait_until_finished()
        prepared = self._prepare_write(prefix, options, storage_options=storage_options)
        if in_background(options):
            self._writer().submit(prepared)
        else:
            prepared.write()
        return prefix

    def save(self, file_prefix, options=None, storage_options=None):
        """Write `file_prefix-N` with N = `save_counter` + 1, and record it in the directory's state file.

        Args:
            file_prefix: the path prefix, or an fsspec URL; the number is appended (`run/ckpt` -> `run/ckpt-3`).
            options: a `CheckpointOptions`; with `save_in_background=True` this returns once the values
                are copied, and the files and the state file are written on a writer thread.
            storage_options: options of the store a URL names (credentials, endpoint; see fsspec).

        Returns:
            The path of the new checkpoint (a str).

        Note: the `checkpoint` state file is replaced atomically after the checkpoint is complete (in
        the background too); use `CheckpointManager` to keep several checkpoints and delete old ones.
        """
        prefix = _storage.normalize(file_prefix)
        self.wait_until_finished()
        counter = self.save_counter
        number = int(counter._value) + 1
        counter.assign(number)
        try:
            prepared = self._prepare_write(f"{prefix}-{number}", options, storage_options=storage_options,
                                           then=lambda path: write_plain_state(path, storage_options))
            if in_background(options):  # a failure shows later; its number stays used
                self._writer().submit(prepared)
            else:
                prepared.write()
        except BaseException:
            counter.assign(number - 1)
            raise
        return f"{prefix}-{number}"

    # ------------------------------------------------------------------ restoring
    def restore(self, save_path, options=None, storage_options=None):
        """Restore values from `save_path`; returns a status to check what was matched.

        Values of objects that exist are assigned at once; the others are held and assigned when
        their variables are created. `save_counter` is created first, as in TensorFlow. TensorFlow's
        checkpoints restore by their object graph too (tf.keras's and Keras 3's names included); one
        without a graph (TensorFlow 1's `Saver`) by each variable's `.path`.

        Args:
            save_path: a checkpoint prefix (from `save()`, `latest_checkpoint()`, ...), a path or an
                fsspec URL; None gives a status whose assertions raise (so
                `restore(manager.latest_checkpoint)` is safe).
            options: unused; accepted for TensorFlow compatibility.
            storage_options: options of the store a URL names (credentials, endpoint; see fsspec).

        Note: the whole restore is verified first (checksums, shapes, dtypes) and only then
        assigned: a failing restore changes no variable. A held value that does not fit fails the
        build that creates its variable as a whole, listing every such value: the layers stay
        unbuilt, no variable changes and the values stay held (TensorFlow assigns half, keeps the
        half-built layer and duplicates its variables on the next call). Optimizer slots are matched to
        their variables by what the checkpoint records, never by position (TensorFlow's are positional).
        """
        if save_path is None:
            return InitializationOnlyStatus()
        self._maybe_create_save_counter()
        return bundle.read_again_if_replaced(lambda: self._restore(save_path, storage_options=storage_options))

    def _wait_for(self, save_path):
        self.wait_until_finished()
        _background.wait_for_paths([save_path])

    def read(self, save_path, options=None, storage_options=None):
        """Like `restore()`, without creating `save_counter` (its value is held until it exists).

        Args:
            save_path: a checkpoint prefix, typically from `write()`; a path or an fsspec URL.
            options: unused; accepted for TensorFlow compatibility.
            storage_options: options of the store a URL names (credentials, endpoint; see fsspec).
        """
        if save_path is None:
            return InitializationOnlyStatus()
        return bundle.read_again_if_replaced(lambda: self._restore(save_path, storage_options=storage_options))

    def _restore(self, save_path, skip_mismatch=False, required=None, check=None, root_of=None, storage_options=None):
        """Restore into this Checkpoint, or into `root_of(nodes)` (the object the checkpoint's root stands for)."""
        self._wait_for(_storage.normalize(save_path))  # a background save of it may be in flight
        with bundle.CheckpointReader(save_path, storage_options) as reader:
            if check is not None:  # after the file opened: a missing or damaged file is reported first
                check()
            nodes = restore_graph(reader)
            name_based = nodes is None  # no object graph (TensorFlow 1's Saver): match variables by path
            root = self if root_of is None or name_based else root_of(nodes)
            if name_based:
                nodes = name_based_nodes(root, reader.keys())
            session = _Restoration(reader, nodes, name_based=name_based)
            try:
                session.restore_root(root, reader, skip_mismatch=skip_mismatch, required=required)
            except BaseException:
                session.state.expect_partial = True  # nothing was restored: nothing to warn about later
                raise
        return CheckpointLoadStatus(session, root)


# ---------------------------------------------------------------------------------------------- restoring
class _State:
    """What a restore used, kept apart from the restoration so the exit warning can read it."""

    def __init__(self, path, keys, trivial, name_based=False):
        self.path, self.keys, self.trivial, self.name_based = path, keys, trivial, name_based
        self.consumed = set()
        self.held = set()   # keys waiting for their objects
        self.expect_partial = False

    def unused(self):
        return [k for k in self.keys if k not in self.consumed]

    @staticmethod
    def report(state):
        if state.expect_partial or state.name_based:  # by name, as TensorFlow: other names are no concern
            return
        unused = state.unused()
        if not unused:
            return
        lines = [f"Checkpoint '{state.path}' is being deleted with {len(unused)} restored values that no object "
                 "used. To silence this warning, call `status.expect_partial()` on the status restore() returned."]
        lines += [f"  Value in checkpoint not used: {k}" + ("  (held for an object never created)"
                                                            if k in state.held else _tf_only(k)) for k in unused]
        try:
            warnings.warn("\n".join(lines), UserWarning, stacklevel=1)
        except Exception:  # noqa: BLE001  interpreter shutting down
            pass


class _Plan:
    def __init__(self):
        self.assign = []     # (target, key, node index); target: Variable or (SeedGenerator, field)
        self.holds = []      # (parent, child name, node index)
        self.optimizers = []  # (optimizer, node index)
        self.slot_holds = []  # (optimizer, node index)
        self.slots_done = []  # (optimizer node index, slot node index)
        self.var_node = {}   # id(program variable) -> node index
        self.skipped = []    # assignments dropped by skip_mismatch
        self.keep = []


class _HeldChild:
    __slots__ = ("session", "node")

    def __init__(self, session, node):
        self.session, self.node = session, node

    def apply(self, parent, name, value):
        self.session.apply_child(value, self.node)


class _HeldSlots:
    __slots__ = ("session", "node", "__weakref__")

    def __init__(self, session, node):
        self.session, self.node = session, node

    def apply_slot(self, optimizer, slot_name, reference, slot):
        return self.session.apply_slot(self, optimizer, slot_name, reference, slot)


def restore_graph(reader):
    """The object graph of the checkpoint `reader` reads, as the restore code walks it (see `_Restoration`).

    kerasckpt's own index stores it; a TensorFlow checkpoint has it in `_CHECKPOINTABLE_OBJECT_GRAPH`; a
    name-based one (TensorFlow 1's `Saver`) has none: None.
    """
    nodes = getattr(reader, "nodes", None)
    if nodes is not None:
        return nodes
    data = getattr(reader, "object_graph", None)
    if data is None:
        return None
    try:
        graph = trackable_graph.parse(data)
    except trackable_graph.GraphFormatError as e:
        raise CheckpointFormatError(f"Checkpoint '{reader.prefix}' has an unreadable object graph: {e}. It was not "
                                    "written by TensorFlow or kerasckpt; list_variables(path) still shows its "
                                    "values.") from None
    known = set(reader.keys())
    missing = [n.value_key() for n in graph if n.value_key() and n.value_key() not in known]
    if missing:
        raise CheckpointFormatError(f"Checkpoint '{reader.prefix}' is inconsistent: its object graph names "
                                    f"{len(missing)} value(s) the index does not hold ({', '.join(missing[:3])}). "
                                    "Restore an earlier checkpoint.")
    return trackable_graph.restore_nodes(graph, {n.value_key(): reader.shape(n.value_key()) for n in graph
                                                 if n.value_key()})


def _can_hold(obj, name):
    """Whether `obj` may still gain the child `name` (so a value for it is worth holding)."""
    if isinstance(obj, Checkpoint):
        return name == "save_counter"  # roots set later are not waited for: a partial restore stays cheap
    if isinstance(obj, (Variable, SeedGenerator, list, tuple, dict)) or callable(getattr(obj, "slot_variables", None)):
        return False  # an optimizer's slots are matched to their variables, never held by position
    return isinstance(obj, Trackable) and getattr(obj, "built", None) is False


def _shape_dtype(target):
    if isinstance(target, tuple):
        return (), np.dtype(np.int64)
    return target._value.shape, target._value.dtype


class _Restoration:
    """One restore of one checkpoint file: plans, verifies, assigns, and serves the held values."""

    def __init__(self, reader, nodes, name_based=False):
        self.path = reader.prefix
        self.name_based = name_based
        self.nodes = nodes
        own = getattr(reader, "nodes", None) is nodes  # kerasckpt's graph: its keys are the values to restore
        keys = [n["key"] for n in nodes if "key" in n]
        self.meta = {k: (reader.dtype(k), reader.shape(k)) for k in keys}
        trivial = set()
        for node in self.nodes:
            if node.get("kind") == "Checkpoint":
                for name, index in node.get("children", []):
                    if name == "save_counter" and "key" in self.nodes[index]:
                        trivial.add(self.nodes[index]["key"])
        if not own:  # a TensorFlow graph, or none: every entry is named (TensorFlow-only values too)
            keys = [k for k in reader.keys() if k not in _NOT_VALUES]
        self.state = _State(self.path, keys, trivial, name_based)
        self.held = {}  # key -> [array, number of holds needing it]
        self.obj_node = weakref.WeakKeyDictionary()  # program Variable -> checkpoint node index
        self.matched = weakref.WeakSet()  # program Variables and SeedGenerators that got a value
        self.slot_pending = {}  # optimizer node index -> set of slot node indices not applied yet
        self._slot_entries = {}  # optimizer node index -> its _HeldSlots
        self._tables = {}  # optimizer node index -> its slot lookup tables
        weakref.finalize(self, _State.report, self.state)

    # ------------------------------------------------------------------ planning
    def _plan(self, obj, index):
        plan = _Plan()
        queue, seen, bound, candidates = deque([(obj, index)]), set(), {}, []
        while queue:
            obj, index = queue.popleft()
            if id(obj) in seen or bound.get(index, obj) is not obj:
                continue  # each object and each checkpoint node is matched once: the shallowest edge wins
            seen.add(id(obj))
            bound[index] = obj
            plan.keep.append(obj)
            node = self.nodes[index]
            key = node.get("key")
            if key is not None:
                if isinstance(obj, Variable):
                    plan.assign.append((obj, key, index))
                    plan.var_node[id(obj)] = index
                continue
            children = node.get("children", [])
            if isinstance(obj, SeedGenerator):
                for name, child in children:
                    if name in SEED_FIELDS and self.nodes[child].get("key") is not None:
                        plan.assign.append(((obj, name), self.nodes[child]["key"], child))
                continue
            program, aliased = children_of(obj), False
            for name, child in children:
                if name not in program and not aliased:  # TensorFlow's and Keras's names for the same children
                    program.update(aliases_of(obj, program))
                    aliased = True
                if name in program:
                    queue.append((program[name], child))
                elif _can_hold(obj, name):
                    candidates.append((obj, name, child))
            if node.get("slots") or node.get("unresolved_slots"):
                plan.optimizers.append((obj, index))
        # A node reached through another edge (tf.keras's `layer-1` beside `layer_with_weights-0`) waits for
        # nothing, and neither does one without values.
        plan.holds = [h for h in candidates if h[2] not in bound and self._subtree_keys(h[2])]
        for optimizer, index in plan.optimizers:
            self._plan_slots(plan, optimizer, index)
        return plan

    def _slot_tables(self, index):
        tables = self._tables.get(index)
        if tables is None:
            by_ref, by_path = {}, {}
            for ref_index, ref_path, slot_name, slot_index in self.nodes[index].get("slots", []):
                if ref_index is not None:
                    by_ref.setdefault((ref_index, slot_name), slot_index)
                by_path.setdefault((ref_path, slot_name), slot_index)
            tables = self._tables[index] = (by_ref, by_path)
        return tables

    def _find_slot(self, index, optimizer, reference, slot_name, var_node=None):
        by_ref, by_path = self._slot_tables(index)
        ref_index = (var_node or {}).get(id(reference))
        if ref_index is None:
            ref_index = self.obj_node.get(reference)
        for name in slot_names(optimizer, slot_name):  # kerasckpt's name, Keras's list, tf.keras's legacy name
            if ref_index is not None:
                found = by_ref.get((ref_index, name))
            else:  # the variable is not reachable through this restore: match by its Variable.path
                found = by_path.get((getattr(reference, "path", None), name))
            if found is not None:
                return found
        return None

    def _plan_slots(self, plan, optimizer, index):
        unresolved = self.nodes[index].get("unresolved_slots")
        if unresolved and hasattr(optimizer, "slot_variables"):
            raise CheckpointMismatchError(
                f"Cannot restore the optimizer state of checkpoint '{self.path}': the checkpoint does not say which "
                f"variable {len(unresolved)} slot(s) belong to, and kerasckpt does not guess from positions:\n  "
                + "\n  ".join(unresolved[:_MAX_LISTED]) + "\nNo variable was changed. Restore the model alone "
                "(e.g. Checkpoint(model=model) or a Checkpoint without the optimizer) and let the optimizer start "
                "fresh.")
        pending = self.slot_pending.setdefault(
            index, {s[3] for s in self.nodes[index].get("slots", [])})
        for slot_name, reference, slot in slots_of(optimizer):
            slot_index = self._find_slot(index, optimizer, reference, slot_name, plan.var_node)
            if slot_index is not None and slot_index in pending and isinstance(slot, Variable):
                plan.assign.append((slot, self.nodes[slot_index]["key"], slot_index))
                plan.slots_done.append((index, slot_index))
        if len(pending) > len([d for d in plan.slots_done if d[0] == index]):
            plan.slot_holds.append((optimizer, index))

    def _subtree_keys(self, index, out=None, seen=None):
        out = set() if out is None else out
        seen = set() if seen is None else seen
        stack = [index]
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            node = self.nodes[i]
            if node.get("key") is not None:
                out.add(node["key"])
            stack.extend(c for _, c in node.get("children", []))
            stack.extend(s[3] for s in node.get("slots", []))
        return out

    def _problems(self, plan):
        """`(problems, fitting)`: a line per assignment of `plan` whose shape or dtype differs, and the rest."""
        problems, keep = [], []
        for target, key, index in plan.assign:
            dtype, shape = self.meta[key]
            have_shape, have_dtype = _shape_dtype(target)
            if getattr(target, "any_shape", False):  # a state whose length varies (a DatasetIterator's)
                have_shape = shape
            if tuple(shape) != tuple(have_shape) or dtype.newbyteorder("=") != have_dtype:
                name = target[0].__class__.__name__ + "." + target[1] if isinstance(target, tuple) else \
                    f"variable '{target.path}'"
                problems.append(f"'{key}': the checkpoint holds shape {tuple(shape)} {dtype.newbyteorder('=')} "
                                f"but {name} has shape {tuple(have_shape)} {have_dtype}")
            else:
                keep.append((target, key, index))
        return problems, keep

    def _mismatch_error(self, problems, source="", action=None):
        listed = "\n  ".join(problems[:_MAX_LISTED])
        more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        action = action or ("No variable was changed. Restore into objects built like the saved ones (same layer "
                            "sizes and dtypes), or restore the matching part only: "
                            "Checkpoint(model=Checkpoint(dense_1=layer)).")
        return CheckpointMismatchError(
            f"Cannot restore {len(problems)} value(s) of checkpoint '{self.path}'{source}:\n  {listed}{more}\n"
            + action)

    def _held_mismatch_error(self, problems):
        return self._mismatch_error(
            problems, " (values held since restore(), applied now that the objects exist)",
            "Nothing was built and no variable was changed: the layers are unbuilt again and the values stay "
            "held, so the same call fails the same way. Build the layers with the input shapes and sizes they were "
            "saved with.")

    def _check(self, plan, skip_mismatch):
        problems, keep = self._problems(plan)
        if problems and not skip_mismatch:
            raise self._mismatch_error(problems)
        if problems:
            warnings.warn(f"Skipped {len(problems)} value(s) of checkpoint '{self.path}' whose shape or dtype does "
                          "not match (skip_mismatch=True):\n  " + "\n  ".join(problems), stacklevel=4)
            plan.skipped = [t for t in plan.assign if t not in keep]
            plan.assign = keep

    # ------------------------------------------------------------------ applying
    def _commit(self, plan, value_of):
        in_build = tracking.active_transaction() is not None  # only then can these assignments be undone
        for target, key, index in plan.assign:
            value = value_of(key)
            if isinstance(target, tuple):
                generator, field = target
                if in_build:
                    tracking.on_rollback(lambda g=generator, f=field, old=getattr(generator, field): setattr(g, f, old))
                setattr(generator, field, int(value))
                self.matched.add(generator)
            else:
                if in_build and not tracking.created_in_transaction(target):  # a new one is dropped by a rollback
                    tracking.on_rollback(lambda v=target, old=target.numpy(): v.assign(old))  # copies: only here
                target.assign(value)
                self.matched.add(target)
                self.obj_node[target] = index
            self.state.consumed.add(key)
        for opt_index, slot_index in plan.slots_done:
            self.slot_pending.get(opt_index, set()).discard(slot_index)

    def _hold(self, plan, reader=None):
        """Register the holds of `plan`; values come from `reader` (new) or are already held."""
        for parent, name, index in plan.holds:
            self._retain(self._subtree_keys(index), reader)
            tracking.hold_child(parent, name, _HeldChild(self, index))
        done = {}
        for opt_index, slot_index in plan.slots_done:
            done.setdefault(opt_index, set()).add(slot_index)
        for optimizer, index in plan.slot_holds:
            entry = self._slot_entries.get(index)
            if entry is None:
                waiting = self.slot_pending.get(index, set()) - done.get(index, set())
                self._retain({self.nodes[s]["key"] for s in waiting}, reader)
                entry = self._slot_entries[index] = _HeldSlots(self, index)
            tracking.hold_slots(optimizer, entry)

    def _retain(self, keys, reader):
        for key in keys:
            if key in self.held:
                self.held[key][1] += 1
            elif reader is not None:
                self.held[key] = [np.array(reader.view(key), dtype=self.meta[key][0].newbyteorder("=")), 1]
            self.state.held.add(key)

    def _release(self, keys):
        for key in keys:
            entry = self.held.get(key)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del self.held[key]
                    self.state.held.discard(key)

    def _journal(self):
        """Inside a build transaction, record this restoration's bookkeeping to put back on rollback."""
        def take():
            held = {k: list(v) for k, v in self.held.items()}
            consumed, waiting = set(self.state.consumed), set(self.state.held)
            matched, obj_node = list(self.matched), dict(self.obj_node.items())
            pending = {k: set(v) for k, v in self.slot_pending.items()}
            entries = dict(self._slot_entries)

            def undo():
                self.held.clear()
                self.held.update(held)
                self.state.consumed.clear()
                self.state.consumed.update(consumed)
                self.state.held.clear()
                self.state.held.update(waiting)
                self.matched.clear()
                self.matched.update(matched)
                self.obj_node.clear()
                self.obj_node.update(obj_node)
                self.slot_pending.clear()
                self.slot_pending.update(pending)
                self._slot_entries.clear()
                self._slot_entries.update(entries)
            tracking.on_rollback(undo)
        tracking.snapshot_once(self, take)

    def restore_root(self, root, reader, skip_mismatch=False, required=None):
        self._journal()  # a restore run inside a build is undone with it
        plan = self._plan(root, 0)
        self._check(plan, skip_mismatch)
        if required is not None:
            self._check_required(plan, required, skip_mismatch)
        needed = {key for _, key, _ in plan.assign}
        for _, _, index in plan.holds:
            self._subtree_keys(index, needed)
        for _, index in plan.slot_holds:
            for s in self.slot_pending.get(index, ()):
                self._subtree_keys(s, needed)
        reader.verify([k for k in self.state.keys if k in needed])
        self._hold(plan, reader)  # copies first: after this nothing can fail but the assignments
        self._commit(plan, reader.view)

    def _check_required(self, plan, required, skip_mismatch):
        """`load_weights`: every weight in `required` ([(path, Variable)]) gets a value, and no value waits
        for a layer that is not built (it would be applied later, or never, unchecked)."""
        assigned = {id(t[0] if isinstance(t, tuple) else t) for t, _, _ in plan.assign + plan.skipped}
        missing = [p for p, obj in required if id(obj) not in assigned]
        unbuilt = [(parent, name, index) for parent, name, index in plan.holds
                   if not isinstance(parent, Checkpoint) and getattr(parent, "built", None) is False]
        if not missing and not unbuilt:
            return
        taken = {key for _, key, _ in plan.assign + plan.skipped}
        for _, _, index in plan.holds:
            self._subtree_keys(index, taken)
        unused = [k for k in self.state.keys if k not in taken]  # a key another weight took is no suggestion
        lines = [f"{p}{_did_you_mean(p, unused, self.state.keys)}" for p in missing]
        by_layer = {}
        for parent, _, index in unbuilt:
            by_layer.setdefault(id(parent), (parent, set()))[1].update(self._subtree_keys(index))
        for parent, keys in by_layer.values():
            keys = sorted(keys)
            name = getattr(parent, "name", type(parent).__name__)
            lines.append(f"{', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}: layer '{name}' is not "
                         f"built yet, so it has no variables for these {len(keys)} value(s)")
        what = ([f"has no value for {len(missing)} weight(s) of the model"] if missing else []) + (
            [f"holds values for {len(by_layer)} layer(s) that are not built"] if by_layer else [])
        msg = (f"Checkpoint '{self.path}' {' and '.join(what)}:\n  " + "\n  ".join(lines[:_MAX_LISTED])
               + (f"\n  ... and {len(lines) - _MAX_LISTED} more" if len(lines) > _MAX_LISTED else ""))
        if not skip_mismatch:
            raise CheckpointMismatchError(msg + "\nNo variable was changed. Build the whole model (call it on a "
                                          "batch of data) and load a file saved from the same architecture, or pass "
                                          "skip_mismatch=True to load what matches.")
        warnings.warn(msg + "\nThese weights keep their values (skip_mismatch=True).", stacklevel=5)
        plan.holds = [h for h in plan.holds if h not in unbuilt]

    def apply_child(self, obj, index):
        """Apply the held subtree `index` to `obj`, an object that was just created.

        Runs inside a build transaction (see `tracking.transaction`): values that fit are assigned now,
        before any forward pass uses them; those that do not are reported and raised when the outermost
        build ends, which rolls the build back and holds every value again.
        """
        self._journal()
        plan = self._plan(obj, index)
        problems, plan.assign = self._problems(plan)
        if problems:
            tracking.report_problems(self._held_mismatch_error, problems)
        self._hold(plan)
        self._commit(plan, lambda key: self.held[key][0])
        self._release(self._subtree_keys(index))

    def apply_slot(self, entry, optimizer, slot_name, reference, slot):
        index = entry.node
        pending = self.slot_pending.get(index, set())
        slot_index = self._find_slot(index, optimizer, reference, slot_name)
        if slot_index is None or slot_index not in pending:
            return False
        key = self.nodes[slot_index]["key"]
        plan = _Plan()
        plan.assign.append((slot, key, slot_index))
        plan.slots_done.append((index, slot_index))
        problems, _ = self._problems(plan)
        if problems:
            raise self._mismatch_error(
                problems, " (optimizer slot held since restore(), applied now that it exists)",
                "The new slot keeps its initial value. Restore into an optimizer of the saved kind, over variables "
                "of the saved shapes.")
        self._journal()
        self._commit(plan, lambda k: self.held[k][0])
        self._release([key])
        if not pending:
            tracking.release_slots(optimizer, entry)
        return True


# ---------------------------------------------------------------------------------------------- statuses
def _tf_only(key):
    """A note for a value only TensorFlow can restore (a saved tensor other than a variable's value)."""
    marker = f"/{trackable_graph.ATTRIBUTES}/"
    if marker in key and not key.endswith(trackable_graph.VALUE_SUFFIX):
        kind = key.rsplit("/", 1)[-1]
        return (f"  [TensorFlow-only state ({kind}{', a tf.data iterator' if kind.startswith('ITERATOR') else ''}): "
                "kerasckpt cannot restore it; expect_partial() silences this]")
    return ""


def _did_you_mean(name, candidates, fallback=()):
    """`  (did you mean ...)` for the closest of `candidates`, or of `fallback` only when there are none.

    Candidates of the same kind come first: the same root, and a slot only for a slot.
    """
    pool = list(candidates) or list(fallback)
    root, slot = name.split("/", 1)[0], SLOT_MARK in name
    pool = [c for c in pool if c.split("/", 1)[0] == root and (SLOT_MARK in c) == slot] or pool
    # Compared without TensorFlow's `/.ATTRIBUTES/VARIABLE_VALUE` (on either side), shown as they are.
    bare = {_bare(c): c for c in reversed(pool)}
    close = difflib.get_close_matches(_bare(name), list(bare), n=1, cutoff=0.6)
    return f"  (did you mean `{bare[close[0]]}`?)" if close else ""


def _bare(key):
    suffix = trackable_graph.VALUE_SUFFIX
    return key[:-len(suffix)] if key.endswith(suffix) else key


class CheckpointLoadStatus:
    """What `Checkpoint.restore()` / `read()` matched; every assertion returns the status.

    Note: failures list the paths on both sides with the closest match for each, and
    `assert_nontrivial_match()` ignores `save_counter` (which matches in every restore).
    """

    def __init__(self, session, root):
        self._session = session
        self._root = root

    def _program(self):
        graph = ObjectGraph(self._root)
        if not self._session.name_based:
            return graph.state_objects()
        # By name, as TensorFlow's NameBasedSaverStatus: a Checkpoint's own counter and kerasckpt's random
        # streams are never in such a checkpoint, so they are not expected from it.
        counters = {node.children.get("save_counter") for node in graph.nodes if node.kind == "Checkpoint"}
        return [(n.obj.path, n.obj) for n in graph.nodes if isinstance(n.obj, Variable) and n.index not in counters]

    def _unmatched(self):
        matched = self._session.matched
        return [path for path, obj in self._program() if obj not in matched]

    def _message(self, title, unmatched, unused, action):
        state = self._session.state
        lines = [f"{title} (checkpoint '{state.path}')."]
        # Suggest only what is still free: a key no object used (values held for objects to come last),
        # for an unused key an object that got no value (one that got its value is no suggestion).
        free = [k for k in unused if k not in state.held] or unused
        if unmatched:
            lines.append(f"  {len(unmatched)} object(s) got no value from the checkpoint:")
            lines += [f"    {p}{_did_you_mean(p, free, state.keys)}" for p in unmatched[:_MAX_LISTED]]
            if len(unmatched) > _MAX_LISTED:
                lines.append(f"    ... and {len(unmatched) - _MAX_LISTED} more")
        if unused:
            lines.append(f"  {len(unused)} checkpoint value(s) were not used:")
            lines += [f"    {k}{_did_you_mean(k, unmatched)}"
                      + ("  [held: its object has not been created yet]" if k in state.held else _tf_only(k))
                      for k in unused[:_MAX_LISTED]]
            if len(unused) > _MAX_LISTED:
                lines.append(f"    ... and {len(unused) - _MAX_LISTED} more")
        if self._session.name_based:
            action = ("The checkpoint has no object graph (a TensorFlow 1 Saver's): variables were matched by their "
                      "path (Variable.path). Map other names with kerasckpt.init_from_checkpoint(path, "
                      "{'checkpoint_scope/': model}), or expect_partial() for an intended partial restore.")
        lines.append(action)
        return "\n".join(lines)

    def assert_consumed(self):
        """Assert that every checkpoint value was used and every object got a value.

        From a checkpoint without an object graph (TensorFlow 1's `Saver`, matched by variable path) only
        the objects are checked, as TensorFlow does: such files hold optimizer variables of other names.
        """
        unmatched, unused = self._unmatched(), self._session.state.unused()
        if unmatched or (unused and not self._session.name_based):
            raise AssertionError(self._message(
                "Not every value was matched", unmatched, unused,
                "Make the attribute and root names agree with the saved ones, create the missing objects (values "
                "for objects created later are applied then), or use assert_existing_objects_matched() / "
                "expect_partial() for an intended partial restore."))
        return self

    def assert_existing_objects_matched(self):
        """Assert that every object that exists now got a value (objects created later are ignored)."""
        unmatched = self._unmatched()
        if unmatched:
            unused = self._session.state.unused()
            raise AssertionError(self._message(
                "Some existing objects got no value", unmatched, unused,
                "Make the attribute and root names agree with the saved ones, or restore the matching part only: "
                "Checkpoint(model=Checkpoint(dense_1=layer))."))
        return self

    def assert_nontrivial_match(self):
        """Assert that something besides `save_counter` was restored."""
        state = self._session.state
        if not state.consumed - state.trivial:
            raise AssertionError(self._message(
                "Nothing except save_counter matched a checkpointed value; the checkpoint does not match the "
                "objects", self._unmatched(), state.unused(),
                "Check the root names given to Checkpoint(...) against the saved ones (list_variables(path) shows "
                "them)."))
        return self

    def expect_partial(self):
        """Silence the warning about unused values when the restore is dropped."""
        self._session.state.expect_partial = True
        return self

    def run_restore_ops(self, session=None):
        """No-op (values are assigned eagerly); kept for TensorFlow compatibility."""

    def initialize_or_restore(self, session=None):
        """No-op (values are assigned eagerly); kept for TensorFlow compatibility."""


class InitializationOnlyStatus:
    """The status of `restore(None)`: nothing is restored, and every assertion raises."""

    def _fail(self):
        raise AssertionError("No checkpoint specified (save_path=None); nothing is being restored. Pass a path, "
                             "e.g. manager.latest_checkpoint once a checkpoint exists.")

    def assert_consumed(self):
        self._fail()

    def assert_existing_objects_matched(self):
        self._fail()

    def assert_nontrivial_match(self):
        self._fail()

    def expect_partial(self):
        return self

    def run_restore_ops(self, session=None):
        """No-op."""

    def initialize_or_restore(self, session=None):
        """No-op."""
