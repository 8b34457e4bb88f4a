"""model.summary(): the table of layers, output shapes and parameter counts."""
import numpy as np


def _size_text(n_params, dtype_bytes=4):
    size = float(n_params * dtype_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024


def _params(layer):
    return int(sum(int(np.prod(w.shape)) for w in layer.weights))


def print_summary(model, print_fn=None):
    print_fn = print_fn or print
    rows = [("Layer (type)", "Output Shape", "Param #")]
    for layer in model.layers:
        shape = getattr(layer, "_output_shape", None)
        rows.append((f"{layer.name} ({type(layer).__name__})", "?" if shape is None else str(tuple(shape)),
                     f"{_params(layer):,}" if layer.built else "0 (unbuilt)"))
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
    widths = [max(widths[0], 33), max(widths[1], 24), max(widths[2], 15)]
    bar = lambda l, m, r: l + m.join("━" * w for w in widths) + r  # noqa: E731

    def line(cells, edge="│"):
        text = [f" {cells[0]:<{widths[0] - 1}}", f" {cells[1]:<{widths[1] - 1}}", f"{cells[2]:>{widths[2] - 1}} "]
        return edge + edge.join(text) + edge

    out = [f'Model: "{model.name}"', bar("┏", "┳", "┓"), line(rows[0], "┃"), bar("┡", "╇", "┩")]
    for i, row in enumerate(rows[1:]):
        out.append(line(row))
        if i < len(rows) - 2:
            out.append("├" + "┼".join("─" * w for w in widths) + "┤")
    out.append("└" + "┴".join("─" * w for w in widths) + "┘")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    total = trainable + non_trainable
    out.append(f" Total params: {total:,} ({_size_text(total)})")
    out.append(f" Trainable params: {trainable:,} ({_size_text(trainable)})")
    out.append(f" Non-trainable params: {non_trainable:,} ({_size_text(non_trainable)})")
    print_fn("\n".join(out))
