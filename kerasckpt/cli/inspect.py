"""`kerasckpt inspect`: format, metadata, model summary and a table of variables of one checkpoint."""
import sys

import numpy as np

from kerasckpt import _storage
from kerasckpt.errors import CheckpointDamagedError, CheckpointError
from kerasckpt.cli.errors import EXIT_NO, EXIT_OK
from kerasckpt.cli.output import _fmt_bytes, _fmt_num, _fmt_shape, _num, _out, _print_json, _progress, _table
from kerasckpt.cli.sources import FORMAT_NAMES, STORAGE_OPTIONS, file_size, open_source
from kerasckpt.cli.models import _load_for_names, _variable_names


def cmd_inspect(args):
    """`kerasckpt inspect`: exit status 1 when the file is damaged, as `verify` would (`--stats` reads everything)."""
    path = args.path
    directory_note = None
    if not _storage.isfile(path + ".index", STORAGE_OPTIONS) and _storage.isdir(path, STORAGE_OPTIONS):
        directory_note = f"latest checkpoint of directory '{path}'"
    try:
        with open_source(path) as src:
            report = _inspect(src, args.stats)
    except CheckpointDamagedError as err:  # damage found, not bad input: the status `verify` gives it
        if getattr(args, "traceback", False):
            raise
        args.outcome = EXIT_NO
        print(f"kerasckpt inspect: {err}", file=sys.stderr)
        return EXIT_NO
    if directory_note:
        report["note"] = directory_note
    args.outcome = EXIT_NO if report["damaged"] or report["problems"] else EXIT_OK
    if args.json:
        _print_json(report)
    else:
        _print_inspect(report)
    return args.outcome


def _inspect(src, stats):
    report = {"path": src.path, "format": src.kind, "description": FORMAT_NAMES[src.kind],
              "checksums": _checksum_text(src), "size_bytes": sum(file_size(p) for p in src.files()),
              "metadata": dict(src.info()), "model": None, "variables": [], "damaged": [], "problems": []}
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
        row = {"path": key, "shape": list(shape), "dtype": str(dtype), "size": int(np.prod(shape, dtype=np.int64)),
               "bytes": int(np.prod(shape, dtype=np.int64)) * dtype.itemsize}
        if key in names:
            row["variable"] = names[key]
        if stats and getattr(src, "readable", lambda k: True)(key) is False:
            row.update(min=None, max=None, mean=None, note=f"{dtype}: not an array (listed, never read)")
            bar.update(row["size"] * dtype.itemsize)
        elif stats:
            try:
                value = src.read(key)
                if value.size and value.dtype.kind in "biufc":
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
    if stats and not report["damaged"]:
        report["problems"] = _structure_problems(src)
    report["total_size"] = sum(r["size"] for r in report["variables"])
    return report


def _structure_problems(src):
    """What `verify` finds beyond the values: zip members of a .keras, data file sizes and padding of a prefix."""
    problems = []
    for check in (getattr(src, "check_members", None), src.check_structure):
        try:
            if check is not None:
                check()
        except CheckpointError as err:
            problems.append(str(err))
    return problems


def _checksum_text(src):
    if src.kind == "native":
        return "CRC-32C of every index block and of every value (TensorFlow's)"
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
    total_bytes = sum(r["bytes"] for r in variables)
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
    for problem in report.get("problems", ()):
        _out(f"\nDAMAGED: {problem}")
