"""MultiHeadAttention, with Keras 3's sub-layers (`query`, `key`, `value`, `attention_output` EinsumDense
layers at `query_dense`, `key_dense`, `value_dense`, `output_dense`), masks and configs."""
import math

import numpy as np

from kerasckpt import initializers, ops
from kerasckpt._registry import builtin
from kerasckpt.autograd import record, value_of
from kerasckpt.layers.activations import Softmax
from kerasckpt.layers.base import Layer
from kerasckpt.layers.core import Dropout
from kerasckpt.layers.einsum_dense import EinsumDense
from kerasckpt.layers.masking import get_keras_mask, without_mask

_LARGE_NEGATIVE = -1e9  # what Keras's masked Softmax puts at masked positions (float32)

_LETTERS = "abcdefghijklmnopqrstuvwxyz"  # einsum subscripts (string.ascii_lowercase)


@builtin()
class MultiHeadAttention(Layer):
    """Multi-head attention (Vaswani et al. 2017), as Keras 3's layer.

    `query`, `key` and `value` are projected to `num_heads` heads by EinsumDense layers, each query attends
    to the keys (scaled dot products, softmax over the attention axes), and the heads' results are projected
    back by a fourth EinsumDense.

    Args:
        num_heads: the number of heads.
        key_dim: the size of each head for query and key.
        value_dim: the size of each head for value (key_dim when None).
        dropout: dropout rate on the attention probabilities (training only).
        use_bias: whether the projections have biases.
        output_shape: the output's last axes (the query's last axis when None).
        attention_axes: the axes attention runs over (all but batch, heads and features when None).
        sliding_window: each position attends only to positions less than this far away (None: all).
        use_gate: gate the heads' results by `sigmoid` of a fifth projection of the query.
        seed: seed of the dropout's random stream.

    Call arguments: `query`, `value`, `key` (value when None), `query_mask`, `value_mask`, `key_mask`
    (filled from the tensors' Keras masks), `attention_mask` (batch, T, S) booleans, `return_attention_scores`,
    `training`, `use_causal_mask` (position t attends to positions <= t).

    Masked positions get no attention. A query position whose every key is masked attends uniformly, as
    Keras's fused attention does, except when `dropout > 0`, `return_attention_scores=True` or the inputs have
    more than three axes: then its weights are zeros, as Keras's masked Softmax gives.
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, sliding_window=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, use_gate=False, seed=None, **kwargs):
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError("Received an invalid value for argument `num_heads`, expected a positive integer. "
                             f"Received: num_heads={num_heads}")
        if isinstance(key_dim, bool) or not isinstance(key_dim, int) or key_dim <= 0:
            raise ValueError("Received an invalid value for argument `key_dim`, expected a positive integer. "
                             f"Received: key_dim={key_dim}")
        if value_dim is not None and (isinstance(value_dim, bool) or not isinstance(value_dim, int) or value_dim <= 0):
            raise ValueError("Received an invalid value for argument `value_dim`, expected a positive integer or "
                             f"`None`. Received: value_dim={value_dim}")
        for arg, value in (("kernel_regularizer", kernel_regularizer), ("bias_regularizer", bias_regularizer),
                           ("kernel_constraint", kernel_constraint), ("bias_constraint", bias_constraint)):
            if value is not None:
                raise ValueError(f"MultiHeadAttention does not support `{arg}` in kerasckpt. Received: "
                                 f"{arg}={value!r}. Remove the argument.")
        super().__init__(**kwargs)
        self.supports_masking = True
        self._num_heads, self._key_dim = num_heads, key_dim
        self._value_dim = value_dim if value_dim else key_dim
        self._dropout, self._use_bias, self._use_gate = float(dropout), bool(use_bias), bool(use_gate)
        if output_shape:
            output_shape = (output_shape,) if isinstance(output_shape, int) else tuple(output_shape)
        self._output_shape_arg = output_shape or None
        if isinstance(attention_axes, int):
            attention_axes = (attention_axes,)
        elif attention_axes and not isinstance(attention_axes, (list, tuple)):
            raise ValueError(f"`attention_axes` must be an int, list, or tuple.Received: attention_axes={attention_axes}")
        self._attention_axes = tuple(attention_axes) if attention_axes else None
        if sliding_window is not None and (isinstance(sliding_window, bool) or not isinstance(sliding_window, int)
                                           or sliding_window <= 0):
            raise ValueError(f"`sliding_window` must be `None` or a positive integer. Received: "
                             f"sliding_window={sliding_window}")
        self._sliding_window = sliding_window
        if flash_attention and self._dropout > 0.0:
            raise ValueError("Dropout is not supported when flash attention is enabled. Please set dropout to 0.0 to "
                             "use flash attention.")
        self._flash_attention = flash_attention
        self._kernel_initializer = initializers.get(kernel_initializer)
        self._bias_initializer = initializers.get(bias_initializer)
        self.seed = seed
        self._inverse_sqrt_key_dim = 1.0 / math.sqrt(float(self._key_dim))

    num_heads = property(lambda self: self._num_heads)
    key_dim = property(lambda self: self._key_dim)
    value_dim = property(lambda self: self._value_dim)
    dropout = property(lambda self: self._dropout)
    use_bias = property(lambda self: self._use_bias)
    attention_axes = property(lambda self: self._attention_axes)

    # ------------------------------------------------------------------ building

    def _projection(self, rank, bound_dims, output_dims, last_dims, name, activation=None):
        equation, bias_axes, output_rank = _build_proj_equation(rank - 1, bound_dims, output_dims)
        return EinsumDense(equation, output_shape=[None] * (output_rank - 1 - len(last_dims)) + list(last_dims),
                           bias_axes=bias_axes if self._use_bias else None, activation=activation, name=name,
                           kernel_initializer=_fresh(self._kernel_initializer),
                           bias_initializer=_fresh(self._bias_initializer), dtype=self.dtype)

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        if tuple(value_shape[1:-1]) != tuple(key_shape[1:-1]):
            raise ValueError("All dimensions of `value` and `key`, except the last one, must be equal. Received: "
                             f"value_shape={value_shape} and key_shape={key_shape}")
        heads = (self._num_heads, self._key_dim)
        self.query_dense = self._projection(len(query_shape), 1, 2, heads, "query")
        self.query_dense.build(query_shape)
        self.key_dense = self._projection(len(key_shape), 1, 2, heads, "key")
        self.key_dense.build(key_shape)
        if self._use_gate:
            self._gate_dense = self._projection(len(query_shape), 1, 2, (self._num_heads, self._value_dim), "gate",
                                                activation="sigmoid")
            self._gate_dense.build(query_shape)
        self.value_dense = self._projection(len(value_shape), 1, 2, (self._num_heads, self._value_dim), "value")
        self.value_dense.build(value_shape)
        rank = len(value_shape) + 1  # of the projected tensors (batch, ..., heads, dim)
        if self._attention_axes is None:
            self._attention_axes = tuple(range(1, rank - 2))
        else:
            self._attention_axes = tuple(a if a >= 0 else (rank - 1) + a for a in self._attention_axes)
        self._dot_product_equation, self._combine_equation, scores_rank = _build_attention_equation(
            rank, self._attention_axes)
        self._norm_axes = tuple(range(scores_rank - len(self._attention_axes), scores_rank))
        self._softmax = Softmax(axis=self._norm_axes, dtype=self.dtype)
        self._dropout_layer = Dropout(rate=self._dropout, dtype=self.dtype, seed=self.seed)
        output_shape = self._output_shape_arg or (query_shape[-1],)
        self.output_dense = self._projection(len(query_shape), 2, len(output_shape), output_shape, "attention_output")
        inner = list(self.query_dense.compute_output_shape(query_shape))
        inner[-1] = self._value_dim
        self.output_dense.build(tuple(inner))

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        query_shape = tuple(query_shape)
        if self._output_shape_arg:
            return query_shape[:-1] + self._output_shape_arg
        return query_shape

    # ------------------------------------------------------------------ call

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
             return_attention_scores=False, training=None, use_causal_mask=False):
        if self._flash_attention and return_attention_scores:
            raise ValueError("Returning attention scores is not supported when flash attention is enabled. Please "
                             "disable flash attention to access attention scores.")
        if query_mask is None:
            query_mask = get_keras_mask(query)
        value = self._convert_input(value)
        key = value if key is None else self._convert_input(key)
        mask = self._compute_attention_mask(query, value, query_mask, value_mask, key_mask, attention_mask,
                                            use_causal_mask)
        query, value, key = without_mask(query), without_mask(value), without_mask(key)  # sub-layers take none
        gate = self._gate_dense(query) if self._use_gate else None
        q = ops.multiply(self.query_dense(query), np.float32(self._inverse_sqrt_key_dim))
        k, v = self.key_dense(key), self.value_dense(value)
        scores = ops.einsum(self._dot_product_equation, k, q)
        if mask is not None:
            for _ in range(np.ndim(value_of(scores)) - mask.ndim):
                mask = np.expand_dims(mask, axis=-len(self._attention_axes) * 2 - 1)
        if self._dropout > 0.0 or return_attention_scores or np.ndim(value_of(q)) != 4:
            probs = self._softmax(scores, mask=mask)  # Keras's Softmax layer: all-masked slices give zeros
        else:  # Keras's fused dot-product attention: all-masked slices attend uniformly
            probs = masked_softmax(scores, mask, self._norm_axes)
        dropped = self._dropout_layer(probs, training=training) if self._dropout > 0.0 else probs
        out = ops.einsum(self._combine_equation, dropped, v)
        out = self.output_dense(ops.multiply(out, gate) if gate is not None else out)
        if return_attention_scores:
            return out, probs
        return out

    def _compute_attention_mask(self, query, value, query_mask, value_mask, key_mask, attention_mask, use_causal_mask):
        """The boolean (batch, T, S) mask from the inputs' masks, the causal and sliding-window masks and
        `attention_mask`, all combined with `and`; None when there is no mask at all."""
        auto = None

        def both(a, b):
            return b if a is None else a & b
        if query_mask is not None:
            auto = np.asarray(value_of(query_mask), dtype=bool)[..., None]
        if value_mask is not None:
            auto = both(auto, np.asarray(value_of(value_mask), dtype=bool)[..., None, :])
        if key_mask is not None:
            auto = both(auto, np.asarray(value_of(key_mask), dtype=bool)[..., None, :])
        q_len, v_len = np.shape(value_of(query))[1], np.shape(value_of(value))[1]
        rows, cols = np.arange(q_len)[:, None], np.arange(v_len)[None, :]
        if use_causal_mask:
            auto = both(auto, (rows >= cols)[None])
        if self._sliding_window is not None:
            auto = both(auto, (np.abs(rows - cols) < self._sliding_window)[None])
        if attention_mask is not None:
            attention_mask = np.asarray(value_of(attention_mask)).astype(bool)
            return attention_mask if auto is None else attention_mask & auto
        return auto

    def get_config(self):
        return {**super().get_config(), "num_heads": self._num_heads, "key_dim": self._key_dim,
                "value_dim": self._value_dim, "dropout": self._dropout, "use_bias": self._use_bias,
                "use_gate": self._use_gate, "output_shape": self._output_shape_arg,
                "attention_axes": self._attention_axes, "sliding_window": self._sliding_window,
                "kernel_initializer": initializers.serialize(self._kernel_initializer),
                "bias_initializer": initializers.serialize(self._bias_initializer), "kernel_regularizer": None,
                "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                "bias_constraint": None, "seed": self.seed}


def masked_softmax(x, mask, axes):
    """Softmax of `x` over `axes` where `mask` (broadcast to `x`) is True: masked entries get no weight and
    no gradient; a slice whose entries are all masked comes out uniform (and its gradient is zero).

    Note: Keras's torch backend adds a large negative bias instead of replacing the masked scores, so its
    gradients for an all-masked slice (a padded query position) are not zero; the TensorFlow and JAX
    backends give zero, as here.
    """
    xv = value_of(x)
    m = None if mask is None else np.broadcast_to(mask, xv.shape)
    shifted = xv if m is None else np.where(m, xv, np.float32(_LARGE_NEGATIVE))
    e = np.exp(shifted - shifted.max(axis=axes, keepdims=True))
    probs = e / e.sum(axis=axes, keepdims=True)

    def backward(g):
        dx = probs * (g - (g * probs).sum(axis=axes, keepdims=True))
        return (dx if m is None else np.where(m, dx, np.float32(0)),)

    return record(probs, (x,), backward)


def _fresh(initializer):
    """A new initializer with the same config (each projection gets its own, as in Keras)."""
    return type(initializer).from_config(initializer.get_config()) if hasattr(initializer, "get_config") \
        else initializer


def _build_attention_equation(rank, attn_axes):
    """Keras's einsum equations for the query-key products and for combining the values."""
    letters = _LETTERS
    target = letters[:rank]
    batch_dims = tuple(i for i in range(rank) if i not in attn_axes + (rank - 1,))
    offset, source = rank, ""
    for i in range(rank):
        if i in batch_dims or i == rank - 1:
            source += target[i]
        else:
            source += letters[offset]
            offset += 1
    product = "".join([target[i] for i in batch_dims] + [target[i] for i in attn_axes]
                      + [source[i] for i in attn_axes])
    return f"{source},{target}->{product}", f"{product},{source}->{target}", len(product)


def _build_proj_equation(free_dims, bound_dims, output_dims):
    """Keras's einsum equation (and bias axes) of a projection inside multi-head attention."""
    letters = _LETTERS
    inputs = outputs = kernel = bias_axes = ""
    for i in range(free_dims):
        inputs += letters[i]
        outputs += letters[i]
    for i in range(free_dims, free_dims + bound_dims):
        inputs += letters[i]
        kernel += letters[i]
    for i in range(free_dims + bound_dims, free_dims + bound_dims + output_dims):
        kernel += letters[i]
        outputs += letters[i]
        bias_axes += letters[i]
    return f"{inputs},{kernel}->{outputs}", bias_axes, len(outputs)
