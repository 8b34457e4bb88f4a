"""get_config() of the sequence layers: Keras 3's keys, values and order, round trips, and Keras's configs
read back (wrappers and RNN nest their layers' entries)."""
import json

import pytest

import kerasckpt

# name -> (a maker of the layer in either library, an input shape to build it with, or a list of shapes)
CASES = {
    "Embedding": (lambda L: L.Embedding(20, 4, mask_zero=True, embeddings_initializer="normal"), (None, 7)),
    "SimpleRNN": (lambda L: L.SimpleRNN(3, activation="relu", go_backwards=True, dropout=0.1, seed=3), (None, 5, 2)),
    "LSTM": (lambda L: L.LSTM(3, return_sequences=True, return_state=True, unit_forget_bias=False,
                              recurrent_dropout=0.2, recurrent_activation="tanh", seed=1), (None, 5, 2)),
    "GRU": (lambda L: L.GRU(3, reset_after=False, stateful=False, use_bias=False, unroll=True), (None, 5, 2)),
    "RNN": (lambda L: L.RNN(L.LSTMCell(3, dropout=0.2), return_sequences=True), (None, 5, 2)),
    "LSTMCell": (lambda L: L.LSTMCell(4, kernel_initializer="he_normal"), (None, 2)),
    "GRUCell": (lambda L: L.GRUCell(4, reset_after=False), (None, 2)),
    "SimpleRNNCell": (lambda L: L.SimpleRNNCell(4, use_bias=False), (None, 2)),
    "Bidirectional": (lambda L: L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum"), (None, 5, 2)),
    "Bidirectional_backward_layer": (lambda L: L.Bidirectional(
        L.LSTM(3), backward_layer=L.LSTM(3, go_backwards=True, name="back")), (None, 5, 2)),
    "TimeDistributed": (lambda L: L.TimeDistributed(L.Dense(4, activation="relu")), (None, 5, 3)),
    "SpatialDropout1D": (lambda L: L.SpatialDropout1D(0.3, seed=2), (None, 5, 3)),
    "EinsumDense": (lambda L: L.EinsumDense("abc,cde->abde", output_shape=(None, 2, 3), bias_axes="de"), (None, 5, 4)),
    "MultiHeadAttention": (lambda L: L.MultiHeadAttention(2, 3, value_dim=4, output_shape=5, dropout=0.1,
                                                           sliding_window=3), [(None, 5, 4), (None, 6, 3)]),
}


def _plain(config):
    """A config as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(config))


def _make(lib, name, built):
    make, shape = CASES[name]
    layer = make(lib.layers)
    if built:
        layer.build(*shape) if isinstance(shape, list) else layer.build(shape)
    return layer


@pytest.mark.parametrize("name", sorted(CASES))
def test_get_config_from_config_round_trip(name):
    layer = _make(kerasckpt, name, built=True)
    config = _plain(layer.get_config())
    clone = type(layer).from_config(config)
    assert _plain(clone.get_config()) == config
    assert clone.name == layer.name


@pytest.mark.keras
@pytest.mark.parametrize("built", [False, True], ids=["unbuilt", "built"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_config_equals_kerass(name, built):
    keras = pytest.importorskip("keras")
    ours, theirs = _make(kerasckpt, name, built), _make(keras, name, built)
    mine, kerass = _plain(ours.get_config()), _plain(theirs.get_config())
    for config in (mine, kerass):  # names of nested layers count each library's own layers
        for key in ("layer", "backward_layer", "cell"):
            if isinstance(config.get(key), dict):
                config[key]["config"].pop("name")
        config.pop("name")
    assert mine == kerass
    assert list(ours.get_config()) == list(theirs.get_config())  # the same key order, as files show it
    assert _plain(type(ours).from_config(_plain(theirs.get_config())).get_config())["name"] == theirs.name
    assert _plain(type(theirs).from_config(_plain(ours.get_config())).get_config())["name"] == ours.name
    assert (ours.get_build_config() is None) == (theirs.get_build_config() is None)
    if built:
        assert _plain(ours.get_build_config()) == _plain(theirs.get_build_config())


def test_bidirectional_names_and_flips_its_copies_like_keras():
    layer = kerasckpt.layers.Bidirectional(kerasckpt.layers.LSTM(3, name="enc"))
    assert (layer.forward_layer.name, layer.backward_layer.name) == ("forward_enc", "backward_enc")
    assert (layer.forward_layer.go_backwards, layer.backward_layer.go_backwards) == (False, True)
    seq = kerasckpt.layers.Bidirectional(kerasckpt.layers.GRU(3, return_sequences=True))
    assert seq.forward_layer.zero_output_for_mask and seq.backward_layer.zero_output_for_mask


def test_recurrent_layers_expose_their_cells_arguments():
    lstm = kerasckpt.layers.LSTM(5, dropout=0.25, recurrent_activation="tanh")
    assert (lstm.units, lstm.dropout, lstm.recurrent_activation.__name__) == (5, 0.25, "tanh")
    assert lstm.cell.name == "lstm_cell" and lstm.cell.state_size == [5, 5]
    assert kerasckpt.layers.GRU(2, recurrent_dropout=0.1).cell.implementation == 1  # a mask per gate, as Keras
