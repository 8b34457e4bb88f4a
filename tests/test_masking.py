"""Keras masks: attached to layer outputs, filled into `mask=` arguments and passed on, as Keras 3 does."""
import warnings

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.layers.masking import get_keras_mask

TOKENS = np.array([[3, 1, 0, 0], [2, 0, 0, 0], [4, 4, 4, 1]])
EXPECTED = TOKENS != 0


class MaskProbe(layers.Layer):
    """Passes its input through and records the `mask` argument it received."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.seen = []

    def call(self, inputs, mask=None):
        self.seen.append(None if mask is None else np.asarray(getattr(mask, "value", mask)))
        return inputs * 1  # a new tensor: its mask comes from compute_mask


class Pair(layers.Layer):
    """A two-tensor call: Keras fills `query_mask` and `value_mask` from the tensors' masks."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = {}

    def call(self, query, value, query_mask=None, value_mask=None):
        self.seen = {"query": query_mask, "value": value_mask}
        return query


def _model(kind, probe):
    if kind == "sequential":
        return kerasckpt.Sequential([layers.Input((None,), dtype="int32"), layers.Embedding(5, 3, mask_zero=True),
                                     layers.Dense(2), layers.Dropout(0.5), layers.Activation("tanh"),
                                     layers.BatchNormalization(), probe])
    if kind == "functional":
        inp = layers.Input((None,), dtype="int32")
        x = layers.Embedding(5, 3, mask_zero=True)(inp)
        x = layers.BatchNormalization()(layers.Activation("tanh")(layers.Dropout(0.5)(layers.Dense(2)(x))))
        return kerasckpt.Model(inp, probe(x))

    class Sub(kerasckpt.Model):
        def __init__(self):
            super().__init__()
            self.embed, self.dense, self.probe = layers.Embedding(5, 3, mask_zero=True), layers.Dense(2), probe

        def call(self, inputs, training=False):
            return self.probe(self.dense(self.embed(inputs)))
    return Sub()


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclass"])
@pytest.mark.parametrize("training", [False, True])
def test_embedding_mask_reaches_layers_downstream_through_masking_layers(kind, training):
    probe = MaskProbe()
    model = _model(kind, probe)
    out = model(TOKENS, training=training)
    np.testing.assert_array_equal(probe.seen[-1], EXPECTED)
    np.testing.assert_array_equal(np.asarray(get_keras_mask(out).value), EXPECTED)  # the model's output keeps it


def test_predict_and_fit_run_masked_models():
    probe = MaskProbe()
    model = _model("functional", probe)
    model.compile("adam", "mse")
    model.fit(TOKENS, np.zeros((3, 4, 2), "float32"), epochs=1, shuffle=False, verbose=0)
    np.testing.assert_array_equal(probe.seen[-1], EXPECTED)
    model.predict(TOKENS[:2], verbose=0)
    np.testing.assert_array_equal(probe.seen[-1], EXPECTED[:2])


def test_a_layer_without_mask_support_drops_the_mask_with_kerass_warning():
    probe = MaskProbe()
    embedded = layers.Embedding(5, 3, mask_zero=True)(TOKENS)
    with pytest.warns(UserWarning, match="'flatten' .*does not support masking"):
        flat = layers.Flatten()(embedded)
    assert get_keras_mask(flat) is None
    probe(flat)
    assert probe.seen[-1] is None


def test_no_mask_no_warning_and_mask_zero_false_attaches_none():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = layers.Flatten()(layers.Embedding(5, 3)(TOKENS))
    assert get_keras_mask(out) is None


def test_an_explicit_mask_argument_wins_over_the_attached_mask():
    probe = MaskProbe()
    embedded = layers.Embedding(5, 3, mask_zero=True)(TOKENS)
    mine = np.ones(TOKENS.shape, bool)
    out = probe(embedded, mask=mine)
    np.testing.assert_array_equal(probe.seen[-1], mine)
    np.testing.assert_array_equal(np.asarray(get_keras_mask(out)), mine)  # compute_mask gets the explicit one


def test_several_tensor_arguments_fill_their_named_masks():
    pair = Pair()
    query = layers.Embedding(5, 3, mask_zero=True)(TOKENS)
    value = layers.Embedding(5, 3)(TOKENS)
    with pytest.warns(UserWarning, match="'pair'"):
        pair(query, value)
    np.testing.assert_array_equal(np.asarray(pair.seen["query"].value), EXPECTED)
    assert pair.seen["value"] is None


def test_models_take_a_mask_for_their_inputs():
    for kind in ("sequential", "functional"):
        probe = MaskProbe()
        if kind == "sequential":
            model = kerasckpt.Sequential([layers.Input((4, 2)), layers.Dense(3), probe])
        else:
            inp = layers.Input((4, 2))
            model = kerasckpt.Model(inp, probe(layers.Dense(3)(inp)))
        mask = np.array([[True, False, True, True]])
        with pytest.warns(UserWarning, match="does not support masking"):  # a model does not, in Keras either
            model(np.ones((1, 4, 2)), mask=mask)
        np.testing.assert_array_equal(probe.seen[-1], mask)


def test_an_integer_input_cast_by_a_layer_keeps_its_mask():
    probe = MaskProbe()
    tokens = layers.Activation("linear")(TOKENS)  # an integer tensor
    tokens._keras_mask = EXPECTED
    probe(layers.Dense(2)(tokens))  # Dense casts integers to float32
    np.testing.assert_array_equal(probe.seen[-1], EXPECTED)


def test_symbolic_tensors_carry_masks_and_unknown_lengths():
    inp = layers.Input((None,), dtype="int32")
    x = layers.Embedding(5, 3, mask_zero=True)(inp)
    assert x.shape == (None, None, 3)
    assert x._keras_mask.shape == (None, None) and x._keras_mask.dtype == "bool"
    y = layers.Dense(2)(x)
    assert y.shape == (None, None, 2) and y._keras_mask.shape == (None, None)
    assert layers.Flatten()(layers.Embedding(5, 3)(layers.Input((6,), dtype="int32"))).shape == (None, 18)


def test_sequential_infers_unknown_lengths():
    model = kerasckpt.Sequential([layers.Input((None, 4)), layers.Dense(2)])
    assert model.layers[0]._output_shape == (None, None, 2)


def test_masks_match_keras():
    keras = pytest.importorskip("keras")

    class KerasProbe(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True
            self.seen = None

        def call(self, inputs, mask=None):
            self.seen = None if mask is None else keras.ops.convert_to_numpy(mask)
            return inputs

    theirs, ours = KerasProbe(), MaskProbe()
    for lib, probe in ((keras, theirs), (kerasckpt, ours)):
        inp = lib.layers.Input((None,), dtype="int32")
        x = lib.layers.Dense(2)(lib.layers.Embedding(5, 3, mask_zero=True)(inp))
        lib.Model(inp, probe(x))(TOKENS)
    np.testing.assert_array_equal(ours.seen[-1], theirs.seen)


def test_losses_and_metrics_leave_masked_entries_out():
    def build(lib):
        inp = lib.layers.Input((4,), dtype="int32")
        return lib.Model(inp, lib.layers.Dense(2)(lib.layers.Embedding(5, 3, mask_zero=True)(inp)))

    model = build(kerasckpt)
    model.compile("sgd", "mse", metrics=["mae"])
    target = np.random.default_rng(0).normal(size=(3, 4, 2)).astype("float32")
    loss, mae = model.evaluate(TOKENS, target, verbose=0)
    pred = model.predict(TOKENS, verbose=0)
    assert loss == pytest.approx(np.mean(((pred - target) ** 2).mean(-1)[EXPECTED]), rel=1e-5)
    assert mae == pytest.approx(np.mean(np.abs(pred - target).mean(-1)[EXPECTED]), rel=1e-5)
    keras = pytest.importorskip("keras")
    twin = build(keras)
    twin.compile("sgd", "mse", metrics=["mae"])
    twin.set_weights(model.get_weights())
    assert twin.evaluate(TOKENS, target, verbose=0) == pytest.approx([loss, mae], rel=1e-5)
