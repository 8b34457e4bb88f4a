"""Embedding: integer indices to rows of a trainable table."""
import warnings

import numpy as np

from kerasckpt import initializers, ops
from kerasckpt._registry import builtin
from kerasckpt.autograd import record, value_of
from kerasckpt.layers.base import Layer


@builtin()
class Embedding(Layer):
    """Turn non-negative integer indices into dense vectors: `embeddings[inputs]`.

    Args:
        input_dim: the vocabulary size (largest index + 1).
        output_dim: the length of each vector.
        embeddings_initializer: uniform in [-0.05, 0.05] by default, as in Keras.
        mask_zero: treat index 0 as padding: the output carries a mask that is False there, which
            recurrent layers, attention and pooling downstream respect. Index 0 stays a table row.
        weights: an optional initial table of shape `(input_dim, output_dim)`.

    Float inputs are truncated to integers, as Keras does. The gradient of the table is computed by
    adding each looked-up row's gradient into a zero table (repeated indices add up), without a Python
    loop over samples.

    Note: an index outside `[0, input_dim)` raises an IndexError naming the index, where NumPy indexing
    would silently wrap negative indices around.
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, lora_rank=None, lora_alpha=None,
                 quantization_config=None, **kwargs):
        for arg, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r} "
                                 f"(of type {type(value).__name__}).")
        for arg, value in (("embeddings_regularizer", embeddings_regularizer),
                           ("embeddings_constraint", embeddings_constraint)):
            if value is not None:
                raise ValueError(f"Embedding does not support `{arg}` in kerasckpt. Received: {arg}={value!r}. "
                                 "Remove the argument.")
        if quantization_config is not None:
            raise ValueError(f"Embedding does not support quantized layers in kerasckpt. Received: quantization_"
                             f"config={quantization_config!r}. Save the model unquantized in Keras, then load it here.")
        if lora_rank:
            warnings.warn(f"Embedding: LoRA (lora_rank={lora_rank!r}) is not implemented in kerasckpt. Keras saves the "
                          "table with the LoRA update merged in, so lookups are the same, but training here updates "
                          "the whole table.", stacklevel=2)
        if kwargs.pop("input_length", None) is not None:
            warnings.warn("Argument `input_length` is deprecated. Just remove it.", stacklevel=2)
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        if weights is not None:
            self.build()
            self.set_weights(weights if isinstance(weights, list) and len(weights) == 1 else [weights])

    def build(self, input_shape=None):
        self.embeddings = self.add_weight((self.input_dim, self.output_dim), self.embeddings_initializer,
                                          name="embeddings")

    def call(self, inputs):
        indices = np.asarray(value_of(inputs))
        if indices.dtype.kind not in "iu":
            indices = indices.astype(np.int32)  # truncation toward zero, as Keras's cast
        if indices.size and (indices.min() < 0 or indices.max() >= self.input_dim):
            bad = indices.min() if indices.min() < 0 else indices.max()
            raise IndexError(f"Embedding layer '{self.name}' received index {bad}, outside [0, {self.input_dim}). "
                             f"Indices must be below input_dim={self.input_dim}; enlarge the vocabulary or clip the "
                             "indices.")
        return lookup(self.embeddings, indices)

    def compute_mask(self, inputs, previous_mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": None, "activity_regularizer": None, "embeddings_constraint": None,
                "mask_zero": self.mask_zero, "quantization_config": None}


def lookup(table, indices):
    """Rows `table[indices]`; the table's gradient adds the rows' gradients at their indices."""
    tv = value_of(table)
    flat = indices.reshape(-1)

    def backward(g):
        grad = np.zeros(tv.shape, dtype=g.dtype)
        np.add.at(grad, flat, g.reshape(flat.size, -1))
        return (grad,)

    return record(tv[indices], (table,), backward)
