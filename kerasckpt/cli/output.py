"""What the commands print: aligned tables, numbers, sizes and shapes, JSON, progress bars on stderr."""
import json
import math
import re
import sys

import numpy as np


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


def _num(x):
    x = x.item() if hasattr(x, "item") else x
    return int(x) if isinstance(x, (bool, int)) else float(x)


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
