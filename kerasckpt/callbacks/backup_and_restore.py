"""BackupAndRestore: an interrupted fit() started again finishes bit-identical to an uninterrupted one."""
import glob
import os
import warnings

import numpy as np

from kerasckpt import _background
from kerasckpt import random as _random
from kerasckpt.callbacks.base import Callback
from kerasckpt.checkpoint import files
from kerasckpt.checkpoint.checkpoint import prepare_checkpoint_write
from kerasckpt.checkpoint.graph import ObjectGraph
from kerasckpt.errors import CheckpointError, CheckpointMismatchError
from kerasckpt.random import SeedGenerator
from kerasckpt.variables import Variable

FORMAT = "kerasckpt.backup/1"


class BackupAndRestore(Callback):
    """Back up the whole training state during `fit()`, and resume from it when `fit()` runs again.

    The backup holds the weights, the optimizer (slots, iterations, learning rate), BatchNormalization
    statistics, Dropout random streams, the metric accumulators of the current epoch, the shuffle order
    position, the global random state, the History so far and every other callback's `get_state()`.

    Args:
        backup_dir: directory for the backup files (created on demand).
        save_freq: `"epoch"`, or back up every N batches.
        delete_checkpoint: remove the backup when `fit()` finishes.
        double_checkpoint: keep the previous backup too, and fall back to it (with a warning) when
            the newest is damaged.
        save_in_background: copy the training state in memory (training waits only for that copy) and
            write the backup on a writer thread; the next backup waits for it, `on_train_end` too. A
            failed write is raised at the next backup or at the end of `fit()`. The same keyword as
            `ModelCheckpoint` and `CheckpointOptions(save_in_background=True)`.

    Note: unlike Keras, which restores weights, optimizer and the epoch only, a resumed run here is the
    same run: with an integer `save_freq` it continues at the next batch of the interrupted epoch, and
    the final weights, History and callback states equal those of an uninterrupted run bit for bit.
    Backups are taken after every callback has finished the batch or epoch. A backup made with other
    `fit()` arguments or another model is refused with an error listing the differences. In the
    background the backup still holds one consistent point (values, loop state, callback states).
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True, double_checkpoint=False,
                 save_in_background=False):
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore needs a backup_dir. Received an empty value.")
        valid = save_freq == "epoch" or (isinstance(save_freq, int) and not isinstance(save_freq, bool) and save_freq > 0)
        if not valid:
            raise ValueError(f"Unrecognized save_freq: {save_freq!r}. Expected 'epoch' or a positive number of batches.")
        self.backup_dir = os.fspath(backup_dir)
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
        return [os.path.join(self.backup_dir, name) for name in names]

    # ------------------------------------------------------------------ hooks

    def on_train_begin(self, logs=None):
        loop = getattr(self.model, "_fit_loop", None)
        if loop is None:
            raise RuntimeError("BackupAndRestore works inside model.fit() only. For a custom loop, save a "
                               "Checkpoint with a CheckpointManager instead.")
        self._batches_since_save = 0
        loop.add_saver(self._at_consistent_point)
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
                    warnings.warn(f"BackupAndRestore: the newest backup is unusable ({e}). Falling back to the "
                                  f"previous backup '{candidates[i + 1][0]}'.", stacklevel=2)
                    continue
                raise

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.wait()  # raises a failed backup (and keeps the last complete one on disk)
            self._writer.release_buffers()
        if self.delete_checkpoint:
            for prefix in self._prefixes():
                for path in glob.glob(glob.escape(prefix) + ".*"):
                    os.remove(path)

    def _at_consistent_point(self, kind, epoch, batch):
        if self.save_freq == "epoch":
            if kind == "epoch":
                self._save()
        elif kind == "batch":
            self._batches_since_save += 1
            if self._batches_since_save >= self.save_freq:
                self._batches_since_save = 0
                self._save()

    # ------------------------------------------------------------------ saving and restoring

    def _graph(self):
        model = self.model
        return ObjectGraph({"model": model, "optimizer": model.optimizer, "metrics": list(model.metrics)})

    def wait_until_finished(self):
        """Wait for a background backup in flight; raise its error if it failed."""
        if self._writer is not None:
            self._writer.wait()

    def _save(self):
        loop = self.model._fit_loop
        self.wait_until_finished()  # one backup in flight; double_checkpoint must not overtake it
        graph = self._graph()
        self._sequence += 1
        metadata = {"format": FORMAT, "sequence": self._sequence, "loop": loop.get_state(),
                    "global_random_state": _random.get_global_state(),
                    "callback": {"batches_since_save": self._batches_since_save}}
        prefixes = self._prefixes()
        target = prefixes[self._sequence % len(prefixes)]  # double_checkpoint alternates, keeping the other
        prepared = prepare_checkpoint_write(target, graph, metadata)  # the loop state is fixed (copied) here
        if self._writer is not None:
            self._writer.submit(prepared)
        else:
            prepared.write()

    def _backups_newest_first(self):
        found = []
        for prefix in self._prefixes():
            if not os.path.exists(prefix + ".index"):
                continue
            try:
                with files.CheckpointReader(prefix) as reader:
                    metadata = reader.metadata
            except CheckpointError as e:
                found.append((prefix, {"sequence": -1, "error": e}))
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
        with files.CheckpointReader(prefix) as reader:
            self._check_same_run(prefix, metadata, loop, graph, reader)
            keys = [node.key for node in graph.value_nodes()]
            reader.verify(keys)  # every checksum first: a damaged backup changes nothing
            values = {key: np.array(reader.read(key)) for key in keys}
        for node in graph.value_nodes():
            if isinstance(node.obj, SeedGenerator):
                setattr(node.obj, node.field, int(values[node.key]))
            elif isinstance(node.obj, Variable):
                node.obj.assign(values[node.key])
        loop.set_state(metadata["loop"])
        _random.set_global_state(metadata["global_random_state"])
        self._batches_since_save = metadata["callback"]["batches_since_save"]
        self._sequence = metadata["sequence"]

    def _check_same_run(self, prefix, metadata, loop, graph, reader):
        differences = []
        saved_args, args = metadata["loop"]["fingerprint"], loop.fingerprint
        for name in sorted(set(saved_args) | set(args)):
            if saved_args.get(name) != args.get(name):
                differences.append(f"fit argument {name}: {saved_args.get(name)!r} in the backup, {args.get(name)!r} now")
        saved_keys, keys = set(reader.keys()), {n.key for n in graph.value_nodes()}
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
