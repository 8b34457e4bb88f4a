"""Layer: lazy build, weight creation, attribute tracking, the training flag, configs."""
import functools
import inspect

import numpy as np

from kerasckpt import initializers, ops, random, tracking
from kerasckpt.autograd import Tensor
from kerasckpt.layers import masking
from kerasckpt.layers.auto_config import constructor_arguments, fit_to_init, with_constructor_arguments
from kerasckpt.symbolic import KerasTensor, Node, flatten  # noqa: F401 - re-exported for the layers and models
from kerasckpt.tracking import Trackable, is_trackable_value
from kerasckpt.utils import get_uid, snake_case
from kerasckpt.variables import Variable, name_scope

_training_context = []  # the `training` value of the enclosing layer calls, innermost last
_CONCRETE = (Tensor, np.ndarray)  # classes of a single concrete call input (never symbolic, never nested)


def map_structure(fn, structure):
    """`structure` with `fn` applied to every leaf."""
    if isinstance(structure, list):
        return [map_structure(fn, s) for s in structure]
    if isinstance(structure, tuple):
        return tuple(map_structure(fn, s) for s in structure)
    if isinstance(structure, dict):
        return {k: map_structure(fn, v) for k, v in structure.items()}
    return fn(structure)


def _shape_of(x):
    if isinstance(x, (KerasTensor, Tensor, Variable, np.ndarray)):
        return tuple(x.shape)
    return tuple(np.shape(x))


# Lengths tried for axes of unknown length (other than the batch axis) when output shapes are inferred by
# calling a layer on zeros: long enough for the windows of stacked convolutions, different enough that
# every output axis that depends on them differs.
_FREE_LENGTHS = (64, 96)
_inferring = [0]  # > 0 while a layer runs on stand-in zeros to infer shapes


def inferring_shapes():
    """Whether the current call only infers output shapes on zeros (stateful layers then keep their state)."""
    return _inferring[0] > 0


class _inferring_shapes:
    def __enter__(self):
        _inferring[0] += 1

    def __exit__(self, *exc):
        _inferring[0] -= 1
        return False


def _fill_shape(shape, free_length):
    return tuple(1 if d is None and i == 0 else free_length if d is None else d for i, d in enumerate(shape))


def _merge_shapes(a, b):
    """`a` with the axes where `b` differs set to None (unknown length)."""
    if len(a) != len(b):
        return a
    return tuple(x if x == y else None for x, y in zip(a, b))


def _map_together(fn, structures):
    """`fn(*leaves)` over same-shaped nested structures, keeping the first one's nesting."""
    first = structures[0]
    if isinstance(first, (list, tuple)):
        out = [_map_together(fn, [s[i] for s in structures]) for i in range(len(first))]
        return out if isinstance(first, list) else tuple(out)
    if isinstance(first, dict):
        return {k: _map_together(fn, [s[k] for s in structures]) for k in first}
    return fn(*structures)


def _concrete(x, free_length=_FREE_LENGTHS[0]):
    """Zeros (True for a mask) standing in for a symbolic tensor in the call that infers output shapes."""
    if not isinstance(x, KerasTensor):
        return x
    shape = _fill_shape(x.shape, free_length)
    return np.ones(shape, bool) if x.dtype == "bool" else np.zeros(shape, dtype=x.dtype)


def _to_input(x, integers_to=None):
    """A call input as Keras converts it: float64 NumPy data to float32; integer and bool data (NumPy or
    tensors) to the float dtype `integers_to` when given (None: integers stay integers)."""
    if isinstance(x, (list, float, int)) and not isinstance(x, bool):
        x = np.asarray(x)
    if isinstance(x, np.ndarray):
        if x.dtype == np.float64:
            return x.astype("float32")
        return x.astype(integers_to) if integers_to is not None and x.dtype.kind in "biu" else x
    if integers_to is not None and isinstance(x, Tensor) and np.asarray(x.value).dtype.kind in "biu":
        return ops.cast(x, integers_to)
    return x


def serialize_dtype(dtype):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype}, "registered_name": None}


def deserialize_dtype(dtype):
    if isinstance(dtype, dict):
        return dtype.get("config", {}).get("name", "float32")
    return dtype


# Attributes kerasckpt's own classes keep Layers or Variables in; every other attribute holding them is
# tracked, `_`-prefixed ones included, as Keras tracks them (`self._hidden = Dense(4)` is a sub-layer).
_INTERNAL_ATTRIBUTES = frozenset({"_layers", "_trainable_variables", "_non_trainable_variables", "_tracked",
                                  "_input_layer", "_train_vars"})


def _holds_layers_or_variables(value):
    """A Layer or Variable, or a non-empty list, tuple or dict of only those."""
    if isinstance(value, (Layer, Variable)):
        return True
    items = list(value.values()) if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else None
    return bool(items) and all(isinstance(v, (Layer, Variable)) for v in items)


class Layer(Trackable):
    """The base of every layer and model.

    Subclasses create weights in `build(input_shape)` with `add_weight`, and compute in
    `call(inputs, training=False)` with `kerasckpt.ops`. Layers, Variables and lists or dicts of them
    set as attributes are tracked: their weights belong to this layer.

    Args:
        trainable: whether the layer's weights are updated by training.
        name: unique default from the class name (`dense`, `dense_1`, ...).
        dtype: the variables' dtype; float32 by default.

    Note: a first call or `build()` that raises leaves the layer (and the sub-layers it was building)
    unbuilt, without the variables it had created, so calling again does not duplicate weights.
    """

    # Whether integer and bool inputs are cast to the layer's (floating) dtype on entry. Keras's Dense and
    # BatchNormalization give floating outputs for them, while layers that pass values on (Flatten,
    # Activation) keep integers; so do custom layers, which may take indices, as in Keras.
    _autocast_integers = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__:
            cls.build = _scoped_build(cls.__dict__["build"])

    def __new__(cls, *args, **kwargs):
        instance = super().__new__(cls)
        if cls.get_config is Layer.get_config and not str(vars(cls).get("_registered_name", "")).startswith(
                "kerasckpt>"):  # a custom layer relying on the automatic config (built-ins write Keras's)
            instance._auto_config = constructor_arguments(cls, args, kwargs)
        return instance

    def __init__(self, trainable=True, name=None, dtype=None, **kwargs):
        object.__setattr__(self, "_tracked", {})
        self._trainable_variables = []
        self._non_trainable_variables = []
        self._layers = []
        self._inbound_nodes = []
        self._build_shapes = None
        self._output_shape = None
        input_shape = kwargs.pop("input_shape", None)
        input_dim = kwargs.pop("input_dim", None)
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        if kwargs.pop("activity_regularizer", None) is not None:  # Keras configs carry `null`
            raise ValueError(f"{type(self).__name__} does not support `activity_regularizer` in kerasckpt. Add the "
                             "penalty to the loss in a custom training loop instead, or remove the argument.")
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword arguments: {sorted(kwargs)}. "
                "Check the spelling against the layer's documented arguments.")
        if input_dim is not None:
            input_shape = (input_dim,)
        self._input_shape_arg = (None,) + tuple(input_shape) if input_shape is not None else (
            tuple(batch_input_shape) if batch_input_shape is not None else None)
        self.name = name or get_uid(snake_case(type(self).__name__))
        self.dtype = deserialize_dtype(dtype) or "float32"
        self._trainable = bool(trainable)
        self.built = False
        training_param = inspect.signature(self.call).parameters.get("training")
        self._call_has_training = training_param is not None
        self._call_training_default = None if training_param is None else (
            None if training_param.default is inspect.Parameter.empty else training_param.default)
        self._supports_masking = type(self).compute_mask is not Layer.compute_mask
        self._call_masks = masking.MaskArguments.of(self.call)  # None: call() takes no mask argument

    # ------------------------------------------------------------------ tracking

    def __setattr__(self, name, value):
        tracked = self.__dict__.get("_tracked")
        tracks = tracked is not None and (not name.startswith("_") or (
            name not in _INTERNAL_ATTRIBUTES and _holds_layers_or_variables(value)))
        if tracks:
            if is_trackable_value(value):
                tracked[name] = value
                self._track(value)
            elif name in tracked:
                del tracked[name]
        elif tracked is not None and name in tracked:
            del tracked[name]
        object.__setattr__(self, name, value)
        if tracks and isinstance(value, (Variable, Layer)):
            tracking.child_created(self, name, value)

    def _track(self, value):
        if isinstance(value, Layer):
            if not any(value is layer for layer in self._layers):
                self._layers.append(value)
        elif isinstance(value, Variable):
            owned = self._trainable_variables + self._non_trainable_variables
            if not any(value is v for v in owned):
                (self._trainable_variables if value.trainable else self._non_trainable_variables).append(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                self._track(item)
        elif isinstance(value, dict):
            for item in value.values():
                self._track(item)

    def _trackable_children(self):
        children = dict(self._tracked)
        named = {id(v) for v in flatten(list(children.values()))}
        for v in self._trainable_variables + self._non_trainable_variables:
            if id(v) not in named:
                children[v.name] = v
        return children

    def _checkpoint_aliases(self):
        # Keras 3 keeps weights in `_`-prefixed attributes (Dense's `_kernel`, Embedding's `_embeddings`).
        return {f"_{name}": value for name, value in self._trackable_children().items()
                if isinstance(value, Variable) and not name.startswith("_")}

    # ------------------------------------------------------------------ weights

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True, name=None, regularizer=None,
                   constraint=None, autocast=True, aggregation="none", overwrite_with_gradient=False):
        """Create a Variable owned by this layer (call it from `build`).

        Args:
            shape: the variable's shape.
            initializer: a name (`"zeros"`, `"glorot_uniform"`), an Initializer, or a callable;
                glorot_uniform for floating variables by default, zeros otherwise.
            dtype: defaults to the layer's dtype.
            trainable: whether optimizers update it.
            name: the last part of the variable's `.path`.
            regularizer, constraint, overwrite_with_gradient: not supported; a value other than the
                default raises a ValueError (Keras would apply them; kerasckpt never drops them silently).
            autocast, aggregation: accepted for Keras compatibility; they change nothing here.
        """
        for arg, value, instead in (
                ("regularizer", regularizer, "; add the penalty to the loss in a custom training loop instead"),
                ("constraint", constraint, "; assign the constrained value after each step instead (e.g. in a "
                                           "callback's on_train_batch_end)"),
                ("overwrite_with_gradient", overwrite_with_gradient or None, "")):
            if value is not None:
                raise ValueError(f"add_weight() of layer '{self.name}' does not support `{arg}` in kerasckpt. "
                                 f"Received: {arg}={value!r}. Remove the argument{instead}.")
        dtype = dtype or self.dtype
        if initializer is None:
            initializer = "glorot_uniform" if np.dtype(dtype).kind == "f" else "zeros"
        init = initializers.get(initializer)
        shape = tuple(shape or ())
        with _nullscope() if _building_scope(self) else name_scope(self.name):
            if initializers.skipping() and isinstance(init, initializers.Initializer) and init.skip(shape, dtype):
                # Values are loaded next (`initializers.skip_initialization`): allocate zeros (lazily
                # zeroed pages, no copy), the random streams advanced as if the values were drawn.
                var = Variable(np.zeros((), dtype), dtype=dtype, trainable=trainable, name=name)
                var._value = np.zeros(shape, dtype)
            else:
                var = Variable(init, shape=shape, dtype=dtype, trainable=trainable, name=name)
        (self._trainable_variables if trainable else self._non_trainable_variables).append(var)
        if not self._trainable:  # a layer frozen before it was built (e.g. from a config): as in Keras
            var.trainable = False
        tracking.note_created(var)
        tracking.child_created(self, var.name, var)
        return var

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for v in self._trainable_variables:
            v.trainable = self._trainable
        for layer in self._layers:
            layer.trainable = value

    @property
    def weights(self):
        """Own variables (trainable, then non-trainable), then each sub-layer's, without repeats."""
        out, seen = [], set()
        for w in self._trainable_variables + self._non_trainable_variables:
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
        for layer in self._layers:
            for w in layer.weights:
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append(w)
        return out

    variables = weights

    @property
    def trainable_weights(self):
        return [v for v in self.weights if v.trainable] if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [v for v in self.weights if not v.trainable] if self.trainable else self.weights

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def get_weights(self):
        """Copies of `weights` as NumPy arrays."""
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        """Assign a list of arrays, in the order of `weights`."""
        own = self.weights
        if len(weights) != len(own):
            raise ValueError(
                f"Layer '{self.name}' has {len(own)} weights but set_weights received {len(weights)} arrays. "
                f"Pass one array per entry of layer.weights ({[w.path for w in own]}).")
        for var, value in zip(own, weights):
            if np.shape(value) != var.shape:
                raise ValueError(
                    f"Layer '{self.name}': weight '{var.path}' has shape {var.shape} but the value given has "
                    f"shape {np.shape(value)}. Pass arrays in the order and shapes of layer.weights.")
        for var, value in zip(own, weights):
            var.assign(value)

    def count_params(self):
        """The number of scalars in all weights."""
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' is not built yet, so it has no weights to count. "
                "Call it on data or call build(input_shape) first.")
        return int(sum(int(np.prod(w.shape)) for w in self.weights))

    # ------------------------------------------------------------------ building and calling

    def build(self, input_shape):
        """Create the weights for inputs of `input_shape` (override in subclasses)."""

    def call(self, inputs, *args, **kwargs):
        """The computation; override in subclasses."""
        return inputs

    def _maybe_build(self, input_shape):
        if not self.built:
            self.build(input_shape)

    def _build_from_call(self, args, kwargs):
        """Build from the shapes of a call's tensors, as Keras does: a `build` with one argument gets the
        first input's shape; a `build(query_shape, value_shape, ...)` gets the shape of each call argument
        named like it (`query`, `value`, ...)."""
        if self.built:
            return
        params = [n for n, p in inspect.signature(self.build).parameters.items()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY, p.KEYWORD_ONLY)]
        first = args[0] if args else kwargs.get("inputs")
        if len(params) <= 1:
            self.build(map_structure(_shape_of, first) if isinstance(first, (list, tuple, dict)) else _shape_of(first))
            return
        bound = inspect.signature(self.call).bind_partial(*args, **kwargs).arguments
        shapes = {f"{k}_shape": map_structure(_shape_of, v) for k, v in bound.items()
                  if f"{k}_shape" in params and v is not None and not (k == "mask" or k.endswith("_mask"))}
        self.build(**shapes)

    def _convert_input(self, x):
        cls = x.__class__  # the common cases first: a float tensor or float32 array is passed as it is
        if (cls is Tensor and x.value.dtype.kind in "fc") or (cls is np.ndarray and x.dtype.kind in "fc"
                                                               and x.dtype != np.float64):
            return x
        float_dtype = self._autocast_integers and np.dtype(self.dtype).kind == "f"
        converted = _to_input(x, self.dtype if float_dtype else None)
        if converted is not x:  # a cast keeps the tensor's mask, as in Keras
            mask = masking.get_keras_mask(x)
            if mask is not None:
                converted = converted if isinstance(converted, Tensor) else Tensor(converted)
                masking.set_keras_mask(converted, mask)
        return converted

    @property
    def supports_masking(self):
        """Whether the layer passes masks on: its outputs get `compute_mask(inputs, mask)` attached.

        True by default for layers that define `compute_mask`; a layer that does not support masking
        drops a mask it receives, with a warning, as in Keras.
        """
        return self._supports_masking

    @supports_masking.setter
    def supports_masking(self, value):
        self._supports_masking = bool(value)

    def compute_mask(self, inputs, previous_mask):
        """The mask of the output(s) for `inputs` whose mask is `previous_mask`: unchanged by default."""
        return previous_mask

    def __call__(self, *args, **kwargs):
        if args and args[0].__class__ not in _CONCRETE and any(isinstance(t, KerasTensor) for t in flatten(args[0])):
            return self._symbolic_call(*args, **kwargs)
        if self.built:
            return self._call(args, kwargs, first_call=False)
        # A first call builds: one step with the builds nested in it, so that if it fails (a held
        # checkpoint value does not fit, or anything else) the layer is left unbuilt, as it was.
        with tracking.transaction():
            snapshot_layer(self)
            return self._call(args, kwargs, first_call=True)

    def _call(self, args, kwargs, first_call):
        inputs = args[0] if args else kwargs.pop("inputs")
        inputs = self._convert_input(inputs) if inputs.__class__ in _CONCRETE else map_structure(self._convert_input,
                                                                                                  inputs)
        args = (inputs,) + args[1:]
        if first_call:
            self._build_from_call(args, kwargs)
        # `training`: the explicit argument, else the enclosing call's, else call()'s default. It is passed
        # on through the context even when this call() does not take it, so nested layers still see it.
        training = kwargs.get("training") if self._call_has_training else kwargs.pop("training", None)
        if training is None:
            training = _training_context[-1] if _training_context else self._call_training_default
        if self._call_has_training and training is not None:
            kwargs["training"] = training
        if self._call_masks is not None:
            self._call_masks.fill(args, kwargs, KerasTensor)
        prior = masking.previous_mask(inputs, kwargs)
        _training_context.append(training)
        try:
            out = self.call(*args, **kwargs)
        finally:
            _training_context.pop()
        if isinstance(out, np.ndarray):  # NumPy input passed through (Dropout in inference): still a tensor
            out = Tensor(out)
        # without a mask coming in, only a layer with its own compute_mask can make one
        if prior is not None or (self._supports_masking and type(self).compute_mask is not Layer.compute_mask):
            masking.attach_output_masks(self, inputs, out, prior)
        if first_call:
            self._output_shape = map_structure(lambda t: (None,) + _shape_of(t)[1:], out)
        return out

    def _symbolic_call(self, *args, **kwargs):
        """Record a functional-API call: build from the symbolic shapes and infer the output shapes (and
        the output masks) by calling the layer on zeros. Axes of unknown length (other than the batch
        axis) are tried at two lengths; output axes that follow them are unknown too."""
        inputs = args[0]
        self._build_from_call(args, kwargs)
        if self._call_masks is not None:  # masks made by recorded ops are call arguments of the node, as in Keras
            kwargs = dict(kwargs)
            for name in self._call_masks.fill(args, kwargs, KerasTensor):
                if not all(getattr(m, "_keras_history", None) for m in flatten(kwargs[name])):
                    del kwargs[name]  # a mask no node computes: it reaches the layer on the tensor at run time
        prior = masking.previous_mask(inputs, kwargs)
        with_masks = self._supports_masking and (prior is not None or type(self).compute_mask is not Layer.compute_mask)
        runs = [self._concrete_call(args, kwargs, prior, with_masks, _FREE_LENGTHS[0])]
        if any(None in t.shape[1:] for t in flatten((args, kwargs)) if isinstance(t, KerasTensor)):
            runs.append(self._concrete_call(args, kwargs, prior, with_masks, _FREE_LENGTHS[1]))
        batch_unknown = any(isinstance(t, KerasTensor) and t.shape and t.shape[0] is None for t in flatten(inputs))
        node_index = len(self._inbound_nodes)
        outputs = []

        def shape_and_dtype(values):
            shapes = [tuple(np.shape(v)) for v in values]
            shape = functools.reduce(_merge_shapes, shapes)
            if batch_unknown and shape:
                shape = (None,) + shape[1:]
            return shape, str(np.asarray(values[0]).dtype)

        def to_symbolic(*values):
            shape, dtype = shape_and_dtype(values)
            tensor = KerasTensor(shape, dtype, (self, node_index, len(outputs)))
            outputs.append(tensor)
            return tensor

        symbolic = _map_together(to_symbolic, [result for result, _ in runs])
        if with_masks:
            recorded = self._symbolic_masks(inputs, prior)
            for i, tensor in enumerate(flatten(symbolic)):
                if recorded is not None and i < len(recorded) and isinstance(recorded[i], KerasTensor):
                    tensor._keras_mask = recorded[i]  # made by op nodes (`ops.not_equal`), as Keras's graph has it
                    continue
                values = [masks[i] for _, masks in runs if masks is not None and masks[i] is not None]
                if values and len(values) == len(runs):
                    tensor._keras_mask = KerasTensor(shape_and_dtype(values)[0], "bool")
        self._inbound_nodes.append(Node(self, args, kwargs, outputs))
        self._output_shape = map_structure(lambda t: t.shape, symbolic)
        return symbolic

    def _symbolic_masks(self, inputs, prior):
        """`compute_mask` on the symbolic tensors, so that masks computed with `kerasckpt.ops` become op nodes
        (a layer taking `mask=` downstream then records them, and files hold them, as Keras's do); None when
        `compute_mask` needs values (then the masks' shapes come from the calls on zeros)."""
        try:
            masks = self.compute_mask(inputs, prior)
        except TypeError:  # NumPy on a symbolic tensor
            return None
        return None if masks is None else flatten(masks)

    def _concrete_call(self, args, kwargs, prior, with_masks, free_length):
        """`call()` on zeros shaped like the symbolic arguments: the output values, and the output masks
        (one per output leaf, None when there are none) as NumPy arrays."""
        fill = functools.partial(_concrete, free_length=free_length)
        concrete = map_structure(fill, args)
        concrete = (map_structure(self._convert_input, concrete[0]),) + tuple(concrete[1:])
        call_kwargs = {k: map_structure(fill, v) for k, v in kwargs.items() if k != "training"}
        if self._call_has_training:
            call_kwargs["training"] = False
        with _inferring_shapes():
            result = self.call(*concrete, **call_kwargs)
            values = map_structure(lambda r: r.numpy() if isinstance(r, Tensor) else np.asarray(r), result)
            if not with_masks:
                return values, None
            concrete_prior = masking.previous_mask(concrete[0], call_kwargs)
            if concrete_prior is None and prior is not None:
                concrete_prior = map_structure(lambda m: None if m is None else fill(m), prior)
            masks = self.compute_mask(concrete[0], concrete_prior)
        flat = flatten(values)
        masks = [None] * len(flat) if masks is None else flatten(masks) + [None] * (len(flat) - len(flatten(masks)))
        return values, [None if m is None else masking.value_of_mask(m) for m in masks[:len(flat)]]

    def compute_output_shape(self, input_shape):
        """The output shape for `input_shape`, found by calling the layer on zeros (axes of unknown length
        tried at two lengths, as in `_symbolic_call`)."""
        self._maybe_build(tuple(input_shape))

        def run(free_length):
            concrete = np.zeros(_fill_shape(input_shape, free_length), dtype=self.dtype)
            with _inferring_shapes():
                out = self(concrete, training=False) if self._call_has_training else self(concrete)
            return tuple(np.shape(out))

        shape = run(_FREE_LENGTHS[0])
        if any(d is None for d in tuple(input_shape)[1:]):
            shape = _merge_shapes(shape, run(_FREE_LENGTHS[1]))
        return (input_shape[0],) + shape[1:] if input_shape and input_shape[0] is None else shape

    # ------------------------------------------------------------------ configs

    def get_config(self):
        """The constructor arguments as Keras writes them (`name`, `trainable`, `dtype`, ...).

        A custom layer that does not override `get_config()` gets the arguments its constructor received
        (when they are plain values), as in Keras 3.

        Note: keys that its `__init__` cannot take back (no such argument, no `**kwargs`) are left out, so
        the file reloads; Keras writes them and then cannot load its own file.
        """
        config = {"name": self.name, "trainable": self.trainable, "dtype": serialize_dtype(self.dtype)}
        if type(self).get_config is not Layer.get_config or "_auto_config" not in vars(self):
            return config  # an override extends this base config
        return with_constructor_arguments(self, config, "Layer")

    @classmethod
    def from_config(cls, config):
        """A new layer from `get_config()` output (`name`, `trainable` and `dtype` dropped when `__init__`
        cannot take them, as in configs Keras writes for custom layers)."""
        config = fit_to_init(cls, config)
        if "dtype" in config:
            config["dtype"] = deserialize_dtype(config["dtype"])
        return cls(**config)

    def get_build_config(self):
        if self._build_shapes is None:
            return None
        if isinstance(self._build_shapes, _ShapesDict):
            if len(self._build_shapes) == 1:
                return {"input_shape": _listify(next(iter(self._build_shapes.values())))}
            return {"shapes_dict": {k: _listify(v) for k, v in self._build_shapes.items()}}
        return {"input_shape": _listify(self._build_shapes)}

    def build_from_config(self, config):
        if not config or self.built:
            return
        if config.get("input_shape") is not None:
            self._maybe_build(_tupleize(config["input_shape"]))
        elif isinstance(config.get("shapes_dict"), dict):
            self.build(**{k: _tupleize(v) for k, v in config["shapes_dict"].items()})

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


_building = []  # layers whose build() is running, innermost last


def _scoped_build(build):
    """`build` run in the layer's name scope, recording the shape and marking the layer built.

    Every `build` is wrapped, as in Keras, so that calling `layer.build(shape)` directly gives the
    same paths and `built` state as the lazy build of a first call (and no second build later).
    """
    if getattr(build, "_scoped", False):
        return build

    @functools.wraps(build)
    def wrapper(self, *args, **kwargs):
        if _building_scope(self):  # super().build(...) inside a build that is already scoped
            return build(self, *args, **kwargs)
        with tracking.transaction():  # a failing build leaves the layer (and its sub-layers) unbuilt
            snapshot_layer(self)
            with name_scope(self.name):
                _building.append(self)
                try:
                    result = build(self, *args, **kwargs)
                finally:
                    _building.pop()
            if args or kwargs:  # the shapes by build()'s argument names: several make Keras's `shapes_dict`
                try:
                    shapes = inspect.signature(build).bind(self, *args, **kwargs).arguments
                    shapes.pop(next(iter(shapes)))
                except TypeError:
                    shapes = {"input_shape": args[0] if args else next(iter(kwargs.values()))}
                self._build_shapes = next(iter(shapes.values())) if len(shapes) == 1 else _ShapesDict(shapes)
            self.built = True
            if not _building:  # the outermost build: held values that did not fit raise now, nothing built
                tracking.raise_problems()
        return result

    wrapper._scoped = True
    return wrapper


Layer.build = _scoped_build(Layer.build)


def snapshot_layer(layer):
    """Record `layer`'s attributes (and the contents of its lists and dicts) to be put back if the
    build transaction in progress fails: its new variables, sub-layers and `built` go away, and the
    global random generator is rewound."""
    def take():
        attrs = dict(layer.__dict__)
        contents = {k: (list(v) if type(v) is list else dict(v)) for k, v in attrs.items() if type(v) in (list, dict)}

        def undo():
            for k in [k for k in layer.__dict__ if k not in attrs]:
                del layer.__dict__[k]
            layer.__dict__.update(attrs)
            for k, saved in contents.items():
                if type(attrs[k]) is list:
                    attrs[k][:] = saved
                else:
                    attrs[k].clear()
                    attrs[k].update(saved)
        tracking.on_rollback(undo)
    if tracking.snapshot_once(layer, take):  # the initial values drawn by the failed build are drawn again
        tracking.snapshot_once(random, lambda: tracking.on_rollback(
            lambda state=random.get_global_state(): random.set_global_state(state)))


def _building_scope(layer):
    return bool(_building) and _building[-1] is layer


class _nullscope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _ShapesDict(dict):
    """The shapes a several-argument `build(**shapes)` received, by argument name."""


def _listify(shape):
    if isinstance(shape, (list, tuple)):
        return [_listify(s) for s in shape]
    return shape


def _tupleize(shape):
    if isinstance(shape, list) and shape and isinstance(shape[0], list):
        return [tuple(s) for s in shape]
    return tuple(shape) if isinstance(shape, list) else shape
