"""Metrics as in `keras.metrics`: stateful accumulators whose whole state is non-trainable Variables.

Updates are plain NumPy on the values of Tensors, Variables or arrays: never recorded on a tape.
"""
import inspect

import numpy as np

from kerasckpt import initializers, losses
from kerasckpt._registry import builtin, register_serializable
from kerasckpt.autograd import Tensor, value_of
from kerasckpt.losses import squeeze_or_expand_to_same_rank, standardize_dtype
from kerasckpt.tracking import Trackable
from kerasckpt.utils import get_uid, snake_case
from kerasckpt.variables import Variable, name_scope


def _array(x):
    x = value_of(x)
    return x if x.__class__ is np.ndarray else np.asarray(x)


def _mean_over(x, axis):
    # np.mean's Python wrapper costs more than the arithmetic at batch sizes
    n = 1
    for a in axis:
        n *= x.shape[a]
    return np.add.reduce(x, axis=axis) / x.dtype.type(n)


def _sum_over(x, axis):
    return np.add.reduce(x, axis=axis)


# ---------------------------------------------------------------- metric functions

def accuracy(y_true, y_pred):
    """1.0 where `y_true == y_pred`, else 0.0 (float32, elementwise).

    Args:
        y_true: the labels.
        y_pred: the predicted labels.
    """
    p = _array(y_pred)
    t = _array(y_true).astype(p.dtype, copy=False)
    t, p = squeeze_or_expand_to_same_rank(t, p)
    return Tensor(np.equal(t, p).astype("float32"))


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where `y_pred > threshold` matches the 0/1 label, else 0.0 (float32, elementwise).

    Args:
        y_true: 0/1 labels.
        y_pred: probabilities (or scores compared with `threshold`).
        threshold: the decision threshold.
    """
    p, t = _array(y_pred), _array(y_true)
    t, p = squeeze_or_expand_to_same_rank(t, p)
    p = (p > threshold).astype(t.dtype)
    return Tensor(np.equal(t, p).astype("float32"))


def categorical_accuracy(y_true, y_pred):
    """1.0 where the argmax of one-hot `y_true` equals the argmax of `y_pred`, else 0.0.

    Args:
        y_true: one-hot labels, shape `(..., num_classes)`.
        y_pred: class scores of the same shape.
    """
    p = _array(y_pred)
    t = np.argmax(_array(y_true), axis=-1).astype(p.dtype if p.dtype.kind == "f" else "float32")
    org_shape, reshape = t.shape, False
    if t.ndim == p.ndim:  # mirrors Keras: labels given with an extra trailing axis
        t, reshape = np.squeeze(t, -1), True
    matches = np.equal(t, np.argmax(p, axis=-1).astype(t.dtype)).astype("float32")
    return Tensor(matches.reshape(org_shape) if reshape else matches)


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the integer label equals the argmax of `y_pred`, else 0.0.

    Args:
        y_true: integer class ids, shape `(...)` or `(..., 1)`.
        y_pred: class scores, shape `(..., num_classes)`.
    """
    p = _array(y_pred)
    t = _array(y_true)
    t = t.astype(p.dtype if p.dtype.kind == "f" else np.float32, copy=False)
    org_shape, reshape = t.shape, False
    if t.ndim == p.ndim and t.shape[-1] == 1:
        t, reshape = np.squeeze(t, -1), True
    matches = (t == p.argmax(axis=-1).astype(t.dtype)).astype(np.float32)
    if reshape:
        matches = matches.reshape(org_shape)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = np.squeeze(matches, -1)
    return Tensor(matches)


# ---------------------------------------------------------------- base classes

@builtin()
class Metric(Trackable):
    """Base of every metric: state in non-trainable Variables, `update_state`, `result`, `reset_state`.

    Subclasses create their state in `__init__` with `add_variable` and implement `update_state`
    and `result`. `metric(y_true, y_pred)` updates, then returns the result, as in Keras.

    Args:
        dtype: the dtype of the state and result; float32 by default.
        name: the metric's name; defaults to the snake_case class name.

    Note:
        `_direction` ("up" or "down") is set where Keras sets it; `Mean` and `Sum` have none, so
        read it with `getattr(metric, "_direction", None)`.
    """

    def __init__(self, dtype=None, name=None):
        self.name = name or get_uid(snake_case(type(self).__name__))
        self._dtype = standardize_dtype(dtype)
        self._np_dtype = np.dtype(self._dtype)
        self._variables = []
        self._metrics = []

    def __setattr__(self, name, value):
        tracked = self.__dict__.get("_variables")
        if tracked is not None:
            if isinstance(value, Variable) and not any(value is v for v in tracked):
                tracked.append(value)
            elif isinstance(value, Metric) and not any(value is m for m in self._metrics):
                self._metrics.append(value)
        object.__setattr__(self, name, value)

    def _check_super_called(self):
        if "_variables" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ did not call super().__init__(). "
                               "Call it first in your metric's __init__.")

    @property
    def dtype(self):
        return self._dtype

    def add_variable(self, shape, initializer, dtype=None, aggregation="sum", name=None):
        """A non-trainable state Variable (path `metric_name/name`), tracked in `variables`.

        Args:
            shape: the variable's shape.
            initializer: a name such as `"zeros"`, an initializer, or a callable `(shape, dtype)`.
            dtype: defaults to float32.
            aggregation: kept for Keras compatibility.
            name: the variable's name.
        """
        self._check_super_called()
        with name_scope(self.name.replace("/", ">")):
            variable = Variable(initializers.get(initializer), shape=tuple(shape), dtype=dtype or "float32",
                                trainable=False, name=name)
        if not any(variable is v for v in self._variables):
            self._variables.append(variable)
        return variable

    def add_weight(self, shape=(), initializer=None, dtype=None, name=None):
        """Alias of `add_variable`, as in Keras."""
        return self.add_variable(shape=shape, initializer=initializer or "zeros", dtype=dtype, name=name)

    @property
    def variables(self):
        """The state Variables: this metric's, then those of its sub-metrics."""
        out = list(self._variables)
        for metric in self._metrics:
            out.extend(metric.variables)
        return out

    def _trackable_children(self):
        children = {}
        for v in self._variables:
            key, i = v.name, 1
            while key in children:
                key, i = f"{v.name}_{i}", i + 1
            children[key] = v
        for attr, value in vars(self).items():
            if isinstance(value, Metric) and not attr.startswith("_"):
                children[attr] = value
        return children

    def reset_state(self):
        """Set every state variable back to zeros."""
        for v in self.variables:
            v.assign(np.zeros(v._value.shape, v._value.dtype))

    def update_state(self, *args, **kwargs):
        """Accumulate statistics from one batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement update_state().")

    def result(self):
        """The current value, a 0-d Tensor."""
        raise NotImplementedError(f"{type(self).__name__} must implement result().")

    def __call__(self, *args, **kwargs):
        self._check_super_called()
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


_EXACT_INT = 2 ** 24  # integers up to this are exact in float32 and wider: converting them never rounds


def reduce_to_samplewise_values(values, sample_weight, reduce_fn, dtype):
    """Per-sample values (and weights) as Keras's reduction metrics compute them, in NumPy."""
    values = _array(values)
    if values.dtype is not dtype:
        values = values.astype(dtype)
    if sample_weight is not None:
        sample_weight = _array(sample_weight)
        if sample_weight.dtype is not dtype:
            sample_weight = sample_weight.astype(dtype)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        weight_ndim, values_ndim = sample_weight.ndim, values.ndim
        if values_ndim > weight_ndim:
            values = reduce_fn(values, axis=tuple(range(weight_ndim, values_ndim)))
        try:
            if sample_weight.shape != values.shape:
                sample_weight = np.broadcast_to(sample_weight, values.shape)
        except ValueError:
            raise ValueError(
                f"sample_weight of shape {sample_weight.shape} does not fit metric values of shape "
                f"{values.shape}. Pass one weight per sample.") from None
        values = values * sample_weight
        if weight_ndim > 1:
            sample_weight = reduce_fn(sample_weight, axis=tuple(range(1, weight_ndim)))
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, sample_weight


@builtin()
class Sum(Metric):
    """The (weighted) sum of the values seen; one variable, `total`.

    Args:
        name: defaults to `"sum"`.
        dtype: the state dtype; float32 by default.
    """

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), "zeros", dtype=self.dtype, name="total")

    def update_state(self, values, sample_weight=None):
        values, _ = reduce_to_samplewise_values(values, sample_weight, _sum_over, self._np_dtype)
        self.total._value += values.sum(dtype=self._np_dtype)  # in place: the Variable is the state

    def reset_state(self):
        self.total.assign(0)

    def result(self):
        return Tensor(self.total._value.copy())


@builtin()
class Mean(Metric):
    """The (weighted) mean of the values seen; variables `total` and `count`.

    Args:
        name: defaults to `"mean"`.
        dtype: the state dtype; float32 by default.
    """

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), "zeros", dtype=self.dtype, name="total")
        self.count = self.add_variable((), "zeros", dtype=self.dtype, name="count")

    def update_state(self, values, sample_weight=None):
        dtype = self._np_dtype
        if (values.__class__ is np.ndarray and values.ndim == 0 and values.dtype is dtype and dtype.itemsize >= 4
                and sample_weight.__class__ is int and -_EXACT_INT <= sample_weight <= _EXACT_INT):
            weight = dtype.type(sample_weight)  # fit()'s loss tracker: a scalar weighted by the batch size
            self.total._value += values * weight  # the numbers of the general path below, without its checks
            self.count._value += weight
            return
        values, sample_weight = reduce_to_samplewise_values(values, sample_weight, _mean_over, dtype)
        self.total._value += values.sum(dtype=dtype)  # in place: the Variables are the state
        if sample_weight is not None:
            self.count._value += sample_weight.sum(dtype=dtype)
        else:
            self.count._value += dtype.type(values.shape[0] if values.ndim >= 1 else 1)

    def reset_state(self):
        self.total.assign(0)
        self.count.assign(0)

    def result(self):
        count = self.count._value
        if count == 0:  # divide_no_nan
            return Tensor(np.zeros((), self._np_dtype))
        return Tensor(np.asarray(self.total._value / count))


@builtin()
class MeanMetricWrapper(Mean):
    """The mean of `fn(y_true, y_pred, **kwargs)` over all samples seen.

    Args:
        fn: a function returning per-sample values, such as a loss function.
        name: the metric's name.
        dtype: the state dtype; float32 by default.
        **kwargs: passed on to `fn`.
    """

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype)
        if not callable(fn):
            raise ValueError(f"MeanMetricWrapper needs a callable `fn`. Received: fn={fn!r}. "
                             "Pass a function fn(y_true, y_pred) returning per-sample values.")
        self._fn = fn
        self._fn_kwargs = kwargs
        if losses.is_builtin_function(fn) or isinstance(fn, losses.Loss):  # a loss is minimised
            self._direction = "down"

    def update_state(self, y_true, y_pred, sample_weight=None):
        # plain arrays in, so a loss function used as a metric never links into a tape
        pred_mask = losses.get_mask(y_pred)  # a masked sequence output: its masked entries do not count
        values = self._fn(value_of(y_true), value_of(y_pred), **self._fn_kwargs)
        for mask in (pred_mask, losses.get_mask(values)):
            if mask is not None:
                if sample_weight is not None:
                    sample_weight = _array(sample_weight).astype(self.dtype, copy=False)
                sample_weight = losses._apply_mask(sample_weight, mask, self.dtype, "sum")
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        config = {"name": self.name, "dtype": self.dtype, "fn": serialize(self._fn)}
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "fn" in config:
            config["fn"] = deserialize(config["fn"])
        return cls(**config)


# ---------------------------------------------------------------- concrete metrics

# Metrics named like a loss class are registered apart, so `lookup("MeanSquaredError")` keeps
# giving the loss; `metrics.get` / `metrics.deserialize` resolve them by their own table.
_metric_only = register_serializable("kerasckpt.metrics")


@_metric_only
class MeanSquaredError(MeanMetricWrapper):
    """Mean of `square(y_true - y_pred)`, averaged over all samples seen.

    Args:
        name: defaults to `"mean_squared_error"`.
        dtype: the state dtype.
    """

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(fn=losses.mean_squared_error, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@_metric_only
class MeanAbsoluteError(MeanMetricWrapper):
    """Mean of `abs(y_true - y_pred)`, averaged over all samples seen.

    Args:
        name: defaults to `"mean_absolute_error"`.
        dtype: the state dtype.
    """

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(losses.mean_absolute_error, name, dtype=dtype)
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@builtin()
class Accuracy(MeanMetricWrapper):
    """How often `y_pred` equals `y_true` exactly.

    Args:
        name: defaults to `"accuracy"`.
        dtype: the state dtype.
    """

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(fn=accuracy, name=name, dtype=dtype)
        self._direction = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@builtin()
class BinaryAccuracy(MeanMetricWrapper):
    """How often `y_pred > threshold` matches 0/1 labels.

    Args:
        name: defaults to `"binary_accuracy"`.
        dtype: the state dtype.
        threshold: the decision threshold on `y_pred`.
    """

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(fn=binary_accuracy, name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold
        self._direction = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "threshold": self.threshold}


@builtin()
class CategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of `y_pred` matches the argmax of one-hot labels.

    Args:
        name: defaults to `"categorical_accuracy"`.
        dtype: the state dtype.
    """

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(fn=categorical_accuracy, name=name, dtype=dtype)
        self._direction = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@builtin()
class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of `y_pred` matches integer labels.

    Args:
        name: defaults to `"sparse_categorical_accuracy"`.
        dtype: the state dtype.
    """

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(fn=sparse_categorical_accuracy, name=name, dtype=dtype)
        self._direction = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@_metric_only
class BinaryCrossentropy(MeanMetricWrapper):
    """Mean binary cross-entropy over all samples seen.

    Args:
        name: defaults to `"binary_crossentropy"`.
        dtype: the state dtype.
        from_logits: whether `y_pred` holds logits.
        label_smoothing: in [0, 1]; squeezes labels towards 0.5.
    """

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0):
        super().__init__(losses.binary_crossentropy, name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing)
        self.from_logits, self.label_smoothing = from_logits, label_smoothing
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


@_metric_only
class CategoricalCrossentropy(MeanMetricWrapper):
    """Mean categorical cross-entropy over all samples seen.

    Args:
        name: defaults to `"categorical_crossentropy"`.
        dtype: the state dtype.
        from_logits: whether `y_pred` holds logits.
        label_smoothing: in [0, 1].
        axis: the class axis.
    """

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False, label_smoothing=0,
                 axis=-1):
        super().__init__(losses.categorical_crossentropy, name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


@_metric_only
class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Mean sparse categorical cross-entropy over all samples seen.

    Args:
        name: defaults to `"sparse_categorical_crossentropy"`.
        dtype: the state dtype.
        from_logits: whether `y_pred` holds logits.
        ignore_class: a label value that takes no part.
        axis: the class axis.
    """

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False,
                 ignore_class=None, axis=-1):
        super().__init__(losses.sparse_categorical_crossentropy, name=name, dtype=dtype,
                         from_logits=from_logits, ignore_class=ignore_class, axis=axis)
        self.from_logits, self.ignore_class, self.axis = from_logits, ignore_class, axis
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
                "ignore_class": self.ignore_class, "axis": self.axis}


# ---------------------------------------------------------------- get / serialize

_CLASSES = {c.__name__: c for c in (
    Metric, Mean, Sum, MeanMetricWrapper, MeanSquaredError, MeanAbsoluteError, Accuracy, BinaryAccuracy,
    CategoricalAccuracy, SparseCategoricalAccuracy, BinaryCrossentropy, CategoricalCrossentropy,
    SparseCategoricalCrossentropy)}
_FUNCTIONS = {f.__name__: f for f in (accuracy, binary_accuracy, categorical_accuracy,
                                      sparse_categorical_accuracy)}
_FUNCTIONS.update(losses._FUNCTIONS)
ALL_OBJECTS_DICT = {**_CLASSES, **{snake_case(name): cls for name, cls in _CLASSES.items()},
                    "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy, "mse": MeanSquaredError,
                    "MSE": MeanSquaredError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError}
_BASES = ("Metric", "metric", "MeanMetricWrapper", "mean_metric_wrapper")


def _valid_names():
    return sorted(name for name in ALL_OBJECTS_DICT if name not in _BASES)


def serialize(metric):
    """The Keras config dict of a metric instance or function (what `keras.metrics.serialize` gives)."""
    return losses.serialize_object(metric, "keras.metrics", _CLASSES)


def deserialize(config, custom_objects=None):
    """A metric from `serialize`'s dict or a name; classes named by a dict are instantiated.

    Args:
        config: a config dict or a name.
        custom_objects: extra `{name: class or function}` to consider first.
    """
    return losses.deserialize_object(config, ALL_OBJECTS_DICT, custom_objects, "metric", _valid_names(),
                                     (Metric, losses.Loss), _FUNCTIONS)


def get(identifier):
    """A metric from a name, a Keras config dict, a `Metric` instance or class, or a function.

    Names map to `Metric` instances as in Keras: `"mse"`, `"mae"`, `"bce"`, snake_case and
    CamelCase class names (`"accuracy"` gives `Accuracy`; the trainer resolves `"accuracy"` and
    `"acc"` from the loss before calling this).

    Args:
        identifier: the name, config dict, instance, class or callable; None gives None.
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        obj = ALL_OBJECTS_DICT.get(identifier)
        if obj is None or identifier in _BASES:
            raise ValueError(f"Unknown metric: {identifier!r}. Use one of: {', '.join(_valid_names())}, "
                             "or pass a Metric instance or a function fn(y_true, y_pred).")
    elif isinstance(identifier, dict):
        obj = deserialize(identifier)
    else:
        obj = identifier
    if inspect.isclass(obj):
        obj = obj()
    if not callable(obj):
        raise ValueError(f"Could not interpret metric identifier: {identifier!r}. Pass a name such as 'mae', "
                         "a Metric instance or a function.")
    return obj
