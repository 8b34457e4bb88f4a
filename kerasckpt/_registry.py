"""The one registry of classes that loading may instantiate: register_serializable + lookup."""

_REGISTRY = {}  # registered name -> class


def register_serializable(package="Custom", name=None):
    """Register a class so `load_model` may rebuild it from a config.

    The class is stored under `"package>name"` (Keras's registered name) and looked up by that
    name or by its bare class name. Only registered classes are ever instantiated from a file.

    Args:
        package: prefix of the registered name; kerasckpt's own classes use `"kerasckpt"`.
        name: the name to register under; defaults to the class's `__name__`.
    """

    def decorator(cls):
        registered = f"{package}>{name or cls.__name__}"
        _REGISTRY[registered] = cls
        cls._registered_name = registered
        return cls

    return decorator


def builtin(name=None):
    """Register one of kerasckpt's own classes under its Keras class name."""
    return register_serializable("kerasckpt", name)


def lookup(class_name, custom_objects=None):
    """The registered class for `class_name` (a bare or `package>name` name), or None."""
    if custom_objects and class_name in custom_objects:
        return custom_objects[class_name]
    if class_name in _REGISTRY:
        return _REGISTRY[class_name]
    bare = class_name.split(">")[-1]
    if custom_objects and bare in custom_objects:
        return custom_objects[bare]
    builtin_cls = _REGISTRY.get(f"kerasckpt>{bare}")
    if builtin_cls is not None:
        return builtin_cls
    matches = [cls for key, cls in _REGISTRY.items() if key.split(">")[-1] == bare]
    return matches[0] if len(matches) == 1 else None


def registered(name):
    """The class registered under exactly `name` (`package>name`), or None."""
    return _REGISTRY.get(name)


def registered_names():
    """Every registered name, for error messages that list the valid choices."""
    return sorted(_REGISTRY)
