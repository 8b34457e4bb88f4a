"""BackupAndRestore: an interrupted fit() started again finishes bit-identical to an uninterrupted one."""
import json
import os
import warnings

import numpy as np

from kerasckpt import _background, _storage
from kerasckpt import random as _random
from kerasckpt.callbacks.base import Callback
from kerasckpt.checkpoint import bundle
from kerasckpt.checkpoint.checkpoint import prepare_checkpoint_write
from kerasckpt.checkpoint.graph import ObjectGraph
from kerasckpt.errors import (CheckpointDamagedError, CheckpointError, CheckpointMismatchError,
                              CheckpointNotADirectoryError)
from kerasckpt.random import SeedGenerator
from kerasckpt.variables import Variable

FORMAT = "kerasckpt.backup/1"
# fit() arguments a resumed run may change: `epochs` (train longer or shorter: the loop stops there) and
# `initial_epoch` (the backup's position wins, as in Keras). `verbose` and the callbacks are not in the fingerprint.
MAY_CHANGE = frozenset({"epochs", "initial_epoch"})
CALLBACK_ARRAYS = "callback_states"  # root of the NumPy values of callback states: callback_states/<key>/<path>


class BackupAndRestore(Callback):
    """Back up the whole training state during `fit()`, and resume from it when `fit()` runs again.

    The backup holds the weights, the optimizer (slots, iterations, learning rate), BatchNormalization
    statistics, Dropout random streams, the metric accumulators of the current epoch, the shuffle order
    position, the global random state, the History so far and every other callback's `get_state()`, and
    where a `PyDataset` is (epoch and batch) with its state: its SeedGenerators, its epoch count and its
    `get_state()` (without one, its epoch hooks are replayed on resume, loading no batch). A generator
    cannot be put back: that is said once at `on_train_begin`, and a resumed run continues at the saved
    epoch and batch with the batches the new generator yields.

    Args:
        backup_dir: directory for the backup files (created on demand); a path or an fsspec URL
            (`s3://bucket/run/backup`).
        save_freq: `"epoch"`, back up every N batches, or `False`: never back up, only restore a
            backup that is already there (as Keras documents it for preemption checkpointing).
        delete_checkpoint: remove the backup when `fit()` finishes; keep it (`False`) to train for
            more epochs later: a kept backup is taken at the end of the run, whatever `save_freq` says.
        double_checkpoint: keep the previous backup too, and fall back to it (with a warning) when
            the newest is damaged.
        save_in_background: copy the training state in memory (training waits only for that copy) and
            write the backup on a writer thread; the next backup waits for it, `on_train_end` too. A
            failed write is raised at the next backup or at the end of `fit()`. The same keyword as
            `ModelCheckpoint` and `CheckpointOptions(save_in_background=True)`.
        storage_options: options of the store a URL names (credentials, endpoint; see fsspec).

    Note: unlike Keras, which restores weights, optimizer and the epoch only, a resumed run here is the
    same run: with an integer `save_freq` it continues at the next batch of the interrupted epoch (after
    `on_epoch_begin` for it; what that hook changes of the backed-up state is put back), and the final
    weights, `History.run_history` and callback states equal those of an uninterrupted run bit for bit.
    What may differ from the run that made the backup: `epochs` (a larger one trains on, ending as a
    run started with it would; a backup at or past it trains nothing, as in Keras), `initial_epoch` (the
    backup's position wins, as in Keras), `verbose`, and callbacks whose `get_state()` is None. Anything
    that changes the batches or what the finished epochs did (data, `batch_size`, `shuffle`, weights,
    validation arguments), another model, or a stateful callback added or removed (its state would be
    missing or dropped) is refused with an error listing the differences. Backups are taken after every
    callback has finished the batch or epoch, in the background too. NumPy values in a callback's
    `get_state()` are stored exactly. Keras 3 accepts `save_freq=False` but then backs up every batch.
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True, double_checkpoint=False,
                 save_in_background=False, storage_options=None):
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore needs a backup_dir. Received an empty value.")
        valid = save_freq == "epoch" or save_freq is False or (
            isinstance(save_freq, int) and not isinstance(save_freq, bool) and save_freq > 0)
        if not valid:
            raise ValueError(f"Unrecognized save_freq: {save_freq!r}. Expected 'epoch', a positive number of "
                             "batches, or False (restore only, never back up).")
        self.backup_dir = _storage.normalize(backup_dir)
        self.storage_options = storage_options
        _check_backup_dir(self.backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = bool(delete_checkpoint)
        self.double_checkpoint = bool(double_checkpoint)
        self._batches_since_save = 0
        self._sequence = 0
        self.save_in_background = bool(save_in_background)
        self._writer = _background.BackgroundWriter("BackupAndRestore") if self.save_in_background else None

    # ------------------------------------------------------------------ file names

    def _prefixes(self):
        names = ("backup-a", "backup-b") if self.double_checkpoint else ("backup",)
        return [_storage.join(self.backup_dir, name) for name in names]

    # ------------------------------------------------------------------ hooks

    def on_train_begin(self, logs=None):
        loop = getattr(self.model, "_fit_loop", None)
        if loop is None:
            raise RuntimeError("BackupAndRestore works inside model.fit() only. For a custom loop, save a "
                               "Checkpoint with a CheckpointManager instead.")
        _check_backup_dir(self.backup_dir)  # a file may have taken its place since the constructor
        self._batches_since_save = 0
        loop.add_saver(self._at_consistent_point)
        unpositionable = getattr(loop, "unpositionable", [])
        if unpositionable:
            warnings.warn(f"BackupAndRestore cannot put {' and '.join(unpositionable)} back where it was: a resumed "
                          "run continues at the saved epoch and batch with the batches a new generator yields, not "
                          "the ones the interrupted run would have seen, so it is not an exact resume. A PyDataset's "
                          "position and state are backed up.", UserWarning, stacklevel=2)
        self.wait_until_finished()  # a backup left in flight by an interrupted fit() with this callback
        _background.wait_for_paths(self._prefixes())  # ... or by another BackupAndRestore on this directory
        candidates = self._backups_newest_first()
        for i, (prefix, metadata) in enumerate(candidates):
            try:
                self._restore(prefix, metadata, loop)
                return
            except CheckpointMismatchError:
                raise
            except CheckpointError as e:
                if i + 1 < len(candidates):
                    other = ("the previous backup" if "error" not in metadata else  # its index is unreadable,
                             "the other backup, which may be older,")  # so which is newer is unknown
                    warnings.warn(f"BackupAndRestore cannot resume from the backup '{prefix}': {e} Falling back "
                                  f"to {other} '{candidates[i + 1][0]}' (sequence {candidates[i + 1][1]['sequence']}); "
                                  "the steps since it run again and the next backup replaces the unusable one.",
                                  stacklevel=2)
                    continue
                raise

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.wait()  # raises a failed backup (and keeps the last complete one on disk)
            self._writer.release_buffers()
        if self.delete_checkpoint:
            for prefix in self._prefixes():
                bundle.delete(prefix, self.storage_options)

    def _at_consistent_point(self, kind, epoch, batch):
        if self.save_freq is False:
            return
        if self.save_freq == "epoch":
            if kind == "epoch":
                self._save()
        elif kind == "epoch":
            loop = self.model._fit_loop
            if not self.delete_checkpoint and (loop.epoch >= loop.fingerprint["epochs"] or self.model.stop_training):
                self._save()  # the backup kept after the run is at its end: training longer starts there
        elif kind == "batch":
            self._batches_since_save += 1
            if self._batches_since_save >= self.save_freq:
                self._batches_since_save = 0
                self._save()

    # ------------------------------------------------------------------ saving and restoring

    def _graph(self, callback_arrays=None):
        model = self.model
        roots = {"model": model, "optimizer": model.optimizer, "metrics": list(model.metrics)}
        if callback_arrays:
            roots[CALLBACK_ARRAYS] = callback_arrays
        return ObjectGraph(roots)

    def wait_until_finished(self):
        """Wait for a background backup in flight; raise its error if it failed."""
        if self._writer is not None:
            self._writer.wait()

    def _save(self):
        loop = self.model._fit_loop
        self.wait_until_finished()  # one backup in flight; double_checkpoint must not overtake it
        loop_state = loop.get_state()
        loop_state["callbacks"], arrays = _split_arrays(loop_state["callbacks"], loop.callbacks)
        nested, leaves = {}, []  # dicts of Variables: their graph paths are the keys callback_states/<key>/<path>
        for path, (value, _) in arrays:
            level = nested
            for part in path[:-1]:
                level = level.setdefault(str(part), {})
            leaves.append(Variable(value, dtype=value.dtype, trainable=False))
            level[str(path[-1])] = leaves[-1]
        graph = self._graph(nested)
        stored = [[graph.node_of(leaf).key, list(path), kind] for leaf, (path, (_, kind)) in zip(leaves, arrays)]
        self._sequence += 1
        metadata = {"format": FORMAT, "sequence": self._sequence, "loop": loop_state,
                    "global_random_state": _random.get_global_state(),
                    "callback": {"batches_since_save": self._batches_since_save}, "callback_arrays": stored}
        prefixes = self._prefixes()
        target = prefixes[self._sequence % len(prefixes)]  # double_checkpoint alternates, keeping the other
        prepared = prepare_checkpoint_write(target, graph, metadata,  # the loop state is fixed (copied) here
                                            storage_options=self.storage_options)
        if self._writer is not None:
            self._writer.submit(prepared)
        else:
            prepared.write()

    def _backups_newest_first(self):
        found = []
        for prefix in self._prefixes():
            if not _storage.isfile(prefix + ".index", self.storage_options):
                continue
            try:
                with bundle.CheckpointReader(prefix, self.storage_options) as reader:
                    metadata = reader.metadata
            except CheckpointError as e:  # its sequence is unknown: try it first, so that using the
                found.append((prefix, {"sequence": float("inf"), "error": e}))  # other one warns
                continue
            if metadata.get("format") != FORMAT:
                raise CheckpointMismatchError(
                    f"'{prefix}' is not a BackupAndRestore backup (format {metadata.get('format')!r}). "
                    f"Point backup_dir at a directory of its own, or empty '{self.backup_dir}'.")
            found.append((prefix, metadata))
        found.sort(key=lambda item: item[1].get("sequence", -1), reverse=True)
        return found

    def _restore(self, prefix, metadata, loop):
        if "error" in metadata:
            raise metadata["error"]
        graph = self._graph()
        stored = metadata.get("callback_arrays", [])
        with bundle.CheckpointReader(prefix, self.storage_options) as reader:
            self._check_same_run(prefix, metadata, loop, graph, reader)
            keys = [node.key for node in graph.value_nodes()]
            reader.verify(keys + [key for key, _, _ in stored])  # every checksum first: a damaged backup
            values = {key: np.array(reader.read(key)) for key in keys}  # changes nothing
            arrays = [(path, reader.read(key) if kind == "array" else reader.read(key)[()])
                      for key, path, kind in stored]
        loop_state = dict(metadata["loop"], callbacks=_join_arrays(prefix, metadata["loop"]["callbacks"], arrays))
        _assign(graph, values, metadata["global_random_state"])
        loop.set_state(loop_state)
        if loop.step > 0:  # inside an epoch: its on_epoch_begin runs again; what it changes was saved after it ran
            loop.after_epoch_begin(lambda: _assign(graph, values, metadata["global_random_state"]))
        self._batches_since_save = metadata["callback"]["batches_since_save"]
        self._sequence = metadata["sequence"]

    def _check_same_run(self, prefix, metadata, loop, graph, reader):
        differences = []
        saved_args, args = metadata["loop"]["fingerprint"], loop.fingerprint
        for name in sorted(set(saved_args) | set(args)):
            if name not in MAY_CHANGE and saved_args.get(name) != args.get(name):
                differences.append(f"fit argument {name}: {saved_args.get(name)!r} in the backup, {args.get(name)!r} now")
        saved_states, states = set(metadata["loop"]["callbacks"]), _stateful_keys(loop.callbacks)
        for key in sorted(saved_states - states):
            differences.append(f"the backup has the state of callback '{key}', which this fit() does not have")
        for key in sorted(states - saved_states):
            differences.append(f"callback '{key}' holds state, and the backup has none for it")
        saved = {node["key"] for node in reader.nodes or () if "key" in node}  # the object graph's value keys
        saved_keys = saved - {key for key, _, _ in metadata.get("callback_arrays", [])}
        keys = {n.key for n in graph.value_nodes()}
        for key in sorted(keys - saved_keys)[:5]:
            differences.append(f"variable '{key}' is not in the backup")
        for key in sorted(saved_keys - keys)[:5]:
            differences.append(f"the backup has '{key}', which this model does not")
        for node in graph.value_nodes():
            if node.key in saved_keys and isinstance(node.obj, Variable) and \
                    tuple(reader.shape(node.key)) != tuple(node.obj.shape):
                differences.append(f"variable '{node.key}' has shape {tuple(reader.shape(node.key))} in the backup, "
                                   f"{tuple(node.obj.shape)} now")
        if differences:
            raise CheckpointMismatchError(
                f"BackupAndRestore cannot resume from '{prefix}': it was made by a different run. "
                + "; ".join(differences) + f". Run with the same model and fit() arguments, or delete "
                f"'{self.backup_dir}' to start over.")

    def get_state(self):
        return None  # its state is the backup on disk


def _stateful_keys(callbacks):
    """State keys of the callbacks that hold state (`get_state()` is not None), as a backup records them."""
    keys = set()
    for key, callback in callbacks.callbacks_by_state_key().items():
        if type(callback).get_state is Callback.get_state:
            continue
        try:
            if callback.get_state() is None:
                continue
        except Exception:  # not ready before its on_train_begin: it overrides get_state(), so it holds state
            pass
        keys.add(key)
    return keys


def _assign(graph, values, global_random_state):
    """Put the backup's variable values, Dropout seeds and the global random state in place."""
    for node in graph.value_nodes():
        if isinstance(node.obj, SeedGenerator):
            setattr(node.obj, node.field, int(values[node.key]))
        elif isinstance(node.obj, Variable):
            node.obj.assign(values[node.key])
    _random.set_global_state(global_random_state)


def _check_backup_dir(backup_dir):
    """Raise when `backup_dir`, or a directory above it, is a file: no backup could be written there.

    Object stores have no directories for a file to block (an object and keys below its name coexist).
    """
    if _storage.is_url(backup_dir):
        return
    path = os.path.abspath(backup_dir)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent
    if os.path.isdir(path):
        return
    if path == os.path.abspath(backup_dir):
        raise CheckpointNotADirectoryError(
            f"BackupAndRestore cannot use backup_dir={backup_dir!r}: it is a file, not a directory. Pass a directory "
            "of its own for the backups (it is created on demand), or move that file away.")
    raise CheckpointNotADirectoryError(
        f"BackupAndRestore cannot use backup_dir={backup_dir!r}: '{path}' is a file, so no directory can be created "
        "below it. Pass a backup_dir under a directory, or move that file away.")


def _json_key(key):
    """A dict key as JSON writes it (it turns 1, True and None into "1", "true" and "null")."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    return None


def _split_arrays(states, callbacks):
    """`states` ({state_key: state}) as JSON data, with each NumPy array or scalar replaced by None and
    listed apart as `((state_key, *path), (array, "array" | "scalar"))`; anything else that JSON cannot
    hold raises a TypeError naming the callback, the place in its state and the type."""
    arrays = []

    def fail(path, what):
        key = path[0]
        owner = callbacks.callbacks_by_state_key().get(key)
        where = "get_state()" + "".join(f"[{p!r}]" for p in path[1:])
        raise TypeError(f"BackupAndRestore cannot back up the state of callback {type(owner).__name__} (state key "
                        f"{key!r}): {where} {what}. Make get_state() return only None, bool, int, float, str, "
                        "lists, dicts with string keys, and NumPy arrays or scalars of numbers.")

    def split(value, path):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (np.ndarray, np.generic)):
            if value.dtype.kind not in "biufc":
                fail(path, f"is a NumPy {'array' if isinstance(value, np.ndarray) else 'scalar'} of dtype "
                           f"{value.dtype}, which a backup cannot hold (numbers and bools only)")
            arrays.append((path, (np.asarray(value), "array" if isinstance(value, np.ndarray) else "scalar")))
            return None
        if isinstance(value, (list, tuple)):
            return [split(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                name = _json_key(k)
                if name is None:
                    fail(path, f"has the dict key {k!r} of type {type(k).__name__}")
                out[name] = split(v, path + (name,))
            return out
        fail(path, f"is {value!r} of type {type(value).__module__}.{type(value).__qualname__}, which is neither "
                   "JSON data nor a NumPy array")

    return {key: split(state, (key,)) for key, state in states.items()}, arrays


def _join_arrays(prefix, states, arrays):
    """Put the arrays of `_split_arrays` back at their places in `states` (fresh JSON data, changed in place)."""
    for path, value in arrays:
        try:
            level = states
            for part in path[:-1]:
                level = level[part]
            if level[path[-1]] is not None:
                raise KeyError(path[-1])
            level[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            raise CheckpointDamagedError(
                f"'{prefix}' is damaged: it holds callback state values for {path!r}, a place that the saved "
                f"callback states do not have. Delete the backup files '{prefix}.*' to start over.") from None
    return states
