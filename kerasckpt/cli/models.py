"""A checkpoint as a model: loading one, filling an architecture from a weights-only file, its values."""
import warnings

import numpy as np

from kerasckpt.errors import CheckpointError
from kerasckpt.cli.errors import CLIError
from kerasckpt.cli.sources import SHORT_NAMES, STORAGE_OPTIONS


def _load_model(path, compile):
    from kerasckpt import models
    return models.load_model(path, compile=compile, storage_options=STORAGE_OPTIONS)


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
        model.load_weights(src.path, storage_options=STORAGE_OPTIONS)
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
