"""`kerasckpt diff`: variables only in one file, shape/dtype changes, largest difference per variable."""
import contextlib
import math

import numpy as np

from kerasckpt.errors import CheckpointError
from kerasckpt.cli.errors import EXIT_NO, EXIT_OK, CLIError
from kerasckpt.cli.output import _fmt_num, _fmt_shape, _natural, _num, _out, _print_json, _progress, _table
from kerasckpt.cli.sources import SHORT_NAMES, open_source
from kerasckpt.cli.models import _load_for_names, _model_from, _model_values, _variable_names

_LAYOUT = {"keras": "keras3", "weights.h5": "keras3", "h5-model": "legacy", "h5-weights": "legacy", "native": "native"}


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
    args.outcome = EXIT_OK if report["same"] else EXIT_NO  # the answer stands even if `| head` cuts the output
    if args.json:
        _print_json(report)
    else:
        _print_diff(report, args)
    return args.outcome


def _diff_files(a, b):
    va = {a.normalized(k): (k, s, d) for k, s, d in a.variables() if a.comparable(k)}
    vb = {b.normalized(k): (k, s, d) for k, s, d in b.variables() if b.comparable(k)}
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
    if x.dtype.kind == "O" or y.dtype.kind == "O":  # strings: equal or not
        diff = np.where(np.array([p == q for p, q in zip(x.flat, y.flat)]).reshape(x.shape), 0.0, np.inf)
    elif x.dtype.kind in "biu" and y.dtype.kind in "biu":
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
