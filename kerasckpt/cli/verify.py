"""`kerasckpt verify`: every checksum and structural invariant of files, prefixes and directories."""
import os
import sys
import warnings

import numpy as np

from kerasckpt import _storage
from kerasckpt.errors import CheckpointError
from kerasckpt.cli.errors import EXIT_BAD_INPUT, EXIT_NO, EXIT_OK, CLIError
from kerasckpt.cli.output import _natural, _out, _print_json, _progress
from kerasckpt.cli.sources import MODEL_ENDINGS, NUMBERED, SHORT_NAMES, STORAGE_OPTIONS, KerasSource, open_source
from kerasckpt.cli.models import _load_model


def cmd_verify(args):
    """`kerasckpt verify`: exit status 0 when every checkpoint is intact, 1 on damage, 2 when a path is bad input.

    Bad input (a missing path, an unknown format, a directory tree without checkpoints) is reported on
    stderr; the other paths are still verified.
    """
    results, errors = [], []
    for path in args.paths:
        try:
            results.extend(_verify_target(path))
        except CLIError as err:
            errors.append({"path": path, "error": str(err)})
    failed = [r for r in results if not r["ok"] or (args.strict and r.get("checksums") is False)]
    args.outcome = EXIT_BAD_INPUT if errors else EXIT_NO if failed else EXIT_OK
    if args.json:
        _print_json({"intact": not failed and not errors, "results": results, "errors": errors})
    elif results:
        _print_results(results, failed, args.strict, len(errors))
    if errors:
        sys.stdout.flush()  # the errors come last, after what could be verified
        for e in errors:
            print(f"kerasckpt verify: error: {e['error']}", file=sys.stderr)
    return args.outcome


def _print_results(results, failed, strict, errors):
    for r in results:
        status = "OK" if r["ok"] else "DAMAGED" if r.get("exists", True) else "MISSING"
        if r["ok"] and strict and r.get("checksums") is False:
            status = "UNCHECKED"
        _out(f"{status:9} {r['path']}  ({r['what']})")
        for problem in r["problems"]:
            _out(f"          - {problem}")
        for note in r["notes"]:
            _out(f"          note: {note}")
    total, damaged = len(results), sum(1 for r in results if not r["ok"])
    unchecked = len(failed) - damaged
    summary = f"{total - damaged} of {total} intact" if damaged else f"all {total} intact"
    if unchecked:
        summary += f"; {unchecked} without checksums (refused by --strict)"
    if errors:
        summary += f"; {errors} path(s) not verified (errors below)"
    _out(f"\n{summary[0].upper()}{summary[1:]}.")


def _verify_target(path):
    """The results for one PATH argument; raises CLIError when it is bad input rather than a checkpoint."""
    if _storage.is_url(path):
        if _storage.isdir(path, STORAGE_OPTIONS):
            return _verify_store_tree(path)
        return [_verify_one(path, explicit=True)]
    if os.path.isdir(path) and not os.path.isfile(path + ".index"):
        return _verify_tree(path)
    return [_verify_one(path, explicit=True)]


def _verify_store_tree(top):
    """Every checkpoint under the URL `top`, at any depth (one listing per directory)."""
    results, pending, done = [], [top], set()
    while pending:
        directory = pending.pop(0)
        files = _storage.listing(directory, STORAGE_OPTIONS)
        results += _verify_directory(directory, done, files)
        pending += [_storage.join(directory, name) for name in sorted(
            set(_storage.listdir(directory, STORAGE_OPTIONS)) - set(files), key=_natural)]
    if not results:
        raise CLIError(f"nothing to verify in '{top}': neither it nor the directories under it hold checkpoints "
                       "(.keras, .weights.h5, .h5, .hdf5 files or PREFIX.index checkpoints). Pass a checkpoint or a "
                       "directory that holds some.")
    return results


def _verify_tree(top):
    """Every checkpoint in `top` and its subdirectories (symbolic links to directories are not followed)."""
    from kerasckpt._fileio import TEMP_MARK
    results, unlisted, done = [], [], set()
    for directory, subdirs, _ in os.walk(top, onerror=unlisted.append):
        subdirs[:] = sorted((d for d in subdirs if TEMP_MARK not in d), key=_natural)
        results += _verify_directory(directory, done)
    for err in unlisted:
        if os.path.normpath(err.filename or "") == os.path.normpath(top):
            raise CLIError(f"cannot list directory '{top}': {err.strerror}. Check its permissions.")
        results.append({"path": err.filename, "what": "directory", "ok": False, "notes": [], "problems": [
            f"cannot list it ({err.strerror}), so its checkpoints were not verified. Check its permissions."]})
    if not results:
        raise CLIError(f"nothing to verify in '{top}': neither it nor its subdirectories hold checkpoints (.keras, "
                       ".weights.h5, .h5, .hdf5 files or PREFIX.index checkpoints). Pass a checkpoint or a directory "
                       "that holds some.")
    return results


def _verify_one(path, note=None, explicit=False):
    """The result of one checkpoint; an `explicit` PATH argument that is no checkpoint raises CLIError instead."""
    result = {"path": path, "what": "?", "ok": False, "problems": [], "notes": [note] if note else [], "exists": True}
    try:
        src = open_source(path)
    except CLIError as err:
        if explicit:
            raise
        result["exists"] = _storage.exists(path, STORAGE_OPTIONS) or _storage.exists(path + ".index", STORAGE_OPTIONS)
        result["what"] = "not found" if not result["exists"] else "unreadable"
        result["problems"].append(str(err))
        return result
    except CheckpointError as err:
        result["what"] = "could not be opened"
        result["problems"].append(str(err))
        return result
    with src:
        result["path"] = src.path
        result["format"] = src.kind
        result["checksums"] = src.kind == "native" or src.checksummed
        variables = src.variables()
        result["what"] = f"{SHORT_NAMES[src.kind]}, {len(variables)} values" + (
            "" if result["checksums"] else ", no checksums: structure read, values unverifiable")
        if isinstance(src, KerasSource):
            try:
                src.check_members()
            except CheckpointError as err:
                result["problems"].append(str(err))
        seen = set()
        result["notes"] += src.notes()
        nbytes = sum(int(np.prod(s)) * d.itemsize for _, s, d in variables)
        with _progress(total=nbytes, desc=f"verify {_storage.basename(src.path)}", unit="B", unit_scale=True) as bar:
            for key, shape, dtype in variables:
                try:
                    src.check(key)
                except CheckpointError as err:
                    message = str(err)
                    if message not in seen:  # a missing data file fails every value in it the same way
                        seen.add(message)
                        result["problems"].append(message)
                bar.update(int(np.prod(shape)) * dtype.itemsize)
        if not result["problems"]:  # a value that cannot be read already names its file's damage
            try:
                src.check_structure()
            except CheckpointError as err:
                result["problems"].append(str(err))
        if not result["problems"] and src.has_architecture():
            kind, message = _check_architecture(src)
            if message:
                result[kind].append(message)
    result["ok"] = not result["problems"]
    return result


def _check_architecture(src):
    """Load the whole model (the config must rebuild, every weight must fit it): `("problems"|"notes", message)`."""
    from kerasckpt.errors import UnknownObjectError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _load_model(src.path, compile=True)
    except UnknownObjectError as err:  # not damage: this installation lacks a class the file names
        return "notes", f"architecture not checked: {err}"
    except CheckpointError as err:
        return "problems", f"the architecture and the weights do not fit together: {err}"
    return "notes", None


def _verify_directory(directory, done, files=None):
    """The state file and checkpoints of one directory, skipping (and adding to) the normalized paths in `done`.

    `files`: the directory's `_storage.listing`, when made already.
    """
    from kerasckpt.checkpoint.state import STATE_FILE, absolute_path, read_state
    files = _storage.listing(directory, STORAGE_OPTIONS) if files is None else files
    results = []
    state, problem = read_state(directory, STORAGE_OPTIONS) if STATE_FILE in files else (None, None)
    state_path = _storage.join(directory, STATE_FILE)
    if problem is not None:
        results.append({"path": state_path, "what": "CheckpointManager state file", "ok": False,
                        "problems": [f"{problem}. Delete it: the next CheckpointManager.save() writes a new one."],
                        "notes": []})
    elif state is not None:
        listed = list(dict.fromkeys(state.all_model_checkpoint_paths + [state.model_checkpoint_path]))
        prefixes = [absolute_path(directory, p, STORAGE_OPTIONS) for p in listed]
        missing = [p for p in prefixes if not _has_index(directory, files, p)]
        entry = {"path": state_path, "what": f"CheckpointManager state file, {len(listed)} checkpoints listed",
                 "ok": not missing, "notes": [],
                 "problems": [f"it lists '{p}', whose index '{p}.index' is missing" for p in missing]}
        results.append(entry)
        for prefix in prefixes:
            if prefix not in missing and _normalized(prefix) not in done:
                results.append(_verify_one(prefix))
                done.add(_normalized(prefix))
    for kind, path in _checkpoints_in(directory, files):
        if _normalized(path) in done:
            continue
        numbered = kind == "native" and NUMBERED.match(_storage.basename(path))
        note = "not listed in the state file" if state is not None and numbered else None
        results.append(_verify_one(path, note))
        done.add(_normalized(path))
    return results


def _has_index(directory, files, prefix):
    """Whether `prefix.index` exists (looked up in `files`, the listing of `directory`, when it lies there)."""
    if _storage.dirname(prefix) == directory:
        return _storage.basename(prefix) + ".index" in files
    return _storage.isfile(prefix + ".index", STORAGE_OPTIONS)


def _normalized(path):
    return path if _storage.is_url(path) else os.path.normpath(path)


def _checkpoints_in(directory, files):
    """`[(kind, path)]` of the checkpoint files and prefixes among `files` (names) of `directory`."""
    from kerasckpt._fileio import TEMP_MARK
    out = []
    for name in sorted(files, key=_natural):
        full = _storage.join(directory, name)
        if TEMP_MARK in name:
            continue
        if name.endswith(".index"):
            out.append(("native", full[:-len(".index")]))
        elif name.lower().endswith(MODEL_ENDINGS):
            out.append(("file", full))
    return out
