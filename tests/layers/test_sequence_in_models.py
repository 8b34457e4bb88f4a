"""The sequence layers inside Sequential, functional and subclassed models (the same outputs, and they train),
and their behaviour beyond Keras parity: stateful layers, dropout draws, masks' effect, errors."""
import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers, ops
from kerasckpt.autograd import GradientTape

TOKENS = np.array([[3, 1, 2, 0, 0], [4, 0, 0, 0, 0], [1, 2, 3, 4, 1], [2, 2, 0, 0, 0]], "int32")
X = np.random.default_rng(0).normal(size=(4, 5, 3)).astype("float32")

MAKERS = {  # name -> (maker, sample input)
    "Embedding": (lambda: layers.Embedding(6, 3), TOKENS),
    "SimpleRNN": (lambda: layers.SimpleRNN(4, return_sequences=True), X),
    "LSTM": (lambda: layers.LSTM(4), X),
    "GRU": (lambda: layers.GRU(4, reset_after=False, go_backwards=True), X),
    "Bidirectional": (lambda: layers.Bidirectional(layers.LSTM(2, return_sequences=True)), X),
    "TimeDistributed": (lambda: layers.TimeDistributed(layers.Dense(2)), X),
    "SpatialDropout1D": (lambda: layers.SpatialDropout1D(0.5), X),
    "EinsumDense": (lambda: layers.EinsumDense("abc,cd->abd", output_shape=(5, 2), bias_axes="d"), X),
}


class Wrapper(kerasckpt.Model):
    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner
        self.flat = layers.Flatten()
        self.head = layers.Dense(2)

    def call(self, inputs):
        return self.head(self.flat(self.inner(inputs)))


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_layer_gives_the_same_outputs_in_each_model_kind_and_trains(name):
    make, x = MAKERS[name]
    spec = layers.Input(x.shape[1:], dtype=str(x.dtype))
    seq = kerasckpt.Sequential([layers.Input(x.shape[1:], dtype=str(x.dtype)), make(), layers.Flatten(),
                                layers.Dense(2)])
    func = kerasckpt.Model(spec, layers.Dense(2)(layers.Flatten()(make()(spec))))
    sub = Wrapper(make())
    sub(x)
    for model in (func, sub):
        model.set_weights(seq.get_weights())
    outputs = [model.predict(x, verbose=0) for model in (seq, func, sub)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], outputs[2])
    for model in (seq, func, sub):
        model.compile(optimizer="sgd", loss="mse")
        before = [w.copy() for w in model.get_weights()]
        model.fit(x, np.ones((len(x), 2), "float32"), epochs=1, verbose=0)
        assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_attention_in_functional_and_subclassed_models():
    q = layers.Input((5, 3))
    func = kerasckpt.Model(q, layers.MultiHeadAttention(2, 2)(q, q, use_causal_mask=True))

    class SelfAttention(kerasckpt.Model):
        def __init__(self):
            super().__init__()
            self.att = layers.MultiHeadAttention(2, 2)

        def call(self, inputs):
            return self.att(inputs, inputs, use_causal_mask=True)

    sub = SelfAttention()
    sub(X)
    sub.set_weights(func.get_weights())
    np.testing.assert_array_equal(func.predict(X, verbose=0), sub.predict(X, verbose=0))
    later = X.copy()
    later[:, 3:] += 1.0  # a causal mask: changing later steps leaves earlier outputs as they were
    np.testing.assert_array_equal(func.predict(later, verbose=0)[:, :3], func.predict(X, verbose=0)[:, :3])


@pytest.mark.parametrize("cls", [layers.SimpleRNN, layers.LSTM, layers.GRU])
def test_masked_steps_are_skipped(cls):
    """A sequence with padding gives the output of the same sequence without it (zeros carry no state)."""
    layer = cls(3)
    padded = np.concatenate([X[:, :3], np.full((4, 2, 3), 7.0, "float32")], axis=1)
    mask = np.array([[True] * 3 + [False] * 2] * 4)
    np.testing.assert_allclose(layer(padded, mask=mask).numpy(), layer(X[:, :3]).numpy(), atol=1e-6)


def test_go_backwards_reads_the_sequence_from_its_end():
    forward, backward = layers.LSTM(3, return_sequences=True), layers.LSTM(3, return_sequences=True,
                                                                           go_backwards=True)
    forward(X)
    backward(X)
    backward.set_weights(forward.get_weights())
    np.testing.assert_allclose(backward(X).numpy(), forward(X[:, ::-1]).numpy(), atol=1e-6)


def test_stateful_layer_carries_states_between_batches_and_resets():
    whole = layers.GRU(3)
    stateful = layers.GRU(3, stateful=True)
    inp = layers.Input(batch_shape=(4, 5, 3))
    model = kerasckpt.Model(inp, stateful(inp))
    whole(X)
    stateful.set_weights(whole.get_weights())
    model(X[:, :2])
    np.testing.assert_allclose(model(X[:, 2:]).numpy(), whole(X).numpy(), atol=1e-6)  # continued the sequence
    stateful.reset_states()
    np.testing.assert_allclose(model(X).numpy(), whole(X).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="batch size of the input sequences must be the same"):
        stateful(X[:2])


def test_stateful_needs_a_fixed_batch_size():
    with pytest.raises(ValueError, match="batch size must be static"):
        kerasckpt.Sequential([layers.Input((5, 3)), layers.LSTM(2, stateful=True)])


def test_recurrent_dropout_draws_one_mask_per_gate_for_the_whole_sequence():
    layer = layers.LSTM(4, dropout=0.5, recurrent_dropout=0.5, seed=3)
    layer(X)
    cell = layer.cell
    inputs, recurrent = cell.get_dropout_mask(X[:, 0]), cell.get_recurrent_dropout_mask(np.zeros((4, 4)))
    assert len(inputs) == len(recurrent) == 4  # Keras's implementation 1: i, f, c, o
    assert all(set(np.unique(m)) <= {0.0, 2.0} for m in inputs + recurrent)
    assert cell.get_dropout_mask(X[:, 0]) is inputs  # kept until the layer's call resets it
    cell.reset_dropout_mask()
    cell.reset_recurrent_dropout_mask()
    out_a, out_b = layer(X, training=True).numpy(), layer(X, training=True).numpy()
    assert not np.allclose(out_a, out_b)  # a new draw per call
    np.testing.assert_array_equal(layer(X).numpy(), layer(X, training=False).numpy())  # no dropout in inference


def test_spatial_dropout_drops_whole_channels():
    layer = layers.SpatialDropout1D(0.5, seed=1)
    out = layer(np.ones((6, 5, 8), "float32"), training=True).numpy()
    assert set(np.unique(out)) == {0.0, 2.0}
    assert np.all(out == out[:, :1])  # the same channels dropped at every step
    np.testing.assert_array_equal(layer(X).numpy(), X)
    with pytest.raises(ValueError, match="expected ndim=3"):
        layer(np.ones((2, 3)), training=True)


def test_embedding_gradient_adds_up_repeated_indices_and_float_inputs_are_truncated():
    layer = layers.Embedding(5, 2)
    with GradientTape() as tape:
        out = layer(np.array([[1, 1, 3], [1, 0, 0]]))
        loss = ops.sum(out)
    grad = tape.gradient(loss, layer.embeddings).numpy()
    np.testing.assert_array_equal(grad[:, 0], [2, 3, 0, 1, 0])
    np.testing.assert_array_equal(layer(np.array([[1.9, 3.2]])).numpy(), layer(np.array([[1, 3]])).numpy())


def test_embedding_with_initial_weights_and_bad_indices():
    table = np.arange(12, dtype="float32").reshape(4, 3)
    layer = layers.Embedding(4, 3, weights=table)
    np.testing.assert_array_equal(layer(np.array([[2, 0]])).numpy(), table[[[2, 0]]])
    for bad in (4, -1):
        with pytest.raises(IndexError, match=f"index {bad}, outside \\[0, 4\\)"):
            layer(np.array([[0, bad]]))


@pytest.mark.parametrize("make, match", [
    (lambda: layers.LSTM(0), "expected a positive integer"),
    (lambda: layers.GRU(3, activation="gelu"), "supports the activations"),
    (lambda: layers.LSTM(3, kernel_regularizer="l2"), "does not support `kernel_regularizer`"),
    (lambda: layers.LSTM(3, use_cudnn="yes"), "use_cudnn"),
    (lambda: layers.RNN(layers.Dense(2)), "SimpleRNNCell, LSTMCell or GRUCell"),
    (lambda: layers.Bidirectional(layers.LSTM(2), merge_mode="max"), "Invalid merge mode"),
    (lambda: layers.Bidirectional(layers.LSTM(2), backward_layer=layers.LSTM(2)), "different `go_backwards`"),
    (lambda: layers.TimeDistributed("dense"), "keras.layers.Layer"),
    (lambda: layers.Embedding(0, 3), "`input_dim` must be a positive integer"),
    (lambda: layers.MultiHeadAttention(2, 0), "key_dim"),
    (lambda: layers.EinsumDense("ab->b", 3).build((None, 2)), "Invalid einsum equation"),
])
def test_bad_arguments_are_refused_with_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("call, match", [
    (lambda: layers.LSTM(2)(np.ones((2, 3))), "rank 3"),
    (lambda: layers.LSTM(2)(X, mask=np.ones((4, 4), bool)), "mask of shape \\(4, 4\\)"),
    (lambda: layers.LSTM(2)(X, initial_state=[np.zeros((4, 2))]), "expects 2 initial state"),
    (lambda: layers.LSTM(2, use_cudnn=True)(X), "use_cudnn=True"),
    (lambda: layers.TimeDistributed(layers.Dense(2))(np.ones((2, 3))), "at least 3 dimensions"),
    (lambda: layers.TimeDistributed(layers.Dense(2))(X, mask=np.ones((4, 2), bool)), "incompatible"),
    (lambda: layers.MultiHeadAttention(1, 2)(X, X, np.ones((4, 6, 3), "float32")), "`value` and `key`"),
])
def test_bad_calls_are_refused_with_the_shapes(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_cell_runs_one_step_by_itself():
    cell = layers.LSTMCell(3)
    layer = layers.RNN(cell, return_sequences=True)
    sequence = layer(X).numpy()
    h, c = np.zeros((4, 3), "float32"), np.zeros((4, 3), "float32")
    for t in range(3):
        out, (h, c) = cell(X[:, t], [h, c])
        np.testing.assert_allclose(out.numpy(), sequence[:, t], atol=1e-6)
