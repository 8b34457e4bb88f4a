"""Embedding, the recurrent layers, their wrappers and attention against Keras 3 on the torch backend: the
same weights and inputs give the same outputs and the same gradients for the inputs, the initial states
and every weight, with and without masks, on small odd shapes."""
import re

import numpy as np
import pytest

import kerasckpt
from kerasckpt import ops
from kerasckpt.autograd import GradientTape

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
if keras.backend.backend() != "torch":
    pytest.skip("the gradient oracle needs Keras on the torch backend", allow_module_level=True)

pytestmark = pytest.mark.keras
RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 5, 4)).astype("float32")  # (batch, time, features)
MASK = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1], [1, 0, 1, 0, 1]], bool)  # padding, gaps, leading zeros
STATES = {"SimpleRNN": 1, "GRU": 1, "LSTM": 2}


def _unnumbered(path):
    """A variable path without the `_<n>` of default names (the two libraries count their layers apart)."""
    return re.sub(r"_\d+(?=/|$)", "", path)


def _flat(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def layer(class_name, **config):
    """A maker of `class_name(**config)` in either library."""
    return lambda lib: getattr(lib.layers, class_name)(**config)


def compare(make, inputs, call=None, input_masks=None, states=0, units=3, prepare=None, atol=2e-5):
    """Build `make(lib)` in both libraries with our randomized weights, run both on `inputs` (and `states`
    random initial states of `units`), and compare every output and the gradients of `sum(output * upstream)`
    for the float inputs, the initial states and the trainable weights."""
    call = dict(call or {})
    ours, theirs = make(kerasckpt), make(keras)
    ours(*inputs, **call)
    theirs(*inputs, **call)
    rng = np.random.default_rng(1)
    ours.set_weights([rng.normal(0, 0.5, size=w.shape).astype("float32") for w in ours.get_weights()])
    theirs.set_weights(ours.get_weights())
    if prepare:
        prepare(ours, theirs)
    init = [rng.normal(size=(inputs[0].shape[0], units)).astype("float32") for _ in range(states)]
    floats = [i for i, x in enumerate(inputs) if x.dtype.kind == "f"]

    xs = [ops.convert_to_tensor(x) for x in inputs]
    hs = [ops.convert_to_tensor(h) for h in init]
    for i, mask in (input_masks or {}).items():
        xs[i]._keras_mask = mask
    with GradientTape() as tape:
        tape.watch([xs[i] for i in floats] + hs)
        out = _flat(ours(*xs, **call, **({"initial_state": hs} if hs else {})))
        upstream = [np.random.default_rng(2 + k).normal(size=o.shape).astype("float32") for k, o in enumerate(out)]
        loss = ops.add_n([ops.sum(ops.multiply(o, u)) for o, u in zip(out, upstream)])
    grads = tape.gradient(loss, [xs[i] for i in floats] + hs + ours.trainable_weights)

    txs = [torch.tensor(x, requires_grad=x.dtype.kind == "f") for x in inputs]
    ths = [torch.tensor(h, requires_grad=True) for h in init]
    for i, mask in (input_masks or {}).items():
        txs[i]._keras_mask = torch.tensor(mask)
    tcall = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in call.items()}
    t_out = _flat(theirs(*txs, **tcall, **({"initial_state": ths} if ths else {})))
    sum((o * torch.tensor(u)).sum() for o, u in zip(t_out, upstream)).backward()
    t_grads = [txs[i].grad for i in floats] + [h.grad for h in ths] + [w.value.grad for w in theirs.trainable_weights]

    assert len(out) == len(t_out)
    for k, (a, b) in enumerate(zip(out, t_out)):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), atol=atol, rtol=1e-5, err_msg=f"output {k}")
    assert [_unnumbered(w.path) for w in ours.weights] == [_unnumbered(w.path) for w in theirs.weights]
    names = [f"input {i}" for i in floats] + [f"state {i}" for i in range(states)] + \
        [w.path for w in ours.trainable_weights]
    for name, a, b in zip(names, grads, t_grads, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=atol, rtol=1e-4, err_msg=f"gradient of {name}")
    return ours, theirs


RNN_CASES = [
    ({}, None),
    ({"return_sequences": True}, MASK),
    ({"go_backwards": True, "return_sequences": True}, MASK),
    ({"go_backwards": True}, None),
    ({"return_state": True, "return_sequences": True, "zero_output_for_mask": True}, MASK),
    ({"use_bias": False, "activation": "relu"}, MASK),
]


@pytest.mark.parametrize("class_name", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("config, mask", RNN_CASES, ids=lambda v: str(v) if isinstance(v, dict) else None)
def test_recurrent_layer_matches_keras(class_name, config, mask):
    compare(layer(class_name, units=3, **config), [X], {} if mask is None else {"mask": mask})


@pytest.mark.parametrize("class_name", ["SimpleRNN", "LSTM", "GRU"])
def test_initial_states_and_returned_states_match_keras(class_name):
    compare(layer(class_name, units=3, return_state=True, go_backwards=True), [X], {"mask": MASK},
            states=STATES[class_name])


@pytest.mark.parametrize("config", [{"reset_after": False}, {"reset_after": False, "return_sequences": True,
                                                             "recurrent_activation": "linear"}])
def test_gru_without_reset_after_matches_keras(config):
    compare(layer("GRU", units=3, **config), [X], {"mask": MASK}, states=1)


def _same_dropout_masks(gates):  # noqa: D401
    """Give both cells the same dropout masks (Keras caches them on the cell until the call ends)."""
    rng = np.random.default_rng(5)

    def draw(shape, count):
        masks = [((rng.random(shape) > 0.3) / 0.7).astype("float32") for _ in range(count)]
        return masks if count > 1 else masks[0]

    def prepare(ours, theirs):
        cell = ours.cell
        count = gates if cell.implementation == 1 else 1
        inputs = draw((X.shape[0], X.shape[2]), count) if cell.dropout else None
        recurrent = draw((X.shape[0], cell.units), gates) if cell.recurrent_dropout else None
        cell._dropout_mask, cell._recurrent_dropout_mask = inputs, recurrent
        as_torch = lambda m: None if m is None else [torch.tensor(v) for v in m] if isinstance(m, list) \
            else torch.tensor(m)  # noqa: E731
        theirs.cell._dropout_mask, theirs.cell._recurrent_dropout_mask = as_torch(inputs), as_torch(recurrent)
    return prepare


@pytest.mark.parametrize("class_name, gates", [("SimpleRNN", 1), ("LSTM", 4), ("GRU", 3)])
@pytest.mark.parametrize("rates", [(0.3, 0.0), (0.3, 0.4)], ids=["dropout", "recurrent_dropout"])
def test_dropout_masks_apply_as_in_keras(class_name, gates, rates):
    """Keras draws one mask (per gate with recurrent dropout) for the whole sequence; with the same masks
    drawn, both libraries compute the same training step."""
    make = layer(class_name, units=3, dropout=rates[0], recurrent_dropout=rates[1], return_sequences=True)
    compare(make, [X], {"mask": MASK, "training": True}, prepare=_same_dropout_masks(gates))


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul", None])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_matches_keras(merge_mode, return_sequences):
    compare(lambda lib: lib.layers.Bidirectional(lib.layers.LSTM(3, return_sequences=return_sequences),
                                                 merge_mode=merge_mode), [X], {"mask": MASK})


def test_bidirectional_states_and_initial_states_match_keras():
    compare(lambda lib: lib.layers.Bidirectional(lib.layers.GRU(3, return_sequences=True, return_state=True)),
            [X], {"mask": MASK}, states=2)


@pytest.mark.parametrize("inner, shape, mask", [
    (lambda lib: lib.layers.Dense(2, activation="tanh"), (3, 5, 4), None),
    (lambda lib: lib.layers.Dense(2), (3, 5, 4), MASK),
    (lambda lib: lib.layers.Conv1D(2, 2), (2, 3, 6, 4), None),
    (lambda lib: lib.layers.LSTM(2), (2, 3, 4, 5), None),
])
def test_time_distributed_matches_keras(inner, shape, mask):
    x = np.random.default_rng(3).normal(size=shape).astype("float32")
    compare(lambda lib: lib.layers.TimeDistributed(inner(lib)), [x], {} if mask is None else {"mask": mask})


def test_embedding_matches_keras_with_repeated_indices():
    tokens = np.array([[1, 4, 4, 0, 2], [0, 0, 3, 3, 3]], "int32")
    ours, _ = compare(layer("Embedding", input_dim=6, output_dim=3, mask_zero=True), [tokens])
    np.testing.assert_array_equal(ours.compute_mask(tokens).numpy(), tokens != 0)


Q = np.random.default_rng(4).normal(size=(2, 5, 4)).astype("float32")
V = np.random.default_rng(5).normal(size=(2, 3, 6)).astype("float32")
Q_MASK = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], bool)
V_MASK = np.array([[1, 0, 1], [0, 1, 1]], bool)


@pytest.mark.parametrize("config, call", [
    ({"num_heads": 2, "key_dim": 3}, {}),
    ({"num_heads": 2, "key_dim": 3, "value_dim": 2, "output_shape": 7, "use_bias": False}, {}),
    ({"num_heads": 2, "key_dim": 3, "use_gate": True}, {"attention_mask": np.random.default_rng(6).random((2, 5, 3)) > 0.3}),
    ({"num_heads": 1, "key_dim": 4}, {"return_attention_scores": True}),
], ids=["plain", "value_dim-output_shape-no_bias", "gate-attention_mask", "scores"])
def test_multi_head_attention_matches_keras(config, call):
    compare(layer("MultiHeadAttention", **config), [Q, V], call)


@pytest.mark.parametrize("call", [{}, {"return_attention_scores": True}], ids=["fused", "scores"])
def test_multi_head_attention_with_a_value_mask_matches_keras(call):
    compare(layer("MultiHeadAttention", num_heads=2, key_dim=3), [Q, V], call, input_masks={1: V_MASK})


def test_multi_head_attention_with_a_query_mask_matches_keras_and_passes_it_on():
    ours, theirs = compare(layer("MultiHeadAttention", num_heads=2, key_dim=3), [Q, V], {"return_attention_scores": True},
                           input_masks={0: Q_MASK, 1: V_MASK})  # Keras's Softmax path: padded queries get zeros
    q = ops.convert_to_tensor(Q)
    q._keras_mask = Q_MASK
    out = ours(q, V)  # the fused path: padded queries attend uniformly, as in Keras
    tq = torch.tensor(Q)
    tq._keras_mask = torch.tensor(Q_MASK)
    np.testing.assert_allclose(out.numpy(), theirs(tq, torch.tensor(V)).detach().numpy(), atol=2e-5)
    np.testing.assert_array_equal(np.asarray(out._keras_mask), Q_MASK)


def test_fully_masked_query_rows_attend_uniformly_with_zero_gradient():
    """Keras's fused attention gives a query whose keys are all masked the mean of the values; its torch
    backend then passes gradients through the large negative bias, its TensorFlow and JAX backends (and
    kerasckpt) give none."""
    layer = kerasckpt.layers.MultiHeadAttention(1, 2)
    q = ops.convert_to_tensor(Q)
    with GradientTape() as tape:
        tape.watch(q)
        out = layer(q, V, attention_mask=np.zeros((2, 5, 3), bool))
        loss = ops.sum(out)
    values = layer.value_dense(V).numpy().mean(axis=1, keepdims=True)  # (2, 1, heads, dim)
    expected = layer.output_dense(np.broadcast_to(values, (2, 5, 1, 2)).astype("float32")).numpy()
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)
    assert not np.any(tape.gradient(loss, q).numpy())


@pytest.mark.parametrize("config", [{"num_heads": 2, "key_dim": 3, "sliding_window": 2}, {"num_heads": 2, "key_dim": 3}])
def test_causal_attention_matches_keras(config):
    compare(layer("MultiHeadAttention", **config), [Q, Q], {"use_causal_mask": True})


def test_attention_over_two_axes_matches_keras():
    x = np.random.default_rng(7).normal(size=(2, 3, 4, 5)).astype("float32")
    compare(layer("MultiHeadAttention", num_heads=2, key_dim=3, attention_axes=(1, 2)), [x, x])


@pytest.mark.parametrize("config", [
    {"equation": "...b,bc->...c", "output_shape": 3, "bias_axes": "c"},
    {"equation": "abc,cde->abde", "output_shape": (None, 2, 3), "bias_axes": "de", "activation": "relu"},
    {"equation": "ab,bc->ac", "output_shape": 5},
])
def test_einsum_dense_matches_keras(config):
    x = X if config["equation"] != "ab,bc->ac" else X[:, 0]
    compare(layer("EinsumDense", **config), [x])
