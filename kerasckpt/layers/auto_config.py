"""Automatic configs of custom layers and models that do not write `get_config()`: the arguments their
constructor received (when they are plain values), as Keras 3 captures them in `__new__`."""
import inspect

import numpy as np

PLAIN = (str, int, float, bool, type(None))


def plain_problem(value, where, depth=0):
    """Why `value` cannot be written to a config (None when it is a plain value or nested lists/dicts of them)."""
    if isinstance(value, PLAIN) or (isinstance(value, np.generic) and value.dtype.kind in "biuf" and value.ndim == 0):
        return None
    if depth < 50 and isinstance(value, (list, tuple)):
        return next((p for i, v in enumerate(value) if (p := plain_problem(v, f"{where}[{i}]", depth + 1))), None)
    if depth < 50 and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return next((p for k, v in value.items() if (p := plain_problem(v, f"{where}[{k!r}]", depth + 1))), None)
    return f"__init__ received {where} of type {type(value).__name__}, which is not a plain value (str, int, " \
           "float, bool, None, or lists and dicts of those)"


def constructor_arguments(cls, args, kwargs):
    """`{argument: value}` of a subclass's constructor call (defaults included), or why there is none."""
    try:
        signature = inspect.signature(cls.__init__)
        bound = signature.bind(None, *args, **kwargs)
    except (TypeError, ValueError):
        return "its __init__ signature could not be matched to the call"  # __init__ then fails on its own
    params = list(signature.parameters.values())[1:]
    if any(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in params):
        return f"{cls.__name__}.__init__ has positional-only arguments, which a config cannot pass back"
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop(next(iter(signature.parameters)))  # self
    for p in params:
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            if arguments.pop(p.name, ()):
                return f"{cls.__name__}.__init__ received *{p.name} arguments, which a config cannot pass back"
        elif p.kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(arguments.pop(p.name, {}))
    arguments.pop("name", None)  # the live name is written instead
    for key, value in arguments.items():
        problem = plain_problem(value, f"argument '{key}'")
        if problem:
            return problem
    return copy_plain(arguments)


def copy_plain(value):
    """A copy with tuples as lists, as the config reads back from JSON."""
    if isinstance(value, (list, tuple)):
        return [copy_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: copy_plain(v) for k, v in value.items()}
    return value.item() if isinstance(value, np.generic) else value


def with_constructor_arguments(obj, base_config, kind):
    """`base_config` plus the constructor arguments `obj` was created with; base keys that `__init__`
    cannot take back (it has no such argument and no `**kwargs`) are left out, so the config rebuilds it.

    Raises:
        NotImplementedError: when an argument was not a plain value (a layer, an array, ...).
    """
    cls = type(obj)
    auto = vars(obj).get("_auto_config")
    if not isinstance(auto, dict):
        reason = auto if isinstance(auto, str) else "it was not created by calling its class"
        raise NotImplementedError(
            f"{kind} '{obj.name}' of class {cls.__name__} cannot write its config: {reason}. Override "
            "get_config() to return the constructor arguments (and from_config() if they are not plain "
            "values), e.g. `def get_config(self): return {**super().get_config(), \"units\": self.units}`.")
    base = fit_to_init(cls, base_config)
    head = {"name": base.pop("name")} if "name" in base else {}
    return {**head, **copy_plain(auto), **base}  # Keras's order: name, the arguments, trainable, dtype


def fit_to_init(cls, config, keys=("name", "trainable", "dtype")):
    """`config` without those of `keys` that `cls.__init__` cannot take (no such argument, no `**kwargs`)."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(config)
    return {k: v for k, v in config.items() if k in params or k not in keys}
