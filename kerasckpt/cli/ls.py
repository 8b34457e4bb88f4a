"""`kerasckpt ls`: the checkpoints of a directory, newest first, values parsed from names, the best one."""
import datetime
import math
import os
import re
import string
import sys

from kerasckpt import _storage
from kerasckpt.errors import CheckpointError
from kerasckpt.cli.errors import EXIT_NO, EXIT_OK, CLIError
from kerasckpt.cli.output import _fmt_bytes, _fmt_num, _out, _print_json, _table
from kerasckpt.cli.sources import DATA_FILE, MODEL_ENDINGS, NUMBERED, SHORT_NAMES, STORAGE_OPTIONS, missing_error

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf|NaN|Inf)"
_INT = r"[-+]?\d+"
_COUNTER_WORDS = ("e", "ep", "epoch", "epochs", "b", "batch", "step")
_UP_WORDS = ("acc", "auc", "precision", "recall", "f1", "fmeasure", "iou")


def _file_part(template):
    """The part of a filepath template after its last directory separator outside `{...}` / `<...>` fields."""
    depth, cut = 0, 0
    for i, ch in enumerate(template):
        depth += (ch in "{<") - (ch in "}>")
        if depth == 0 and ch in ("/", os.sep):
            cut = i + 1
    return template[cut:]


def template_regex(template):
    """`(compiled regex, [field names])` matching file names made from a ModelCheckpoint `filepath` template."""
    from kerasckpt.callbacks.model_checkpoint import FilepathTemplate
    regex, fields, groups = "", [], {}
    try:
        pattern = FilepathTemplate(_file_part(os.fspath(template))).pattern
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as err:
        raise CLIError(f"--template {template!r} is not a valid filepath template ({err}). Use the ModelCheckpoint "
                       "filepath, e.g. 'model.{epoch:02d}-{val_loss:.3f}.keras'.") from None
    for literal, field, spec, _ in parsed:
        regex += re.escape(literal)
        if field is None:
            continue
        if field in groups:
            regex += f"(?P={groups[field]})"
            continue
        groups[field] = f"g{len(groups)}"
        fields.append(field)
        kind = (spec or "")[-1:]
        body = _INT if kind in "dxob" and kind else _NUMBER if kind in "eEfFgG%n" or not spec else ".+?"
        regex += f"(?P<{groups[field]}>{body})"
    return re.compile(regex + r"$"), fields


def _parse_name(name, template):
    """Values encoded in a file name: `{field: value}`, from the template or by the usual conventions.

    Without a template no epoch or batch is read: a number in a name ("w2", "m2.keras", "ckpt_step3") is
    as often a version or a run as an epoch, so only a template the user gives can say which it is.
    """
    stem = _strip_ending(name)
    if template is not None:
        regex, fields = template
        m = regex.match(name) or regex.match(stem)
        if not m:
            return None
        out = {}
        for i, field in enumerate(fields):
            text = m.group(f"g{i}")
            try:
                out[field] = int(text) if re.fullmatch(_INT, text) else float(text)
            except ValueError:
                out[field] = text
        return out
    out, unnamed = {}, []
    for m in re.finditer(r"([A-Za-z][A-Za-z_]*?)?[=_]?(\d+\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)(?![\d.]*\d)",
                         stem):
        word, text = re.sub(r"^(?:model|weights|ckpt|checkpoint)(?:_|$)", "", (m.group(1) or "").lower()), m.group(2)
        value = float(text) if ("." in text or "e" in text.lower()) else int(text)
        if word in _COUNTER_WORDS:
            continue  # an epoch or batch only through --template
        if len(word) > 1:
            out[m.group(1)[len(m.group(1)) - len(word):]] = value  # the name as written
        else:
            unnamed.append(value)
    for value in unnamed:  # a bare decimal is the monitored value; a bare integer says nothing certain
        if isinstance(value, float):
            out["value" if "value" not in out else f"value{sum(k.startswith('value') for k in out) + 1}"] = value
    return out


def _strip_ending(name):
    lower = name.lower()
    for ending in MODEL_ENDINGS:
        if lower.endswith(ending):
            return name[:-len(ending)]
    return name


def _direction(monitor, mode):
    if mode in ("min", "max"):
        return mode
    return "max" if any(w in monitor.lower() for w in _UP_WORDS) else "min"


def cmd_ls(args):
    """`kerasckpt ls`: with `--best`/`--latest` only that path, exit status 1 when there is none."""
    directory = _storage.normalize(args.dir)
    if _storage.is_url(directory):
        found = _storage.info(directory, STORAGE_OPTIONS)
        if found is None:
            raise CLIError(f"no such directory: '{directory}' (nothing is stored under it). Check the URL.")
    elif not os.path.exists(directory):
        raise missing_error(directory)
    else:
        found = {"type": "directory" if os.path.isdir(directory) else "file"}
    if found["type"] != "directory":
        raise CLIError(f"'{directory}' is not a directory. `kerasckpt ls` lists a directory; use "
                       f"`kerasckpt inspect {directory}` for one file.")
    template = template_regex(args.template) if args.template else None
    listing = _list_directory(directory, template, args.monitor, args.mode)
    if args.best or args.latest:
        which = "best" if args.best else "latest"
        if listing[which] is None:
            reason = ("no monitored values found in the file names; pass --template (the ModelCheckpoint filepath) "
                      "or --monitor" if which == "best" else "no checkpoints")
            print(f"kerasckpt ls: no {which} checkpoint in '{directory}': {reason}.", file=sys.stderr)
            return EXIT_NO
        args.outcome = EXIT_OK
        _out(listing[which])
        return EXIT_OK
    args.outcome = EXIT_OK
    if args.json:
        _print_json(listing)
    else:
        _print_ls(listing)
    return EXIT_OK


def _list_directory(directory, template, monitor, mode):
    from kerasckpt._fileio import TEMP_MARK
    from kerasckpt.checkpoint.state import read_state
    state, state_problem = read_state(directory, STORAGE_OPTIONS)
    stamps, latest = {}, None
    if state is not None:
        paths = state.all_model_checkpoint_paths
        times = state.all_model_checkpoint_timestamps or [None] * len(paths)
        for rel, stamp in zip(paths, times):
            stamps[_key(_in(directory, rel))] = stamp
        latest = _key(_in(directory, state.model_checkpoint_path))
    entries, temps, orphans = [], 0, []
    files = _storage.listing(directory, STORAGE_OPTIONS)  # {name: (size, mtime_ns)}: one request on a store
    subdirs = [n for n in _storage.listdir(directory, STORAGE_OPTIONS) if n not in files]
    indexes = {n[:-len(".index")] for n in files if n.endswith(".index")}
    for name, (size, mtime_ns) in files.items():
        full = _storage.join(directory, name)
        if TEMP_MARK in name:
            temps += 1
            continue
        if DATA_FILE.search(name):
            if name[:DATA_FILE.search(name).start()] not in indexes:
                orphans.append(name)
            continue
        if name.endswith(".index"):
            entries.append(_native_entry(directory, name[:-len(".index")], stamps, latest, files))
        elif name.lower().endswith(MODEL_ENDINGS):
            kind = "keras" if name.lower().endswith(".keras") else "weights.h5" if name.lower().endswith(
                ".weights.h5") else "h5"
            entries.append({"name": name, "path": full, "format": kind, "size": size,
                            "time": mtime_ns / 1e9, "status": "ok", "number": None, "step": None})
    fields = []
    for entry in entries:
        numbered = entry["format"] == "native" and entry["number"] is not None and template is None
        values = {} if numbered else _parse_name(entry["name"], template) or {}
        entry["epoch"] = values.pop("epoch", None)
        entry["batch"] = values.pop("batch", None)
        entry["values"] = values
        fields += [f for f in values if f not in fields]
    monitor = monitor or (fields[0] if fields else None)
    direction = _direction(monitor, mode) if monitor else None
    scored = [e for e in entries if isinstance(e["values"].get(monitor), (int, float))
              and not math.isnan(e["values"][monitor])]
    best = None
    if scored:
        pick = min if direction == "min" else max
        best_value = pick(e["values"][monitor] for e in scored)
        best = max((e for e in scored if e["values"][monitor] == best_value), key=_order_key)  # newest wins ties
    if all(e["epoch"] is not None for e in entries):
        entries.sort(key=lambda e: (e["epoch"], e["batch"] or 0, e["time"]), reverse=True)
    else:
        entries.sort(key=_order_key, reverse=True)
    if latest is None and entries:
        latest_entry = entries[0]
    else:
        latest_entry = next((e for e in entries if _key(e["path"]) == latest), None)
    for e in entries:
        marks = []
        if e is latest_entry:
            marks.append("latest")
        if e is best:
            marks.append("best")
        e["marks"] = marks
        e["modified"] = datetime.datetime.fromtimestamp(e["time"]).strftime("%Y-%m-%d %H:%M:%S")
    notes = []
    if template is None and fields:
        notes.append("values read from the file names by convention (a named number such as val_loss0.41, a bare "
                     "decimal as the monitored 'value'); pass --template with the ModelCheckpoint filepath to name "
                     "them exactly and to show epochs.")
    if state_problem:
        notes.append(f"{state_problem}; `kerasckpt verify {directory}` checks every checkpoint.")
    if temps:
        notes.append(f"{temps} temporary file(s) of unfinished saves (deleted by the next save in this directory).")
    if orphans:
        notes.append(f"data files without an index (left by an interrupted save): {', '.join(sorted(orphans))}.")
    if subdirs:
        notes.append(f"subdirectories not listed: {', '.join(sorted(subdirs))}.")
    return {"directory": directory, "monitor": monitor, "mode": direction,
            "fields": fields, "entries": entries, "best": best["path"] if best else None,
            "latest": latest_entry["path"] if latest_entry else None, "notes": notes}


def _in(directory, path):
    """A path of a state file in `directory` (relative to it, or absolute)."""
    return path if _storage.isabs(path) else _storage.join(directory, path)


def _key(path):
    """`path` in one spelling, for comparisons."""
    return path if _storage.is_url(path) else os.path.normpath(path)


def _order_key(entry):
    return (entry["time"], entry["epoch"] or 0, entry["batch"] or 0, entry.get("number") or 0, entry["name"])


def _native_entry(directory, base, stamps, latest, files):
    """A native checkpoint for `ls`: who wrote it (from its index and the state file), its step, its state.

    `files`: the directory's `_storage.listing` (sizes and times without a request per file).
    """
    from kerasckpt.checkpoint import bundle
    prefix = _storage.join(directory, base)
    entry = {"name": base, "path": prefix, "format": "native", "status": "ok", "step": None}
    number = NUMBERED.match(base)
    entry["number"] = int(number.group(2)) if number else None
    key = _key(prefix)
    listed = key in stamps or key == latest
    entry["time"] = stamps.get(key) or files[base + ".index"][1] / 1e9
    try:
        reader = bundle.CheckpointReader(prefix, STORAGE_OPTIONS)
    except (CheckpointError, OSError) as err:
        entry.update(status="unreadable", size=files[base + ".index"][0], error=str(err))
        return entry
    with reader:
        entry["size"] = files[base + ".index"][0] + sum(files.get(n, (0, 0))[0] for n in reader.data_files())
        try:
            meta = reader.metadata or {}
        except (CheckpointError, OSError):
            meta = {}
        if meta.get("format") == "kerasckpt.backup/1":
            entry["by"] = "BackupAndRestore"
            loop = meta.get("loop") or {}
            entry["epochs_done"], entry["batches_into_next"] = loop.get("epoch"), loop.get("step")
        elif listed:
            entry["by"] = "CheckpointManager"
        try:
            reader.check_complete()
        except (CheckpointError, OSError):
            entry["status"] = "incomplete"
            return entry
        for name in ("step", "optimizer/iterations", "global_step", "optimizer/_iterations", "optimizer/iter"):
            name = name if reader.has_tensor(name) else name + bundle.VALUE_SUFFIX
            if reader.has_tensor(name) and reader.shape(name) == () and reader.tf_dtype(name).kind in "iu":
                try:
                    entry["step"] = int(reader.read(name))
                except CheckpointError:
                    entry["status"] = "damaged"
                break
    return entry


def _print_ls(listing):
    entries = listing["entries"]
    _out(f"{listing['directory']}: {len(entries)} checkpoint(s), newest first"
         + (f"; best by {listing['monitor']} ({listing['mode']})" if listing["best"] else ""))
    if entries:
        fields = listing["fields"]
        has_epoch = any(e["epoch"] is not None or e.get("epochs_done") is not None for e in entries)
        has_step = any(e["step"] is not None for e in entries)
        headers = ["name", "format"] + (["epoch"] if has_epoch else []) + (["step"] if has_step else []) + fields + [
            "size", "modified", ""]
        rows = []
        for e in entries:
            epoch = e["epoch"] if e["epoch"] is not None else e.get("epochs_done")
            batch = e["batch"]
            epoch_text = "" if epoch is None else str(epoch) + (f" b{batch}" if batch is not None else "")
            if e.get("by") == "BackupAndRestore" and e.get("batches_into_next"):
                epoch_text += f" +{e['batches_into_next']} batches"
            fmt = SHORT_NAMES.get(e["format"], "." + e["format"]) if e["format"] != "h5" else ".h5"
            if e.get("by"):
                fmt += f" ({e['by']})"
            marks = list(e["marks"]) + ([e["status"]] if e["status"] != "ok" else [])
            rows.append([e["name"], fmt] + ([epoch_text] if has_epoch else []) +
                        ([("" if e["step"] is None else str(e["step"]))] if has_step else []) +
                        [_fmt_num(e["values"].get(f)) if f in e["values"] else "" for f in fields] +
                        [_fmt_bytes(e["size"]), e["modified"], ", ".join(marks)])
        n = len(headers)
        _out(_table(rows, headers, right=set(range(2, n - 2))))
    for note in listing["notes"]:
        _out(f"note: {note}")
