"""Small models that use every layer of issue 15's second part (embeddings, recurrent layers, wrappers,
attention, masks), built the same way with Keras 3 or kerasckpt.

`build(lib, name)` takes the `keras` or `kerasckpt` package; make_sequence_fixtures.py saves Keras's versions
in tests/data, and the tests build kerasckpt's twins from the same code. Dropout rates are 0, so neither
library draws random numbers while training.
"""
import numpy as np

NAMES = ("masked_text_func", "rnn_seq", "attention_func", "sequence_sub")
VOCAB = 30


def data(name, n=24):
    """(x, y) for each model: a few dozen samples, a fixed seed."""
    rng = np.random.default_rng(7)
    if name in ("masked_text_func", "sequence_sub"):
        tokens = rng.integers(1, VOCAB, (n, 9)).astype("int32")
        lengths = rng.integers(2, 10, n)
        tokens[np.arange(9)[None, :] >= lengths[:, None]] = 0  # right padding with index 0
        return tokens, (tokens[:, 0] > VOCAB // 2).astype("float32")[:, None]
    if name == "rnn_seq":
        x = rng.normal(size=(n, 7, 4)).astype("float32")
        return x, (x[:, :, 0].sum(axis=1) > 0).astype("int64")
    x = rng.normal(size=(n, 6, 8)).astype("float32")
    return x, np.stack([x[:, -1, :4].sum(axis=1), x[:, :, 0].mean(axis=1), x[:, 0, 1]], axis=1).astype("float32")


def build(lib, name):
    """The compiled model `name` of `lib` (keras or kerasckpt)."""
    L = lib.layers
    if name == "masked_text_func":  # Embedding(mask_zero): Keras writes a NotEqual op node feeding `mask=`
        tokens = L.Input((None,), dtype="int32")
        h = L.Embedding(VOCAB, 8, mask_zero=True, name="embed")(tokens)
        h = L.LSTM(6, return_sequences=True, name="lstm")(h)
        h = L.Bidirectional(L.GRU(5, return_sequences=True), merge_mode="ave", name="bigru")(h)
        h = L.Bidirectional(L.SimpleRNN(4), name="birnn")(h)
        model = lib.Model(tokens, L.Dense(1, activation="sigmoid", name="out")(h), name="masked_text_func")
        model.compile(optimizer=lib.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy"])
    elif name == "rnn_seq":
        model = lib.Sequential([
            L.Input((7, 4)), L.SimpleRNN(5, return_sequences=True, go_backwards=True),
            L.TimeDistributed(L.Dense(3, activation="tanh")), L.SpatialDropout1D(0.0),
            L.GRU(4, reset_after=False, return_sequences=True), L.LSTM(3, unit_forget_bias=False),
            L.Dense(2, activation="softmax")], name="rnn_seq")
        model.compile(optimizer=lib.optimizers.RMSprop(1e-2, momentum=0.5), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    elif name == "attention_func":
        inp = L.Input((6, 8))
        att = L.MultiHeadAttention(2, 4, name="mha")(inp, inp, use_causal_mask=True)
        h = L.LayerNormalization(name="norm")(inp + att)
        h = L.EinsumDense("abc,cd->abd", output_shape=(None, 5), bias_axes="d", name="proj")(h)
        seq, state_h, state_c = L.LSTM(4, return_sequences=True, return_state=True, name="lstm")(h)
        cross = L.MultiHeadAttention(1, 3, value_dim=2, output_shape=4, name="cross")(seq, h)
        pooled = L.GlobalAveragePooling1D(name="pool")(cross)
        merged = L.Concatenate(name="cat")([pooled, state_h, state_c])
        model = lib.Model(inp, L.Dense(3, name="out")(merged), name="attention_func")
        model.compile(optimizer=lib.optimizers.SGD(0.05, momentum=0.9), loss="mean_squared_error")
    elif name == "sequence_sub":
        model = sequence_sub_class(lib)(name="sequence_sub")
        model.compile(optimizer=lib.optimizers.Adam(1e-2), loss="binary_crossentropy")
        model(np.ones((1, 9), "int32"))
    else:
        raise ValueError(f"unknown model {name!r}; use one of {NAMES}")
    return model


def sequence_sub_class(lib):
    """A subclassed text model (weights exchange only: its class is not registered in both libraries)."""
    L = lib.layers

    class SequenceSub(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embed = L.Embedding(VOCAB, 6, mask_zero=True)
            self.encoder = L.Bidirectional(L.LSTM(4, return_sequences=True))
            self.attend = L.MultiHeadAttention(2, 3)
            self.pool = L.GlobalAveragePooling1D()
            self.head = L.Dense(1, activation="sigmoid")

        def call(self, inputs):
            h = self.encoder(self.embed(inputs))
            return self.head(self.pool(self.attend(h, h)))

    return SequenceSub
