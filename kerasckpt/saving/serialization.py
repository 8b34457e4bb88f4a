"""Keras config dicts <-> kerasckpt models, classes resolved by registered name only (nothing imported)."""
# `serialize_model` writes Keras 3's schema (`module`, `class_name`, `config`, `registered_name`,
# `build_config`, `compile_config`; the legacy `.h5` form without modules); `deserialize_model` rebuilds
# Sequential, functional and registered subclassed models. A class is instantiated only when it is a
# kerasckpt built-in, registered with `register_serializable`, or given in `custom_objects`.
import json

import numpy as np

from kerasckpt import _registry
from kerasckpt.autograd import Tensor
from kerasckpt.errors import CheckpointFormatError, UnknownObjectError, UnsafeCheckpointError
from kerasckpt.symbolic import KerasTensor, Operation, flatten

KERAS_VERSION = "3.15.1"  # the Keras release whose file layouts kerasckpt writes
_CODE_CLASSES = {  # objects that carry or load code: never deserialized, whatever safe_mode says
    "__lambda__": "a marshalled Python lambda",
    "Lambda": "a Lambda layer, whose function is Python code",
    "TorchModuleWrapper": "a wrapped torch module, which loads with pickle",
    "TFSMLayer": "a TensorFlow SavedModel, which runs graph code",
}
_CANONICAL_LOSSES = {"mse": "mean_squared_error", "MSE": "mean_squared_error", "mae": "mean_absolute_error",
                     "MAE": "mean_absolute_error", "bce": "binary_crossentropy", "BCE": "binary_crossentropy"}
MAX_CONFIG_BYTES = 64 << 20
_MAX_NESTING = 200  # dicts and lists inside each other; keeps the rebuilding recursion far from Python's limit
_BUILT_AT_INIT = {"Activation", "Dropout"}  # Keras builds these in __init__ and writes no build_config


# ----------------------------------------------------------------------------------------- JSON

def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(obj):
    """Compact JSON text of a config (NumPy scalars become Python numbers)."""
    return json.dumps(obj, default=_plain)


def parse_json(text, label, what):
    """Parse JSON from a file, refusing oversized or malformed text with an error naming the file."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_CONFIG_BYTES:
            raise UnsafeCheckpointError(f"{label}: refused {what} of {len(text)} bytes (limit {MAX_CONFIG_BYTES}).")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointFormatError(f"{label}: {what} is not UTF-8 text.") from None
    if len(text) > MAX_CONFIG_BYTES:
        raise UnsafeCheckpointError(f"{label}: refused {what} of {len(text)} characters (limit {MAX_CONFIG_BYTES}).")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise CheckpointFormatError(f"{label}: {what} is not valid JSON ({err}).") from None


# ----------------------------------------------------------------------------------------- class lookup

def _cls(name):
    return _registry.lookup(name)


def _layer_base():
    return next(c for c in _cls("Model").__mro__ if c.__name__ == "Layer" and c.__module__.startswith("kerasckpt"))


def model_kind(model):
    """'sequential', 'functional' or 'subclass'."""
    if isinstance(model, _cls("Sequential")):
        return "sequential"
    if isinstance(model, _cls("Functional")):
        return "functional"
    return "subclass"


def is_model(obj):
    return isinstance(obj, _cls("Model"))


def _is_builtin(cls):
    return str(vars(cls).get("_registered_name", "")).startswith("kerasckpt")  # not inherited by subclasses


def _registered_name(cls):
    return vars(cls).get("_registered_name") or cls.__name__


class Context:
    """Where deserialization is (file, position in the config) and what it may instantiate."""

    def __init__(self, label, custom_objects=None, safe_mode=True):
        self.label, self.custom_objects, self.safe_mode = label, dict(custom_objects or {}), safe_mode

    def error(self, where, message, cls=CheckpointFormatError):
        return cls(f"{self.label}: {where}: {message}")


def _keras_module(module):
    return module is None or module in ("keras", "builtins") or (isinstance(module, str) and module.startswith("keras."))


def check_code_free(config, ctx, where="config"):
    """Refuse objects in `config` that carry Python code (lambdas, Lambda layers, ...) or that name a
    module outside Keras for anything but a registered custom class (nothing is ever imported)."""
    stack, seen = [(config, where, 0)], 0
    while stack:
        node, at, depth = stack.pop()
        seen += 1
        if seen > 1_000_000 or depth > _MAX_NESTING:
            raise ctx.error(at, "the config is too large or too deeply nested to check.", UnsafeCheckpointError)
        if isinstance(node, dict):
            name = node.get("class_name")
            if isinstance(name, str) and name in _CODE_CLASSES:
                raise ctx.error(at, f"refused '{name}': it is {_CODE_CLASSES[name]}. kerasckpt never runs code "
                                    "from a file (whatever safe_mode says); rebuild that part in Python and load "
                                    "the weights only.", UnsafeCheckpointError)
            module = node.get("module")
            if isinstance(name, str) and "config" in node and not _keras_module(module):
                _check_custom(node, name, module, ctx, at)
            stack.extend((v, f"{at}.{k}", depth + 1) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{at}[{i}]", depth + 1) for i, v in enumerate(node))


def _check_custom(node, name, module, ctx, at):
    registered = node.get("registered_name")
    for key in (registered, name):
        if isinstance(key, str) and key in ctx.custom_objects:
            return
    cls = None
    for key in (registered, name):
        if isinstance(key, str) and key:
            cls = _registry.lookup(key)
            if cls is not None:
                break
    if cls is None:
        raise ctx.error(at, f"unknown class '{name}' (module '{module}'): kerasckpt never imports modules named in a "
                            "file; register the class with kerasckpt.saving.register_serializable() or pass it in "
                            "custom_objects.", UnknownObjectError)
    if isinstance(cls, type) and _is_builtin(cls):
        raise ctx.error(at, f"refused class '{name}' from module '{module}': built-in classes must name a Keras "
                            "module. kerasckpt never imports modules named in a file.", UnsafeCheckpointError)


def resolve(entry, ctx, where, kind="class"):
    """The class a Keras `{"module", "class_name", "registered_name"}` entry names, from the registry only."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ctx.error(where, f"expected a dict with 'class_name' and 'config', found {str(entry)[:120]}.")
    class_name, module = entry["class_name"], entry.get("module")
    registered = entry.get("registered_name")
    if class_name in _CODE_CLASSES:
        check_code_free(entry, ctx, where)
    cls = None
    for name in (registered, class_name):
        if isinstance(name, str) and name in ctx.custom_objects:
            return ctx.custom_objects[name]
    if kind == "layer" and _is_op_entry(entry):
        cls = _registry.registered(f"kerasckpt.ops>{class_name}")
        if cls is None:
            raise ctx.error(where, f"unknown op '{class_name}' (module '{module}'): kerasckpt.ops has no op node of "
                                   "that name. Rebuild that part of the model in Python and load the weights only.",
                            UnknownObjectError)
        return cls
    for name in (registered, class_name):
        if isinstance(name, str) and name:
            cls = _registry.lookup(name, ctx.custom_objects)
            if cls is not None:
                break
    if cls is None:
        raise ctx.error(where, f"unknown {kind} '{class_name}'" + (f" (module '{module}')" if module else "") +
                        ": kerasckpt has no such built-in and nothing is registered under that name. Register the "
                        "class with kerasckpt.saving.register_serializable() or pass it in custom_objects.",
                        UnknownObjectError)
    if _is_builtin(cls) and module is not None and module != "keras" and not str(module).startswith("keras."):
        raise ctx.error(where, f"refused class '{class_name}' from module '{module}': built-in classes must name a "
                               "Keras module. kerasckpt never imports modules named in a file.", UnsafeCheckpointError)
    return cls


def _is_op_entry(entry):
    """Whether a layer entry is an op node (a `keras.ops` call on symbolic tensors) rather than a layer."""
    module, config = entry.get("module"), entry.get("config")
    if isinstance(module, str):
        return module.startswith(("keras.src.ops.", "keras.ops"))
    # Keras's legacy `.h5` configs drop the module; layer configs always hold `trainable`, op configs never do.
    return module is None and isinstance(config, dict) and "trainable" not in config and "dtype" not in config \
        and _registry.registered(f"kerasckpt.ops>{entry['class_name']}") is not None


# ----------------------------------------------------------------------------------------- serialize

def _listify(value):
    if isinstance(value, (list, tuple)):
        return [_listify(v) for v in value]
    return value


def serialize_layer(layer, legacy=False):
    """A layer's entry in a model config (models nest as whole model configs; op nodes under Keras's op class)."""
    if isinstance(layer, Operation):  # the module stays in legacy configs too: without it `Add` reads as a layer
        return {"module": layer.keras_module, "class_name": type(layer).__name__, "config": layer.get_config(),
                "registered_name": type(layer).__name__}
    if is_model(layer):
        return serialize_model(layer, legacy=legacy, include_compile=False)
    cls = type(layer)
    if _is_builtin(cls):
        entry = {"module": "keras.layers", "class_name": cls.__name__, "config": layer.get_config(),
                 "registered_name": None}
    else:
        entry = {"module": cls.__module__, "class_name": cls.__name__, "config": layer.get_config(),
                 "registered_name": _registered_name(cls)}
    build = layer.get_build_config()
    if build is not None and not legacy and not (_is_builtin(cls) and cls.__name__ in _BUILT_AT_INIT):
        entry["build_config"] = _listify(build)
    return _legacy_entry(entry) if legacy else entry


def _legacy_entry(entry):
    out = {"class_name": entry["class_name"], "config": entry["config"]}
    if entry.get("registered_name") not in (None, entry["class_name"]):
        out["registered_name"] = entry["registered_name"]
    return out


def serialize_model(model, legacy=False, include_compile=True):
    """A model as Keras writes it in `config.json` (or, `legacy=True`, as `model_config` in `.h5`)."""
    kind = model_kind(model)
    if kind == "sequential":
        entry = {"module": "keras", "class_name": "Sequential", "config": _sequential_config(model, legacy),
                 "registered_name": None}
        shape = model.get_build_config()
        if shape is not None:
            entry["build_config"] = _listify(shape)
    elif kind == "functional":
        entry = {"module": "keras.src.models.functional", "class_name": "Functional",
                 "config": _functional_config(model, legacy), "registered_name": "Functional",
                 "build_config": {"input_shape": None}}
    else:
        cls = type(model)
        if _is_builtin(cls):
            raise TypeError(f"Model '{model.name}' is a plain Model without layers graph; subclass Model (and "
                            "register the subclass) or build a Sequential/functional model to save its architecture.")
        entry = {"module": cls.__module__, "class_name": cls.__name__, "config": model.get_config(),
                 "registered_name": _registered_name(cls)}
        build = model.get_build_config()
        if build is not None:
            entry["build_config"] = _listify(build)
    if include_compile and not legacy:
        cfg = compile_config(model)
        if cfg is not None:
            entry["compile_config"] = cfg
    if legacy:
        out = _legacy_entry(entry)
        if kind == "subclass" and "build_config" in entry:  # Keras 2 could not rebuild these; kerasckpt can
            out["build_config"] = entry["build_config"]
        return out
    return entry


def _dtype_policy(dtype):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype}, "registered_name": None}


def _sequential_config(model, legacy):
    layers = ([model._input_layer] if model._input_layer is not None else []) + list(model.layers)
    config = {"name": model.name, "trainable": model.trainable, "dtype": _dtype_policy(model.dtype),
              "layers": [serialize_layer(layer, legacy) for layer in layers]}
    build = model.get_build_config()
    if build is not None:
        config["build_input_shape"] = _listify(build["input_shape"])
    return config


def _functional_config(model, legacy):
    node_ids = {id(node) for node in model._nodes}
    reindex = {}  # id(node) -> index among the model's nodes of its layer
    for layer in model.operations:
        kept = [node for node in layer._inbound_nodes if id(node) in node_ids]
        for i, node in enumerate(kept):
            reindex[id(node)] = i
    history = {}
    for node in model._nodes:
        for t_index, tensor in enumerate(node.outputs):
            history[id(tensor)] = [node.layer.name, reindex[id(node)], t_index]

    def tensor_config(value):
        if isinstance(value, (list, tuple)):
            return [tensor_config(v) for v in value]
        if isinstance(value, dict):
            return {k: tensor_config(v) for k, v in value.items()}
        if isinstance(value, KerasTensor):
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": list(value.shape), "dtype": value.dtype, "keras_history": history[id(value)]}}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, slice):
            return {"class_name": "__slice__", "config": {"start": value.start, "stop": value.stop, "step": value.step}}
        if value is Ellipsis:
            return {"class_name": "__ellipsis__", "config": {}}
        if isinstance(value, (np.ndarray, Tensor)):
            array = np.asarray(value)
            return {"class_name": "__numpy__", "config": {"value": array.tolist(), "dtype": str(array.dtype)}}
        raise TypeError(f"Functional model '{model.name}' calls a layer with an argument of type "
                        f"{type(value).__name__} ({value!r}), which cannot be written to a config.")

    entries = []
    for layer in model.operations:
        entry = serialize_layer(layer, legacy)
        entry["name"] = layer.name
        nodes = [node for node in layer._inbound_nodes if id(node) in node_ids]
        if type(layer).__name__ == "InputLayer":
            entry["inbound_nodes"] = []
        else:
            entry["inbound_nodes"] = [
                {"args": tensor_config(list(node.call_args)),
                 "kwargs": tensor_config({k: v for k, v in node.call_kwargs.items() if k != "training"})}
                for node in nodes]
        entries.append(entry)

    def endpoints(struct):
        if isinstance(struct, (list, tuple)):
            return [endpoints(s) for s in struct]
        if isinstance(struct, dict):
            return {k: endpoints(v) for k, v in struct.items()}
        return history[id(struct)]

    return {"name": model.name, "trainable": model.trainable, "layers": entries,
            "input_layers": endpoints(model._inputs_struct), "output_layers": endpoints(model._outputs_struct)}


def _serialize_loss_like(value, module_fn, canonical):
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _CANONICAL_LOSSES.get(value, value) if canonical else value
    if isinstance(value, (list, tuple)):
        return [_serialize_loss_like(v, module_fn, canonical) for v in value]
    if isinstance(value, dict):
        return {k: _serialize_loss_like(v, module_fn, canonical) for k, v in value.items()}
    return module_fn(value)


def compile_config(model, legacy=False):
    """The arguments of `compile()` in Keras's `compile_config` form, or None if not compiled."""
    from kerasckpt import losses, metrics, optimizers
    stored = getattr(model, "_compile_config", None)
    if not getattr(model, "compiled", False) or stored is None or model.optimizer is None:
        return None
    jit = stored.get("jit_compile", False)
    cfg = {"optimizer": optimizers.serialize(model.optimizer),
           "loss": _serialize_loss_like(stored.get("loss"), losses.serialize, legacy),
           "loss_weights": _listify(stored.get("loss_weights")),
           "metrics": _serialize_loss_like(_listify(stored.get("metrics")), metrics.serialize, False),
           "weighted_metrics": _serialize_loss_like(_listify(stored.get("weighted_metrics")), metrics.serialize, False),
           "run_eagerly": bool(stored.get("run_eagerly", False)),
           "steps_per_execution": stored.get("steps_per_execution", 1),
           "jit_compile": False if jit == "auto" else bool(jit)}
    if legacy:  # Keras 2's training_config: `optimizer_config` instead of `optimizer`, objects without module
        optimizer = cfg.pop("optimizer")
        cfg = {k: _strip_modules(v) for k, v in cfg.items()}
        cfg["optimizer_config"] = {"class_name": optimizer["class_name"], "config": optimizer["config"]}
    return cfg


def _strip_modules(value):
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        return {"class_name": value["class_name"], "config": value["config"]}
    if isinstance(value, list):
        return [_strip_modules(v) for v in value]
    if isinstance(value, dict):
        return {k: _strip_modules(v) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------------------- deserialize

def deserialize_model(config, ctx, where="config"):
    """A model (Sequential, functional or a registered subclass) from Keras's config dict, unbuilt weights."""
    if isinstance(config, dict):  # compile_config is checked when it is used (compile=True)
        check_code_free({k: v for k, v in config.items() if k != "compile_config"}, ctx, where)
    return _deserialize(config, ctx, where, top=True)


def _deserialize(entry, ctx, where, top=False):
    cls = resolve(entry, ctx, where, "layer" if not top else "model class")
    config = entry.get("config")
    if not isinstance(config, dict):
        raise ctx.error(where, f"'config' of '{entry['class_name']}' must be a dict, found {type(config).__name__}.")
    name = entry["class_name"]
    Model, Sequential, Functional = _cls("Model"), _cls("Sequential"), _cls("Functional")
    if cls is Sequential:
        return _sequential_from_config(config, entry, ctx, where)
    if isinstance(cls, type) and (cls is Functional or (cls is Model and "layers" in config)):
        return _functional_from_config(config, ctx, where)
    if not (isinstance(cls, type) and issubclass(cls, (_layer_base(), Operation))):
        raise ctx.error(where, f"'{name}' is not a layer or model class.", UnknownObjectError)
    if top and not issubclass(cls, Model):
        raise ctx.error(where, f"the file's top-level object is a '{name}' layer, not a model.")
    try:
        obj = cls.from_config(dict(config))
    except (TypeError, ValueError, KeyError) as err:
        raise ctx.error(where, f"cannot rebuild '{name}' from its config ({err}). If it is a custom class, its "
                               "get_config()/from_config() must round-trip.") from None
    build = entry.get("build_config")
    if build and issubclass(cls, Model) and not obj.built:
        _build(obj, build, ctx, where)
    return obj


def _build(obj, build_config, ctx, where):
    try:
        obj.build_from_config(build_config)
    except Exception as err:
        raise ctx.error(where, f"cannot build '{obj.name}' from build_config {build_config} ({err}).") from None


def _sequential_from_config(config, entry, ctx, where):
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise ctx.error(where, "a Sequential config needs a 'layers' list.")
    model = _cls("Sequential")(name=config.get("name"), trainable=config.get("trainable", True))
    for i, layer_entry in enumerate(entries):
        layer = _deserialize_layer(layer_entry, ctx, f"{where}.layers[{i}]")
        try:
            model.add(layer)
        except (TypeError, ValueError) as err:
            raise ctx.error(f"{where}.layers[{i}]", f"cannot add '{layer.name}' to the Sequential model ({err}).") from None
    if not model.built:
        shape = config.get("build_input_shape") or (entry.get("build_config") or {}).get("input_shape") \
            or config.get("batch_input_shape")
        if shape is None and entries and isinstance(entries[0].get("config"), dict):
            shape = entries[0]["config"].get("batch_input_shape")
        if shape is not None:
            _build(model, {"input_shape": shape}, ctx, where)
    return model


def _deserialize_layer(entry, ctx, where):
    if not isinstance(entry, dict):
        raise ctx.error(where, f"expected a layer config dict, found {type(entry).__name__}.")
    return _deserialize(entry, ctx, where)


def _functional_from_config(config, ctx, where):
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise ctx.error(where, "a functional model config needs a 'layers' list.")
    layers, order, nodes_of = {}, [], {}
    for i, entry in enumerate(entries):
        at = f"{where}.layers[{i}]"
        layer = _deserialize_layer(entry, ctx, at)
        name = entry.get("name") or layer.name
        if name in layers:
            raise ctx.error(at, f"two layers are named '{name}'.")
        layers[name] = layer
        order.append(name)
        inbound = entry.get("inbound_nodes", [])
        if not isinstance(inbound, list):
            raise ctx.error(at, "'inbound_nodes' must be a list.")
        nodes_of[name] = list(inbound)
    outputs_of = {}  # layer name -> [outputs of node 0, node 1, ...] (as flat lists of tensors)
    for name in order:
        if type(layers[name]).__name__ == "InputLayer":
            outputs_of[name] = [[layers[name].output]]
        else:
            outputs_of[name] = []

    def tensor(history, at):
        if not (isinstance(history, (list, tuple)) and len(history) >= 3 and isinstance(history[0], str)):
            raise ctx.error(at, f"malformed tensor reference {history!r}.")
        lname, node_index, t_index = history[0], history[1], history[2]
        if lname not in layers:
            raise ctx.error(at, f"refers to a layer '{lname}' that is not in the model.")
        made = outputs_of[lname]
        if not isinstance(node_index, int) or not isinstance(t_index, int) or node_index < 0 or t_index < 0:
            raise ctx.error(at, f"malformed tensor reference {history!r}.")
        if node_index >= len(made):
            return _Pending
        if t_index >= len(made[node_index]):
            raise ctx.error(at, f"layer '{lname}' has no output {t_index}.")
        return made[node_index][t_index]

    def resolve_value(value, at):
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            return tensor((value.get("config") or {}).get("keras_history"), at)
        if isinstance(value, dict) and value.get("class_name") in _CONSTANTS and isinstance(value.get("config"), dict):
            try:
                return _CONSTANTS[value["class_name"]](**value["config"])
            except (TypeError, ValueError) as err:
                raise ctx.error(at, f"malformed {value['class_name']} argument {str(value)[:120]} ({err}).") from None
        if isinstance(value, list):
            return [resolve_value(v, at) for v in value]
        if isinstance(value, dict):
            return {k: resolve_value(v, at) for k, v in value.items()}
        return value

    def node_call(name, node, at):
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            args = resolve_value(node.get("args", []), at)
            kwargs = resolve_value(node.get("kwargs", {}), at)
        elif isinstance(node, list):  # Keras 2: [[layer_name, node_index, tensor_index, kwargs], ...]
            tensors = [tensor(ref, at) for ref in node]
            kwargs = dict(node[0][3]) if node and len(node[0]) > 3 and isinstance(node[0][3], dict) else {}
            args = [tensors[0] if len(tensors) == 1 else tensors]
        else:
            raise ctx.error(at, f"malformed inbound node {str(node)[:80]}.")
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ctx.error(at, "malformed inbound node arguments.")
        if any(v is _Pending for v in flatten([args, kwargs])):
            return None
        kwargs.pop("training", None)
        if kwargs.get("mask", 0) is None:
            kwargs.pop("mask")
        return args, kwargs

    progress = True
    while progress:
        progress, remaining = False, 0
        for name in order:
            nodes = nodes_of[name]
            made = outputs_of[name]
            index = len(made) - (1 if type(layers[name]).__name__ == "InputLayer" else 0)
            while index < len(nodes):
                at = f"{where}.layers['{name}'].inbound_nodes[{index}]"
                call = node_call(name, nodes[index], at)
                if call is None:
                    remaining += 1
                    break
                try:
                    out = layers[name](*call[0], **call[1])
                except (TypeError, ValueError) as err:
                    raise ctx.error(at, f"calling layer '{name}' failed ({err}).") from None
                made.append(flatten(out))
                index += 1
                progress = True
    if any(len(outputs_of[n]) < len(nodes_of[n]) for n in order if type(layers[n]).__name__ != "InputLayer"):
        stuck = [n for n in order if len(outputs_of[n]) < len(nodes_of[n])]
        raise ctx.error(where, f"the layer graph cannot be rebuilt: the inputs of {stuck} are never produced.")

    def endpoints(spec, at):
        if isinstance(spec, list) and len(spec) >= 3 and isinstance(spec[0], str) and isinstance(spec[1], int):
            t = tensor(spec, at)
            if t is _Pending:
                raise ctx.error(at, f"tensor {spec!r} is never produced.")
            return t
        if isinstance(spec, list):
            return [endpoints(s, at) for s in spec]
        if isinstance(spec, dict):
            return {k: endpoints(v, at) for k, v in spec.items()}
        raise ctx.error(at, f"malformed endpoint {spec!r}.")

    inputs = endpoints(config.get("input_layers"), f"{where}.input_layers")
    outputs = endpoints(config.get("output_layers"), f"{where}.output_layers")
    try:
        return _cls("Functional")(inputs, outputs, name=config.get("name"), trainable=config.get("trainable", True))
    except (TypeError, ValueError) as err:
        raise ctx.error(where, f"cannot rebuild the functional model ({err}).") from None


_CONSTANTS = {  # the non-tensor call arguments Keras writes as objects: slices, `...`, NumPy arrays
    "__slice__": lambda start=None, stop=None, step=None: slice(start, stop, step),
    "__ellipsis__": lambda: Ellipsis,
    "__numpy__": lambda value, dtype: np.asarray(value, dtype=np.dtype(dtype)),
}


class _PendingType:
    def __repr__(self):
        return "<pending>"


_Pending = _PendingType()


# ----------------------------------------------------------------------------------------- compile

def _deserialize_losses(value, ctx, where, module):
    """Loss/metric identifiers from a config: strings stay strings (or their custom object); dicts become objects."""
    if isinstance(value, str) and value in ctx.custom_objects:
        return ctx.custom_objects[value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, list):
        return [_deserialize_losses(v, ctx, f"{where}[{i}]", module) for i, v in enumerate(value)]
    if isinstance(value, dict) and "class_name" not in value:
        return {k: _deserialize_losses(v, ctx, f"{where}.{k}", module) for k, v in value.items()}
    if isinstance(value, dict):
        if value["class_name"] == "function":
            name = value.get("config")
            if not isinstance(name, str):
                raise ctx.error(where, f"malformed function entry {value!r}.")
            return ctx.custom_objects.get(name, name)
        resolve(value, ctx, where, "loss or metric")
        try:
            return module.deserialize(value, custom_objects=ctx.custom_objects)
        except ValueError as err:
            raise ctx.error(where, str(err), UnknownObjectError) from None
    raise ctx.error(where, f"cannot interpret {value!r}.")


def compile_from_config(model, cfg, ctx, where="compile_config", legacy=False):
    """Call `model.compile(...)` with a Keras `compile_config` (or legacy `training_config`)."""
    from kerasckpt import losses, metrics, optimizers
    if not isinstance(cfg, dict):
        raise ctx.error(where, f"expected a dict, found {type(cfg).__name__}.")
    check_code_free(cfg, ctx, where)
    opt_cfg = cfg.get("optimizer_config") if legacy else cfg.get("optimizer")
    if opt_cfg is None:
        raise ctx.error(where, "it has no optimizer.")
    if isinstance(opt_cfg, dict):
        resolve(opt_cfg, ctx, f"{where}.optimizer", "optimizer")
    try:
        optimizer = optimizers.deserialize(opt_cfg, custom_objects=ctx.custom_objects)
    except (ValueError, TypeError) as err:
        raise ctx.error(f"{where}.optimizer", f"cannot rebuild the optimizer ({err}).", UnknownObjectError) from None
    loss = _deserialize_losses(cfg.get("loss"), ctx, f"{where}.loss", losses)
    metric_list = _deserialize_losses(cfg.get("metrics"), ctx, f"{where}.metrics", metrics)
    weighted = _deserialize_losses(cfg.get("weighted_metrics"), ctx, f"{where}.weighted_metrics", metrics)
    _check_names(loss, losses, ctx, f"{where}.loss")
    _check_names(metric_list, metrics, ctx, f"{where}.metrics", metric=True)
    _check_names(weighted, metrics, ctx, f"{where}.weighted_metrics", metric=True)
    try:
        model.compile(optimizer=optimizer, loss=loss, loss_weights=cfg.get("loss_weights"), metrics=metric_list,
                      weighted_metrics=weighted, run_eagerly=bool(cfg.get("run_eagerly", False)),
                      steps_per_execution=cfg.get("steps_per_execution", 1), jit_compile=cfg.get("jit_compile", False))
    except (ValueError, TypeError) as err:
        raise ctx.error(where, f"compile() failed ({err}).", UnknownObjectError) from None
    return model


def _check_names(value, module, ctx, where, metric=False):
    if isinstance(value, str):
        if metric and value.lower() in ("accuracy", "acc"):
            return
        try:
            module.get(value)
        except ValueError:
            raise ctx.error(where, f"'{value}' has no kerasckpt equivalent. Load with compile=False and compile "
                                   "the model yourself.", UnknownObjectError) from None
    elif isinstance(value, list):
        for v in value:
            _check_names(v, module, ctx, where, metric)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_names(v, module, ctx, f"{where}.{k}", metric)
