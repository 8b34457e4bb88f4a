"""CheckpointManager, `latest_checkpoint`, and the plain-text `checkpoint` state file (TensorFlow's format).

The state file is the manager's commit record: it is replaced atomically, only after the checkpoint it
names is complete, and it stops listing a checkpoint before that checkpoint's files are deleted. The
state that stops listing them names them in comment lines (`# kerasckpt deleting: "ckpt-1"`, which
TensorFlow's parser skips), so a save killed before the files are gone leaves a record: the next save
deletes them. A checkpoint complete on disk whose save was killed before the state named it is the
newest: a new manager lists it last in `checkpoints` and restores it, as if that save had recorded it.
"""
import codecs
import collections
import os
import re
import threading
import time
import warnings

from kerasckpt import _background, _fileio, _storage
from kerasckpt.checkpoint import files
from kerasckpt.checkpoint.checkpoint import _in_background

STATE_FILE = "checkpoint"
_FIELDS = {"model_checkpoint_path": str, "all_model_checkpoint_paths": str,
           "all_model_checkpoint_timestamps": float, "last_preserved_timestamp": float}
_LINE = re.compile(r'^([a-z_]+)\s*:\s*(?:"((?:[^"\\]|\\.)*)"|([-+0-9.eEinfaINFA]+))\s*$')
_DELETING = re.compile(r'^#\s*kerasckpt deleting:\s*"((?:[^"\\]|\\.)*)"\s*$')


class CheckpointState:
    """The contents of a `checkpoint` state file (paths as written: relative to its directory).

    `deleting`: checkpoints a manager dropped from the list and is deleting (kept in comment lines).
    """

    def __init__(self, model_checkpoint_path, all_model_checkpoint_paths=(), all_model_checkpoint_timestamps=(),
                 last_preserved_timestamp=None, deleting=()):
        self.model_checkpoint_path = model_checkpoint_path
        self.all_model_checkpoint_paths = list(all_model_checkpoint_paths)
        self.all_model_checkpoint_timestamps = list(all_model_checkpoint_timestamps)
        self.last_preserved_timestamp = last_preserved_timestamp
        self.deleting = list(deleting)


def _quote(text):
    out = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        out.append(ch if 32 <= b < 127 and ch not in '"\\' else ("\\" + ch if ch in '"\\' else f"\\{b:03o}"))
    return '"' + "".join(out) + '"'


def _unquote(text):
    return codecs.escape_decode(text.encode("utf-8"))[0].decode("utf-8")


def parse_state(text):
    """A `CheckpointState` from the text format; raises ValueError on anything else."""
    fields = collections.defaultdict(list)
    comments = [line.strip() for line in text.splitlines() if line.strip().startswith("#")]
    deleting = [_unquote(m.group(1)) for m in map(_DELETING.match, comments) if m]
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not lines:
        raise ValueError("the file is empty")
    for number, line in enumerate(lines, 1):
        m = _LINE.match(line)
        if not m or m.group(1) not in _FIELDS:
            raise ValueError(f"line {number} is not a CheckpointState field: {line[:80]!r}")
        name, quoted, bare = m.groups()
        if (_FIELDS[name] is str) != (quoted is not None):
            raise ValueError(f"line {number} has a value of the wrong type: {line[:80]!r}")
        fields[name].append(_unquote(quoted) if quoted is not None else float(bare))
    if len(fields["model_checkpoint_path"]) != 1 or len(fields["last_preserved_timestamp"]) > 1:
        raise ValueError("it must name model_checkpoint_path exactly once")
    paths, stamps = fields["all_model_checkpoint_paths"], fields["all_model_checkpoint_timestamps"]
    if stamps and len(stamps) != len(paths):
        raise ValueError(f"it has {len(paths)} paths but {len(stamps)} timestamps")
    last = fields["last_preserved_timestamp"]
    return CheckpointState(fields["model_checkpoint_path"][0], paths, stamps, last[0] if last else None, deleting)


def format_state(state):
    """The text of a `checkpoint` state file, as TensorFlow writes it."""
    lines = [f"model_checkpoint_path: {_quote(state.model_checkpoint_path)}"]
    lines += [f"all_model_checkpoint_paths: {_quote(p)}" for p in state.all_model_checkpoint_paths]
    lines += [f"all_model_checkpoint_timestamps: {t!r}" for t in state.all_model_checkpoint_timestamps]
    if state.last_preserved_timestamp is not None:
        lines.append(f"last_preserved_timestamp: {state.last_preserved_timestamp!r}")
    lines += [f"# kerasckpt deleting: {_quote(p)}" for p in getattr(state, "deleting", ())]
    return "\n".join(lines) + "\n"


def read_state(directory):
    """`(state or None, problem or None)`: None, None when there is no state file."""
    path = os.path.join(os.fspath(directory), STATE_FILE)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except IsADirectoryError:
        return None, f"'{path}' is a directory"
    try:
        return parse_state(raw.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError) as e:
        return None, f"the state file '{path}' is damaged ({e})"


def write_state(directory, state):
    """Replace the state file of `directory` atomically (temp file, fsync, rename, directory fsync)."""
    _fileio.atomic_write_bytes(os.path.join(directory, STATE_FILE), format_state(state).encode("utf-8"))


def _relative(directory, path):
    rel = os.path.relpath(path, directory)
    return path if rel.startswith("..") else rel


def _absolute(directory, path):
    return path if os.path.isabs(path) else os.path.join(directory, path)


def write_plain_state(path):
    """Record `path` as the latest checkpoint of its directory, as plain `Checkpoint.save()` does."""
    directory = os.path.dirname(path)
    rel = _relative(directory, path)
    write_state(directory, CheckpointState(rel, [rel]))


_NUMBERED = re.compile(r"^(.*)-(\d+)\.index$")


def _candidates(directory, name=None):
    """`(index mtime_ns, number, prefix)` of every `name-N.index` (any name when None), oldest first."""
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    found = []
    for entry in entries:
        m = _NUMBERED.match(entry)
        if not m or (name is not None and m.group(1) != name):
            continue
        prefix = os.path.join(directory, entry[:-len(".index")])
        try:
            mtime = os.stat(prefix + ".index").st_mtime_ns
        except OSError:
            continue
        found.append((mtime, int(m.group(2)), prefix))
    return sorted(found)


def _scan(directory, name=None):
    """Complete checkpoints `name-N` (any name when None) in `directory`, oldest first."""
    return [p for _, _, p in _candidates(directory, name) if files.is_complete(p)]


def _newest_complete(directory, name=None):
    """The newest complete checkpoint `name-N` (any name when None) in `directory`, or None."""
    for _, _, prefix in reversed(_candidates(directory, name)):
        if files.is_complete(prefix):
            return prefix
    return None


def _unrecorded(directory, state, state_path, name=None):
    """Complete checkpoints `name-N` (any name when None), oldest first, whose save was killed after their
    files were complete and before the state file named them: written no earlier than the state file,
    numbered above every checkpoint of their name it names, and not being deleted by its writer."""
    try:
        recorded_at = os.stat(state_path).st_mtime_ns
    except OSError:
        return []
    named = {_absolute(directory, p) for p in
             state.all_model_checkpoint_paths + [state.model_checkpoint_path] + state.deleting}
    highest = collections.Counter()
    for path in named:
        m = _NUMBERED.match(os.path.basename(path) + ".index")
        if m and os.path.dirname(path) == directory:
            highest[m.group(1)] = max(highest[m.group(1)], int(m.group(2)))
    # A checkpoint kept by keep_checkpoint_every_n_hours fails both tests: it was written before the state
    # that stopped listing it, and it left the list from the old end.
    return [prefix for mtime, number, prefix in _candidates(directory, name)
            if mtime >= recorded_at and number > highest[os.path.basename(prefix).rsplit("-", 1)[0]]
            and prefix not in named and files.is_complete(prefix)]


def _choose_latest(directory, state, problem, state_path):
    """`(newest complete checkpoint or None, warning or None)` in `directory`, whatever prefix wrote it.

    The state file's latest checkpoint, unless a save killed before the state named it left a newer one
    complete; the newest complete one it lists when its files are missing or damaged; the newest complete
    one on disk when there is no state file, or a damaged or empty one (then with a warning)."""
    if state is None:
        chosen = _newest_complete(directory)
        if problem is None:
            return chosen, None
        return chosen, (f"{problem}. Using the newest complete checkpoint in '{directory}' instead: "
                        f"{chosen or 'none found'}. The next CheckpointManager.save() rewrites the state file.")
    unrecorded = _unrecorded(directory, state, state_path)
    if unrecorded:
        return unrecorded[-1], None
    latest = _absolute(directory, state.model_checkpoint_path)
    if files.is_complete(latest):
        return latest, None
    listed = [_absolute(directory, p) for p in reversed(state.all_model_checkpoint_paths)]
    candidates = [p for p in listed if p != latest and files.is_complete(p)]
    candidates = candidates or [p for p in reversed(_scan(directory)) if p != latest]
    chosen = candidates[0] if candidates else None
    return chosen, (f"The state file '{state_path}' names '{latest}', whose files are missing or damaged. Using the "
                    f"newest complete checkpoint instead: {chosen}. Delete the state file or save again to clear "
                    "this warning.")


def _warn(message):
    warnings.warn(message, UserWarning, stacklevel=3)


def latest_checkpoint(checkpoint_dir, latest_filename=None):
    """The path of the newest complete checkpoint recorded in `checkpoint_dir`, or None.

    Args:
        checkpoint_dir: the directory holding the `checkpoint` state file.
        latest_filename: the state file's name (default `checkpoint`).

    Note: TensorFlow returns a checkpoint whose data file is missing, and treats a damaged state file
    as "no checkpoint" (training silently starts over). Here a state file naming missing or damaged
    files falls back to the newest complete checkpoint it lists, and a damaged or empty state file to
    the newest complete checkpoint in the directory, each with a warning naming the file. A complete
    numbered checkpoint (`name-N`) written after the state file, numbered above every `name-N` it
    names, is a save killed before the state file named it: it is the newest, as `CheckpointManager`
    finds it. Without a state file this is the newest complete numbered checkpoint in the directory;
    None when there is none (TensorFlow: always None).
    """
    _storage.refuse_url(checkpoint_dir, "find native checkpoints in")
    directory = os.fspath(checkpoint_dir)
    path = os.path.join(directory, latest_filename or STATE_FILE)
    if latest_filename not in (None, STATE_FILE):
        try:
            with open(path, encoding="utf-8") as f:
                state, problem = parse_state(f.read()), None
        except FileNotFoundError:
            return None
        except (UnicodeDecodeError, ValueError) as e:
            state, problem = None, f"the state file '{path}' is damaged ({e})"
    else:
        state, problem = read_state(directory)
    chosen, message = _choose_latest(directory, state, problem, path)
    if message:
        _warn(message)
    return chosen


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
                 _clock=None):
        from kerasckpt.checkpoint.checkpoint import Checkpoint
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
        _storage.refuse_url(directory, "manage native checkpoints in")
        self._directory = os.fspath(directory)
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

    def _mine(self, path):
        m = _NUMBERED.match(os.path.basename(path) + ".index")
        return bool(m) and m.group(1) == self._checkpoint_name and os.path.dirname(path) == self._directory

    def _recover(self):
        now = self._clock()
        state_path = os.path.join(self._directory, STATE_FILE)
        state, problem = read_state(self._directory)
        self._last_preserved_timestamp = now - 1.0
        self._latest_checkpoint, message = _choose_latest(self._directory, state, problem, state_path)
        if message:
            _warn(message)
        if state is None:
            newest = None if problem else _newest_complete(self._directory, self._checkpoint_name)
            if newest is not None:  # complete, but the state file was never written (a crash just before it)
                self._maybe_delete[newest] = self._mtime(newest, now)  # adopted, as if its save had recorded it
            return
        if state.last_preserved_timestamp is not None:
            self._last_preserved_timestamp = min(state.last_preserved_timestamp, now)
        stamps = state.all_model_checkpoint_timestamps or [self._last_preserved_timestamp] * len(
            state.all_model_checkpoint_paths)
        lost = []
        for rel, stamp in zip(state.all_model_checkpoint_paths, stamps):
            path = _absolute(self._directory, rel)
            if not self._mine(path) or min(stamp, now) <= self._last_preserved_timestamp:
                continue
            if files.is_complete(path):
                self._maybe_delete[path] = min(stamp, now)
            else:
                lost.append(path)
        # Saves killed before the state named them: adopted in save order, as if their saves had recorded them
        for path in _unrecorded(self._directory, state, state_path, self._checkpoint_name):
            self._maybe_delete[path] = self._mtime(path, now)
        named_latest = _absolute(self._directory, state.model_checkpoint_path)
        lost = [p for p in lost if not (message and p == named_latest)]  # the warning above named it
        if lost:
            _warn(f"The state file '{state_path}' names checkpoints whose files are missing or damaged: "
                  f"{sorted(set(lost))}. Continuing from the newest complete checkpoint: {self._latest_checkpoint}.")

    def _mtime(self, prefix, now):
        try:
            return min(os.stat(prefix + ".index").st_mtime, now)
        except OSError:
            return now

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
        if latest is None or files.is_complete(latest):
            return latest
        candidates = [p for p in kept if p != latest and files.is_complete(p)]
        candidates = candidates or [p for p in _scan(self._directory) if p != latest]
        fallback = candidates[-1] if candidates else None
        _warn(f"The latest checkpoint '{latest}' has missing or damaged files; using '{fallback}' instead.")
        return fallback

    # ------------------------------------------------------------------ saving
    def _highest_number(self):
        pattern = re.compile(re.escape(self._checkpoint_name) + r"-(\d+)\.(?:index|data-\d{5}-of-\d{5}(?:\.g\d+)?)$")
        try:
            names = os.listdir(self._directory)
        except OSError:
            return 0
        return max((int(m.group(1)) for m in map(pattern.match, names) if m), default=0)

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
        prefix = os.path.join(self._directory, f"{self._checkpoint_name}-{number}")

        def complete(path):  # the files are complete: record them (on the writer thread in the background)
            with self._lock:
                self._record(prefix, fresh=checkpoint_number is None, current_step=current_step)

        queued = False
        try:
            prepared = self._checkpoint._prepare_write(prefix, options, then=complete)
            if _in_background(options):
                self._checkpoint._writer().submit(prepared)
                queued = True  # from here a failure shows at the next save; its number stays used
            else:
                prepared.write()
        except BaseException:
            if not queued:
                counter.assign(previous)
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

    def _write_state(self, doomed=()):
        """Write the state; returns what to delete now: `doomed` and what the previous state's record left."""
        # The new state names them all in its record, so a kill before they are gone leaves it for the next save.
        state, _ = read_state(self._directory)
        paths, stamps, recorded = [], [], []
        try:
            recorded_at = os.stat(os.path.join(self._directory, STATE_FILE)).st_mtime_ns
        except OSError:
            recorded_at = None
        if state is not None:  # keep other managers' entries: they must not be orphaned
            old_stamps = state.all_model_checkpoint_timestamps or [0.0] * len(state.all_model_checkpoint_paths)
            for rel, stamp in zip(state.all_model_checkpoint_paths, old_stamps):
                path = _absolute(self._directory, rel)
                name_match = _NUMBERED.match(os.path.basename(path) + ".index")
                if name_match and name_match.group(1) != self._checkpoint_name and os.path.exists(path + ".index"):
                    paths.append(rel)
                    stamps.append(stamp)
            recorded = [_absolute(self._directory, rel) for rel in state.deleting]
        for path, stamp in self._maybe_delete.items():
            paths.append(_relative(self._directory, path))
            stamps.append(stamp)
        kept = {_absolute(self._directory, p) for p in paths} | {self._latest_checkpoint}
        deleting = []
        for path in list(doomed) + recorded:
            if path not in kept and path not in deleting and (path in doomed or self._left_over(path, recorded_at)):
                deleting.append(path)
        write_state(self._directory, CheckpointState(
            _relative(self._directory, self._latest_checkpoint), paths, stamps, self._last_preserved_timestamp,
            [_relative(self._directory, p) for p in deleting]))
        return deleting

    @staticmethod
    def _left_over(prefix, recorded_at):
        """Whether files of `prefix` remain, all older than the record naming it (not written again since)."""
        directory = os.path.dirname(prefix)
        paths = [prefix + ".index"] + [os.path.join(directory, n) for n in files.data_files_on_disk(prefix)]
        times = []
        for path in paths:
            try:
                times.append(os.stat(path).st_mtime_ns)
            except OSError:
                pass
        return bool(times) and recorded_at is not None and max(times) <= recorded_at

    def _delete_orphans(self, keep):
        """Delete data files of this manager's name that no index names (left by an interrupted save)."""
        pattern = re.compile(re.escape(self._checkpoint_name) + r"-(\d+)\.data-\d{5}-of-\d{5}(?:\.g\d+)?$")
        try:
            names = os.listdir(self._directory)
        except OSError:
            return
        orphans = []
        for name in names:
            m = pattern.match(name)
            prefix = os.path.join(self._directory, f"{self._checkpoint_name}-{m.group(1)}") if m else None
            if prefix and prefix != keep and not os.path.exists(prefix + ".index"):
                orphans.append(name)
        if orphans:  # spare data files an index under another name still names (its user renamed only that)
            named = set()
            for index in (n for n in names if n.endswith(".index")):
                named.update(files.written_data_names(os.path.join(self._directory, index)))
            orphans = [n for n in orphans if n not in named]
        for name in orphans:
            try:
                os.remove(os.path.join(self._directory, name))
            except OSError:
                pass

    def _delete(self, prefix):
        directory, base = os.path.split(prefix)
        doomed = [prefix + ".index"] + [os.path.join(directory, n) for n in files.data_files_on_disk(prefix)]
        for path in doomed:  # the index first: the checkpoint stops being readable before data goes
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                _warn(f"Could not delete old checkpoint file '{path}' ({e}). Delete it by hand.")

    # ------------------------------------------------------------------ restoring
    def restore_or_initialize(self):
        """Restore `latest_checkpoint` and return its path; or call `init_fn` and return None.

        That is the newest entry of `checkpoints`, unless another prefix saved a newer checkpoint in the
        directory since (`Checkpoint.save`, another manager): then that one, as in TensorFlow."""
        self._checkpoint.wait_until_finished()
        latest = self.latest_checkpoint
        if latest is not None:
            self._checkpoint.restore(latest)
            return latest
        if self._init_fn is not None:
            self._init_fn()
        return None
