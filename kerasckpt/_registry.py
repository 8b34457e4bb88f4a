"""The one registry of classes that loading may instantiate: register_serializable + lookup; and the seam
through which layers that nest other layers (Bidirectional, TimeDistributed, RNN) write and read their
entries without importing `saving/` (which installs the codec when it is imported)."""
import contextlib

_REGISTRY = {}  # registered name -> class
_SCOPES = []  # the custom_objects of the deserializations in progress, innermost last
_CODEC = {}  # "serialize" / "deserialize": saving/serialization's functions for nested layer entries


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
    if custom_objects is None and _SCOPES:
        custom_objects = _SCOPES[-1]
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


@contextlib.contextmanager
def custom_objects_scope(custom_objects):
    """Within it, `lookup` also finds the classes of `custom_objects` (for entries nested in configs)."""
    merged = {**(_SCOPES[-1] if _SCOPES else {}), **(custom_objects or {})}
    _SCOPES.append(merged)
    try:
        yield
    finally:
        _SCOPES.pop()


def install_layer_codec(serialize, deserialize):
    """Called by `saving/` on import: how nested layer entries are written and read."""
    _CODEC.update(serialize=serialize, deserialize=deserialize)


def _codec():
    if not _CODEC:  # `saving/` loads on first use (not with `import kerasckpt`); importing it installs the codec
        import kerasckpt.saving.serialization  # noqa: F401  (a constant name, never one read from a file)
    return _CODEC


def serialize_layer(layer):
    """A layer's `{"module", "class_name", "config", ...}` entry, for a layer nested in another's config."""
    return _codec()["serialize"](layer)


def deserialize_layer(entry):
    """A layer from an entry nested in another layer's config: registered classes (and the custom objects
    of the load in progress) only, nothing imported."""
    return _codec()["deserialize"](entry)
