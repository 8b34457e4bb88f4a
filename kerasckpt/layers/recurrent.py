"""Recurrent layers: the SimpleRNN, LSTM and GRU cells, the RNN layer that runs a cell over a sequence,
and SimpleRNN, LSTM and GRU, with Keras 3's arguments, configs and weight layout (`<layer>/cell/...`)."""
import inspect

import numpy as np

from kerasckpt import _registry, activations, initializers, ops
from kerasckpt._registry import builtin
from kerasckpt.autograd import value_of
from kerasckpt.layers.base import Layer, deserialize_dtype, inferring_shapes
from kerasckpt.layers.recurrent_math import ACTIVATIONS, recurrent_scan
from kerasckpt.random import SeedGenerator

_UNSUPPORTED = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "kernel_constraint",
                "recurrent_constraint", "bias_constraint")


def _check_unsupported(owner, arguments):
    for arg, value in arguments.items():
        if value is not None:
            raise ValueError(f"{owner} does not support `{arg}` in kerasckpt. Received: {arg}={value!r}. "
                             "Remove the argument.")


def _activation_name(fn, owner, arg):
    name = getattr(fn, "__name__", None)
    if name not in ACTIVATIONS or activations.get(name) is not fn:
        raise ValueError(f"{owner} supports the activations {', '.join(sorted(ACTIVATIONS))} for `{arg}` in "
                         f"kerasckpt (its time loop has their derivatives built in). Received: {arg}={name or fn!r}.")
    return name


class _Cell(Layer):
    """What the three cells share: arguments, dropout masks (one per call, as Keras's DropoutRNNCell), configs."""

    _kind = None
    _gates = 1

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 **kwargs):
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError("Received an invalid value for argument `units`, expected a positive integer, "
                             f"got {units!r}.")
        _check_unsupported(type(self).__name__, {
            "kernel_regularizer": kernel_regularizer, "recurrent_regularizer": recurrent_regularizer,
            "bias_regularizer": bias_regularizer, "kernel_constraint": kernel_constraint,
            "recurrent_constraint": recurrent_constraint, "bias_constraint": bias_constraint})
        implementation = kwargs.pop("implementation", 2)
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self._activation_names = (_activation_name(self.activation, type(self).__name__, "activation"),
                                  _activation_name(self.recurrent_activation, type(self).__name__,
                                                   "recurrent_activation"))
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.dropout = min(1.0, max(0.0, float(dropout)))
        self.recurrent_dropout = min(1.0, max(0.0, float(recurrent_dropout)))
        # Keras's implementation 1 (forced by recurrent dropout) draws a dropout mask per gate
        self.implementation = 1 if self.recurrent_dropout != 0.0 else implementation
        self.seed = seed
        self.seed_generator = SeedGenerator(seed)
        self._dropout_mask = self._recurrent_dropout_mask = None

    def build(self, input_shape):
        self.kernel = self.add_weight((input_shape[-1], self.units * self._gates), self.kernel_initializer,
                                      name="kernel")
        self.recurrent_kernel = self.add_weight((self.units, self.units * self._gates), self.recurrent_initializer,
                                                name="recurrent_kernel")
        self.bias = self.add_weight(self._bias_shape(), self._bias_initializer(), name="bias") if self.use_bias \
            else None

    def _bias_shape(self):
        return (self.units * self._gates,)

    def _bias_initializer(self):
        return self.bias_initializer

    # ------------------------------------------------------------------ dropout masks

    def _masks(self, like, rate, count):
        shape = np.shape(value_of(like))
        keep = 1.0 / (1.0 - rate)
        draw = self.seed_generator.next()
        masks = [(draw.random(shape, dtype=np.float32) >= rate).astype(np.float32) * np.float32(keep)
                 for _ in range(count)]
        return masks if count > 1 else masks[0]

    def get_dropout_mask(self, step_input):
        """The input dropout mask(s) of the current sequence, drawn on first use (None without dropout)."""
        if self._dropout_mask is None and 0.0 < self.dropout < 1.0:
            self._dropout_mask = self._masks(step_input, self.dropout, self._gates if self.implementation == 1 else 1)
        return self._dropout_mask

    def get_recurrent_dropout_mask(self, step_state):
        """The recurrent dropout mask(s) of the current sequence, drawn on first use (None without)."""
        if self._recurrent_dropout_mask is None and 0.0 < self.recurrent_dropout < 1.0:
            self._recurrent_dropout_mask = self._masks(step_state, self.recurrent_dropout, self._recurrent_mask_count())
        return self._recurrent_dropout_mask

    def _recurrent_mask_count(self):
        return self._gates

    def reset_dropout_mask(self):
        self._dropout_mask = None

    def reset_recurrent_dropout_mask(self):
        self._recurrent_dropout_mask = None

    # ------------------------------------------------------------------ running

    def get_initial_state(self, batch_size=None):
        return [np.zeros((batch_size, d), dtype=self.dtype) for d in self.state_size]

    def scan(self, sequences, initial_state, mask=None, training=False, **options):
        """Run the cell over `sequences` (batch, time, features): `[output, *final_states]` Tensors."""
        input_masks = rec_masks = None
        if training:
            seq = np.asarray(value_of(sequences))
            input_masks = self.get_dropout_mask(seq[:, 0, :])
            rec_masks = self.get_recurrent_dropout_mask(value_of(initial_state[0]))
        activation, recurrent_activation = self._activation_names
        extra = {"reset_after": self.reset_after} if self._kind == "gru" else {}
        return recurrent_scan(self._kind, sequences, self.kernel, self.recurrent_kernel, self.bias, initial_state,
                              mask, activation=activation, recurrent_activation=recurrent_activation,
                              input_masks=input_masks, recurrent_masks=rec_masks, **extra, **options)

    def call(self, inputs, states, training=False):
        """One step: `(output, new_states)` for inputs `(batch, features)` and the previous states."""
        nested = isinstance(states, (list, tuple))
        states = list(states) if nested else [states]
        out = self.scan(ops.expand_dims(inputs, 1), states, training=training)
        new_states = out[1:]
        return out[0], (new_states if nested or len(new_states) > 1 else new_states[0])

    def get_config(self):
        config = {**super().get_config(), "units": self.units,
                  "activation": activations.serialize(self.activation)}
        if self._kind != "simple_rnn":
            config["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        config["use_bias"] = self.use_bias
        if self._kind == "lstm":
            config["unit_forget_bias"] = self.unit_forget_bias
        config.update({"kernel_initializer": initializers.serialize(self.kernel_initializer),
                       "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                       "bias_initializer": initializers.serialize(self.bias_initializer),
                       **{key: None for key in _UNSUPPORTED}, "dropout": self.dropout,
                       "recurrent_dropout": self.recurrent_dropout})
        if self._kind == "gru":
            config["reset_after"] = self.reset_after
        config["seed"] = self.seed
        return config


@builtin()
class SimpleRNNCell(_Cell):
    """One step of a fully-connected RNN: `output = activation(inputs @ kernel + state @ recurrent_kernel + bias)`.

    Args are Keras's (`units`, `activation`, `use_bias`, initializers, `dropout`, `recurrent_dropout`, `seed`).
    """

    _kind = "simple_rnn"

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(units, activation, "sigmoid", use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, kernel_regularizer, recurrent_regularizer, bias_regularizer,
                         kernel_constraint, recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed,
                         **kwargs)
        self.implementation = 2  # one input mask and one recurrent mask, whatever the dropout
        self.state_size = self.units
        self.output_size = self.units

    def get_initial_state(self, batch_size=None):
        return [np.zeros((batch_size, self.units), dtype=self.dtype)]

    def _recurrent_mask_count(self):
        return 1


@builtin()
class LSTMCell(_Cell):
    """One step of Keras's LSTM: gates `i, f, c, o` in the kernel's columns, in that order.

    Args are Keras's; `unit_forget_bias` (default True) starts the forget gate's bias at 1.
    """

    _kind = "lstm"
    _gates = 4

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(units, activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, kernel_regularizer, recurrent_regularizer, bias_regularizer,
                         kernel_constraint, recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed,
                         **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]
        self.output_size = self.units

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, u = self.bias_initializer, self.units

        def init(shape, dtype="float32"):
            return np.concatenate([base((u,), dtype), np.ones((u,), dtype), base((2 * u,), dtype)])
        return init


@builtin()
class GRUCell(_Cell):
    """One step of Keras's GRU: gates `z, r, h` in the kernel's columns, in that order.

    Args are Keras's; `reset_after=True` (the default, cuDNN-compatible) applies the reset gate after the
    recurrent product and keeps a separate recurrent bias: the bias then has shape `(2, 3 * units)`.
    """

    _kind = "gru"
    _gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 reset_after=True, seed=None, **kwargs):
        super().__init__(units, activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, kernel_regularizer, recurrent_regularizer, bias_regularizer,
                         kernel_constraint, recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed,
                         **kwargs)
        self.reset_after = bool(reset_after)
        self.state_size = self.units
        self.output_size = self.units

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def get_initial_state(self, batch_size=None):
        return [np.zeros((batch_size, self.units), dtype=self.dtype)]


_CELL_CLASSES = (SimpleRNNCell, LSTMCell, GRUCell)


@builtin()
class RNN(Layer):
    """Run a recurrent cell over the time axis of `(batch, time, features)` inputs.

    Args:
        cell: a SimpleRNNCell, LSTMCell or GRUCell.
        return_sequences: return every step's output `(batch, time, units)`, not only the last.
        return_state: also return the final states (`output, *states`).
        go_backwards: process the sequence from its end; the returned sequence is then reversed.
        stateful: carry the final states of a batch over as the initial states of the next (needs a fixed
            batch size); `reset_states()` clears them.
        unroll: accepted for Keras compatibility; the NumPy time loop is the same either way.
        zero_output_for_mask: masked steps output zeros instead of the previous output.

    Call arguments: `sequences`, `initial_state` (list of state tensors), `mask` (batch, time) booleans
    (False skips a step: the states carry over), `training` (applies `dropout`/`recurrent_dropout`).

    Note: the cell runs as one fused op (a NumPy loop over time with a hand-written backward pass), so the
    activations are limited to tanh, sigmoid, relu and linear; other cells than kerasckpt's three are
    refused. The states of a stateful layer are not saved, as in Keras.
    """

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, zero_output_for_mask=False, **kwargs):
        if isinstance(cell, (list, tuple)) or not isinstance(cell, _CELL_CLASSES):
            raise ValueError("kerasckpt's RNN runs a SimpleRNNCell, LSTMCell or GRUCell. Received: cell="
                             f"{cell!r}. Use SimpleRNN, LSTM or GRU, or one of those cells.")
        super().__init__(**kwargs)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.cell = cell
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful, self.unroll = bool(go_backwards), bool(stateful), bool(unroll)
        self.supports_masking = True
        self._states = None
        state_size = cell.state_size
        self.state_size = [state_size] if isinstance(state_size, int) else list(state_size)
        self.single_state = isinstance(state_size, int)

    # ------------------------------------------------------------------ shapes and building

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, length = sequences_shape[0], sequences_shape[1]
        output = (batch, length, self.cell.output_size) if self.return_sequences else (batch, self.cell.output_size)
        if self.return_state:
            return (output,) + tuple((batch, s) for s in self.state_size)
        return output

    def compute_mask(self, _, mask):
        mask = mask[0] if isinstance(mask, (list, tuple)) else mask
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None for _ in self.state_size]
        return output_mask

    def build(self, sequences_shape, initial_state_shape=None):
        if len(sequences_shape) != 3:
            raise ValueError(f"Layer '{self.name}' expects inputs of rank 3 (batch, time, features). Received "
                             f"input_shape={tuple(sequences_shape)}.")
        if not self.cell.built:
            self.cell.build((sequences_shape[0],) + tuple(sequences_shape[2:]))
        if self.stateful:
            if sequences_shape[0] is None:
                raise ValueError("When using `stateful=True` in a RNN, the batch size must be static. Found dynamic "
                                 f"batch size: sequence.shape={tuple(sequences_shape)}. Pass `batch_size=` (or "
                                 "`batch_shape=`) to Input.")
            self.reset_states(sequences_shape[0])

    @property
    def states(self):
        """The carried states of a stateful layer (NumPy arrays), else None."""
        return self._states

    def reset_states(self, batch_size=None):
        """Set the carried states of a stateful layer back to zeros."""
        if not self.stateful:
            raise AttributeError(f"Layer '{self.name}' is not stateful: pass stateful=True to carry states.")
        batch = batch_size if batch_size is not None else self._states[0].shape[0]
        self._states = self.cell.get_initial_state(batch)

    reset_state = reset_states

    def get_initial_state(self, batch_size):
        return self.cell.get_initial_state(batch_size)

    # ------------------------------------------------------------------ call

    def call(self, sequences, initial_state=None, mask=None, training=False):
        shape = np.shape(value_of(sequences))
        if len(shape) != 3:
            raise ValueError(f"Layer '{self.name}' expects inputs of rank 3 (batch, time, features). Received "
                             f"inputs of shape {shape}.")
        if getattr(self, "use_cudnn", "auto") is True:
            raise ValueError("use_cudnn=True was specified, but cuDNN is not supported for this layer configuration "
                             "with this backend. Pass use_cudnn='auto' to fallback to a non-cuDNN implementation.")
        if initial_state is None:
            if self.stateful:
                initial_state = self._states
                if shape[0] != initial_state[0].shape[0]:
                    raise ValueError("If an RNN is stateful, the batch size of the input sequences must be the same "
                                     "as the batch size of the initial state. \n- Expected batch size: "
                                     f"{initial_state[0].shape[0]}\n- Received batch size: {shape[0]}")
            else:
                initial_state = self.cell.get_initial_state(shape[0])
        elif not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        initial_state = list(initial_state)
        if len(initial_state) != len(self.state_size):
            raise ValueError(f"Layer '{self.name}' expects {len(self.state_size)} initial state tensor(s). Received "
                             f"{len(initial_state)}.")
        if mask is not None:
            mask = mask[0] if isinstance(mask, (list, tuple)) else mask
            if np.shape(value_of(mask)) != shape[:2]:
                raise ValueError(f"Layer '{self.name}' received a mask of shape {np.shape(value_of(mask))} for "
                                 f"inputs of shape {shape}; the mask must be (batch, time) = {shape[:2]}.")
        try:
            out = self.cell.scan(sequences, initial_state, mask, training=bool(training),
                                 go_backwards=self.go_backwards, return_sequences=self.return_sequences,
                                 zero_output_for_mask=self.zero_output_for_mask)
        finally:
            self.cell.reset_dropout_mask()
            self.cell.reset_recurrent_dropout_mask()
        if self.stateful and not inferring_shapes():
            self._states = [np.array(s.numpy()) for s in out[1:]]
        if self.return_state:
            return tuple(out)
        return out[0]

    # ------------------------------------------------------------------ configs

    def get_config(self):
        config = {**super().get_config(), "return_sequences": self.return_sequences,
                  "return_state": self.return_state, "go_backwards": self.go_backwards, "stateful": self.stateful,
                  "unroll": self.unroll, "zero_output_for_mask": self.zero_output_for_mask}
        if type(self) is RNN:
            config["cell"] = _registry.serialize_layer(self.cell)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cell"] = _registry.deserialize_layer(config["cell"])
        if "dtype" in config:
            config["dtype"] = deserialize_dtype(config["dtype"])
        return cls(**config)


class _CellLayer(RNN):
    """SimpleRNN, LSTM and GRU: an RNN whose cell's arguments are its own (and its config's)."""

    _cell_class = None
    _cell_name = None

    def __init__(self, units, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, use_cudnn="auto", cell_arguments=None, **kwargs):
        cell_arguments = dict(cell_arguments or {})
        cell = self._cell_class(units, dtype=kwargs.get("dtype"), trainable=kwargs.get("trainable", True),
                                name=self._cell_name, implementation=kwargs.pop("implementation", 2),
                                **cell_arguments)
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll, **kwargs)
        if use_cudnn not in ("auto", True, False):
            raise ValueError("Invalid valid received for argument `use_cudnn`. Expected one of {'auto', True, False}. "
                             f"Received: use_cudnn={use_cudnn}")
        self.use_cudnn = use_cudnn

    def __getattr__(self, name):  # units, activation, dropout, ...: the cell's, as Keras's properties
        if name in _CELL_PROPERTIES and "cell" in self.__dict__:
            return getattr(self.__dict__["cell"], name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def get_config(self):
        """Keras's keys, in Keras's order: the RNN's (`return_sequences`, ...), then the cell's arguments."""
        cell_config = {**self.cell.get_config(), "activity_regularizer": None}
        keys = [k for k in _LAYER_CONFIG_KEYS if k in cell_config and (k != "seed" or self._config_has_seed)]
        return {**super().get_config(), **{k: cell_config[k] for k in keys}}

    _config_has_seed = True

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "dtype" in config:
            config["dtype"] = deserialize_dtype(config["dtype"])
        return cls(**config)


_LAYER_CONFIG_KEYS = (  # the cell's arguments in the order Keras's SimpleRNN, LSTM and GRU write them
    "units", "activation", "recurrent_activation", "use_bias", "kernel_initializer", "recurrent_initializer",
    "bias_initializer", "unit_forget_bias", "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
    "activity_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
    "recurrent_dropout", "reset_after", "seed")
_CELL_PROPERTIES = frozenset({
    "units", "activation", "recurrent_activation", "use_bias", "unit_forget_bias", "kernel_initializer",
    "recurrent_initializer", "bias_initializer", "dropout", "recurrent_dropout", "reset_after", "seed",
    "implementation"})


def _split_arguments(cell_class, arguments):
    """The `__init__` arguments of SimpleRNN, LSTM or GRU (its `locals()`) as `_CellLayer.__init__` keywords:
    those the cell takes (but `units`) in `cell_arguments`, the rest as they are."""
    arguments = {k: v for k, v in arguments.items() if k not in ("self", "__class__")}
    kwargs = arguments.pop("kwargs")
    accepted = inspect.signature(cell_class.__init__).parameters
    cell = {k: arguments.pop(k) for k in list(arguments) if k in accepted and k != "units"}
    return {**arguments, **kwargs, "cell_arguments": cell}


@builtin()
class SimpleRNN(_CellLayer):
    """A fully-connected RNN: `output_t = activation(x_t @ kernel + output_{t-1} @ recurrent_kernel + bias)`.

    Args: Keras's (`units`, `activation`, `use_bias`, initializers, `dropout`, `recurrent_dropout`,
    `return_sequences`, `return_state`, `go_backwards`, `stateful`, `unroll`, `seed`); see `RNN` for the
    call arguments and the limits of the fused time loop.
    """

    _cell_class, _cell_name = SimpleRNNCell, "simple_rnn_cell"

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False, unroll=False,
                 seed=None, **kwargs):
        super().__init__(**_split_arguments(self._cell_class, locals()))

    _config_has_seed = False  # Keras's SimpleRNN config has no seed


@builtin()
class LSTM(_CellLayer):
    """Long Short-Term Memory (Hochreiter 1997), as Keras 3's LSTM: gates `i, f, c, o`.

    Args: Keras's (`units`, `activation`, `recurrent_activation`, `use_bias`, initializers,
    `unit_forget_bias`, `dropout`, `recurrent_dropout`, `seed`, `return_sequences`, `return_state`,
    `go_backwards`, `stateful`, `unroll`, `use_cudnn`); see `RNN` for the call arguments and the limits of
    the fused time loop. With `return_state=True` the call returns `output, h, c`.

    Example:
        x = Embedding(20000, 128, mask_zero=True)(Input((None,), dtype="int32"))
        x = Bidirectional(LSTM(64, return_sequences=True))(x)   # padding (index 0) skipped
    """

    _cell_class, _cell_name = LSTMCell, "lstm_cell"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, use_cudnn="auto", **kwargs):
        super().__init__(**_split_arguments(self._cell_class, locals()))


@builtin()
class GRU(_CellLayer):
    """Gated Recurrent Unit (Cho et al. 2014), as Keras 3's GRU: gates `z, r, h`.

    Args: Keras's (`units`, `activation`, `recurrent_activation`, `use_bias`, initializers, `dropout`,
    `recurrent_dropout`, `seed`, `return_sequences`, `return_state`, `go_backwards`, `stateful`, `unroll`,
    `reset_after`, `use_cudnn`); see `RNN` for the call arguments and the limits of the fused time loop.
    """

    _cell_class, _cell_name = GRUCell, "gru_cell"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, reset_after=True, use_cudnn="auto", **kwargs):
        super().__init__(**_split_arguments(self._cell_class, locals()))
