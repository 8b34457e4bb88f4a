"""`.weights.h5`: Keras 3's object-graph layout (`layers/dense_1/vars/0`, `optimizer/vars/0`, ...),
and the weight restoring shared by every HDF5 format (check everything, read, then assign)."""
# Paths come from walking the model as Keras does (`saving_lib._walk_saveable`): a Sequential's or
# functional model's `layers` first; then attributes sorted by name with `_`-prefixed ones last (for
# models this includes `layers` and `optimizer`); list and dict items named by their class in snake
# case (`dense`, `dense_1`, ...; the counter counts items already saved elsewhere); an object reached
# twice keeps its first path. Every object with a name gets `<path>/vars` (empty for layers without
# variables) holding its own variables as `0`, `1`, ... The group `.kerasckpt` (a name no Python
# attribute can have, so Keras never visits it) holds kerasckpt-only state as a JSON attribute: the
# Dropout random streams (`SeedGenerator` seed and counter), so training resumes bit-identically.
import warnings

from kerasckpt import _storage
from kerasckpt._background import PreparedSave
from kerasckpt.errors import CheckpointFormatError, CheckpointMismatchError
from kerasckpt.random import SeedGenerator
from kerasckpt.saving import _files, h5file, serialization
from kerasckpt.utils import snake_case

STATE_GROUP = ".kerasckpt"


# ----------------------------------------------------------------------------------------- the walk

def _is_optimizer(obj):
    return hasattr(obj, "apply_gradients") and hasattr(obj, "variables") and hasattr(obj, "iterations")


def _is_saveable(obj):
    return hasattr(obj, "_trainable_variables") and hasattr(obj, "get_build_config") or _is_optimizer(obj)


def _name_key(name):
    return f"~{name}" if name.startswith("_") else name


def _children(obj):
    if _is_optimizer(obj):
        return []
    kind = serialization.model_kind(obj) if serialization.is_model(obj) else None
    first = [("layers", obj.layers)] if kind in ("sequential", "functional") else []
    attrs = dict(getattr(obj, "_tracked", {}))
    if kind is not None:
        attrs["layers"] = obj.layers
        if getattr(obj, "optimizer", None) is not None:
            attrs["optimizer"] = obj.optimizer
    return first + [(name, attrs[name]) for name in sorted(attrs, key=_name_key)]


def walk(root):
    """`[(path, object)]` for every layer, model and optimizer under `root`, in Keras's order."""
    out, visited = [], set()

    def visit(obj, path):
        if id(obj) in visited:
            return
        visited.add(id(obj))
        out.append((path, obj))
        for attr, child in _children(obj):
            child_path = f"{path}/{attr}" if path else attr
            if _is_saveable(child):
                visit(child, child_path)
            elif isinstance(child, (list, tuple, dict)):
                visit_container(child, child_path, set())

    def visit_container(container, path, seen):
        if id(container) in seen:
            return
        seen.add(id(container))
        used = {}
        for item in (list(container.values()) if isinstance(container, dict) else container):
            if _is_saveable(item):
                visit(item, f"{path}/{_unique(snake_case(type(item).__name__), used)}")
            elif isinstance(item, (list, tuple, dict)):
                visit_container(item, f"{path}/{_unique('container', used)}", seen)

    visit(root, "")
    return out


def _unique(name, used):
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def own_variables(obj):
    """The variables an object saves itself, in Keras's order."""
    if _is_optimizer(obj):
        return list(obj.variables)
    return list(obj._trainable_variables) + list(obj._non_trainable_variables)


def vars_group(path):
    return f"{path}/vars" if path else "vars"


# ----------------------------------------------------------------------------------------- kerasckpt state

def kerasckpt_state(model):
    """State Keras does not save but exact resumption needs: each layer's random stream positions."""
    streams = {}
    for path, obj in walk(model):
        if _is_optimizer(obj):
            continue
        found = {name: [int(v.seed), int(v.counter)] for name, v in vars(obj).items() if isinstance(v, SeedGenerator)}
        if found:
            streams[path] = found
    return {"format": 1, "seed_generators": streams}


def apply_kerasckpt_state(model, state):
    streams = (state or {}).get("seed_generators") or {}
    for path, obj in walk(model):
        for name, value in (streams.get(path) or {}).items():
            target = vars(obj).get(name)
            if isinstance(target, SeedGenerator) and isinstance(value, list) and len(value) == 2:
                target.set_state({"seed": int(value[0]), "counter": int(value[1])})


def state_entry(model):
    return ("group", STATE_GROUP, {"state": serialization.to_json(kerasckpt_state(model))})


def read_state(src):
    if not src.has_group(STATE_GROUP):
        return None
    text = src.attr(STATE_GROUP, "state")
    return serialization.parse_json(text, src.label, "the kerasckpt state") if isinstance(text, str) else None


# ----------------------------------------------------------------------------------------- save

def weights_entries(model, include_optimizer=True):
    """The groups and datasets of a `.weights.h5` for `model`, for `h5file.write_h5`."""
    entries = []
    for path, obj in walk(model):
        if _is_optimizer(obj) and not include_optimizer:
            continue
        group = vars_group(path)
        name = getattr(obj, "name", None)
        entries.append(("group", group, {"name": name} if isinstance(name, str) else {}))
        for i, var in enumerate(own_variables(obj)):
            entries.append(("dataset", f"{group}/{i}", var.value, None))
    entries.append(state_entry(model))
    return entries


def fill(entries, arrays):
    """`entries` with the dataset arrays replaced by `arrays` (in order): a snapshot's copies."""
    values = iter(arrays)
    return [(e[0], e[1], next(values), e[3]) if e[0] == "dataset" else e for e in entries]


def prepare_h5(path, entries, root_attrs=None, storage_options=None):
    """A PreparedSave writing `entries` as a checksummed HDF5 file at `path` (a file or URL), atomically.

    Only the dataset arrays are read at write time; attributes and JSON state are fixed now.
    """
    def write(arrays):
        with _storage.atomic_file(path, storage_options) as file:
            h5file.write_h5(file, fill(entries, arrays), root_attrs=root_attrs)
        return path
    return PreparedSave([e[2] for e in entries if e[0] == "dataset"], write, [path])


def prepare_save_weights(model, filepath, overwrite=True, storage_options=None):
    path = _files.check_writable(filepath, overwrite, storage_options)
    return prepare_h5(path, weights_entries(model), storage_options=storage_options)


def save_weights(model, filepath, overwrite=True, storage_options=None):
    prepare_save_weights(model, filepath, overwrite, storage_options).write()


# ----------------------------------------------------------------------------------------- load

class RestorePlan:
    """Variables paired with datasets; checked in full, then read, then assigned all at once."""

    def __init__(self, src):
        self.src, self.pairs, self.problems = src, [], []
        self.claimed = set()  # datasets some variable of the model was matched with (fitting or not)

    def add(self, var, dataset, where):
        self.claimed.add(dataset)
        if not self.src.has_dataset(dataset):
            self.problems.append(f"{where}: no dataset '{dataset}' for variable '{var.path}'")
            return
        shape = self.src.shape(dataset)
        if shape != tuple(var.shape):
            self.problems.append(f"{where}: dataset '{dataset}' has shape {shape} but variable '{var.path}' has "
                                 f"shape {tuple(var.shape)}")
            return
        self.pairs.append((var, dataset))

    def problem(self, message, datasets=()):
        """Record a mismatch; `datasets` are the file's datasets it is about (not reported again as unmatched)."""
        self.problems.append(message)
        self.claimed.update(datasets)

    def check_unmatched(self, datasets, layer_of):
        """Report the `datasets` no variable was matched with: weights of layers the model does not have.

        `layer_of(path)` gives `(group, layer name or None)`: where the dataset's layer is stored.
        """
        groups = {}
        for path in datasets:
            if path not in self.claimed:
                groups.setdefault(layer_of(path), []).append(path)
        for (group, name), paths in sorted(groups.items(), key=lambda item: item[0][0]):
            names = [p[len(group) + 1:] if p.startswith(f"{group}/") else p for p in sorted(paths)]
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            saved_from = f" (saved from layer '{name}')" if name else ""
            self.problems.append(f"'{group}'{saved_from}: {len(paths)} weight(s) [{shown}] that no layer of the model "
                                 "takes: the file has a layer the model lacks")

    def execute(self, skip_mismatch):
        if self.problems:
            listing = "\n  ".join(self.problems[:20]) + ("\n  ..." if len(self.problems) > 20 else "")
            if not skip_mismatch:
                raise CheckpointMismatchError(
                    f"{self.src.label}: the weights in the file do not fit the model ({len(self.problems)} "
                    f"problem(s)):\n  {listing}\n"
                    "Load into the same architecture, or pass skip_mismatch=True to skip these.")
            warnings.warn(f"Skipping weights of {self.src.label} that do not fit the model ({len(self.problems)} "
                          f"problem(s)):\n  {listing}", stacklevel=4)
        values = self.src.read_many([dataset for _, dataset in self.pairs])
        for (var, _), value in zip(self.pairs, values):
            var.assign(value)


def plan_optimizer(plan, model, optimizer, datasets, where):
    """Pair the optimizer's variables with `datasets`, building it first when it is not built yet."""
    if not datasets or optimizer is None:
        return
    fresh = not optimizer.built or int(optimizer.iterations.numpy()) == 0
    if not optimizer.built and len(datasets) > len(optimizer.variables):
        optimizer.build(model.trainable_weights)
    variables = optimizer.variables
    if fresh and len(datasets) == len(variables) - len(optimizer.slot_variables()):
        variables = variables[:len(datasets)]  # saved before its first step: no slots yet, ours are still initial
    if len(variables) != len(datasets):
        warnings.warn(
            f"Skipping the optimizer state in {plan.src.label}: optimizer '{optimizer.name}' has {len(variables)} "
            f"variables but the file holds {len(datasets)} ({where}). Compile the model with the optimizer that "
            "wrote the file to restore its state.", stacklevel=4)
        return
    for var, dataset in zip(variables, datasets):
        plan.add(var, dataset, where)


def plan_weights(model, src, include_optimizer=True):
    """A RestorePlan for a file in the `.weights.h5` layout."""
    plan = RestorePlan(src)
    if is_legacy_layout(src):
        raise CheckpointFormatError(f"{src.label} is in the legacy Keras 2 layout; load it through a .h5 name.")
    for path, obj in walk(model):
        group = vars_group(path)
        keys = src.dataset_names(group)
        if _is_optimizer(obj):
            if include_optimizer:
                ordered = [f"{group}/{i}" for i in range(len(keys))]
                missing = [k for k in ordered if k.rsplit("/", 1)[1] not in keys]
                if missing:
                    plan.problem(f"'{group}': datasets are not numbered 0..{len(keys) - 1}")
                else:
                    plan_optimizer(plan, model, obj, ordered, f"'{group}'")
            continue
        variables = own_variables(obj)
        if not variables and not keys:
            continue
        held = [f"{group}/{k}" for k in keys]
        if not variables and not getattr(obj, "built", True):
            plan.problem(f"'{group}': layer '{obj.name}' is not built yet, so it has no variables to load "
                         f"{len(keys)} values into. Build the model (call it on data) first", held)
            continue
        if len(keys) != len(variables):
            plan.problem(f"'{group}': layer '{obj.name}' has {len(variables)} variables "
                         f"({[v.path for v in variables]}) but the file holds {len(keys)}", held)
            continue
        for i, var in enumerate(variables):
            plan.add(var, f"{group}/{i}", f"'{group}/{i}'")
    # Datasets the walk never reached belong to layers the model does not have (a file of a bigger model).
    # Keras ignores them; here they count as a mismatch. Layers without weights have empty groups: no datasets.
    others = [p for p in src.datasets if not p.startswith(("optimizer/", f"{STATE_GROUP}/"))]
    plan.check_unmatched(others, lambda p: _stored_layer(src, p))
    return plan


def _stored_layer(src, dataset):
    """`(group, layer name)` of a dataset `<path>/vars/<i>`: the `name` Keras records on the vars group."""
    group = dataset.rsplit("/", 1)[0] if "/" in dataset else ""
    name = src.attr(group, "name") if group.split("/")[-1] == "vars" else None
    return group, name if isinstance(name, str) else None


def load_weights_from(model, src, skip_mismatch=False):
    plan = plan_weights(model, src)
    plan.execute(skip_mismatch)
    apply_kerasckpt_state(model, read_state(src))


def has_layer_weights(src):
    """Whether the file holds any weights besides the optimizer state and kerasckpt's own state."""
    return any(not p.startswith(("optimizer/", "optimizer_weights/", STATE_GROUP)) for p in src.datasets)


def is_legacy_layout(src):
    return src.has_group("model_weights") or src.has_attr("", "layer_names")

