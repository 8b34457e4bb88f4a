"""The `kerasckpt` command: inspect, verify, diff, convert and list checkpoints of every format kerasckpt reads.

Exit status: 0 success; 1 the answer is "no" (damage found, files differ, no such checkpoint); 2 bad input.
"""
import argparse
import contextlib
import datetime
import json
import math
import os
import re
import string
import sys
import warnings

import numpy as np

from kerasckpt.errors import CheckpointDamagedError, CheckpointError

EXIT_OK, EXIT_NO, EXIT_BAD_INPUT = 0, 1, 2
MODEL_ENDINGS = (".keras", ".weights.h5", ".h5", ".hdf5")
FORMAT_NAMES = {
    "keras": ".keras archive (Keras 3 zip: architecture, weights, optimizer state)",
    "weights.h5": ".weights.h5 (Keras 3 weights layout)",
    "h5-model": "legacy .h5 (Keras 2 layout: architecture, weights, optimizer state)",
    "h5-weights": "legacy .h5 (Keras 2 weights layout)",
    "native": "kerasckpt checkpoint (prefix.index + data shards)",
}
SHORT_NAMES = {"keras": ".keras", "weights.h5": ".weights.h5", "h5-model": ".h5 model", "h5-weights": ".h5 weights",
               "native": "checkpoint"}
_LAYOUT = {"keras": "keras3", "weights.h5": "keras3", "h5-model": "legacy", "h5-weights": "legacy", "native": "native"}
_DATA_FILE = re.compile(r"\.data-\d{5}-of-\d{5}(?:\.g\d+)?$")
_NUMBERED = re.compile(r"^(.*)-(\d+)$")


class CLIError(Exception):
    """Bad input the command cannot work with; printed without a traceback, exit status 2."""


# ----------------------------------------------------------------------------------------- output helpers

def _progress(iterable=None, total=None, desc=None, unit="it", unit_scale=False):
    """A tqdm bar on stderr, shown only when stderr is a terminal."""
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=sys.stderr, leave=False,
                disable=not sys.stderr.isatty(), dynamic_ncols=True)


def _out(*parts):
    print(*parts, file=sys.stdout)


def _fmt_bytes(n):
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _fmt_shape(shape):
    return "()" if not shape else "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _fmt_num(x):
    if x is None:
        return "-"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    return f"{x:.6g}"


def _table(rows, headers, right=()):
    """Rows of strings as an aligned text table; columns whose index is in `right` align right."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    fmt = lambda r: "  ".join((c.rjust(w) if i in right else c.ljust(w))  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def _natural(key):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _print_json(data):
    _out(json.dumps(data, indent=2, default=_json_default, allow_nan=True))


# ----------------------------------------------------------------------------------------- opening any format

def _sniff(path):
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as err:
        raise CLIError(f"cannot read '{path}': {err.strerror}.") from None
    from kerasckpt.saving import h5file
    if head[:4] == b"PK\x03\x04":
        return "keras"
    if head[:8] == h5file.HDF5_SIGNATURE or head == h5file.MAGIC:
        return "h5"
    if head[:8] == b"KCKPTIDX":
        return "index"
    return None


def _missing(path):
    parent = os.path.dirname(path) or "."
    base = os.path.basename(path)
    near = []
    if os.path.isdir(parent):
        names = sorted(n for n in os.listdir(parent) if not n.startswith("."))
        import difflib
        near = difflib.get_close_matches(base, names, n=3, cutoff=0.5) or [n for n in names if n[:3] == base[:3]][:3]
    hint = f" Similar names there: {', '.join(near)}." if near else ""
    return CLIError(f"no such file or checkpoint: '{path}'.{hint} Check the path; `kerasckpt ls DIR` lists the "
                    "checkpoints in a directory.")


def resolve(path):
    """`(kind, path)` of a checkpoint path: kind is "keras", "h5" (HDF5, layout decided on opening) or "native".

    A native checkpoint may be given as its prefix, its `.index` or one of its data files.
    """
    path = os.fspath(path)
    if os.path.isdir(path) and not os.path.isfile(path + ".index"):
        return "native", _latest_in(path)
    lower = path.lower()
    if lower.endswith(".index") and os.path.isfile(path):
        return "native", path[:-len(".index")]
    if _DATA_FILE.search(path) and os.path.isfile(path):
        return "native", path[:_DATA_FILE.search(path).start()]
    if os.path.isfile(path + ".index"):
        return "native", path
    if not os.path.exists(path):
        raise _missing(path)
    sniffed = _sniff(path)
    if lower.endswith(".keras"):
        return "keras", path  # the reader explains what is wrong with a .keras that is no zip
    if lower.endswith((".h5", ".hdf5")):
        return "h5", path
    if sniffed in ("keras", "h5"):
        return sniffed, path
    if sniffed == "index":
        raise CLIError(f"'{path}' looks like a checkpoint index with an unusual name. Checkpoint indexes end in "
                       "'.index'; pass the prefix (the path without '.index').")
    raise CLIError(f"'{path}': unknown format. kerasckpt reads .keras archives, .weights.h5 and legacy .h5/.hdf5 "
                   "files, and checkpoint prefixes (PREFIX.index + PREFIX.data-*). Pass one of those.")


def _latest_in(directory):
    """The latest checkpoint a CheckpointManager recorded in `directory` (its state file)."""
    from kerasckpt.checkpoint import latest_checkpoint
    latest = latest_checkpoint(directory)
    if latest is None:
        raise CLIError(f"'{directory}' is a directory without a CheckpointManager state file naming a checkpoint. "
                       f"Pass a checkpoint file or prefix; `kerasckpt ls {directory}` lists what is in it.")
    return latest


class Source:
    """A checkpoint of any format opened for reading: its variables, metadata and verified values."""

    kind = None
    checksummed = True

    def variables(self):
        """`[(key, shape, dtype)]` in a stable order."""
        raise NotImplementedError

    def read(self, key):
        """The value under `key`, verified against its checksum when the file has one."""
        raise NotImplementedError

    def check(self, key):
        self.read(key)

    def check_structure(self):
        """Raise on structural damage that reading each value would not show."""

    def notes(self):
        """Remarks about the files that are not damage."""
        return []

    def info(self):
        """`[(label, value)]` of metadata, for display."""
        return []

    def has_architecture(self):
        return False

    def has_optimizer(self):
        return False

    def files(self):
        return [self.path]

    def normalized(self, key):
        """The key with layout-only prefixes removed, so that two files of one layout line up."""
        return key

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class NativeSource(Source):
    kind = "native"

    def __init__(self, prefix):
        from kerasckpt.checkpoint import files
        self.reader = files.CheckpointReader(prefix)
        self.path = self.reader.prefix

    def variables(self):
        keys = sorted(self.reader.keys(), key=_natural)
        return [(k, tuple(self.reader.shape(k)), self.reader.dtype(k)) for k in keys]

    def read(self, key):
        return self.reader.read(key)

    def check(self, key):
        self.reader.verify([key])

    def check_structure(self):
        """Every data file at its size, and zeros in the alignment padding no checksum covers."""
        from kerasckpt.checkpoint import files
        self.reader.check_complete()
        for shard, (name, size) in enumerate(self.reader.shards):
            covered = sorted((c[1], c[1] + c[2]) for _, _, chunks in self.reader.entries.values()
                             for c in chunks if c[0] == shard)
            path = os.path.join(self.reader.directory, name)
            with open(path, "rb") as f:
                position = 0
                for start, end in covered + [(size, size)]:
                    if start > position:
                        f.seek(position)
                        gap = f.read(start - position)
                        if gap.strip(b"\0"):
                            first = position + len(gap) - len(gap.lstrip(b"\0"))
                            raise CheckpointDamagedError(
                                f"'{path}' is damaged: byte {first} lies between values, where the writer puts "
                                f"zeros, and is not zero: the file was changed after it was written. {files.ADVICE}")
                    position = max(position, end)

    def notes(self):
        from kerasckpt.checkpoint import files
        stale = sorted(set(files.data_files_on_disk(self.path)) - {name for name, _ in self.reader.shards})
        return [f"data files the index does not name (an older generation, deleted by the next save of this "
                f"prefix): {', '.join(stale)}"] if stale else []

    def files(self):
        return [self.reader.index_path] + [os.path.join(self.reader.directory, name) for name, _ in self.reader.shards]

    def has_optimizer(self):
        return any(k.startswith("optimizer/") for k in self.reader.keys())

    def info(self):
        meta = self.reader.metadata or {}
        out = [("data files", ", ".join(name for name, _ in self.reader.shards) or "(none)")]
        if meta.get("format") == "kerasckpt.backup/1":
            loop = meta.get("loop") or {}
            out.append(("written by", f"BackupAndRestore (backup #{meta.get('sequence')})"))
            out.append(("epoch", f"{loop.get('epoch')} epochs done, {loop.get('step')} batches into the next"))
            fingerprint = loop.get("fingerprint") or {}
            if fingerprint:
                out.append(("fit arguments", ", ".join(f"{k}={v}" for k, v in sorted(fingerprint.items()))))
        elif meta.get("save_counter") is not None and "save_counter" not in self.reader.entries:
            out.append(("save_counter", str(meta["save_counter"])))
        for key in self.reader.keys():
            dtype, shape = self.reader.dtype(key), self.reader.shape(key)
            if shape == () and dtype.kind in "iu" and (key.count("/") == 0 or key == "optimizer/iterations"):
                try:
                    out.append((key, str(int(self.reader.read(key)))))
                except CheckpointError:
                    out.append((key, "(damaged)"))
        return out


class H5FileSource(Source):
    """`.weights.h5` or legacy `.h5`, or the weights member of a `.keras` archive."""

    def __init__(self, path, src=None):
        from kerasckpt.saving import h5, h5file
        self.path = path
        self._fd = None
        if src is None:
            self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            try:
                src = h5file.H5Source(repr(path), self._fd)  # verifies the header and the metadata
            except BaseException:
                os.close(self._fd)
                raise
        self.src = src
        self.checksummed = src.verified
        legacy = h5.is_legacy_layout(src)
        self.kind = ("h5-model" if "model_config" in src.file.attrs else "h5-weights") if legacy else "weights.h5"

    def variables(self):
        return [(p, tuple(self.src.shape(p)), self.src.file[p].dtype) for p in sorted(self.src.datasets, key=_natural)]

    def read(self, key):
        return self.src.read(key)

    def has_architecture(self):
        return self.kind == "h5-model"

    def has_optimizer(self):
        return any(p.startswith(("optimizer/", "optimizer_weights/")) for p in self.src.datasets)

    def normalized(self, key):
        return key[len("model_weights/"):] if key.startswith("model_weights/") else key

    def _attr(self, node, key):
        from kerasckpt.saving import h5file
        try:
            return h5file.read_attr(node, key, self.src.label)
        except CheckpointError:
            return None

    def info(self):
        out = []
        attrs = self.src.file.attrs
        for key in ("keras_version", "backend"):
            value = self._attr(self.src.file, key)
            if value is not None:
                out.append((key, str(value)))
        if self.kind == "h5-model":
            config = _parse(self._attr(self.src.file, "model_config"))
            if isinstance(config, dict):
                out.append(("model", f"{config.get('class_name')} '{(config.get('config') or {}).get('name')}'"))
            training = _parse(self._attr(self.src.file, "training_config"))
            if isinstance(training, dict):
                out += _compile_info(training.get("optimizer_config"), training.get("loss"))
        elif "layer_names" in attrs or "layer_names0" in attrs:
            names = self._attr(self.src.file, "layer_names") or []
            out.append(("layers", ", ".join(names) if isinstance(names, list) else str(names)))
        out += self._step_info()
        return out

    def _step_info(self):
        """The optimizer's iteration count: `optimizer/vars/0` (Keras 3) or `optimizer_weights/*/iteration`."""
        for path in self.src.datasets:
            last = path.rsplit("/", 1)[-1]
            if path != "optimizer/vars/0" and not (path.startswith("optimizer_weights/") and
                                                   last in ("iteration", "iter:0", "iterations")):
                continue
            if self.src.shape(path) == () and self.src.file[path].dtype.kind in "iu":
                try:
                    return [("optimizer step", str(int(self.src.read(path))))]
                except CheckpointError:
                    return [("optimizer step", "(damaged)")]
        return []

    def close(self):
        self.src.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class KerasSource(H5FileSource):
    """A `.keras` archive: `metadata.json`, `config.json` and the `model.weights.h5` member."""

    def __init__(self, path):
        from kerasckpt.saving import keras_zip
        fd, archive = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0)), None
        try:
            archive = keras_zip.Archive(path, fd)  # checks the zip directory and every member's name and size
            self.metadata = archive.read_json(keras_zip.METADATA) if archive.has(keras_zip.METADATA) else {}
            self.config = archive.read_json(keras_zip.CONFIG) if archive.has(keras_zip.CONFIG) else None
            src = archive.weights_source()
        except BaseException:
            if archive is not None:
                archive.close()
            os.close(fd)
            raise
        super().__init__(path, src=src)
        self._fd, self.archive, self.kind = fd, archive, "keras"

    def has_architecture(self):
        return isinstance(self.config, dict)

    def check_members(self):
        """Read every member but the weights to its end, so the zip CRC-32 of each is checked."""
        from kerasckpt.saving import keras_zip
        for info in self.archive.zip.infolist():
            if info.filename != keras_zip.WEIGHTS:
                self.archive.read_bytes(info.filename, max(info.file_size, 1))

    def info(self):
        out = []
        meta = self.metadata if isinstance(self.metadata, dict) else {}
        for key in ("keras_version", "kerasckpt_version", "date_saved"):
            if key in meta:
                out.append((key, str(meta[key])))
        if isinstance(self.config, dict):
            out.append(("model", f"{self.config.get('class_name')} '{(self.config.get('config') or {}).get('name')}'"))
            compile_config = self.config.get("compile_config") or {}
            out += _compile_info(compile_config.get("optimizer"), compile_config.get("loss"))
        return out + self._step_info()

    def close(self):
        self.src.close()
        self.archive.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _parse(text):
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _compile_info(optimizer, loss):
    out = []
    if isinstance(optimizer, dict):
        cfg = optimizer.get("config") or {}
        lr = cfg.get("learning_rate")
        lr_text = f", learning_rate={lr:.6g}" if isinstance(lr, (int, float)) else ""
        out.append(("optimizer", f"{optimizer.get('class_name')}{lr_text}"))
    elif isinstance(optimizer, str):
        out.append(("optimizer", optimizer))
    if loss is not None:
        out.append(("loss", loss if isinstance(loss, str) else json.dumps(loss, default=str)[:80]))
    return out


def open_source(path):
    """Open any checkpoint path as a `Source` (raises CLIError or CheckpointError on bad input)."""
    kind, path = resolve(path)
    if kind == "native":
        return NativeSource(path)
    if kind == "keras":
        return KerasSource(path)
    return H5FileSource(path)


# ----------------------------------------------------------------------------------------- models

def _load_model(path, compile):
    from kerasckpt import models
    return models.load_model(path, compile=compile)


def _variable_names(src, model):
    """`{dataset path: variable path}` for the Keras 3 layout, from the model's walk (as Keras saves it)."""
    if src.kind not in ("keras", "weights.h5"):
        return {}
    from kerasckpt.saving import h5
    names = {}
    for path, obj in h5.walk(model):
        for i, var in enumerate(h5.own_variables(obj)):
            names[f"{h5.vars_group(path)}/{i}"] = var.path
    present = {key for key, _, _ in src.variables()}
    return {key: name for key, name in names.items() if key in present}


def _load_for_names(src):
    """The model of a file with an architecture, compiled when possible so the optimizer's variables get names."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _load_model(src.path, compile=True)
    except CheckpointError:
        return _load_model(src.path, compile=False)


def _reset(model):
    """Zero every weight and optimizer variable, so that nothing of an architecture file's values survives."""
    optimizer = getattr(model, "optimizer", None)
    for var in list(model.weights) + (list(optimizer.variables) if optimizer is not None else []):
        var.assign(np.zeros(var.shape, var.dtype))


def _model_from(src, arch, with_optimizer):
    """A model holding the values of `src`: `src`'s own architecture, or `arch`'s filled from `src`."""
    if src.has_architecture():
        return _load_model(src.path, compile=True)
    if arch is None:
        raise CLIError(f"'{src.path}' holds weights only ({SHORT_NAMES[src.kind]}), so there is no architecture to "
                       "build a model from. Pass --model FILE, a .keras or legacy .h5 model file of the same "
                       "architecture.")
    model = _load_model(arch, compile=with_optimizer)
    if with_optimizer and getattr(model, "optimizer", None) is None:
        raise CLIError(f"'{src.path}' holds optimizer state but the --model file '{arch}' has no compile "
                       "configuration to rebuild the optimizer from. Pass a model file saved after compile().")
    _reset(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.load_weights(src.path)
    for w in caught:
        if "optimizer state" in str(w.message):
            raise CLIError(f"the optimizer state in '{src.path}' does not fit the optimizer of '{arch}': "
                           f"{w.message}")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return model


def _model_values(model):
    """`{name: array}` of a model's weights and its optimizer's variables (names made unique)."""
    out, seen = {}, {}
    optimizer = getattr(model, "optimizer", None)
    items = [(v.path, v) for v in model.weights]
    if optimizer is not None and optimizer.built:
        items += [(f"optimizer:{v.path}", v) for v in optimizer.variables]
    for name, var in items:
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        out[name] = np.array(var.numpy())
    return out


# ----------------------------------------------------------------------------------------- inspect

def cmd_inspect(args):
    """`kerasckpt inspect`: exit status 1 when `--stats` met a damaged value."""
    path = args.path
    directory_note = None
    if os.path.isdir(path) and not os.path.isfile(path + ".index"):
        directory_note = f"latest checkpoint of directory '{path}'"
    with open_source(path) as src:
        report = _inspect(src, args.stats)
    if directory_note:
        report["note"] = directory_note
    if args.json:
        _print_json(report)
    else:
        _print_inspect(report)
    return EXIT_NO if report["damaged"] else EXIT_OK


def _inspect(src, stats):
    report = {"path": src.path, "format": src.kind, "description": FORMAT_NAMES[src.kind],
              "checksums": _checksum_text(src), "size_bytes": sum(_size(p) for p in src.files()),
              "metadata": dict(src.info()), "model": None, "variables": [], "damaged": []}
    names = {}
    if src.has_architecture():
        try:
            model = _load_for_names(src)
            lines = []
            model.summary(print_fn=lines.append)
            report["model"] = {"class": type(model).__name__, "name": model.name, "summary": "\n".join(lines)}
            names = _variable_names(src, model)
        except CheckpointError as err:
            report["model"] = {"error": str(err)}
    variables = src.variables()
    bar = _progress(total=sum(int(np.prod(s)) * d.itemsize for _, s, d in variables), desc="reading", unit="B",
                    unit_scale=True) if stats else None
    for key, shape, dtype in variables:
        row = {"path": key, "shape": list(shape), "dtype": str(dtype), "size": int(np.prod(shape, dtype=np.int64))}
        if key in names:
            row["variable"] = names[key]
        if stats:
            try:
                value = src.read(key)
                if value.size:
                    as_float = value.astype(np.float64) if value.dtype.kind in "biu" else value
                    row.update(min=_num(np.min(as_float)), max=_num(np.max(as_float)),
                               mean=_num(np.mean(as_float, dtype=np.complex128 if value.dtype.kind == "c" else
                                                 np.float64)))
                else:
                    row.update(min=None, max=None, mean=None)
            except CheckpointError as err:
                row["error"] = str(err)
                report["damaged"].append(key)
            bar.update(row["size"] * dtype.itemsize)
        report["variables"].append(row)
    if bar is not None:
        bar.close()
    report["total_size"] = sum(r["size"] for r in report["variables"])
    return report


def _num(x):
    x = x.item() if hasattr(x, "item") else x
    return int(x) if isinstance(x, (bool, int)) else float(x)


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _checksum_text(src):
    if src.kind == "native":
        return "CRC-32 of the index and of every chunk of every value"
    if src.checksummed:
        extra = " (and the zip CRC-32 of the JSON members)" if src.kind == "keras" else ""
        return "kerasckpt CRC-32 of the header, the HDF5 metadata and every dataset" + extra
    return "none (written by Keras or h5py): the structure can be checked, the values cannot"


def _print_inspect(report):
    _out(report["path"] + (f"  ({report['note']})" if report.get("note") else ""))
    rows = [("format", report["description"]), ("checksums", report["checksums"]),
            ("size on disk", _fmt_bytes(report["size_bytes"]))] + list(report["metadata"].items())
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        _out(f"  {key.ljust(width)}  {value}")
    model = report["model"]
    if model is not None:
        _out("")
        _out(model["summary"] if "summary" in model else f"Model summary unavailable: {model['error']}")
    variables = report["variables"]
    total_bytes = sum(r["size"] * np.dtype(r["dtype"]).itemsize for r in variables)
    _out("")
    _out(f"Variables: {len(variables)} ({report['total_size']:,} values, {_fmt_bytes(total_bytes)})")
    if not variables:
        return
    named = any("variable" in r for r in variables)
    headers = ["path"] + (["variable"] if named else []) + ["shape", "dtype", "size"]
    stats = any("min" in r or "error" in r for r in variables)
    if stats:
        headers += ["min", "max", "mean"]
    rows = []
    for r in variables:
        row = [r["path"]] + ([r.get("variable", "")] if named else []) + [_fmt_shape(r["shape"]), r["dtype"],
                                                                          f"{r['size']:,}"]
        if stats:
            row += ["DAMAGED", "", ""] if "error" in r else [_fmt_num(r.get("min")), _fmt_num(r.get("max")),
                                                             _fmt_num(r.get("mean"))]
        rows.append(row)
    n = len(headers)
    _out(_table(rows, headers, right={n - 1, n - 2, n - 3, n - 4} if stats else {n - 1}))
    for r in variables:
        if "error" in r:
            _out(f"\n{r['error']}")
    if report["damaged"]:
        _out(f"\n{len(report['damaged'])} damaged value(s). `kerasckpt verify {report['path']}` checks the rest.")


# ----------------------------------------------------------------------------------------- verify

def cmd_verify(args):
    """`kerasckpt verify`: exit status 0 only when every path (every checkpoint of a directory) is intact."""
    results = []
    for path in args.paths:
        results.extend(_verify_target(path))
    failed = [r for r in results if not r["ok"] or (args.strict and r.get("checksums") is False)]
    if args.json:
        _print_json({"intact": not failed, "results": results})
    else:
        for r in results:
            status = "OK" if r["ok"] else "DAMAGED" if r.get("exists", True) else "MISSING"
            if r["ok"] and args.strict and r.get("checksums") is False:
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
        _out(f"\n{summary[0].upper()}{summary[1:]}.")
    return EXIT_NO if failed else EXIT_OK


def _verify_target(path):
    if os.path.isdir(path) and not os.path.isfile(path + ".index"):
        return _verify_directory(path)
    return [_verify_one(path)]


def _verify_one(path, note=None):
    result = {"path": path, "what": "?", "ok": False, "problems": [], "notes": [note] if note else [], "exists": True}
    try:
        src = open_source(path)
    except CLIError as err:
        result["exists"] = os.path.exists(path) or os.path.exists(path + ".index")
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
        with _progress(total=nbytes, desc=f"verify {os.path.basename(src.path)}", unit="B", unit_scale=True) as bar:
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


def _verify_directory(directory):
    from kerasckpt.checkpoint import manager
    results, done = [], set()
    state, problem = manager.read_state(directory)
    state_path = os.path.join(directory, manager.STATE_FILE)
    if problem is not None:
        results.append({"path": state_path, "what": "CheckpointManager state file", "ok": False,
                        "problems": [f"{problem}. Delete it: the next CheckpointManager.save() writes a new one."],
                        "notes": []})
    elif state is not None:
        listed = list(dict.fromkeys(state.all_model_checkpoint_paths + [state.model_checkpoint_path]))
        prefixes = [p if os.path.isabs(p) else os.path.join(directory, p) for p in listed]
        missing = [p for p in prefixes if not os.path.isfile(p + ".index")]
        entry = {"path": state_path, "what": f"CheckpointManager state file, {len(listed)} checkpoints listed",
                 "ok": not missing, "notes": [],
                 "problems": [f"it lists '{p}', whose index '{p}.index' is missing" for p in missing]}
        results.append(entry)
        for prefix in prefixes:
            if prefix not in missing:
                results.append(_verify_one(prefix))
                done.add(os.path.normpath(prefix))
    found = _checkpoints_in(directory)
    for kind, path in found:
        if os.path.normpath(path) in done:
            continue
        numbered = kind == "native" and _NUMBERED.match(os.path.basename(path))
        note = "not listed in the state file" if state is not None and numbered else None
        results.append(_verify_one(path, note))
    if not results:
        results.append({"path": directory, "what": "directory", "ok": False, "exists": True, "notes": [],
                        "problems": [f"'{directory}' holds no checkpoints (.keras, .weights.h5, .h5, .hdf5 files or "
                                     "PREFIX.index checkpoints)."]})
    return results


def _checkpoints_in(directory):
    """`[(kind, path)]` of the checkpoint files and prefixes in `directory`, by name."""
    from kerasckpt._fileio import TEMP_MARK
    out = []
    for name in sorted(os.listdir(directory), key=_natural):
        full = os.path.join(directory, name)
        if TEMP_MARK in name or not os.path.isfile(full):
            continue
        if name.endswith(".index"):
            out.append(("native", full[:-len(".index")]))
        elif name.lower().endswith(MODEL_ENDINGS):
            out.append(("file", full))
    return out


# ----------------------------------------------------------------------------------------- diff

def cmd_diff(args):
    """`kerasckpt diff`: exit status 0 when nothing differs by more than `--atol` and no variable changed shape."""
    if args.atol < 0 or math.isnan(args.atol):
        raise CLIError(f"--atol must be a non-negative number. Received: {args.atol}")
    with open_source(args.a) as a, open_source(args.b) as b:
        if _LAYOUT[a.kind] == _LAYOUT[b.kind] and args.model is None:
            report = _diff_files(a, b)
        else:
            report = _diff_models(a, b, args.model)
    report["atol"] = args.atol
    exceeding = [r for r in report["common"] if r["max_abs_diff"] is not None and not r["max_abs_diff"] <= args.atol]
    structural = report["only_in_a"] or report["only_in_b"] or report["changed"]
    report["same"] = not structural and not exceeding
    if args.json:
        _print_json(report)
    else:
        _print_diff(report, args)
    return EXIT_OK if report["same"] else EXIT_NO


def _diff_files(a, b):
    va = {a.normalized(k): (k, s, d) for k, s, d in a.variables()}
    vb = {b.normalized(k): (k, s, d) for k, s, d in b.variables()}
    report = {"a": a.path, "b": b.path, "compared_by": "keys in the files", "only_in_a": sorted(set(va) - set(vb),
              key=_natural), "only_in_b": sorted(set(vb) - set(va), key=_natural), "changed": [], "common": []}
    keys = sorted(set(va) & set(vb), key=_natural)
    report["names"] = {}
    for src in (a, b):
        if src.kind == "keras" and src.has_architecture() and not report["names"]:
            with contextlib.suppress(CheckpointError):
                report["names"] = _variable_names(src, _load_for_names(src))
    total = sum(int(np.prod(va[k][1])) for k in keys)
    with _progress(total=total, desc="comparing", unit="values", unit_scale=True) as bar:
        for key in keys:
            (ka, sa, da), (kb, sb, db) = va[key], vb[key]
            if sa != sb or da != db:
                report["changed"].append({"key": key, "a": {"shape": list(sa), "dtype": str(da)},
                                          "b": {"shape": list(sb), "dtype": str(db)}})
                if sa != sb:
                    continue
            report["common"].append(_compare(key, a.read(ka), b.read(kb)))
            bar.update(int(np.prod(sa)))
    return report


def _diff_models(a, b, arch):
    """Load both into models and compare weights and optimizer variables by variable path."""
    arch = arch or next((s.path for s in (a, b) if s.has_architecture()), None)
    if arch is None:
        raise CLIError(f"'{a.path}' ({SHORT_NAMES[a.kind]}) and '{b.path}' ({SHORT_NAMES[b.kind]}) name their "
                       "variables differently and neither holds an architecture to line them up. Pass --model FILE "
                       "(a .keras or .h5 model of the same architecture), or convert one to the other's format first.")
    with _progress(total=2, desc="loading", unit="file") as bar:
        values = []
        for src in (a, b):
            values.append(_model_values(_model_from(src, arch, src.has_optimizer())))
            bar.update(1)
    va, vb = values
    report = {"a": a.path, "b": b.path, "compared_by": "variable paths after loading into the architecture of "
              f"'{arch}'", "only_in_a": sorted(set(va) - set(vb), key=_natural),
              "only_in_b": sorted(set(vb) - set(va), key=_natural), "changed": [], "common": []}
    for key in sorted(set(va) & set(vb), key=_natural):
        x, y = va[key], vb[key]
        if x.shape != y.shape or x.dtype != y.dtype:
            report["changed"].append({"key": key, "a": {"shape": list(x.shape), "dtype": str(x.dtype)},
                                      "b": {"shape": list(y.shape), "dtype": str(y.dtype)}})
            if x.shape != y.shape:
                continue
        report["common"].append(_compare(key, x, y))
    return report


def _compare(key, x, y):
    row = {"key": key, "size": int(x.size)}
    if x.size == 0:
        row["max_abs_diff"] = 0.0
        return row
    if x.dtype.kind in "biu" and y.dtype.kind in "biu":
        diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
    else:
        xf, yf = x.astype(np.complex128 if "c" in x.dtype.kind + y.dtype.kind else np.float64), \
            y.astype(np.complex128 if "c" in x.dtype.kind + y.dtype.kind else np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(xf - yf)
        both_nan = np.isnan(xf) & np.isnan(yf)
        same_inf = np.isinf(xf) & (xf == yf)
        diff = np.where(both_nan | same_inf, 0.0, diff)
        diff = np.where(np.isnan(diff), np.inf, diff)  # NaN against a number differs without bound
    where = int(np.argmax(diff))
    row["max_abs_diff"] = float(diff.flat[where])
    row["differing"] = int(np.count_nonzero(diff))
    if row["max_abs_diff"] > 0:
        row["at"] = [int(i) for i in np.unravel_index(where, x.shape)] if x.ndim else []
        row["a_value"], row["b_value"] = _num(x.flat[where]), _num(y.flat[where])
    return row


def _print_diff(report, args):
    _out(f"--- {report['a']}\n+++ {report['b']}\n(compared by {report['compared_by']})")
    for key in report["only_in_a"]:
        _out(f"only in A: {key}")
    for key in report["only_in_b"]:
        _out(f"only in B: {key}")
    for c in report["changed"]:
        _out(f"changed:   {c['key']}: {_fmt_shape(c['a']['shape'])} {c['a']['dtype']} -> "
             f"{_fmt_shape(c['b']['shape'])} {c['b']['dtype']}")
    common = report["common"]
    shown = [r for r in common if args.all or r["max_abs_diff"] != 0]
    if shown:
        names = report.get("names") or {}
        rows = []
        for r in sorted(shown, key=lambda r: -r["max_abs_diff"]):
            where = "" if not r["max_abs_diff"] else \
                f"{_fmt_num(r['a_value'])} -> {_fmt_num(r['b_value'])} at {_fmt_shape(r['at'])}"
            rows.append([r["key"] + (f" ({names[r['key']]})" if r["key"] in names else ""), f"{r['size']:,}",
                         f"{r.get('differing', 0):,}", _fmt_num(r["max_abs_diff"]), where])
        _out("")
        _out(_table(rows, ["variable", "size", "differing", "max |a-b|", "largest difference"], right={1, 2, 3}))
    identical = sum(1 for r in common if r["max_abs_diff"] == 0)
    worst = max(common, key=lambda r: r["max_abs_diff"], default=None)
    _out("")
    summary = f"{len(common)} variables compared: {identical} identical, {len(common) - identical} differ"
    if worst is not None and worst["max_abs_diff"] > 0:
        summary += f" (largest |a-b| = {_fmt_num(worst['max_abs_diff'])} in {worst['key']})"
    structural = len(report["only_in_a"]) + len(report["only_in_b"]) + len(report["changed"])
    if structural:
        summary += f"; {structural} only in one file or changed in shape/dtype"
    _out(summary + ".")
    _out(f"Same within atol={_fmt_num(args.atol)}." if report["same"] else
         f"Different (atol={_fmt_num(args.atol)}).")


# ----------------------------------------------------------------------------------------- convert

def _dst_kind(dst, has_architecture, weights_only):
    lower = dst.lower()
    if lower.endswith(".keras"):
        if weights_only:
            raise CLIError(f"--weights-only cannot write '{dst}': a .keras file holds a whole model. End the "
                           "destination in .weights.h5 or .h5 for weights.")
        return "keras"
    if lower.endswith(".weights.h5"):
        return "weights.h5"
    if lower.endswith((".h5", ".hdf5")):
        return "h5-model" if has_architecture and not weights_only else "h5-weights"
    if lower.endswith(".index") or _DATA_FILE.search(dst):
        prefix = dst[:-len(".index")] if lower.endswith(".index") else dst[:_DATA_FILE.search(dst).start()]
        raise CLIError(f"'{dst}': give a native checkpoint destination as its prefix, without '.index' or '.data-*' "
                       f"(e.g. '{prefix}').")
    if dst.endswith(("/", os.sep)) or os.path.isdir(dst):
        raise CLIError(f"'{dst}' is a directory. Give a file name, e.g. '{os.path.join(dst, 'model.keras')}', or a "
                       f"checkpoint prefix such as '{os.path.join(dst, 'ckpt')}'.")
    return "native"


def cmd_convert(args):
    """`kerasckpt convert`: raw copy within a layout, through the architecture across layouts; DST is re-checked."""
    src_path, dst = args.src, args.dst
    with open_source(src_path) as src:
        arch = args.model
        has_arch = src.has_architecture() or arch is not None
        kind = _dst_kind(dst, has_arch, args.weights_only)
        if kind == "keras" and not has_arch:
            raise CLIError(f"cannot convert '{src.path}' to '{dst}': the source holds weights only "
                           f"({SHORT_NAMES[src.kind]}) and a .keras file needs the architecture. Pass --model FILE, a "
                           ".keras or .h5 model file of the same architecture.")
        if os.path.abspath(src.path) == os.path.abspath(dst):
            raise CLIError(f"source and destination are the same: '{dst}'. Choose another destination.")
        existing = dst + ".index" if kind == "native" else dst
        if os.path.exists(existing) and not args.overwrite:
            raise CLIError(f"'{existing}' exists. Pass --overwrite to replace it, or choose another name.")
        if _raw_copy_possible(src, kind):
            count = _convert_raw(src, dst, kind)
            how = "copied value by value"
        else:
            count, how = _convert_model(src, dst, kind, arch)
    _out(f"{src_path} ({SHORT_NAMES[src.kind]}) -> {dst} ({SHORT_NAMES[kind]}): {count} values, {how}; "
         "reloaded and checked equal.")
    return EXIT_OK


def _raw_copy_possible(src, kind):
    if src.kind == "native":
        return kind == "native"
    if kind == "weights.h5":
        return src.kind in ("keras", "weights.h5")
    return kind in ("h5-weights", "h5-model") and kind == src.kind


def _convert_raw(src, dst, kind):
    """Same layout: every value and attribute as it is (HDF5 gains kerasckpt's checksums if it had none)."""
    keys = [k for k, _, _ in src.variables()]
    values = [src.read(k) for k in _progress(keys, desc="reading", unit="values")]
    if kind == "native":
        from kerasckpt.checkpoint import files
        files.write_checkpoint(dst, list(zip(keys, values)), {"nodes": src.reader.nodes},
                               metadata=src.reader.metadata)
    else:
        import h5py
        from kerasckpt.saving import _files, h5file
        entries, by_key = [], dict(zip(keys, values))

        def visit(name, obj):
            if isinstance(obj, h5py.Group):
                entries.append(("group", name, dict(obj.attrs)))
            elif name in by_key:
                attrs = {k: v for k, v in obj.attrs.items() if k != h5file.CHECKSUM_ATTR}
                entries.append(("dataset", name, by_key[name], attrs))
        src.src.file.visititems(visit)
        with _files.atomic_fd(_files.check_writable(dst, overwrite=True)) as fd:
            h5file.write_h5(fd, entries, root_attrs=dict(src.src.file.attrs))
    with open_source(dst) as out:
        _check_equal(dict(zip(keys, values)), {k: out.read(k) for k, _, _ in out.variables()}, src.path, dst)
    return len(keys)


def _convert_model(src, dst, kind, arch):
    from kerasckpt import saving
    with_optimizer = src.has_optimizer()
    model = _model_from(src, arch, with_optimizer)
    dropped = _dropped_native_keys(src, model)
    before = _model_values(model)
    if kind in ("keras", "h5-model"):
        saving.save_model(model, dst, overwrite=True)
    else:
        saving.save_weights(model, dst, overwrite=True)
    with open_source(dst) as out:
        reloaded = _model_values(_model_from(out, src.path if src.has_architecture() else arch, out.has_optimizer()))
    _check_equal(before, reloaded, src.path, dst)
    how = "through the architecture of " + ("the source" if src.has_architecture() else f"'{arch}'")
    if not with_optimizer:
        how += " (the source holds no optimizer state)"
    if dropped:
        how += f"; not carried over (no place for them in {SHORT_NAMES[kind]}): {', '.join(dropped)}"
    return len(before), how


def _dropped_native_keys(src, model):
    if src.kind != "native":
        return []
    from kerasckpt.checkpoint import Checkpoint, ObjectGraph
    roots = {"model": model}
    if getattr(model, "optimizer", None) is not None:
        roots["optimizer"] = model.optimizer
    used = {node.key for node in ObjectGraph(Checkpoint(**roots)).value_nodes()}
    return sorted(k for k in src.reader.keys() if k not in used)


def _check_equal(expected, got, src, dst):
    problems = [f"'{k}' is missing" for k in expected if k not in got]
    problems += [f"'{k}' differs" for k in expected if k in got and not (
        expected[k].shape == got[k].shape and expected[k].dtype == got[k].dtype
        and np.array_equal(expected[k], got[k], equal_nan=expected[k].dtype.kind in "fc"))]
    if problems:
        raise CLIError(f"'{dst}' was written but does not reload to the values of '{src}': "
                       f"{'; '.join(problems[:5])}. Please report this as a kerasckpt bug.")


# ----------------------------------------------------------------------------------------- ls

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf|NaN|Inf)"
_INT = r"[-+]?\d+"
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
    """Values encoded in a file name: `{field: value}`, from the template or by the usual conventions."""
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
        if word in ("e", "ep", "epoch", "epochs"):
            out["epoch"] = int(value)
        elif word in ("b", "batch", "step"):
            out["batch"] = int(value)
        elif len(word) > 1:
            out[m.group(1)[len(m.group(1)) - len(word):]] = value  # the name as written
        else:
            unnamed.append(value)
    for value in unnamed:  # a bare integer is the epoch (then the batch), a bare decimal the monitored value
        if isinstance(value, int) and "epoch" not in out:
            out["epoch"] = value
        elif isinstance(value, int) and "batch" not in out:
            out["batch"] = value
        elif isinstance(value, float):
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
    directory = args.dir
    if not os.path.exists(directory):
        raise _missing(directory)
    if not os.path.isdir(directory):
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
        _out(listing[which])
        return EXIT_OK
    if args.json:
        _print_json(listing)
    else:
        _print_ls(listing)
    return EXIT_OK


def _list_directory(directory, template, monitor, mode):
    from kerasckpt._fileio import TEMP_MARK
    from kerasckpt.checkpoint import manager
    state, state_problem = manager.read_state(directory)
    stamps, latest = {}, None
    if state is not None:
        paths = state.all_model_checkpoint_paths
        times = state.all_model_checkpoint_timestamps or [None] * len(paths)
        for rel, stamp in zip(paths, times):
            stamps[os.path.normpath(os.path.join(directory, rel))] = stamp
        latest = os.path.normpath(os.path.join(directory, state.model_checkpoint_path))
    entries, temps, orphans, subdirs = [], 0, [], []
    names = os.listdir(directory)
    indexes = {n[:-len(".index")] for n in names if n.endswith(".index")}
    for name in names:
        full = os.path.join(directory, name)
        if TEMP_MARK in name:
            temps += 1
            continue
        if os.path.isdir(full):
            subdirs.append(name)
            continue
        if _DATA_FILE.search(name):
            if name[:_DATA_FILE.search(name).start()] not in indexes:
                orphans.append(name)
            continue
        if name.endswith(".index"):
            entries.append(_native_entry(directory, name[:-len(".index")], stamps, latest))
        elif name.lower().endswith(MODEL_ENDINGS):
            stat = os.stat(full)
            kind = "keras" if name.lower().endswith(".keras") else "weights.h5" if name.lower().endswith(
                ".weights.h5") else "h5"
            entries.append({"name": name, "path": full, "format": kind, "size": stat.st_size,
                            "time": stat.st_mtime, "status": "ok", "number": None, "step": None})
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
        latest_entry = next((e for e in entries if os.path.normpath(e["path"]) == latest), None)
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
        notes.append("values read from the file names by convention (a bare integer is the epoch, a bare decimal the "
                     "monitored 'value'); pass --template with the ModelCheckpoint filepath to name them exactly.")
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


def _order_key(entry):
    return (entry["time"], entry["epoch"] or 0, entry["batch"] or 0, entry.get("number") or 0, entry["name"])


def _native_entry(directory, base, stamps, latest):
    """A native checkpoint for `ls`: who wrote it (from its index and the state file), its step, its state."""
    from kerasckpt.checkpoint import files
    prefix = os.path.join(directory, base)
    entry = {"name": base, "path": prefix, "format": "native", "status": "ok", "step": None}
    number = _NUMBERED.match(base)
    entry["number"] = int(number.group(2)) if number else None
    key = os.path.normpath(prefix)
    listed = key in stamps or key == latest
    try:
        entry["time"] = stamps.get(key) or os.path.getmtime(prefix + ".index")
    except OSError:
        entry["time"] = 0.0
    try:
        reader = files.CheckpointReader(prefix)
    except (CheckpointError, OSError) as err:
        entry.update(status="unreadable", size=_size(prefix + ".index"), error=str(err))
        return entry
    with reader:
        entry["size"] = _size(reader.index_path) + sum(_size(os.path.join(reader.directory, n)) for n, _ in
                                                       reader.shards)
        meta = reader.metadata or {}
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
        for name in ("step", "optimizer/iterations"):
            if name in reader.entries and reader.shape(name) == () and reader.dtype(name).kind in "iu":
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


# ----------------------------------------------------------------------------------------- parser and main

def build_parser():
    """The argparse parser of `kerasckpt` and its five subcommands."""
    from kerasckpt import __version__
    parser = argparse.ArgumentParser(
        prog="kerasckpt",
        description="Inspect, verify, compare, convert and list checkpoints: .keras, .weights.h5, legacy .h5/.hdf5 "
                    "and native checkpoint prefixes (PREFIX.index + PREFIX.data-*).",
        epilog="Exit status: 0 success; 1 damage found (verify), files differ (diff) or nothing found (ls --best); "
               "2 bad input (missing file, unknown format, wrong arguments).")
    parser.add_argument("--version", action="version", version=f"kerasckpt {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the Python traceback of an error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    p = commands.add_parser("inspect", help="format, metadata, model summary and variables of one checkpoint",
                            description="Show the format, metadata (versions, date, step and epoch where known), the "
                                        "model summary when the file holds an architecture, and a table of variables.")
    p.add_argument("path", help="a .keras/.weights.h5/.h5 file, a checkpoint prefix, or a CheckpointManager "
                                "directory (its latest checkpoint)")
    p.add_argument("--stats", action="store_true", help="also read every value (checksums verified): min, max, mean")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_inspect)

    p = commands.add_parser("verify", help="check every checksum and structural invariant",
                            description="Check every checksum and structural invariant. A directory means every "
                                        "checkpoint in it, plus the CheckpointManager state file. Exit status 0 only "
                                        "when everything is intact.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, checkpoint prefixes or directories")
    p.add_argument("--strict", action="store_true", help="also fail files without checksums (written by Keras)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_verify)

    p = commands.add_parser("diff", help="compare the variables of two checkpoints",
                            description="List variables only in one file, shape/dtype changes and the largest "
                                        "absolute difference per variable. Exit status 0 when every difference is "
                                        "at most --atol (and nothing else changed), else 1.")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--atol", type=float, default=0.0, help="largest absolute difference still counted as equal "
                                                           "(default 0: identical)")
    p.add_argument("--model", metavar="FILE", help="a .keras/.h5 model file whose architecture lines up weights-only "
                                                   "files of different formats")
    p.add_argument("--all", action="store_true", help="also list identical variables")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_diff)

    p = commands.add_parser("convert", help="convert between .keras, .weights.h5, legacy .h5 and checkpoint prefixes",
                            description="Convert SRC to the format DST's ending names (.keras, .weights.h5, .h5/.hdf5, "
                                        "anything else: a checkpoint prefix), keeping everything both formats can "
                                        "hold (weights, optimizer state, architecture, compile arguments), then "
                                        "reload DST and check it holds the same values.")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--model", metavar="FILE", help="a .keras/.h5 model file giving the architecture when SRC holds "
                                                   "weights only")
    p.add_argument("--weights-only", action="store_true", help="write only weights (and optimizer state) to a .h5")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p.set_defaults(func=cmd_convert)

    p = commands.add_parser("ls", help="list the checkpoints in a directory, newest first, and the best one",
                            description="List the checkpoints a CheckpointManager, ModelCheckpoint or BackupAndRestore "
                                        "left in a directory, newest first, with the values encoded in file names and "
                                        "which one is best.")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--template", help="the ModelCheckpoint filepath that named the files, e.g. "
                                      "'model.{epoch:02d}-{val_loss:.3f}.keras' (default: guess from the names)")
    p.add_argument("--monitor", help="the value that decides the best (default: the first one in the names)")
    p.add_argument("--mode", choices=("auto", "min", "max"), default="auto",
                   help="whether the best is the lowest or highest value (auto: highest for accuracy-like names)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--best", action="store_true", help="print only the path of the best checkpoint")
    which.add_argument("--latest", action="store_true", help="print only the path of the newest checkpoint")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_ls)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"kerasckpt: warning: {message}", file=sys.stderr)


def main(argv=None):
    """Run the `kerasckpt` command with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, --version, or a usage error already printed by argparse
        return exit.code if isinstance(exit.code, int) else EXIT_BAD_INPUT
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.func(args)
    except KeyboardInterrupt:
        print("kerasckpt: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `kerasckpt ... | head`: the reader has gone, nothing left to say
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (CLIError, CheckpointError, OSError, ValueError, KeyError) as err:
        if args.traceback:
            raise
        message = str(err) if not isinstance(err, KeyError) or isinstance(err, CheckpointError) else \
            (err.args[0] if err.args else repr(err))
        if isinstance(err, OSError) and not isinstance(err, CheckpointError) and err.filename and err.strerror:
            message = f"'{err.filename}': {err.strerror}."
        print(f"kerasckpt {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
