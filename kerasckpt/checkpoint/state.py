"""The plain-text `checkpoint` state file (TensorFlow's text format), `latest_checkpoint`, and the
numbered checkpoints (`name-N`) of a directory.

Directories may be fsspec URLs (every function takes `storage_options`; on a store the state file is an
object, `write_state` can be conditional on the version `load_state` read).

API: `read_state(dir)` -> (CheckpointState or None, problem or None), `load_state` (the same and its
identity), `write_state`, `parse_state`, `format_state`, `write_plain_state(prefix)`;
`latest_checkpoint(dir)`; `resolve_checkpoint(path)` (a
prefix, or a directory meaning its latest checkpoint); `NUMBERED` (the `name-N.index` pattern),
`candidates` / `scan` / `newest_complete` (numbered checkpoints on disk); `choose_latest`, `unrecorded`
(how CheckpointManager recovers). Comment lines `# kerasckpt deleting: "ckpt-1"` (which TensorFlow's
parser skips) record checkpoints a manager is deleting.
"""
import codecs
import collections
import os
import re
import warnings

from kerasckpt import _storage
from kerasckpt.checkpoint import bundle
from kerasckpt.errors import CheckpointNotFoundError

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


def read_state(directory, storage_options=None):
    """`(state or None, problem or None)`: None, None when there is no state file."""
    state, problem, _ = load_state(directory, storage_options)
    return state, problem


def load_state(directory, storage_options=None):
    """`(state or None, problem or None, identity)`: the state file and which version of it was read."""
    path = _storage.join(_storage.normalize(directory), STATE_FILE)
    try:
        raw, identity = _storage.read_versioned(path, storage_options)
    except NotADirectoryError:
        return None, None, None
    except IsADirectoryError:
        return None, f"'{path}' is a directory", None
    if raw is None:
        return None, None, None
    try:
        return parse_state(raw.decode("utf-8")), None, identity
    except (UnicodeDecodeError, ValueError) as e:
        return None, f"the state file '{path}' is damaged ({e})", identity


def write_state(directory, state, storage_options=None, if_match=None, if_none_match=False):
    """Replace the state file of `directory` atomically; returns its new identity.

    Locally: temp file, fsync, rename, directory fsync. On a store: one upload, conditional with `if_match` /
    `if_none_match` (see `_storage.write_bytes`).
    """
    return _storage.write_bytes(_storage.join(directory, STATE_FILE), format_state(state).encode("utf-8"),
                                storage_options, if_match=if_match, if_none_match=if_none_match)


def relative_path(directory, path):
    if _storage.is_url(directory):
        root = directory.rstrip("/") + "/"
        return path[len(root):] if path.startswith(root) else path
    rel = os.path.relpath(path, directory)
    return path if rel.startswith("..") else rel


def absolute_path(directory, path, storage_options=None):
    """`path` of a state file in `directory`, joined to it when relative. An absolute path that names no
    checkpoint while the same name does in `directory` (TF1 `Saver` state files written on another machine,
    or before the directory moved) is taken as that one."""
    if not _storage.isabs(path):
        return _storage.join(directory, path)
    if _storage.is_url(path) != _storage.is_url(directory) or not _storage.isfile(path + ".index", storage_options):
        moved = _storage.join(directory, _storage.basename(path))
        if _storage.isfile(moved + ".index", storage_options):
            return moved
    return path


def write_plain_state(path, storage_options=None):
    """Record `path` as the latest checkpoint of its directory, as plain `Checkpoint.save()` does."""
    directory = _storage.dirname(path)
    rel = relative_path(directory, path)
    write_state(directory, CheckpointState(rel, [rel]), storage_options)


NUMBERED = re.compile(r"^(.*)-(\d+)\.index$")


def candidates(directory, name=None, storage_options=None, listed=None):
    """`(index mtime_ns, number, prefix)` of every `name-N.index` (any name when None), oldest first.

    On a store the times have the store's resolution (S3: seconds): ties are ordered by number.
    `listed`: the directory's `_storage.listing`, when made already.
    """
    found = []
    listed = _storage.listing(directory, storage_options) if listed is None else listed
    for entry, (_, mtime) in listed.items():
        m = NUMBERED.match(entry)
        if not m or (name is not None and m.group(1) != name):
            continue
        found.append((mtime, int(m.group(2)), _storage.join(directory, entry[:-len(".index")])))
    return sorted(found)


def scan(directory, name=None, storage_options=None):
    """Complete checkpoints `name-N` (any name when None) in `directory`, oldest first."""
    return [p for _, _, p in candidates(directory, name, storage_options) if bundle.is_complete(p, storage_options)]


def newest_complete(directory, name=None, storage_options=None):
    """The newest complete checkpoint `name-N` (any name when None) in `directory`, or None."""
    for _, _, prefix in reversed(candidates(directory, name, storage_options)):
        if bundle.is_complete(prefix, storage_options):
            return prefix
    return None


def unrecorded(directory, state, state_path, name=None, storage_options=None):
    """Complete checkpoints `name-N` (any name when None), oldest first, whose save was killed after their
    files were complete and before the state file named them: written no earlier than the state file,
    numbered above every checkpoint of their name it names, and not being deleted by its writer."""
    listed = _storage.listing(directory, storage_options)
    recorded = (listed if _storage.dirname(state_path) == directory else _storage.listing(
        _storage.dirname(state_path), storage_options)).get(_storage.basename(state_path))
    if recorded is None:
        return []
    recorded_at = recorded[1]
    named = {absolute_path(directory, p, storage_options) for p in
             state.all_model_checkpoint_paths + [state.model_checkpoint_path] + state.deleting}
    highest = collections.Counter()
    for path in named:
        m = NUMBERED.match(_storage.basename(path) + ".index")
        if m and _storage.dirname(path) == directory:
            highest[m.group(1)] = max(highest[m.group(1)], int(m.group(2)))
    # A checkpoint kept by keep_checkpoint_every_n_hours fails both tests: it was written before the state
    # that stopped listing it, and it left the list from the old end.
    return [prefix for mtime, number, prefix in candidates(directory, name, storage_options, listed)
            if mtime >= recorded_at and number > highest[_storage.basename(prefix).rsplit("-", 1)[0]]
            and prefix not in named and bundle.is_complete(prefix, storage_options)]


def choose_latest(directory, state, problem, state_path, storage_options=None):
    """`(newest complete checkpoint or None, warning or None)` in `directory`, whatever prefix wrote it.

    The state file's latest checkpoint, unless a save killed before the state named it left a newer one
    complete; the newest complete one it lists when its files are missing or damaged; the newest complete
    one on disk when there is no state file, or a damaged or empty one (then with a warning)."""
    if state is None:
        chosen = newest_complete(directory, storage_options=storage_options)
        if problem is None:
            return chosen, None
        return chosen, (f"{problem}. Using the newest complete checkpoint in '{directory}' instead: "
                        f"{chosen or 'none found'}. The next CheckpointManager.save() rewrites the state file.")
    killed = unrecorded(directory, state, state_path, storage_options=storage_options)
    if killed:
        return killed[-1], None
    latest = absolute_path(directory, state.model_checkpoint_path, storage_options)
    if bundle.is_complete(latest, storage_options):
        return latest, None
    listed = [absolute_path(directory, p, storage_options) for p in reversed(state.all_model_checkpoint_paths)]
    found = [p for p in listed if p != latest and bundle.is_complete(p, storage_options)]
    found = found or [p for p in reversed(scan(directory, storage_options=storage_options)) if p != latest]
    chosen = found[0] if found else None
    return chosen, (f"The state file '{state_path}' names '{latest}', whose files are missing or damaged. Using the "
                    f"newest complete checkpoint instead: {chosen}. Delete the state file or save again to clear "
                    "this warning.")


def _warn(message):
    warnings.warn(message, UserWarning, stacklevel=3)


def latest_checkpoint(checkpoint_dir, latest_filename=None, storage_options=None):
    """The path of the newest complete checkpoint recorded in `checkpoint_dir`, or None.

    Args:
        checkpoint_dir: the directory holding the `checkpoint` state file; a path or an fsspec URL.
        latest_filename: the state file's name (default `checkpoint`).
        storage_options: options of the store a URL names (credentials, endpoint; see fsspec).

    Note: TensorFlow returns a checkpoint whose data file is missing, and treats a damaged state file
    as "no checkpoint" (training silently starts over). Here a state file naming missing or damaged
    files falls back to the newest complete checkpoint it lists, and a damaged or empty state file to
    the newest complete checkpoint in the directory, each with a warning naming the file. A complete
    numbered checkpoint (`name-N`) written after the state file, numbered above every `name-N` it
    names, is a save killed before the state file named it: it is the newest, as `CheckpointManager`
    finds it. Without a state file this is the newest complete numbered checkpoint in the directory;
    None when there is none (TensorFlow: always None). An absolute path in the state file (TF1 `Saver`'s
    default) that names no checkpoint is looked up by its name in `checkpoint_dir`, so a directory copied
    from another machine still has its latest checkpoint (TensorFlow: None).
    """
    directory = _storage.normalize(checkpoint_dir)
    path = _storage.join(directory, latest_filename or STATE_FILE)
    if latest_filename not in (None, STATE_FILE):
        raw, _ = _storage.read_versioned(path, storage_options)
        if raw is None:
            return None
        try:
            state, problem = parse_state(raw.decode("utf-8")), None
        except (UnicodeDecodeError, ValueError) as e:
            state, problem = None, f"the state file '{path}' is damaged ({e})"
    else:
        state, problem = read_state(directory, storage_options)
    chosen, message = choose_latest(directory, state, problem, path, storage_options)
    if message:
        _warn(message)
    return chosen


def resolve_checkpoint(ckpt_dir_or_file, storage_options=None):
    """The checkpoint prefix for a prefix (or its .index / a data file), or for a directory its latest checkpoint.

    Raises CheckpointNotFoundError for a directory without one, naming what to pass instead.
    """
    if ckpt_dir_or_file is None:
        return bundle.resolve_prefix(None)
    path = _storage.normalize(ckpt_dir_or_file)
    if _storage.isfile(path + ".index", storage_options):
        return path
    if _storage.isdir(path, storage_options):
        latest = latest_checkpoint(path, storage_options=storage_options)
        if latest is None:
            raise CheckpointNotFoundError(
                f"'{path}' is a directory without a recorded checkpoint (no usable 'checkpoint' state file, and no "
                "complete checkpoint named like 'ckpt-1'). Pass a checkpoint prefix such as 'dir/ckpt-1' (the path "
                "save() returned).")
        return latest
    return bundle.resolve_prefix(path, storage_options)
