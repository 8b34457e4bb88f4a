"""model.summary(): the table of layers, output shapes and parameter counts."""
import numpy as np

from kerasckpt.symbolic import Operation

_HEADER = ("Layer (type)", "Output Shape", "Param #")
_TRAINABLE = "Trainable"
_POSITIONS = (0.45, 0.80, 1.0)  # Keras's columns for a model printed as a stack of layers


def _count(weights):
    """(number of parameters, bytes) of distinct weights, each at its own dtype's size, as Keras counts."""
    unique = {id(w): w for w in weights}.values()
    return (sum(int(np.prod(w.shape)) for w in unique),
            sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in unique))


def _totals_line(label, weights):
    count, size = _count(weights)
    size = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size < 1024 or unit == "PB":
            return f" {label}: {count:,} ({size:.2f} {unit})"
        size /= 1024


def _params(layer):
    return int(sum(int(np.prod(w.shape)) for w in layer.weights))


def _shape_text(shape):
    """`(None, 3)` as Keras prints it (`(None)` for one axis); a list of shapes for several outputs."""
    if shape is None:
        return "?"
    if isinstance(shape, (list, tuple)) and shape and all(isinstance(s, (list, tuple)) for s in shape):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _rows(layers, expand_nested, show_trainable, level=0):
    """One row per layer or op node (and, with `expand_nested`, per layer of a nested model, indented like
    Keras)."""
    rows = []
    for layer in layers:
        if isinstance(layer, Operation):  # an op node of a functional model: no weights
            shape = layer._inbound_nodes[-1].outputs[0].shape if layer._inbound_nodes else None
            rows.append([f"{layer.name} ({type(layer).__name__})", _shape_text(shape), "0"]
                        + (["-"] if show_trainable else []))
            continue
        shape = getattr(layer, "_output_shape", None)
        prefix = ("   " * level + "└ ") if level else ""
        row = [f"{prefix}{layer.name} ({type(layer).__name__})", _shape_text(shape),
               f"{_params(layer):,}" if layer.built else "0 (unbuilt)"]
        if show_trainable:
            row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        rows.append(row)
        nested = getattr(layer, "layers", None) if expand_nested else None
        if nested:
            rows.extend(_rows(nested, expand_nested, show_trainable, level + 1))
    return rows


def _ratio_reduce(total, widths):
    """Take `total` characters off `widths` evenly, as the `rich` tables of Keras's summary do."""
    remaining, count, out = total, len(widths), []
    for width in widths:
        taken = min(width, round(remaining / count))
        out.append(width - taken)
        remaining, count = remaining - taken, count - 1
    return out


def _fixed_widths(line_length, positions, columns):
    """Column widths (padding included, borders excluded) for a table exactly `line_length` wide."""
    positions = list(positions if positions is not None else _POSITIONS)
    if columns == 4 and len(positions) == 3:  # Keras adds the Trainable column at 90% of the line
        positions = [p * 0.90 for p in positions] + [1.0]
    if len(positions) != columns:
        raise ValueError(f"summary() prints {columns} columns, so `positions` needs {columns} entries. "
                         f"Received: positions={positions!r}")
    if positions[-1] > 1:  # absolute positions, as in Keras 2
        positions = [p / positions[-1] for p in positions]
    widths, current = [], 0
    for pos in positions:
        width = int(pos * line_length) - current
        if width < 4:
            raise ValueError(f"Insufficient console width to print summary: line_length={line_length} with "
                             f"positions={positions!r} leaves a column {width} characters wide. Pass a larger "
                             "`line_length` (at least 40) or wider `positions`.")
        widths.append(width)
        current += width
    widths = [w + 2 for w in widths]
    excess = sum(widths) - (line_length - columns - 1)
    return _ratio_reduce(excess, widths) if excess > 0 else widths


def _wrap(text, width):
    """Lines of at most `width` characters, broken between words as Keras's `rich` tables break them;
    a word longer than a line ends in '…'. The first line keeps the text's indentation."""
    body = text.lstrip(" ")
    lines, current = [], text[:len(text) - len(body)]
    for word in body.split(" "):
        if not current.strip():  # nothing but the indentation yet
            room = max(width - len(current), 1)
            current += word if len(word) <= room else word[:room - 1] + "…"
        elif len(current) + 1 + len(word) <= width:
            current += " " + word
        else:
            lines.append(current)
            current = word if len(word) <= width else word[:width - 1] + "…"
    lines.append(current)
    return lines


def _align(text, width, how):
    return {"left": text.ljust, "right": text.rjust, "center": text.center}[how](width)


def print_summary(model, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False):
    """Print (with `print_fn`, default `print`) the summary table of `model`; see `Model.summary`."""
    print_fn = print_fn or print
    header = list(_HEADER) + ([_TRAINABLE] if show_trainable else [])
    alignment = ["left", "left", "right"] + (["center"] if show_trainable else [])
    rows = _rows(getattr(model, "operations", model.layers), expand_nested, show_trainable)
    if line_length is None and positions is None:  # sized to the content: no cell is ever wrapped
        widths = [max(len(r[i]) for r in [header] + rows) + 2 for i in range(len(header))]
        widths = [max(w, m) for w, m in zip(widths, (33, 24, 15, 11))]
    else:
        widths = _fixed_widths(line_length or 88 + 12 * show_trainable, positions, len(header))

    def lines(cells, edge="│"):
        wrapped = [_wrap(cell, w - 2) for cell, w in zip(cells, widths)]
        height = max(len(w) for w in wrapped)
        if edge == "┃":  # header cells sit at the bottom of the header, as in Keras
            wrapped = [[""] * (height - len(w)) + w for w in wrapped]
        for k in range(height):
            text = [" " + _align(cell[k] if k < len(cell) else "", w - 2, how) + " "
                    for cell, w, how in zip(wrapped, widths, alignment)]
            yield edge + edge.join(text) + edge

    bar = lambda l, m, r, c: l + m.join(c * w for w in widths) + r  # noqa: E731
    out = [f'Model: "{model.name}"', bar("┏", "┳", "┓", "━"), *lines(header, "┃"), bar("┡", "╇", "┩", "━")]
    for i, row in enumerate(rows):
        out.extend(lines(row))
        if i < len(rows) - 1:
            out.append(bar("├", "┼", "┤", "─"))
    out.append(bar("└", "┴", "┘", "─"))
    optimizer = getattr(model, "optimizer", None) if getattr(model, "compiled", False) else None
    optimizer_weights = list(optimizer.variables) if optimizer is not None and optimizer.built else None
    trainable, non_trainable = list(model.trainable_weights), list(model.non_trainable_weights)
    out.append(_totals_line("Total params", trainable + non_trainable + (optimizer_weights or [])))
    out.append(_totals_line("Trainable params", trainable))
    out.append(_totals_line("Non-trainable params", non_trainable))
    if optimizer_weights is not None:
        out.append(_totals_line("Optimizer params", optimizer_weights))
    print_fn("\n".join(out))
