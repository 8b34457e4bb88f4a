"""Model: a Layer that trains. `Model(inputs, outputs)` builds a functional model."""
import inspect

import numpy as np

from kerasckpt._registry import builtin
from kerasckpt.layers.base import Layer, serialize_dtype
from kerasckpt.models.summary import print_summary
from kerasckpt.models.trainer import Trainer
from kerasckpt.utils import snake_case


def layers_by_class_name(layers):
    """`{dense: ..., dense_1: ..., batch_normalization: ...}`: a layer's key counts earlier layers of its
    class in this model, as in Keras's `.weights.h5`, so keys do not depend on global default names."""
    counts, out = {}, {}
    for layer in layers:
        base = snake_case(type(layer).__name__)
        n = counts.get(base, 0)
        counts[base] = n + 1
        out[base if n == 0 else f"{base}_{n}"] = layer
    return out


@builtin()
class Model(Trainer, Layer):
    """A trainable model, built one of three ways.

    `Model(inputs, outputs)` builds a functional model from `Input` tensors; subclassing `Model`,
    setting layers as attributes in `__init__` and writing `call(inputs, training=False)` builds a
    subclassed model; `Sequential([...])` builds a stack.

    Args:
        inputs: for functional models, the `Input` tensor(s).
        outputs: for functional models, the output tensor(s).
        name: unique default from the class name.
        trainable: whether training updates the weights.
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from kerasckpt.models.functional import Functional
            return super().__new__(Functional)
        instance = super().__new__(cls)
        if cls is not Model and cls.get_config is Model.get_config:  # a subclass relying on the automatic config
            instance._auto_config = _constructor_arguments(cls, args, kwargs)
        return instance

    def __init__(self, *args, **kwargs):
        kwargs.pop("inputs", None), kwargs.pop("outputs", None)
        super().__init__(**kwargs)
        self._init_trainer()

    def build(self, input_shape):
        """Create every weight by calling the model once on zeros of `input_shape` (None -> 1): a shape, or a
        list or dict of shapes for a model called with a list or dict of inputs."""
        if type(self).call is Model.call:
            raise NotImplementedError(f"Model '{self.name}' has no call() method. Subclasses of Model must define call().")
        zeros = _zeros_for(input_shape)
        self.call(zeros, training=False) if self._call_has_training else self.call(zeros)

    def call(self, inputs, training=False):
        raise NotImplementedError(f"Model '{self.name}' has no call() method. Subclasses of Model must define call().")

    @property
    def layers(self):
        """The direct sub-layers, in the order they were set."""
        return list(self._layers)

    def _checkpoint_aliases(self):
        aliases = super()._checkpoint_aliases()
        # tf.keras and Keras 3 track the compiled optimizer under the model (`optimizer`).
        if getattr(self, "optimizer", None) is not None and "optimizer" not in self._trackable_children():
            aliases["optimizer"] = self.optimizer
        return aliases

    def get_layer(self, name=None, index=None):
        """A sub-layer by `name` or by `index` into `layers`."""
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer(index={index}) is out of range: model '{self.name}' has "
                                 f"{len(self.layers)} layers.")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Existing layers are: {[l.name for l in self.layers]}.")

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False):
        """Print a table of the layers, their output shapes and parameter counts, like Keras.

        Args:
            line_length: total width of the table; the columns are placed by `positions` as in Keras
                (cells too long for their column wrap between words). None sizes each column to its
                content, so that no cell wraps.
            positions: where each column ends, as fractions of `line_length` (Keras's default
                `[0.45, 0.8, 1.0]`), or absolute character positions.
            print_fn: called once with the whole table; defaults to `print`.
            expand_nested: also list the layers of nested models, indented under them.
            show_trainable: add a "Trainable" column: `Y`, `N`, or `-` for a layer without weights.
        """
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      expand_nested=expand_nested, show_trainable=show_trainable)

    def get_config(self):
        """The constructor arguments: `name`, `trainable`, `dtype`, plus, for a subclass that does not
        override `get_config()`, the arguments its `__init__` received, when they are plain values.

        Sequential and functional models return their whole layer graph instead (Keras's `layers`,
        `build_input_shape` / `input_layers`, `output_layers`), the config `.keras` files store.

        Note: Keras 3 records only the *default* values of a subclass's arguments (`MyModel(units=8)`
        gives `units` 4 if 4 is the default); kerasckpt records the values actually passed.

        Raises:
            NotImplementedError: for a subclass that received an argument which is not a plain value
                (a layer, an array, ...) and does not override `get_config()`.
        """
        config = {"name": self.name, "trainable": self.trainable, "dtype": serialize_dtype(self.dtype)}
        cls = type(self)
        if cls is Model or cls.get_config is not Model.get_config:  # an override extends this base config
            return config
        auto = vars(self).get("_auto_config")
        if not isinstance(auto, dict):
            reason = auto if isinstance(auto, str) else "it was not created by calling its class"
            raise NotImplementedError(
                f"Model '{self.name}' of class {cls.__name__} cannot write its config: {reason}. Override "
                "get_config() to return the constructor arguments (and from_config() if they are not plain "
                "values), e.g. `def get_config(self): return {**super().get_config(), \"units\": self.units}`.")
        params = inspect.signature(cls.__init__).parameters
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for key in list(config):
            if key not in params and not takes_kwargs:  # __init__ could not take it back
                del config[key]
        return {**_copy_plain(auto), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new model from `get_config()`'s output (or Keras's); a functional config gives a functional model.

        Args:
            config: the dict from `get_config()`.
            custom_objects: `{name: class}` for layers that are neither built in nor registered.
        """
        from kerasckpt.models.functional import Functional
        if isinstance(config, dict) and all(k in config for k in ("name", "layers", "input_layers", "output_layers")) \
                and cls in (Model, Functional):
            return rebuild_from_config("Functional", config, custom_objects, f"{cls.__name__}.from_config()")
        if cls is Model and isinstance(config, dict) and "layers" in config:
            raise ValueError("Model.from_config() received a Sequential model's config (it has `layers` but no "
                             "`input_layers`/`output_layers`). Pass it to Sequential.from_config() instead.")
        try:
            return super().from_config(config)
        except TypeError as err:
            raise TypeError(
                f"Unable to revive model {cls.__name__} from config with keys {sorted(config)}: {err}. "
                f"get_config() must return every argument {cls.__name__}.__init__ needs, or {cls.__name__} "
                "must define a from_config(cls, config) classmethod that builds it.") from err

    # ------------------------------------------------------------------ saving (kerasckpt.saving does the work)

    def save(self, filepath, overwrite=True, **kwargs):
        """Save architecture, weights, compile arguments and optimizer state (`.keras` or legacy `.h5`).

        `filepath` may be an fsspec URL (`s3://...`), with `storage_options=` for its store.
        """
        from kerasckpt.saving import api
        api.save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True, storage_options=None):
        """Save the weights (and the optimizer state when compiled); the file ending picks the format."""
        from kerasckpt.saving import api
        api.save_weights(self, filepath, overwrite=overwrite, storage_options=storage_options)

    def load_weights(self, filepath, skip_mismatch=False, storage_options=None):
        """Load weights (and optimizer state) saved by `save_weights` or by Keras."""
        from kerasckpt.saving import api
        api.load_weights(self, filepath, skip_mismatch=skip_mismatch, storage_options=storage_options)


def _zeros_for(shapes):
    """float32 zeros for a shape, or for each shape of a (nested) list, tuple or dict of shapes."""
    if isinstance(shapes, dict):
        return {key: _zeros_for(value) for key, value in shapes.items()}
    if isinstance(shapes, (list, tuple)) and all(d is None or isinstance(d, (int, np.integer)) for d in shapes):
        return np.zeros(tuple(1 if d is None else int(d) for d in shapes), dtype="float32")
    if isinstance(shapes, (list, tuple)):
        return [_zeros_for(s) for s in shapes]
    raise TypeError(f"build() needs a shape (a tuple of sizes, None for unknown), or a list or dict of shapes. "
                    f"Received: {shapes!r}")


# ---------------------------------------------------------------------- configs


def rebuild_from_config(class_name, config, custom_objects, label):
    """A Sequential or functional model from its Keras config, through the `.keras` reader's own code."""
    from kerasckpt.saving import serialization  # saving looks models up by name; import it only when used
    if not isinstance(config, dict):
        raise TypeError(f"{label} needs the dict returned by get_config(). Received: {type(config).__name__} "
                        f"{str(config)[:80]}.")
    module = "keras" if class_name == "Sequential" else "keras.src.models.functional"
    entry = {"module": module, "class_name": class_name, "config": _copy_plain(config), "registered_name": None}
    return serialization.deserialize_model(entry, serialization.Context(label, custom_objects), "config")


def tf_keras_layer_edges(layers):
    """tf.keras's edges from a Sequential or functional model to its layers: `layer-N` for the N-th layer,
    `layer_with_weights-N` for the N-th of those that have weights (what its `save_weights` files use)."""
    edges, with_weights = {}, 0
    for index, layer in enumerate(layers):
        if layer.weights:
            edges[f"layer_with_weights-{with_weights}"] = layer
            with_weights += 1
        edges[f"layer-{index}"] = layer
    return edges


def model_config(model):
    """The `config` of `model`'s entry in a `.keras` file's `config.json` (its layer graph)."""
    from kerasckpt.saving import serialization
    return serialization.serialize_model(model, include_compile=False)["config"]


_PLAIN = (str, int, float, bool, type(None))


def _plain_problem(value, where, depth=0):
    """Why `value` cannot be written to a config (None when it is a plain value or nested lists/dicts of them)."""
    if isinstance(value, _PLAIN) or (isinstance(value, np.generic) and value.dtype.kind in "biuf" and value.ndim == 0):
        return None
    if depth < 50 and isinstance(value, (list, tuple)):
        return next((p for i, v in enumerate(value) if (p := _plain_problem(v, f"{where}[{i}]", depth + 1))), None)
    if depth < 50 and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return next((p for k, v in value.items() if (p := _plain_problem(v, f"{where}[{k!r}]", depth + 1))), None)
    return f"__init__ received {where} of type {type(value).__name__}, which is not a plain value (str, int, " \
           "float, bool, None, or lists and dicts of those)"


def _constructor_arguments(cls, args, kwargs):
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
        problem = _plain_problem(value, f"argument '{key}'")
        if problem:
            return problem
    return _copy_plain(arguments)


def _copy_plain(value):
    """A copy with tuples as lists, as the config reads back from JSON."""
    if isinstance(value, (list, tuple)):
        return [_copy_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy_plain(v) for k, v in value.items()}
    return value.item() if isinstance(value, np.generic) else value
