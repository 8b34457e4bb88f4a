"""`kerasckpt convert`: between .keras, .weights.h5, legacy .h5 and checkpoint prefixes, then re-checked."""
import os

import numpy as np

from kerasckpt import _storage
from kerasckpt.cli.errors import EXIT_OK, CLIError
from kerasckpt.cli.output import _out, _progress
from kerasckpt.cli.sources import DATA_FILE, SHORT_NAMES, STORAGE_OPTIONS, open_source
from kerasckpt.cli.models import _model_from, _model_values


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
    if lower.endswith(".index") or DATA_FILE.search(dst):
        prefix = dst[:-len(".index")] if lower.endswith(".index") else dst[:DATA_FILE.search(dst).start()]
        raise CLIError(f"'{dst}': give a native checkpoint destination as its prefix, without '.index' or '.data-*' "
                       f"(e.g. '{prefix}').")
    if dst.endswith(("/", os.sep)) or _storage.isdir(dst, STORAGE_OPTIONS):
        raise CLIError(f"'{dst}' is a directory. Give a file name, e.g. '{_storage.join(dst, 'model.keras')}', or a "
                       f"checkpoint prefix such as '{_storage.join(dst, 'ckpt')}'.")
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
        if _storage.absolute(src.path) == _storage.absolute(dst):
            raise CLIError(f"source and destination are the same: '{dst}'. Choose another destination.")
        existing = dst + ".index" if kind == "native" else dst
        if _storage.exists(existing, STORAGE_OPTIONS) and not args.overwrite:
            raise CLIError(f"'{existing}' exists. Pass --overwrite to replace it, or choose another name.")
        if _raw_copy_possible(src, kind):
            count = _convert_raw(src, dst, kind)
            how = "copied value by value"
        else:
            count, how = _convert_model(src, dst, kind, arch)
    args.outcome = EXIT_OK  # DST is written and checked, whatever happens to this line
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
    unreadable = [k for k in keys if src.kind == "native" and not src.readable(k)]
    if unreadable:  # a tf.data iterator's state: only TensorFlow can decode it, so it cannot be re-written
        raise CLIError(f"cannot copy '{src.path}' value by value: {', '.join(unreadable[:3])} cannot be read as "
                       "arrays (TensorFlow variants). Convert to .weights.h5 with --model FILE instead, or copy "
                       "the checkpoint's files as they are.")
    values = [src.read(k) for k in _progress(keys, desc="reading", unit="values")]
    if kind == "native":  # every entry, kerasckpt's record and TensorFlow's object graph included
        from kerasckpt.checkpoint import bundle
        bundle.write_bundle(dst, list(zip(keys, values)), storage_options=STORAGE_OPTIONS)
    else:
        import h5py
        from kerasckpt.saving import h5file
        entries, by_key = [], dict(zip(keys, values))

        def visit(name, obj):
            if isinstance(obj, h5py.Group):
                entries.append(("group", name, dict(obj.attrs)))
            elif name in by_key:
                attrs = {k: v for k, v in obj.attrs.items() if k != h5file.CHECKSUM_ATTR}
                entries.append(("dataset", name, by_key[name], attrs))
        src.src.file.visititems(visit)
        _storage.makedirs_for(dst, STORAGE_OPTIONS)  # cmd_convert refused directories and (no --overwrite) files
        with _storage.atomic_file(dst, STORAGE_OPTIONS) as file:
            h5file.write_h5(file, entries, root_attrs=dict(src.src.file.attrs))
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
        saving.save_model(model, dst, overwrite=True, storage_options=STORAGE_OPTIONS)
    else:
        saving.save_weights(model, dst, overwrite=True, storage_options=STORAGE_OPTIONS)
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
    return sorted(src.normalized(k) for k in src.reader.keys()
                  if src.normalized(k) not in used and not k.startswith("_"))  # not the graph or metadata


def _check_equal(expected, got, src, dst):
    problems = [f"'{k}' is missing" for k in expected if k not in got]
    problems += [f"'{k}' differs" for k in expected if k in got and not (
        expected[k].shape == got[k].shape and expected[k].dtype == got[k].dtype
        and np.array_equal(expected[k], got[k], equal_nan=expected[k].dtype.kind in "fc"))]
    if problems:
        raise CLIError(f"'{dst}' was written but does not reload to the values of '{src}': "
                       f"{'; '.join(problems[:5])}. Please report this as a kerasckpt bug.")
