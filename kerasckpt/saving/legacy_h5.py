"""Legacy Keras 2 `.h5` / `.hdf5`: whole models and weights only, as Keras 3 reads and writes them."""
# Whole model: root attributes `model_config` and `training_config` (JSON), groups `model_weights` and
# `optimizer_weights`. Weights only: `layer_names` on the root and the layer groups beside it. Layer
# groups are named by `layer.name` and hold datasets at the paths listed in `weight_names`, in
# `trainable_weights + non_trainable_weights` order; on load they are matched to the model's layers with
# weights **by order**, as Keras does. kerasckpt writes these files checksummed (see `h5file`), adds the
# optimizer state to weights-only files too, and keeps its own state in `.kerasckpt` (see `h5`).
import numpy as np

from kerasckpt import _storage
from kerasckpt.errors import CheckpointFormatError
from kerasckpt.saving import _files, h5, h5file, serialization

BACKEND = "numpy"
_ATTR_LIMIT = 64512  # HDF5's object header limit; bigger name lists are split as Keras 2 did


def _legacy_weights(layer):
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _names_attr(group_attrs, key, names):
    """Keras's `save_attributes_to_hdf5_group`: a byte-string array, split when too large."""
    data = np.asarray([n.encode("utf8") for n in names]) if names else np.asarray([])
    chunks = 1
    parts = np.array_split(data, chunks)
    while any(p.nbytes > _ATTR_LIMIT for p in parts) and chunks < len(data):
        chunks += 1
        parts = np.array_split(data, chunks)
    if chunks > 1:
        for i, part in enumerate(parts):
            group_attrs[f"{key}{i}"] = part
    else:
        group_attrs[key] = data


def _unique_paths(variables):
    paths, seen = [], {}
    for var in variables:
        path = str(var.path)
        if path in seen:  # two variables with one path: keep both, as `path_1`, `path_2`, ...
            seen[path] += 1
            path = f"{path}_{seen[path]}"
        else:
            seen[path] = 0
        paths.append(path)
    return paths


def _weights_group_entries(model, prefix):
    """Groups and datasets of Keras's `save_weights_to_hdf5_group` under `prefix` ('' is the root)."""
    join = (lambda *p: "/".join(x for x in (prefix,) + p if x))  # noqa: E731
    group_attrs = {"backend": BACKEND.encode("utf8"), "keras_version": serialization.KERAS_VERSION.encode("utf8")}
    _names_attr(group_attrs, "layer_names", [layer.name for layer in model.layers])
    entries = []
    layers = sorted(model.layers, key=lambda layer: layer.name)
    for layer in layers + [None]:
        name = layer.name if layer is not None else "top_level_model_weights"
        variables = _legacy_weights(layer) if layer is not None else \
            list(model._trainable_variables) + list(model._non_trainable_variables)
        paths = _unique_paths(variables)
        attrs = {}
        _names_attr(attrs, "weight_names", paths)
        entries.append(("group", join(name), attrs))
        entries.extend(("dataset", join(name, path), var.value, None) for var, path in zip(variables, paths))
    return group_attrs, entries


def _optimizer_entries(optimizer):
    variables = list(optimizer.variables)
    if not variables:
        return []
    paths = _unique_paths(variables)
    attrs = {}
    _names_attr(attrs, "weight_names", paths)
    return [("group", "optimizer_weights", attrs)] + [
        ("dataset", f"optimizer_weights/{path}", var.value, None) for var, path in zip(variables, paths)]


def prepare_save_model(model, filepath, overwrite=True, include_optimizer=True, storage_options=None):
    """A PreparedSave of the whole model in the Keras 2 layout (what `model.save("x.h5")` writes in Keras 3)."""
    path = _files.check_writable(filepath, overwrite, storage_options)
    root = {"backend": BACKEND, "keras_version": serialization.KERAS_VERSION,
            "model_config": serialization.to_json(serialization.serialize_model(model, legacy=True)).encode("utf8")}
    training = serialization.compile_config(model, legacy=True) if include_optimizer else None
    if training is not None:
        root["training_config"] = serialization.to_json(training).encode("utf8")
    group_attrs, entries = _weights_group_entries(model, "model_weights")
    entries = [("group", "model_weights", group_attrs)] + entries
    if include_optimizer and training is not None:
        entries += _optimizer_entries(model.optimizer)
    entries.append(h5.state_entry(model))
    return h5.prepare_h5(path, entries, root_attrs=root, storage_options=storage_options)


def save_model(model, filepath, overwrite=True, include_optimizer=True, storage_options=None):
    """Write the whole model in the Keras 2 layout (what `model.save("x.h5")` writes in Keras 3)."""
    prepare_save_model(model, filepath, overwrite, include_optimizer, storage_options).write()


def prepare_save_weights(model, filepath, overwrite=True, storage_options=None):
    """A PreparedSave of the Keras 2 `save_weights` layout (layer groups on the root) plus the optimizer state."""
    path = _files.check_writable(filepath, overwrite, storage_options)
    root, entries = _weights_group_entries(model, "")
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        entries += _optimizer_entries(optimizer)
    entries.append(h5.state_entry(model))
    return h5.prepare_h5(path, entries, root_attrs=root, storage_options=storage_options)


def save_weights(model, filepath, overwrite=True, storage_options=None):
    """Write the Keras 2 `save_weights` layout (layer groups on the root) plus the optimizer state."""
    prepare_save_weights(model, filepath, overwrite, storage_options).write()


# ----------------------------------------------------------------------------------------- load

def plan_weights(model, src, group_path=None):
    """A RestorePlan matching the layer groups of a legacy file to `model.layers` by order."""
    plan = h5.RestorePlan(src)
    if group_path is None:
        group_path = "model_weights" if src.has_group("model_weights") else ""
    names = _name_list(src.attr(group_path, "layer_names"))
    if names is None:
        raise CheckpointFormatError(f"{src.label} has no 'layer_names': it is not a Keras 2 (legacy .h5) weights "
                                    "file. Files named .weights.h5 use Keras 3's layout.")
    prefix = f"{group_path}/" if group_path else ""
    saved = []
    for name in names:
        if not isinstance(name, str) or not src.has_group(f"{prefix}{name}"):
            plan.problem(f"layer group '{prefix}{name}' listed in 'layer_names' is missing")
            continue
        weight_names = _name_list(src.attr(f"{prefix}{name}", "weight_names")) or []
        if weight_names:
            saved.append((name, weight_names))
    layers = [layer for layer in model.layers if _legacy_weights(layer)]
    if len(saved) != len(layers):
        plan.problem(f"layer count mismatch: the model has {len(layers)} layers with weights "
                     f"({[layer.name for layer in layers]}), the file has {len(saved)} "
                     f"({[name for name, _ in saved]})")
        return plan
    for layer, (name, weight_names) in zip(layers, saved):
        variables = _legacy_weights(layer)
        if len(variables) != len(weight_names):
            plan.problem(f"'{prefix}{name}' holds {len(weight_names)} weights but layer '{layer.name}' has "
                         f"{len(variables)} ({[v.path for v in variables]})", _under(src, f"{prefix}{name}"))
            continue
        for var, weight_name in zip(variables, weight_names):
            plan.add(var, f"{prefix}{name}/{weight_name}", f"'{prefix}{name}/{weight_name}'")
    top = f"{prefix}top_level_model_weights"
    if src.has_group(top):
        weight_names = _name_list(src.attr(top, "weight_names")) or []
        own = list(model._trainable_variables) + list(model._non_trainable_variables)
        if len(weight_names) != len(own):
            plan.problem(f"'{top}' holds {len(weight_names)} weights but the model has {len(own)} of its own",
                         _under(src, top))
        else:
            for var, weight_name in zip(own, weight_names):
                plan.add(var, f"{top}/{weight_name}", f"'{top}/{weight_name}'")
    # Datasets no listed weight name reaches (a layer group missing from `layer_names`, a weight missing from
    # `weight_names`) are weights the model does not have. Keras ignores them; here they count as a mismatch.
    others = [p for p in src.datasets if p.startswith(prefix) and not p.startswith(("optimizer_weights/",
                                                                                   f"{h5.STATE_GROUP}/"))]
    plan.check_unmatched(others, lambda p: (prefix + p[len(prefix):].split("/", 1)[0], None))
    return plan


def _under(src, group):
    return [p for p in src.datasets if p.startswith(f"{group}/")]


def _name_list(value):
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value] if isinstance(value, list) else []


def plan_optimizer(plan, model, src):
    optimizer = getattr(model, "optimizer", None)
    if not src.has_group("optimizer_weights") or optimizer is None:
        return
    names = _name_list(src.attr("optimizer_weights", "weight_names")) or []
    h5.plan_optimizer(plan, model, optimizer, [f"optimizer_weights/{n}" for n in names], "'optimizer_weights'")


def load_weights_from(model, src, skip_mismatch=False, include_optimizer=True):
    plan = plan_weights(model, src)
    if include_optimizer:
        plan_optimizer(plan, model, src)
    plan.execute(skip_mismatch)
    h5.apply_kerasckpt_state(model, h5.read_state(src))


def load_model_from(src, custom_objects=None, compile=True, safe_mode=True):
    text = src.attr("", "model_config")
    if text is None:
        raise CheckpointFormatError(
            f"{src.label} has no model config: it holds weights only. Build the model in Python and call "
            "model.load_weights() instead.")
    ctx = serialization.Context(src.label, custom_objects, safe_mode)
    config = serialization.parse_json(text, src.label, "model_config")
    training = src.attr("", "training_config") if compile else None
    with _files.rebuilding(src.label, "model_config"):
        model = serialization.deserialize_model(config, ctx, "model_config")
        if training is not None:
            cfg = serialization.parse_json(training, src.label, "training_config")
            serialization.compile_from_config(model, cfg, ctx, "training_config", legacy=True)
            if model.built:
                model.optimizer.build(model.trainable_weights)
    if model.built:
        load_weights_from(model, src, skip_mismatch=False, include_optimizer=training is not None)
    elif h5.has_layer_weights(src):
        raise CheckpointFormatError(f"{src.label}: the model in model_config has no input shape, so the saved "
                                    "weights have nowhere to go. Save it again after building it.")
    return model


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, storage_options=None):
    path = _files.check_readable(filepath, "model file", storage_options)
    with _storage.open_read(path, storage_options) as fd:
        return load_model_fd(path, fd, custom_objects, compile, safe_mode)


def load_model_fd(path, fd, custom_objects=None, compile=True, safe_mode=True):
    """`load_model` from a descriptor of the file; `path` names it in errors."""
    src = h5file.H5Source(_files.label(path), fd)
    try:
        return load_model_from(src, custom_objects, compile, safe_mode)
    finally:
        src.close()

