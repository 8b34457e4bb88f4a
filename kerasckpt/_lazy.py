"""Package attributes loaded on first use (PEP 562), so that `import kerasckpt` loads only what training needs."""
import importlib


def lazy_attributes(package, namespace, where):
    """`(__getattr__, __dir__)` for the package named `package` whose globals are `namespace`.

    `where` maps each lazily loaded public name to the module that defines it; a name that maps to
    `package + "." + name` is that submodule itself. `where` is a constant of the package's own code, naming
    kerasckpt modules only: no name read from a file or given by a caller reaches the import. The first
    access imports the module and keeps the value in `namespace`, so later accesses are plain attribute reads.
    """
    outside = sorted({m for m in where.values() if not m.startswith("kerasckpt.")})
    if outside:  # only kerasckpt's own modules load lazily
        raise ValueError(f"lazy attributes of {package!r} name modules outside kerasckpt: {outside}")

    def __getattr__(name):
        module_name = where.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(module_name)
        value = module if module_name == f"{package}.{name}" else getattr(module, name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
