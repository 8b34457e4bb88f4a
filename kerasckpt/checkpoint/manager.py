"""CheckpointManager: numbered checkpoints in a directory, recorded in its `checkpoint` state file.

The state file is the manager's commit record: it is replaced atomically, only after the checkpoint it
names is complete, and it stops listing a checkpoint before that checkpoint's files are deleted. The
state that stops listing them names them in comment lines (`# kerasckpt deleting: "ckpt-1"`, which
TensorFlow's parser skips), so a save killed before the files are gone leaves a record: the next save
deletes them. A checkpoint complete on disk whose save was killed before the state named it is the
newest: a new manager lists it last in `checkpoints` and restores it, as if that save had recorded it.
"""
import collections
import os
import re
import threading
import time
import warnings

from kerasckpt import _background, _storage
from kerasckpt.checkpoint import bundle
from kerasckpt.checkpoint.checkpoint import Checkpoint, in_background
from kerasckpt.checkpoint.state import (NUMBERED, STATE_FILE, CheckpointState, absolute_path, choose_latest,
                                        load_state, newest_complete, relative_path, scan, unrecorded, write_state)
from kerasckpt.errors import StorageConflictError


def _warn(message):
    warnings.warn(message, UserWarning, stacklevel=3)


class CheckpointManager:
    """Keep the last `max_to_keep` checkpoints of a `Checkpoint` in a directory, with a state file.

    Args:
        checkpoint: the `Checkpoint` to save and restore.
        directory: where checkpoints and the `checkpoint` state file live (created by the first save).
        max_to_keep: how many checkpoints to keep (required); None keeps all.
        keep_checkpoint_every_n_hours: additionally keep one checkpoint per this many hours for good.
        checkpoint_name: the file prefix: `ckpt` gives `ckpt-1`, `ckpt-2`, ...
        step_counter: a Variable counting steps; required with `checkpoint_interval`.
        checkpoint_interval: save only when `step_counter` moved at least this much since the last save.
        init_fn: called by `restore_or_initialize()` when there is no checkpoint yet.
        options: a `CheckpointOptions` for every `save()`; `CheckpointOptions(save_in_background=True)`
            makes `save()` return once the values are copied in memory, the files being written on a
            writer thread (one save in flight; the next `save()` waits for it). Retention and the state
            file advance only when the files are complete; `wait_until_finished()` waits for that.
        storage_options: options of the store when `directory` is an fsspec URL (`s3://bucket/run`). There
            the state object is replaced only if it is still the version this manager last read or wrote:
            a second writer is refused (`StorageConflictError`; TensorFlow drops the other's entries).

    Note: fixes TensorFlow's hazards: numbering continues after the highest checkpoint on disk (a new
    manager never overwrites `ckpt-1`); old checkpoints leave the state file before their files are
    deleted, and only once the new one is complete; a state file naming missing files, or a damaged
    or empty one, falls back to the newest complete checkpoint with a warning naming the file (TensorFlow
    names the missing files, or starts over). As in TensorFlow, `latest_checkpoint` and
    `restore_or_initialize()` take the newest checkpoint whatever prefix wrote it (`Checkpoint.save`'s
    `model-2`); `checkpoints` and retention hold only this `checkpoint_name`'s, and other names' state
    entries are kept. A save killed before the state file named it leaves the newest checkpoint: it is
    adopted at the end of `checkpoints` and restored (TensorFlow restores the older one and overwrites
    it); one killed while deleting old checkpoints is finished by the next save. Checkpoints kept by the
    hours rule or never managed are never deleted.
    A failed background save is raised by the next `save()`, `restore_or_initialize()` or
    `wait_until_finished()`, never dropped (TensorFlow's async checkpoints only log it).
    """

    def __init__(self, checkpoint, directory, max_to_keep, keep_checkpoint_every_n_hours=None,
                 checkpoint_name="ckpt", step_counter=None, checkpoint_interval=None, init_fn=None, options=None,
                 storage_options=None, _clock=None):
        if not isinstance(checkpoint, Checkpoint):
            raise TypeError(f"CheckpointManager needs a Checkpoint. Received: {checkpoint!r} of type "
                            f"{type(checkpoint).__name__}. Wrap your objects: Checkpoint(model=model, optimizer=opt).")
        if max_to_keep is not None and (isinstance(max_to_keep, bool) or not isinstance(max_to_keep, int)
                                        or max_to_keep <= 0):
            raise ValueError(f"Expected a positive integer or `None` for `max_to_keep`, got {max_to_keep!r}.")
        if checkpoint_interval is not None and step_counter is None:
            raise ValueError("`step_counter` should be passed if `checkpoint_interval` is not None. Pass the "
                             "Variable that counts your steps, e.g. optimizer.iterations.")
        if not checkpoint_name or os.sep in checkpoint_name or "/" in checkpoint_name:
            raise ValueError(f"`checkpoint_name` must be a plain file name prefix. Received: {checkpoint_name!r}")
        self._checkpoint = checkpoint
        self._directory = _storage.normalize(directory)
        self._storage_options = storage_options
        self._on_store = _storage.is_url(self._directory)
        self._state_identity = None  # the version of the state object this manager last read or wrote
        self._highest = None  # on a store: the highest checkpoint number of this name (see `_highest_number`)
        self._max_to_keep = max_to_keep
        self._keep_checkpoint_every_n_hours = keep_checkpoint_every_n_hours
        self._checkpoint_name = checkpoint_name
        self._step_counter = step_counter
        self._checkpoint_interval = checkpoint_interval
        self._init_fn = init_fn
        self._clock = _clock or time.time
        self._last_checkpoint_step = None
        self._options = options
        self._maybe_delete = collections.OrderedDict()
        self._latest_checkpoint = None
        self._lock = threading.RLock()  # the bookkeeping moves on the writer thread after a background save
        _background.wait_under(self._directory)  # another manager's save into it may still be in flight
        self._recover()
        if self._on_store:
            self._highest_number()

    def _mine(self, path):
        m = NUMBERED.match(_storage.basename(path) + ".index")
        return bool(m) and m.group(1) == self._checkpoint_name and _storage.dirname(path) == self._directory

    def _recover(self):
        now = self._clock()
        so = self._storage_options
        state_path = _storage.join(self._directory, STATE_FILE)
        state, problem, self._state_identity = load_state(self._directory, so)
        self._state = state  # on a store: what the state object holds while it is the version last read or written
        self._last_preserved_timestamp = now - 1.0
        self._latest_checkpoint, message = choose_latest(self._directory, state, problem, state_path, so)
        if message:
            _warn(message)
        if state is None:
            newest = None if problem else newest_complete(self._directory, self._checkpoint_name, so)
            if newest is not None:  # complete, but the state file was never written (a crash just before it)
                self._maybe_delete[newest] = self._mtime(newest, now)  # adopted, as if its save had recorded it
            return
        if state.last_preserved_timestamp is not None:
            self._last_preserved_timestamp = min(state.last_preserved_timestamp, now)
        stamps = state.all_model_checkpoint_timestamps or [self._last_preserved_timestamp] * len(
            state.all_model_checkpoint_paths)
        lost = []
        for rel, stamp in zip(state.all_model_checkpoint_paths, stamps):
            path = absolute_path(self._directory, rel, so)
            if not self._mine(path) or min(stamp, now) <= self._last_preserved_timestamp:
                continue
            if bundle.is_complete(path, so):
                self._maybe_delete[path] = min(stamp, now)
            else:
                lost.append(path)
        # Saves killed before the state named them: adopted in save order, as if their saves had recorded them
        for path in unrecorded(self._directory, state, state_path, self._checkpoint_name, so):
            self._maybe_delete[path] = self._mtime(path, now)
        named_latest = absolute_path(self._directory, state.model_checkpoint_path, so)
        lost = [p for p in lost if not (message and p == named_latest)]  # the warning above named it
        if lost:
            _warn(f"The state file '{state_path}' names checkpoints whose files are missing or damaged: "
                  f"{sorted(set(lost))}. Continuing from the newest complete checkpoint: {self._latest_checkpoint}.")

    def _mtime(self, prefix, now):
        found = _storage.listing(self._directory, self._storage_options).get(_storage.basename(prefix) + ".index")
        return now if found is None else min(found[1] / 1e9, now)

    # ------------------------------------------------------------------ properties
    @property
    def directory(self):
        return self._directory

    @property
    def checkpoint(self):
        return self._checkpoint

    @property
    def checkpoint_interval(self):
        return self._checkpoint_interval

    @property
    def checkpoints(self):
        """This manager's checkpoints (its `checkpoint_name`), in save order, oldest first; preserved ones by
        `keep_checkpoint_every_n_hours` excluded. Retention deletes from these only."""
        with self._lock:
            return list(self._maybe_delete)

    @property
    def latest_checkpoint(self):
        """The newest complete checkpoint in the directory, whatever prefix wrote it, or None; after a `save()`
        the one it wrote (a background save counts once complete)."""
        with self._lock:
            latest, kept = self._latest_checkpoint, list(self._maybe_delete)
        so = self._storage_options
        if latest is None or bundle.is_complete(latest, so):
            return latest
        candidates = [p for p in kept if p != latest and bundle.is_complete(p, so)]
        candidates = candidates or [p for p in scan(self._directory, storage_options=so) if p != latest]
        fallback = candidates[-1] if candidates else None
        _warn(f"The latest checkpoint '{latest}' has missing or damaged files; using '{fallback}' instead.")
        return fallback

    # ------------------------------------------------------------------ saving
    def _highest_number(self):
        """The highest number of this name on disk; on a store, listed once and then counted (no request here:
        a background save must not wait for the store on the training thread; other writers are refused)."""
        if self._on_store and self._highest is not None:
            return self._highest
        pattern = re.compile(re.escape(self._checkpoint_name) + r"-(\d+)\.(?:index|data-\d{5}-of-\d{5}(?:\.g\d+)?)$")
        self._highest = max((int(m.group(1)) for m in map(pattern.match, self._names()) if m), default=0)
        return self._highest

    def _names(self):
        """The names in the directory ([] before it exists)."""
        if self._on_store:
            return _storage.listdir(self._directory, self._storage_options)
        try:
            return os.listdir(self._directory)
        except OSError:
            return []

    def _step(self):
        value = self._step_counter
        value = getattr(value, "_value", value)
        return int(value)

    def save(self, checkpoint_number=None, check_interval=True, options=None):
        """Save a checkpoint (unless the interval says not yet); returns its path, or None when skipped.

        Args:
            checkpoint_number: the number in the file name; None: one past both `save_counter` and the
                highest number on disk.
            check_interval: with `checkpoint_interval`, skip the save when the step has not advanced
                enough; a step is never saved twice either way.
            options: a `CheckpointOptions` for this save (default: the manager's `options`). In the
                background the path is returned at once and becomes `latest_checkpoint` when complete.
        """
        options = self._options if options is None else options
        self._checkpoint.wait_until_finished()  # the previous save is complete and recorded (or raises)
        current_step = None
        if self._checkpoint_interval is not None:
            current_step = self._step()
            if self._last_checkpoint_step is not None:
                if current_step == self._last_checkpoint_step:
                    return None
                if check_interval and current_step < self._last_checkpoint_step + self._checkpoint_interval:
                    return None
        counter = self._checkpoint.save_counter
        previous = int(counter._value)
        if checkpoint_number is None:
            number = max(previous + 1, self._highest_number() + 1)
            counter.assign(number)
        else:
            number = int(getattr(checkpoint_number, "_value", checkpoint_number))
            counter.assign(previous + 1)
        highest = self._highest
        if self._on_store:
            self._highest = max(self._highest_number(), number)
        prefix = _storage.join(self._directory, f"{self._checkpoint_name}-{number}")

        def complete(path):  # the files are complete: record them (on the writer thread in the background)
            with self._lock:
                self._record(prefix, fresh=checkpoint_number is None, current_step=current_step)

        queued = False
        try:
            prepared = self._checkpoint._prepare_write(prefix, options, then=complete,
                                                       storage_options=self._storage_options,
                                                       exclusive=checkpoint_number is None)
            if self._on_store:  # before any upload; on the writer thread in the background (a request)
                prepared.run_first(self._check_sole_writer)
            if in_background(options):
                self._checkpoint._writer().submit(prepared)
                queued = True  # from here a failure shows at the next save; its number stays used
            else:
                prepared.write()
        except BaseException:
            if not queued:
                counter.assign(previous)
                self._highest = highest
            raise
        return prefix

    def _record(self, prefix, fresh, current_step):
        before = (collections.OrderedDict(self._maybe_delete), self._latest_checkpoint, self._last_preserved_timestamp)
        self._maybe_delete.pop(prefix, None)
        self._maybe_delete[prefix] = self._clock()
        self._latest_checkpoint = prefix
        doomed = self._sweep()
        try:
            doomed = self._write_state(doomed)  # first forget the doomed checkpoints, then delete them
        except BaseException:
            # Not recorded: the previous state stands. Remove the new files unless they replaced an old one.
            self._maybe_delete, self._latest_checkpoint, self._last_preserved_timestamp = before
            if fresh:
                self._delete(prefix)
            raise
        if current_step is not None:
            self._last_checkpoint_step = current_step
        for old in doomed:
            self._delete(old)
        self._delete_orphans(prefix)

    def wait_until_finished(self):
        """Wait until no background save is in flight and its bookkeeping is done; raise its error if it failed."""
        self._checkpoint.wait_until_finished()

    def _sweep(self):
        doomed = []
        if not self._max_to_keep:
            return doomed
        while len(self._maybe_delete) > self._max_to_keep:
            path, timestamp = self._maybe_delete.popitem(last=False)
            if (self._keep_checkpoint_every_n_hours
                    and timestamp - self._keep_checkpoint_every_n_hours * 3600.0 >= self._last_preserved_timestamp):
                self._last_preserved_timestamp = timestamp
                continue
            doomed.append(path)
        return doomed

    def _check_sole_writer(self):
        """On a store: refuse to save when another writer replaced the state object since this manager read it."""
        found = _storage.identity(_storage.join(self._directory, STATE_FILE), self._storage_options)
        if found != self._state_identity:
            raise self._conflict("before writing anything")

    def _conflict(self, when):
        return StorageConflictError(
            f"CheckpointManager cannot save in '{self._directory}': another writer replaced its state object "
            f"'{_storage.join(self._directory, STATE_FILE)}' since this manager last read or wrote it (refused "
            f"{when}). Two runs or managers write in one directory: give each its own directory, or create a new "
            "CheckpointManager to continue from what is there now.")

    def _write_state(self, doomed=()):
        """Write the state; returns what to delete now: `doomed` and what the previous state's record left."""
        # The new state names them all in its record, so a kill before they are gone leaves it for the next save.
        so = self._storage_options
        if self._on_store:  # no request: a state replaced since is refused by the conditional write below
            state, identity = self._state, self._state_identity
        else:
            state, _, identity = load_state(self._directory)
        paths, stamps, recorded, listed = [], [], [], {}
        if state is not None and state.deleting:
            listed = _storage.listing(self._directory, so)
        recorded_at = listed[STATE_FILE][1] if STATE_FILE in listed else None
        if state is not None:  # keep other managers' entries: they must not be orphaned
            old_stamps = state.all_model_checkpoint_timestamps or [0.0] * len(state.all_model_checkpoint_paths)
            for rel, stamp in zip(state.all_model_checkpoint_paths, old_stamps):
                path = absolute_path(self._directory, rel, so)
                name_match = NUMBERED.match(_storage.basename(path) + ".index")
                if name_match and name_match.group(1) != self._checkpoint_name and _storage.isfile(path + ".index", so):
                    paths.append(rel)
                    stamps.append(stamp)
            recorded = [absolute_path(self._directory, rel, so) for rel in state.deleting]
        for path, stamp in self._maybe_delete.items():
            paths.append(relative_path(self._directory, path))
            stamps.append(stamp)
        kept = {absolute_path(self._directory, p, so) for p in paths} | {self._latest_checkpoint}
        deleting = []
        for path in list(doomed) + recorded:
            if path not in kept and path not in deleting and (
                    path in doomed or self._left_over(path, recorded_at, listed)):
                deleting.append(path)
        new_state = CheckpointState(relative_path(self._directory, self._latest_checkpoint), paths, stamps,
                                    self._last_preserved_timestamp,
                                    [relative_path(self._directory, p) for p in deleting])
        if self._on_store:  # replaced only if still the version read above (a conditional write)
            try:
                self._state_identity = write_state(self._directory, new_state, so, if_match=identity,
                                                   if_none_match=identity is None)
            except StorageConflictError:
                raise self._conflict("after writing the checkpoint, which is deleted again") from None
            self._state = new_state
        else:
            write_state(self._directory, new_state)
        return deleting

    @staticmethod
    def _left_over(prefix, recorded_at, listed):
        """Whether files of `prefix` remain, all older than the record naming it (not written again since).

        `listed`: the directory's `_storage.listing`.
        """
        base = _storage.basename(prefix)
        times = [mtime for name, (_, mtime) in listed.items()
                 if name == base + ".index" or (name.startswith(base + ".data-") and bundle.DATA_RE.fullmatch(
                     name[len(base):]))]
        return bool(times) and recorded_at is not None and max(times) <= recorded_at

    def _delete_orphans(self, keep):
        """Delete data files of this manager's name that no index names (left by an interrupted save)."""
        pattern = re.compile(re.escape(self._checkpoint_name) + r"-(\d+)\.data-\d{5}-of-\d{5}(?:\.g\d+)?$")
        names = set(self._names())
        orphans = []
        for name in sorted(names):
            m = pattern.match(name)
            prefix = _storage.join(self._directory, f"{self._checkpoint_name}-{m.group(1)}") if m else None
            if prefix and prefix != keep and _storage.basename(prefix) + ".index" not in names:
                orphans.append(name)
        if orphans:  # spare data files an index under another name still names (its user renamed only that)
            named = set()
            for index in (n for n in names if n.endswith(".index")):
                named.update(bundle.referenced_data_names(_storage.join(self._directory, index[:-len(".index")]),
                                                          self._storage_options) or ())
            orphans = [n for n in orphans if n not in named]
        for name in orphans:
            try:
                _storage.remove(_storage.join(self._directory, name), self._storage_options)
            except OSError:
                pass

    def _delete(self, prefix):
        bundle.delete(prefix, self._storage_options)

    # ------------------------------------------------------------------ restoring
    def restore_or_initialize(self):
        """Restore `latest_checkpoint` and return its path; or call `init_fn` and return None.

        That is the newest entry of `checkpoints`, unless another prefix saved a newer checkpoint in the
        directory since (`Checkpoint.save`, another manager): then that one, as in TensorFlow."""
        self._checkpoint.wait_until_finished()
        latest = self.latest_checkpoint
        if latest is not None:
            self._checkpoint.restore(latest, storage_options=self._storage_options)
            return latest
        if self._init_fn is not None:
            self._init_fn()
        return None
