"""Layers: lazy build, weights and their paths, default names, numbers against NumPy and Keras,
Dropout's seeded stream, configs, gradients against central differences, and bad input."""
import math

import numpy as np
import pytest

import kerasckpt
from kerasckpt import GradientTape, layers, ops, utils
from kerasckpt.random import SeedGenerator

from conftest import make_model


def _keras():
    return pytest.importorskip("keras")


def _np(t):
    """A kerasckpt or Keras output as a NumPy array."""
    if hasattr(t, "detach"):
        return t.detach().cpu().numpy()
    return np.asarray(t.numpy() if hasattr(t, "numpy") else t)


class Outer(layers.Layer):
    """Own trainable and non-trainable weights created in build, plus a sub-layer built there too."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = layers.Dense(2)

    def build(self, input_shape):
        self.inner.build(input_shape)
        self.counter = self.add_weight((1,), "zeros", trainable=False, name="counter")
        self.scale = self.add_weight((1,), "ones", name="scale")

    def call(self, inputs):
        return ops.multiply(self.inner(inputs), self.scale)


# ---------------------------------------------------------------- building and weights

def test_dense_builds_lazily_on_first_call():
    dense = layers.Dense(3)
    assert not dense.built and dense.weights == []
    out = dense(np.ones((2, 4), "float32"))
    assert dense.built
    assert [w.shape for w in dense.weights] == [(4, 3), (3,)]
    assert out.numpy().shape == (2, 3)


def test_direct_build_marks_the_layer_built_and_the_first_call_does_not_rebuild():
    dense = layers.Dense(3)
    dense.build((None, 4))
    assert dense.built
    kernel = dense.kernel
    dense(np.ones((2, 4), "float32"))
    assert len(dense.weights) == 2 and dense.kernel is kernel


def test_add_weight_defaults_glorot_uniform_kernel_and_zero_bias():
    dense = layers.Dense(50)
    dense.build((None, 30))
    kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
    limit = math.sqrt(6.0 / (30 + 50))
    assert kernel.dtype == np.float32 and bias.dtype == np.float32
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.98 * limit  # 1500 uniform draws reach close to the limit
    assert abs(kernel.std() - limit / math.sqrt(3)) < 0.05 * limit
    assert abs(kernel.mean()) < 0.05 * limit
    np.testing.assert_array_equal(bias, np.zeros(50, "float32"))


def test_add_weight_without_initializer_is_glorot_uniform_for_floats():
    layer = layers.Layer(name="plain")
    w = layer.add_weight((40, 60), name="w")
    limit = math.sqrt(6.0 / 100)
    assert np.abs(w.numpy()).max() <= limit and np.abs(w.numpy()).max() > 0.95 * limit
    assert w.path == "plain/w" and w.trainable


def test_batch_normalization_initial_weights():
    bn = layers.BatchNormalization()
    bn.build((None, 3))
    assert [w.path for w in bn.weights] == ["batch_normalization/gamma", "batch_normalization/beta",
                                           "batch_normalization/moving_mean", "batch_normalization/moving_variance"]
    np.testing.assert_array_equal(bn.get_weights(), [np.ones(3), np.zeros(3), np.zeros(3), np.ones(3)])
    assert [w.trainable for w in bn.weights] == [True, True, False, False]


def test_paths_of_standalone_sequential_and_subclassed_layers():
    dense = layers.Dense(2)
    dense(np.ones((1, 3), "float32"))
    assert [w.path for w in dense.weights] == ["dense/kernel", "dense/bias"]
    utils.clear_session()
    seq = kerasckpt.Sequential([layers.Input((3,)), layers.Dense(2)])
    assert [w.path for w in seq.weights] == ["sequential/dense/kernel", "sequential/dense/bias"]
    utils.clear_session()
    sub = make_model("subclass")
    sub(np.ones((2, 6), "float32"))
    assert sub.weights[0].path == "sub_mlp/dense/kernel"
    assert sub.weights[-1].path == "sub_mlp/dense_1/bias"


@pytest.mark.parametrize("kind", ["sequential", "subclass"])
def test_model_build_gives_the_same_paths_as_a_first_call(kind):
    built = make_model(kind)
    built.build((None, 6))
    utils.clear_session()
    called = make_model(kind)
    called(np.ones((2, 6), "float32"))
    assert built.built
    assert [w.path for w in built.weights] == [w.path for w in called.weights]
    assert [w.shape for w in built.weights] == [w.shape for w in called.weights]


def test_unique_default_names_and_clear_session():
    assert [layers.Dense(1).name for _ in range(3)] == ["dense", "dense_1", "dense_2"]
    assert layers.BatchNormalization().name == "batch_normalization"
    assert layers.Dropout(0.1).name == "dropout"
    assert layers.Dense(1, name="head").name == "head"
    utils.clear_session()
    assert layers.Dense(1).name == "dense"


def test_weights_order_is_own_trainable_then_own_non_trainable_then_sub_layers():
    outer = Outer()
    outer(np.ones((1, 3), "float32"))
    assert [w.path for w in outer.weights] == ["outer/scale", "outer/counter", "outer/dense/kernel",
                                               "outer/dense/bias"]
    assert [w.path for w in outer.trainable_weights] == ["outer/scale", "outer/dense/kernel", "outer/dense/bias"]
    assert [w.path for w in outer.non_trainable_weights] == ["outer/counter"]


def test_weights_order_matches_keras():
    keras = _keras()

    class KOuter(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = keras.layers.Dense(2)

        def build(self, input_shape):
            self.inner.build(input_shape)
            self.counter = self.add_weight((1,), "zeros", trainable=False, name="counter")
            self.scale = self.add_weight((1,), "ones", name="scale")

        def call(self, inputs):
            return self.inner(inputs) * self.scale

    keras.utils.clear_session()
    k = KOuter(name="outer")
    k(np.ones((1, 3), "float32"))
    ours = Outer(name="outer")
    ours(np.ones((1, 3), "float32"))
    for attr in ("weights", "trainable_weights", "non_trainable_weights"):
        assert [w.path for w in getattr(ours, attr)] == [w.path for w in getattr(k, attr)], attr


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclass"])
def test_trainable_false_propagates_to_sub_layers_and_weights(kind):
    model = make_model(kind)
    model.build((None, 6))
    assert len(model.trainable_weights) == 6 and len(model.non_trainable_weights) == 2
    model.trainable = False
    assert model.trainable_weights == []
    assert len(model.non_trainable_weights) == 8
    assert all(not layer.trainable for layer in model.layers)
    model.trainable = True
    assert len(model.trainable_weights) == 6
    first_dense = next(layer for layer in model.layers if isinstance(layer, layers.Dense))
    first_dense.trainable = False
    assert [w.path.split("/")[-1] for w in model.trainable_weights] == ["gamma", "beta", "kernel", "bias"]
    assert [w.path.split("/")[-1] for w in model.non_trainable_weights] == [
        "kernel", "bias", "moving_mean", "moving_variance"]


def test_frozen_layer_keeps_its_weights_through_fit():
    model = make_model("sequential")
    model.layers[0].trainable = False
    model.compile("sgd", "sparse_categorical_crossentropy")
    before = model.get_weights()
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    model.fit(x, np.arange(16) % 3, epochs=1, verbose=0)
    after = model.get_weights()
    np.testing.assert_array_equal(before[0], after[0])  # frozen kernel
    np.testing.assert_array_equal(before[1], after[1])  # frozen bias
    assert not np.array_equal(before[-2], after[-2])  # the last Dense trained


def test_trainable_false_in_constructor():
    dense = layers.Dense(2, trainable=False)
    dense.build((None, 3))
    assert dense.trainable_weights == [] and len(dense.non_trainable_weights) == 2
    assert dense.get_config()["trainable"] is False


# ---------------------------------------------------------------- numbers

def test_dense_matches_numpy():
    dense = layers.Dense(3, activation="relu")
    x = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    out = dense(x).numpy()
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(out, np.maximum(x @ kernel + bias, 0), rtol=1e-6, atol=1e-6)
    no_bias = layers.Dense(3, use_bias=False)
    no_bias(x)
    assert [w.path.split("/")[-1] for w in no_bias.weights] == ["kernel"]
    np.testing.assert_allclose(no_bias(x).numpy(), x @ no_bias.kernel.numpy(), rtol=1e-6)


def test_dense_on_rank_3_inputs_acts_on_the_last_axis():
    dense = layers.Dense(2)
    x = np.random.default_rng(2).normal(size=(2, 3, 4)).astype("float32")
    out = dense(x).numpy()
    assert out.shape == (2, 3, 2)
    np.testing.assert_allclose(out, x @ dense.kernel.numpy() + dense.bias.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name, ref", [
    ("relu", lambda x: np.maximum(x, 0)),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    ("tanh", np.tanh),
    ("softmax", lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    ("linear", lambda x: x),
    ("gelu", lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
])
def test_activation_layer_matches_numpy(name, ref):
    x = np.random.default_rng(3).normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(layers.Activation(name)(x).numpy(), ref(x.astype("float64")), rtol=1e-5, atol=1e-6)


def test_flatten_matches_numpy_reshape():
    x = np.arange(24, dtype="float32").reshape(2, 3, 4)
    out = layers.Flatten()(x).numpy()
    np.testing.assert_array_equal(out, x.reshape(2, 12))


def _bn_reference(x, gamma, beta, mean, var, eps):
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def test_batch_normalization_training_and_inference_match_numpy():
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(8, 3)) * 2 + 1).astype("float32")
    bn = layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    bn.build((None, 3))
    gamma, beta = np.array([1.5, 0.5, 2.0], "float32"), np.array([0.1, -0.2, 0.3], "float32")
    bn.set_weights([gamma, beta, np.zeros(3, "float32"), np.ones(3, "float32")])
    out = bn(x, training=True).numpy()
    mean, var = x.mean(0), x.var(0)  # biased variance, as Keras
    np.testing.assert_allclose(out, _bn_reference(x, gamma, beta, mean, var, 1e-3), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.9 + 0.1 * var, rtol=1e-5)
    moving = [bn.moving_mean.numpy(), bn.moving_variance.numpy()]
    inference = bn(x).numpy()
    np.testing.assert_allclose(inference, _bn_reference(x, gamma, beta, moving[0], moving[1], 1e-3), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), moving[0])  # inference leaves the statistics alone
    np.testing.assert_array_equal(bn.moving_variance.numpy(), moving[1])


def test_batch_normalization_frozen_uses_moving_statistics_in_training():
    x = np.random.default_rng(5).normal(size=(6, 2)).astype("float32")
    bn = layers.BatchNormalization(trainable=False)
    bn.build((None, 2))
    out = bn(x, training=True).numpy()
    np.testing.assert_allclose(out, x / np.sqrt(1 + 1e-3), rtol=1e-6)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), np.zeros(2))


def test_layers_match_keras_for_the_same_weights():
    keras = _keras()
    rng = np.random.default_rng(6)
    x = (rng.normal(size=(7, 4)) * 3 - 1).astype("float32")
    for ours, theirs in [(layers.Dense(3, activation="tanh"), keras.layers.Dense(3, activation="tanh")),
                         (layers.Activation("softmax"), keras.layers.Activation("softmax")),
                         (layers.Flatten(), keras.layers.Flatten())]:
        ours.build((None, 4))
        theirs.build((None, 4))
        theirs.set_weights(ours.get_weights())
        np.testing.assert_allclose(ours(x).numpy(), _np(theirs(x)), rtol=1e-5, atol=1e-6)

    ours, theirs = layers.BatchNormalization(momentum=0.8), keras.layers.BatchNormalization(momentum=0.8)
    ours.build((None, 4))
    theirs.build((None, 4))
    weights = [rng.normal(size=4).astype("float32") for _ in range(3)] + [rng.uniform(0.5, 2, 4).astype("float32")]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    for _ in range(2):  # two training steps: outputs and moving statistics
        np.testing.assert_allclose(ours(x, training=True).numpy(), _np(theirs(x, training=True)), rtol=1e-5,
                                   atol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours(x).numpy(), _np(theirs(x, training=False)), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- Dropout

def test_dropout_same_seed_same_mask_and_stream_advances():
    x = np.ones((6, 10), "float32")
    a, b, c = layers.Dropout(0.5, seed=7), layers.Dropout(0.5, seed=7), layers.Dropout(0.5, seed=8)
    first = a(x, training=True).numpy()
    np.testing.assert_array_equal(first, b(x, training=True).numpy())
    assert not np.array_equal(first, c(x, training=True).numpy())
    assert a.seed_generator.get_state() == {"seed": 7, "counter": 1}
    second = a(x, training=True).numpy()
    assert a.seed_generator.get_state() == {"seed": 7, "counter": 2}
    assert not np.array_equal(first, second)  # a new mask per call


def test_dropout_scales_kept_units_and_drops_about_rate():
    x = np.random.default_rng(9).uniform(1, 2, size=(200, 50)).astype("float32")
    out = layers.Dropout(0.3, seed=1)(x, training=True).numpy()
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / 0.7, rtol=1e-6)
    assert abs((~kept).mean() - 0.3) < 0.02


def test_dropout_is_identity_in_inference_and_at_rate_zero():
    x = np.random.default_rng(10).normal(size=(4, 5)).astype("float32")
    drop = layers.Dropout(0.5, seed=1)
    np.testing.assert_array_equal(drop(x).numpy(), x)
    np.testing.assert_array_equal(drop(x, training=False).numpy(), x)
    assert drop.seed_generator.counter == 0  # inference draws nothing
    np.testing.assert_array_equal(layers.Dropout(0.0)(x, training=True).numpy(), x)


def test_dropout_noise_shape_broadcasts_the_mask():
    out = layers.Dropout(0.5, noise_shape=(None, 1), seed=3)(np.ones((8, 6), "float32"), training=True).numpy()
    for row in out:
        assert len(set(row.tolist())) == 1  # each row entirely kept (2.0) or dropped (0.0)
    assert set(out[:, 0].tolist()) <= {0.0, 2.0}


def test_dropout_default_seed_follows_set_random_seed():
    x = np.ones((5, 5), "float32")
    utils.set_random_seed(3)
    first = layers.Dropout(0.5)(x, training=True).numpy()
    utils.set_random_seed(3)
    np.testing.assert_array_equal(layers.Dropout(0.5)(x, training=True).numpy(), first)


# ---------------------------------------------------------------- gradients

def _central_difference(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        grad[i] = (f(up) - f(down)) / (2 * eps)
    return grad


@pytest.mark.parametrize("training", [True, False])
def test_batch_normalization_gradients_match_central_differences(training):
    rng = np.random.default_rng(11)
    x0 = rng.normal(size=(5, 3))
    weights = rng.normal(size=(5, 3))  # a non-uniform upstream gradient
    bn = layers.BatchNormalization(dtype="float64")
    bn.build((None, 3))
    bn.set_weights([rng.uniform(0.5, 2, 3), rng.normal(size=3), rng.normal(size=3), rng.uniform(0.5, 2, 3)])
    frozen = bn.get_weights()

    def loss_of(x, gamma=None, beta=None):
        bn.set_weights([frozen[0] if gamma is None else gamma, frozen[1] if beta is None else beta] + frozen[2:])
        return float(np.sum(bn(kerasckpt.Variable(x, dtype="float64"), training=training).numpy() * weights))

    x = kerasckpt.Variable(x0, dtype="float64")
    with GradientTape() as tape:
        tape.watch(x)
        loss = ops.sum(ops.multiply(bn(x, training=training), weights))
    gx, ggamma, gbeta = tape.gradient(loss, [x, bn.gamma, bn.beta])
    np.testing.assert_allclose(_np(gx), _central_difference(loss_of, x0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(_np(ggamma), _central_difference(lambda g: loss_of(x0, gamma=g), frozen[0]),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(_np(gbeta), _central_difference(lambda b: loss_of(x0, beta=b), frozen[1]),
                               rtol=1e-5, atol=1e-7)


def test_dropout_gradient_matches_central_differences_for_the_same_mask():
    rng = np.random.default_rng(12)
    x0 = rng.normal(size=(4, 6))
    weights = rng.normal(size=(4, 6))
    drop = layers.Dropout(0.4, seed=5)
    state = drop.seed_generator.get_state()

    def loss_of(x):
        drop.seed_generator.set_state(state)  # replay the same mask
        return float(np.sum(drop(kerasckpt.Variable(x, dtype="float64"), training=True).numpy() * weights))

    x = kerasckpt.Variable(x0, dtype="float64")
    drop.seed_generator.set_state(state)
    with GradientTape() as tape:
        tape.watch(x)
        loss = ops.sum(ops.multiply(drop(x, training=True), weights))
    grad = _np(tape.gradient(loss, x))
    np.testing.assert_allclose(grad, _central_difference(loss_of, x0), rtol=1e-6, atol=1e-8)
    assert 0 < np.count_nonzero(grad) < grad.size


# ---------------------------------------------------------------- configs

CONFIG_CASES = {
    "Dense": (lambda L: L.Dense(4, activation="relu", use_bias=False, name="d"), (None, 3)),
    "Activation": (lambda L: L.Activation("tanh", name="a"), (None, 3)),
    "Dropout": (lambda L: L.Dropout(0.25, noise_shape=None, seed=3, name="dr"), (None, 3)),
    "Flatten": (lambda L: L.Flatten(name="f"), (None, 3, 2)),
    "BatchNormalization": (lambda L: L.BatchNormalization(momentum=0.9, epsilon=1e-4, center=False, name="bn"),
                           (None, 3)),
    "InputLayer": (lambda L: L.InputLayer(shape=(3,), name="in"), None),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_get_config_from_config_round_trip(case):
    make, _ = CONFIG_CASES[case]
    layer = make(layers)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert clone.name == layer.name


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_keys_match_keras(case):
    keras = _keras()
    make, shape = CONFIG_CASES[case]
    ours, theirs = make(layers), make(keras.layers)
    assert set(ours.get_config()) == set(theirs.get_config())
    # a Keras config loads here and gives the same config back (up to the list/tuple of shapes)
    clone = type(ours).from_config(theirs.get_config())
    for key, value in theirs.get_config().items():
        mine = clone.get_config()[key]
        if key == "batch_shape":
            assert tuple(mine) == tuple(value)
        elif isinstance(value, dict):
            assert mine["class_name"] == value["class_name"] and mine["config"] == value["config"], key
        else:
            assert mine == value, key


def test_dense_config_values():
    config = layers.Dense(4, activation="relu", name="d").get_config()
    assert config["units"] == 4 and config["activation"] == "relu" and config["use_bias"] is True
    assert config["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert config["bias_initializer"]["class_name"] == "Zeros"
    assert config["dtype"]["config"]["name"] == "float32"


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("units", [0, -3, 2.5, "4", True, None])
def test_dense_rejects_bad_units(units):
    with pytest.raises(ValueError, match=f"units={units!r}"):
        layers.Dense(units)


def test_dense_wrong_input_width_names_layer_and_shapes():
    dense = layers.Dense(2, name="head")
    dense(np.ones((1, 3), "float32"))
    with pytest.raises(ValueError, match=r"'head'.*last axis is 3.*\(1, 4\)"):
        dense(np.ones((1, 4), "float32"))


def test_batch_normalization_wrong_input_width_names_layer_and_shapes():
    bn = layers.BatchNormalization(name="norm")
    bn(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match=r"'norm'.*3.*\(2, 4\)"):
        bn(np.ones((2, 4), "float32"))


def test_model_with_wrong_input_width_names_the_layer():
    model = make_model("sequential")
    with pytest.raises(ValueError, match=r"'dense'.*\(2, 5\)"):
        model(np.ones((2, 5), "float32"))


@pytest.mark.parametrize("rate", [1.5, 1.0, -0.1, "0.5"])
def test_dropout_rejects_bad_rate(rate):
    with pytest.raises(ValueError, match=f"rate={rate!r}"):
        layers.Dropout(rate)


def test_unknown_activation_names_the_value_and_the_choices():
    with pytest.raises(ValueError, match="'relux'.*relu"):
        layers.Dense(2, activation="relux")
    with pytest.raises(ValueError, match="'swishy'"):
        layers.Activation("swishy")


def test_unknown_initializer_names_the_value_and_the_choices():
    with pytest.raises(ValueError, match="'glorot_uniformm'.*glorot_uniform"):
        layers.Dense(2, kernel_initializer="glorot_uniformm")
    with pytest.raises(ValueError, match="'one'"):
        layers.BatchNormalization(gamma_initializer="one")


def test_unexpected_keyword_arguments_are_refused():
    with pytest.raises(TypeError, match="Dense.*'unitz'"):
        layers.Dense(2, unitz=3)
    with pytest.raises(TypeError, match="Dropout.*'p'"):
        layers.Dropout(0.5, p=0.1)


def test_input_shape_keyword_builds_a_sequential():
    model = kerasckpt.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(1)])
    assert model.built and [w.shape for w in model.weights] == [(3, 4), (4,), (4, 1), (1,)]


def test_input_gives_a_symbolic_tensor_with_a_batch_axis():
    x = layers.Input(shape=(3,), name="features")
    assert x.shape == (None, 3) and x.name == "features"
    y = x + 1  # an op node, as in Keras 3
    assert y.shape == (None, 3) and type(y._keras_history[0]).__name__ == "Add"
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(x)


def test_seed_generator_replays_from_its_state():
    gen = SeedGenerator(42)
    first = gen.next().random(4)
    state = gen.get_state()
    after = [gen.next().random(4) for _ in range(2)]
    gen.set_state(state)
    np.testing.assert_array_equal([gen.next().random(4) for _ in range(2)], after)
    gen.set_state({"seed": 42, "counter": 0})
    np.testing.assert_array_equal(gen.next().random(4), first)


# ---------------------------------------------------------------- input dtypes: Keras's casts

class Lookup(layers.Layer):
    """A custom layer taking integer indices, as an embedding does: its inputs must stay integers."""

    def build(self, input_shape):
        self.table = self.add_weight((5, 2), name="table")

    def call(self, inputs):
        return ops.take(self.table, inputs, axis=0)


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclass"])
def test_integer_and_bool_inputs_give_float32_outputs(kind):
    model = make_model(kind, features=3)
    x = np.array([[1, 2, 3], [0, -1, 4]])
    out = model.predict(x, verbose=0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, model.predict(x.astype("float32"), verbose=0))
    assert model(x).numpy().dtype == np.float32 and model(x > 0).numpy().dtype == np.float32
    assert model.predict_on_batch(x).dtype == np.float32


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclass"])
def test_fit_on_integer_inputs_matches_fit_on_the_same_values_as_float32(kind):
    rng = np.random.default_rng(3)
    x, y = rng.integers(-3, 4, size=(24, 6)), rng.integers(0, 3, size=24)
    runs = []
    for data in (x, x.astype("float32")):
        utils.clear_session()
        utils.set_random_seed(7)
        model = make_model(kind, dropout=0.25)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        history = model.fit(data, y, batch_size=8, epochs=2, verbose=0)
        runs.append((history.history["loss"], model.get_weights()))
    assert runs[0][0] == runs[1][0]
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_dense_casts_integers_to_its_dtype_and_symbolic_outputs_agree():
    x = np.array([[1, 2, 3]])
    dense = layers.Dense(2)
    assert dense(x).numpy().dtype == np.float32
    np.testing.assert_array_equal(dense(x).numpy(), dense(x.astype("float32")).numpy())
    assert layers.Dense(2)(layers.Input(shape=(3,), dtype="int32")).dtype == "float32"
    assert layers.Dense(2, dtype="float64")(x).numpy().dtype == np.float64
    assert layers.Dense(2)(ops.cast(np.array([[1, 0, 1]]), "int32")).numpy().dtype == np.float32  # a tensor too


def test_integer_inputs_stay_integers_where_keras_keeps_them():
    x = np.array([[1, 2, 3]])
    assert layers.Flatten()(x).numpy().dtype == x.dtype
    assert layers.Activation("relu")(x).numpy().dtype == x.dtype
    assert layers.Dropout(0.5)(x).numpy().dtype == x.dtype  # inference passes the inputs on
    inp = layers.Input(shape=(3,), dtype="int32")
    model = kerasckpt.Model(inp, layers.Flatten()(Lookup()(inp)))
    table = model.layers[1].table.numpy()
    np.testing.assert_array_equal(model.predict(x, verbose=0), table[x[0]].reshape(1, -1))


def test_dropout_in_training_scales_integer_inputs_in_floating_point():
    out = layers.Dropout(0.3, seed=1)(np.ones((20, 50), dtype="int64"), training=True).numpy()
    assert out.dtype == np.float32
    assert set(np.unique(out)) == {0.0, np.float32(1 / 0.7)}


# ---------------------------------------------------------------- add_weight arguments kerasckpt does not apply

@pytest.mark.parametrize("arg, value", [("regularizer", "l2"), ("constraint", "non_neg"),
                                        ("overwrite_with_gradient", True)])
def test_add_weight_refuses_what_it_would_not_apply(arg, value):
    layer = layers.Layer(name="plain")
    with pytest.raises(ValueError, match=rf"layer 'plain' does not support `{arg}`.*{value!r}.*Remove the argument"):
        layer.add_weight((2,), name="w", **{arg: value})
    assert layer.weights == []


def test_add_weight_accepts_keras_keywords_that_change_nothing_and_refuses_unknown_ones():
    layer = layers.Layer(name="plain")
    w = layer.add_weight((2,), "ones", name="w", regularizer=None, constraint=None, autocast=False,
                         aggregation="mean", overwrite_with_gradient=False)
    np.testing.assert_array_equal(w.numpy(), np.ones(2, "float32"))
    with pytest.raises(TypeError, match="bogus"):
        layer.add_weight((2,), name="v", bogus=1)


def test_batch_normalization_of_integer_inputs_is_float32_and_finite():
    """Keras casts integer inputs to float32 here; an integer epsilon would be 0 and divide by zero."""
    bn = kerasckpt.layers.BatchNormalization()
    x = np.array([[1, 2], [1, 4], [1, 6]])
    out = np.asarray(bn(x, training=True))
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    np.testing.assert_allclose(out, np.asarray(bn(x.astype("float32"), training=True)), rtol=1e-6)


def test_a_layer_frozen_before_it_is_built_creates_frozen_variables_and_fit_leaves_them():
    """Keras marks a frozen layer's new variables non-trainable; a frozen layer rebuilt from a config is one."""
    x = np.random.default_rng(0).random((16, 6)).astype("float32")
    y = np.random.default_rng(1).random((16, 3)).astype("float32")
    frozen = kerasckpt.layers.Dense(4, trainable=False)
    model = kerasckpt.Sequential([kerasckpt.layers.Input(shape=(6,)), frozen, kerasckpt.layers.Dense(3)])
    assert [v.trainable for v in frozen.weights] == [False, False]
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2
    model.compile("adam", "mse")
    before = [w.copy() for w in frozen.get_weights()]
    model.fit(x, y, epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen.get_weights(), before))
    frozen.trainable = True  # unfreezing makes them trainable again
    assert [v.trainable for v in frozen.weights] == [True, True] and len(model.trainable_weights) == 4


def test_a_model_with_a_frozen_layer_reloads_with_its_optimizer_state(tmp_path):
    x = np.random.default_rng(0).random((16, 6)).astype("float32")
    y = np.random.default_rng(1).random((16, 3)).astype("float32")
    model = kerasckpt.Sequential([kerasckpt.layers.Input(shape=(6,)), kerasckpt.layers.Dense(4),
                                  kerasckpt.layers.Dense(3)])
    model.layers[0].trainable = False
    model.compile("adam", "mse")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "f.keras")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Skipping the optimizer state" would be a warning
        loaded = kerasckpt.models.load_model(tmp_path / "f.keras")
    frozen = loaded.layers[0]
    assert not frozen.trainable and [v.trainable for v in frozen.weights] == [False, False]
    assert [np.asarray(v) for v in loaded.optimizer.variables] and all(
        np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(loaded.optimizer.variables, model.optimizer.variables))
    before = [w.copy() for w in frozen.get_weights()]
    loaded.fit(x, y, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen.get_weights(), before))


class _WithPrivate(kerasckpt.Model):
    """KERAS_FORMATS.md §1.4's exp6 shape: a `_`-prefixed sub-layer among public ones."""

    def __init__(self):
        super().__init__()
        self.proj, self.head = kerasckpt.layers.Dense(4), kerasckpt.layers.Dense(4)
        self._private = kerasckpt.layers.Dense(4)
        self.zz, self.out = kerasckpt.layers.BatchNormalization(), kerasckpt.layers.Dense(2)

    def call(self, x, training=False):
        return self.out(self.zz(self._private(self.head(self.proj(x))), training=training))


def test_a_private_attribute_layer_is_tracked_trained_and_saved_at_keras_path(tmp_path):
    import h5py
    x = np.random.default_rng(0).random((8, 3)).astype("float32")
    model = _WithPrivate()
    model(x)
    assert model._private in model.layers and all(any(v is w for w in model.trainable_weights)
                                                  for v in model._private.weights)
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5") as f:
        paths = []
        f.visit(lambda n: paths.append(n) if n.endswith("vars") else None)
    # what Keras 3.15.1 writes for the same model (KERAS_FORMATS.md §1.4; checked live below)
    assert paths == ["head/vars", "layers/batch_normalization/vars", "layers/dense/vars", "layers/dense_2/vars",
                     "layers/dense_3/vars", "vars"]
    for path in (tmp_path / "w.weights.h5", tmp_path / "ckpt"):
        model.save_weights(path) if path.name == "ckpt" else None
        twin = _WithPrivate()
        twin(x)
        twin.load_weights(path)
        np.testing.assert_array_equal(np.asarray(twin(x)), np.asarray(model(x)))


def test_internal_attributes_are_not_tracked_as_sub_layers():
    model = kerasckpt.Sequential([kerasckpt.layers.Input(shape=(3,)), kerasckpt.layers.Dense(2)])
    model.compile("adam", "mse")
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), verbose=0)
    assert [type(l).__name__ for l in model.layers] == ["Dense"] and len(model.weights) == 2
    assert not [name for name in model._tracked if name.startswith("_")]


@pytest.mark.keras
def test_a_private_attribute_layer_loads_in_keras_with_the_same_predictions(tmp_path):
    keras = pytest.importorskip("keras")

    class KerasWithPrivate(keras.Model):
        def __init__(self):
            super().__init__()
            self.proj, self.head = keras.layers.Dense(4), keras.layers.Dense(4)
            self._private = keras.layers.Dense(4)
            self.zz, self.out = keras.layers.BatchNormalization(), keras.layers.Dense(2)

        def call(self, x, training=False):
            return self.out(self.zz(self._private(self.head(self.proj(x))), training=training))

    x = np.random.default_rng(0).random((8, 3)).astype("float32")
    ours = _WithPrivate()
    ours(x)
    ours.save_weights(tmp_path / "w.weights.h5")
    theirs = KerasWithPrivate()
    theirs(x)
    theirs.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)), np.asarray(ours.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)


def test_dense_from_a_keras_lora_config_warns_and_a_quantized_one_is_refused():
    with pytest.warns(UserWarning, match=r"LoRA \(lora_rank=2\) is not implemented.*whole kernel"):
        dense = kerasckpt.layers.Dense(3, lora_rank=2, lora_alpha=2.0)
    assert dense.units == 3
    with pytest.raises(ValueError, match="does not support quantized layers.*quantization_config="):
        kerasckpt.layers.Dense(3, quantization_config={"class_name": "Int8QuantizationConfig"})
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kerasckpt.layers.Dense(3, lora_rank=None, lora_alpha=None, quantization_config=None)  # Keras's defaults
