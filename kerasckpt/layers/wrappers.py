"""Layers that wrap another layer: Bidirectional (a recurrent layer run both ways) and TimeDistributed (a
layer applied to every step of a sequence)."""
import numpy as np

from kerasckpt import _registry, ops
from kerasckpt._registry import builtin
from kerasckpt.autograd import value_of
from kerasckpt.layers.base import Layer, deserialize_dtype
from kerasckpt.layers.normalization import BatchNormalization

_MERGE_MODES = ("sum", "mul", "ave", "concat", None)


def _copy_layer(layer, **changes):
    """A new layer from `layer`'s config with `changes`, built like `layer` (as Keras copies it)."""
    config = {**layer.get_config(), **changes}
    copy = type(layer).from_config(config)
    build = layer.get_build_config()
    if build:
        copy.build_from_config(build)
    return copy


def _removeprefix(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


@builtin()
class Bidirectional(Layer):
    """Run a recurrent layer forwards and a copy of it backwards over the sequence, and merge the two.

    The wrapped `layer` itself is not used: like Keras, Bidirectional makes `forward_layer` and
    `backward_layer` from its config (names `forward_<name>` and `backward_<name>`, the backward one with
    `go_backwards` flipped). With `return_sequences`, the backward outputs are reversed back into time order
    and masked steps output zeros.

    Args:
        layer: an RNN layer (SimpleRNN, LSTM, GRU, RNN).
        merge_mode: "concat" (default), "sum", "mul", "ave", or None for a list of both outputs.
        weights: optional initial weights: the forward layer's, then the backward layer's.
        backward_layer: an RNN layer to use backwards instead of a copy of `layer`.

    Call arguments: `sequences`, `initial_state` (the forward states then the backward states), `mask`,
    `training`. With `return_state`, the call returns the output(s), then the forward and backward states.
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `Bidirectional` layer with a `keras.layers.Layer` instance. "
                             f"Received: {layer}")
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ValueError(f"`backward_layer` need to be a `keras.layers.Layer` instance. Received: {backward_layer}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Invalid merge mode. Received: {merge_mode}. Merge mode should be one of "
                             '{"sum", "mul", "ave", "concat", None}')
        super().__init__(**kwargs)
        self.forward_layer = _copy_layer(layer, name=f"forward_{_removeprefix(layer.name, 'forward_')}")
        if backward_layer is None:
            self.backward_layer = _copy_layer(layer, go_backwards=not layer.go_backwards,
                                              name=f"backward_{_removeprefix(layer.name, 'backward_')}")
        else:
            self.backward_layer = backward_layer
        if hasattr(layer, "use_cudnn"):
            self.forward_layer.use_cudnn = self.backward_layer.use_cudnn = layer.use_cudnn
        self._verify_layer_config()
        for sub in (self.forward_layer, self.backward_layer):  # masked steps of a sequence output zeros
            if getattr(sub, "zero_output_for_mask", None) is not None:
                sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        self._initial_weights = list(weights) if weights else None
        self.stateful, self.return_sequences = layer.stateful, layer.return_sequences
        self.return_state = layer.return_state
        self.supports_masking = True

    def _verify_layer_config(self):
        forward, backward = self.forward_layer, self.backward_layer
        if forward.go_backwards == backward.go_backwards:
            raise ValueError("Forward layer and backward layer should have different `go_backwards` value. Received: "
                             f"forward_layer.go_backwards {forward.go_backwards}, backward_layer.go_backwards="
                             f"{backward.go_backwards}")
        for attr in ("stateful", "return_sequences", "return_state"):
            if getattr(forward, attr) != getattr(backward, attr):
                raise ValueError(f'Forward layer and backward layer are expected to have the same value for attribute '
                                 f'"{attr}", got "{getattr(forward, attr)}" for forward layer and '
                                 f'"{getattr(backward, attr)}" for backward layer')

    def build(self, sequences_shape, initial_state_shape=None):
        for sub in (self.forward_layer, self.backward_layer):
            if not sub.built:
                sub.build(sequences_shape)
        if self._initial_weights:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        output_shape = self.forward_layer.compute_output_shape(sequences_shape)
        state_shape = ()
        if self.return_state:
            output_shape, state_shape = output_shape[0], tuple(output_shape[1:])
        if self.merge_mode == "concat":
            output_shape = tuple(output_shape[:-1]) + (output_shape[-1] * 2,)
        elif self.merge_mode is None:
            output_shape = [output_shape, output_shape]
        if self.return_state:
            if self.merge_mode is None:
                return tuple(output_shape) + state_shape + state_shape
            return (output_shape,) + state_shape + state_shape
        return output_shape

    def call(self, sequences, initial_state=None, mask=None, training=None):
        kwargs = {"mask": mask}
        if self.forward_layer._call_has_training:
            kwargs["training"] = training
        forward_state = backward_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        y = self.forward_layer(sequences, initial_state=forward_state, **kwargs)
        y_rev = self.backward_layer(sequences, initial_state=backward_state, **kwargs)
        states = ()
        if self.return_state:
            states = tuple(y[1:]) + tuple(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = ops.take_index(y_rev, (slice(None), slice(None, None, -1)))  # back into time order
        if self.merge_mode == "concat":
            output = ops.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            output = ops.add(y, y_rev)
        elif self.merge_mode == "ave":
            output = ops.divide(ops.add(y, y_rev), 2.0)
        elif self.merge_mode == "mul":
            output = ops.multiply(y, y_rev)
        else:
            output = (y, y_rev)
        if self.return_state:
            return (output + states) if self.merge_mode is None else (output,) + states
        return output

    def compute_mask(self, _, mask):
        if isinstance(mask, list):
            mask = mask[0]
        if self.return_sequences:
            output_mask = (mask, mask) if not self.merge_mode else mask
        else:
            output_mask = (None, None) if not self.merge_mode else None
        if self.return_state and self.states is not None:
            state_mask = tuple(None for _ in self.states)
            return (output_mask,) + state_mask * 2
        return output_mask

    @property
    def states(self):
        forward, backward = self.forward_layer.states, self.backward_layer.states
        if forward and backward:
            return tuple(forward) + tuple(backward)
        return None

    def reset_states(self):
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    reset_state = reset_states

    def get_config(self):
        return {**super().get_config(), "merge_mode": self.merge_mode,
                "layer": _registry.serialize_layer(self.forward_layer),
                "backward_layer": _registry.serialize_layer(self.backward_layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = _registry.deserialize_layer(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = _registry.deserialize_layer(config["backward_layer"])
        if "dtype" in config:
            config["dtype"] = deserialize_dtype(config["dtype"])
        return cls(**config)


@builtin()
class TimeDistributed(Layer):
    """Apply a layer to every step of a sequence: `(batch, time, ...)` in, `(batch, time, ...)` out.

    The steps are folded into the batch and the wrapped layer runs once on `(batch * time, ...)`, which is
    what Keras's step-by-step loop computes for layers that treat samples independently. A layer holding a
    BatchNormalization runs step by step in training, as in Keras (its batch statistics are per step).

    Args:
        layer: the layer to apply to each step (it sees inputs `(batch, ...)` without the time axis).
    """

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `TimeDistributed` layer with a `keras.layers.Layer` instance. "
                             f"Received: {layer}")
        super().__init__(**kwargs)
        self.layer = layer
        self.supports_masking = True

    def _child_input_shape(self, input_shape):
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 3:
            raise ValueError(f"`TimeDistributed` Layer should be passed an `input_shape` with at least 3 dimensions, "
                             f"received: {input_shape}")
        return (input_shape[0], *input_shape[2:])

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(self._child_input_shape(tuple(input_shape)))

    def compute_output_shape(self, input_shape):
        child = self.layer.compute_output_shape(self._child_input_shape(tuple(input_shape)))
        return (child[0], input_shape[1], *child[1:])

    def call(self, inputs, training=None, mask=None):
        shape = np.shape(value_of(inputs))
        self._child_input_shape(shape)
        if mask is not None:
            mask_shape = np.shape(value_of(mask))
            if len(mask_shape) < 2:
                raise ValueError("The `mask` passed to the `TimeDistributed` layer must be at least 2D (e.g., "
                                 f"`(batch_size, timesteps)`), but it has {len(mask_shape)} dimension(s) with shape "
                                 f"{mask_shape}.")
            if tuple(mask_shape[:2]) != tuple(shape[:2]):
                raise ValueError(f"The `mask` passed to the `TimeDistributed` layer has a shape {mask_shape} that is "
                                 f"incompatible with the input shape {shape}. The first two dimensions of the mask "
                                 "(batch size and timesteps) must match the input's first two dimensions. Expected "
                                 f"mask shape prefix: ({shape[0]}, {shape[1]}).")
        kwargs = {"training": training} if self.layer._call_has_training else {}
        if training and _has_batch_statistics(self.layer):
            steps = []
            for t in range(shape[1]):
                step_kwargs = dict(kwargs)
                if mask is not None and self.layer._call_masks is not None and "mask" in self.layer._call_masks.names:
                    step_kwargs["mask"] = ops.take_index(mask, (slice(None), t))
                steps.append(self.layer(ops.take_index(inputs, (slice(None), t)), **step_kwargs))
            return ops.stack(steps, axis=1)
        if mask is not None and self.layer._call_masks is not None and "mask" in self.layer._call_masks.names:
            mask_shape = np.shape(value_of(mask))
            kwargs["mask"] = ops.reshape(mask, (mask_shape[0] * mask_shape[1],) + tuple(mask_shape[2:]))
        folded = ops.reshape(inputs, (shape[0] * shape[1],) + tuple(shape[2:]))
        out = self.layer(folded, **kwargs)
        out_shape = np.shape(value_of(out))
        return ops.reshape(out, (shape[0], shape[1]) + tuple(out_shape[1:]))

    def get_config(self):
        return {**super().get_config(), "layer": _registry.serialize_layer(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        layer = _registry.deserialize_layer(config.pop("layer"))
        if "dtype" in config:
            config["dtype"] = deserialize_dtype(config["dtype"])
        return cls(layer, **config)


def _has_batch_statistics(layer):
    """Whether `layer` (or a layer inside it) normalizes by statistics of the batch when training."""
    stack = [layer]
    while stack:
        current = stack.pop()
        if isinstance(current, BatchNormalization):
            return True
        stack.extend(current._layers)
    return False
