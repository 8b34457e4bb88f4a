"""kerasckpt.losses: values, reductions, gradients, configs and errors; Keras 3 as the oracle."""
import math
import os

import numpy as np
import pytest

from kerasckpt import losses
from kerasckpt.autograd import GradientTape
from kerasckpt.variables import Variable

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _probs(shape, rng=RNG):
    x = rng.random(shape) + 0.05
    return (x / x.sum(-1, keepdims=True)).astype("float32")


def _onehot(labels, n):
    return np.eye(n, dtype="float32")[labels]


# ---------------------------------------------------------------- hand-computed values (no Keras)

def test_mse_mae_documented_values():
    assert float(losses.MeanSquaredError()([1.0, 0.0, 1.0], [0.9, 0.1, 0.8])) == pytest.approx(0.02, rel=1e-6)
    assert float(losses.MeanAbsoluteError()([1.0, 0.3, 1.0], [1.9, 0.3, 1.8])) == pytest.approx(0.5666667, rel=1e-6)
    per_sample = losses.mean_squared_error(np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([[1.0, 1.0], [1.0, 0.0]]))
    np.testing.assert_allclose(per_sample.numpy(), [0.5, 0.5])


def test_categorical_and_sparse_documented_values():
    y_pred = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], "float32")
    cce = losses.CategoricalCrossentropy()
    assert float(cce(_onehot([1, 2], 3), y_pred)) == pytest.approx(1.1769392, rel=1e-6)
    weighted = cce(_onehot([1, 2], 3), y_pred, sample_weight=np.array([0.3, 0.7]))
    assert float(weighted) == pytest.approx(0.8135, abs=1e-4)
    per_sample = losses.CategoricalCrossentropy(reduction=None)(_onehot([1, 2], 3), y_pred)
    np.testing.assert_allclose(per_sample.numpy(), [0.0513, 2.3026], atol=1e-4)
    assert float(losses.SparseCategoricalCrossentropy(reduction="sum")([1, 2], y_pred)) == pytest.approx(2.354, abs=1e-3)
    assert float(losses.SparseCategoricalCrossentropy()(np.array([[1], [2]]), y_pred)) == pytest.approx(1.1769392, rel=1e-6)


def test_binary_crossentropy_by_hand():
    t = np.array([[0.0, 1.0], [0.0, 0.0]], "float32")
    p = np.array([[0.6, 0.4], [0.4, 0.6]], "float32")
    expected = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p), axis=-1)
    np.testing.assert_allclose(losses.binary_crossentropy(t, p).numpy(), expected, rtol=1e-6)
    logits = np.array([[-18.6, 0.51], [2.94, -12.8]], "float32")
    sig = 1 / (1 + np.exp(-logits.astype("float64")))
    exact = -np.mean(t * np.log(sig) + (1 - t) * np.log(1 - sig), axis=-1)
    np.testing.assert_allclose(losses.binary_crossentropy(t, logits, from_logits=True).numpy(), exact, rtol=1e-5)
    # probabilities are clipped to [1e-7, 1 - 1e-7]: a certain wrong answer costs -log(1e-7)
    assert float(losses.BinaryCrossentropy()([1.0], [0.0])) == pytest.approx(-math.log(1e-7), rel=1e-5)


def test_label_smoothing_by_hand():
    t, p = np.array([[1.0, 0.0]], "float32"), np.array([[0.7, 0.2]], "float32")
    ts = t * 0.8 + 0.1
    expected = -np.mean(ts * np.log(p) + (1 - ts) * np.log(1 - p))
    assert float(losses.BinaryCrossentropy(label_smoothing=0.2)(t, p)) == pytest.approx(expected, rel=1e-6)
    q = np.array([[0.7, 0.2, 0.1]], "float32")
    tc = _onehot([0], 3) * 0.7 + 0.3 / 3
    assert float(losses.CategoricalCrossentropy(label_smoothing=0.3)(_onehot([0], 3), q)) == pytest.approx(
        -np.sum(tc * np.log(q)), rel=1e-6)


def test_reductions_and_sample_weight():
    t = np.zeros((4, 2), "float32")
    p = np.array([[1, 1], [2, 2], [3, 3], [4, 4]], "float32")  # per-sample mse 1, 4, 9, 16
    w = np.array([1.0, 0.0, 2.0, 2.0], "float32")
    mse = losses.MeanSquaredError
    assert float(mse()(t, p)) == pytest.approx(7.5)
    assert float(mse(reduction="sum")(t, p)) == pytest.approx(30.0)
    assert float(mse(reduction="mean")(t, p, w)) == pytest.approx((1 + 18 + 32) / 4)
    assert float(mse(reduction="mean_with_sample_weight")(t, p, w)) == pytest.approx((1 + 18 + 32) / 5)
    assert float(mse(reduction="sum")(t, p, sample_weight=w[:, None])) == pytest.approx(51.0)
    np.testing.assert_allclose(mse(reduction="none")(t, p, w).numpy(), [1, 0, 18, 32])
    np.testing.assert_allclose(mse(reduction=None)(t, p).numpy(), [1, 4, 9, 16])
    assert float(mse(reduction="mean_with_sample_weight")(t, p, np.zeros(4))) == 0.0  # divide_no_nan


def test_sample_weight_pairs_with_the_batch_axis():
    # per-sample losses of shape (4, 4): Keras 3 would multiply the weights along the last axis
    t, p = np.zeros((4, 4, 2), "float32"), RNG.random((4, 4, 2)).astype("float32")
    w = np.array([1.0, 2.0, 3.0, 4.0], "float32")
    per = losses.mean_squared_error(t, p).numpy()
    assert float(losses.MeanSquaredError()(t, p, w)) == pytest.approx(float(np.mean(per * w[:, None])), rel=1e-6)


def test_rank_fixups():
    # labels of shape (n,) against outputs of shape (n, 1), as every model with one output unit gives
    y, out = np.array([0.0, 1.0, 1.0]), np.array([[0.2], [0.9], [0.6]], "float32")
    assert losses.BinaryCrossentropy(reduction=None)(y, out).shape == (3,)
    assert float(losses.MeanSquaredError()(y, out)) == pytest.approx(np.mean((y - out[:, 0]) ** 2), rel=1e-6)
    assert float(losses.MeanSquaredError()(y[:, None], out[:, 0])) == pytest.approx(np.mean((y - out[:, 0]) ** 2))


def test_ignore_class_masks_entries():
    p = _probs((4, 3))
    y = np.array([0, -1, 2, -1])
    loss = losses.SparseCategoricalCrossentropy(ignore_class=-1)
    keep = np.array([0, 2])
    expected = -np.log(p[keep, y[keep]] / p[keep].sum(-1))
    assert float(loss(y, p)) == pytest.approx(expected.mean(), rel=1e-6)  # mean over the valid entries
    assert float(losses.SparseCategoricalCrossentropy(ignore_class=-1, reduction="sum")(y, p)) == pytest.approx(
        expected.sum(), rel=1e-6)
    v = Variable(p)
    with GradientTape() as tape:
        value = loss(y, v)
    g = tape.gradient(value, v).numpy()
    assert np.all(g[[1, 3]] == 0) and np.all(np.isfinite(g))


def test_loss_values_are_tensors():
    value = losses.MeanSquaredError()([1.0, 2.0], [1.5, 2.0])
    assert value.numpy().dtype == np.float32 and value.numpy().shape == ()
    assert float(np.sqrt(value)) == pytest.approx(math.sqrt(0.125))


def test_custom_loss_subclass_and_function_wrapper():
    from kerasckpt import ops

    class Quartic(losses.Loss):
        def call(self, y_true, y_pred):
            return ops.mean(ops.square(ops.square(ops.subtract(y_pred, y_true))), axis=-1)

    p = Variable(np.array([[1.0, 2.0]], "float32"))
    with GradientTape() as tape:
        value = Quartic()(np.zeros((1, 2)), p)
    assert float(value) == pytest.approx(8.5)
    np.testing.assert_allclose(tape.gradient(value, p).numpy(), [[2.0, 16.0]])
    wrapped = losses.LossFunctionWrapper(lambda t, p: ops.abs(ops.subtract(p, t)), name="abs")
    np.testing.assert_allclose(wrapped(np.array([0.0, 0.0]), np.array([[1.0], [3.0]])).numpy(), 2.0)


# ---------------------------------------------------------------- gradients against central differences

def _numeric_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (f(xp) - f(xm)) / (2 * h)
    return g


CASES = [
    ("mse", lambda: losses.MeanSquaredError(dtype="float64"), "real"),
    ("mae", lambda: losses.MeanAbsoluteError(dtype="float64"), "real"),
    ("bce", lambda: losses.BinaryCrossentropy(dtype="float64"), "binary"),
    ("bce_smooth", lambda: losses.BinaryCrossentropy(label_smoothing=0.1, dtype="float64"), "binary"),
    ("bce_logits", lambda: losses.BinaryCrossentropy(from_logits=True, dtype="float64"), "binary_logits"),
    ("cce", lambda: losses.CategoricalCrossentropy(dtype="float64"), "onehot"),
    ("cce_smooth", lambda: losses.CategoricalCrossentropy(label_smoothing=0.2, dtype="float64"), "onehot"),
    ("cce_logits", lambda: losses.CategoricalCrossentropy(from_logits=True, dtype="float64"), "onehot_logits"),
    ("cce_axis0", lambda: losses.CategoricalCrossentropy(axis=0, dtype="float64"), "onehot_axis0"),
    ("scce", lambda: losses.SparseCategoricalCrossentropy(dtype="float64"), "sparse"),
    ("scce_logits", lambda: losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64"), "sparse_logits"),
]


def _data(kind, rng):
    if kind == "real":
        return rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    if kind.startswith("binary"):
        t = (rng.random((5, 3)) > 0.5).astype("float64")
        return t, (rng.normal(size=(5, 3)) * 2 if kind.endswith("logits") else rng.uniform(0.05, 0.95, (5, 3)))
    if kind == "onehot_axis0":
        p = rng.uniform(0.1, 1.0, (4, 3))
        return _onehot(rng.integers(0, 4, 3), 4).T.astype("float64"), p
    labels = rng.integers(0, 4, 5)
    p = rng.normal(size=(5, 4)) if kind.endswith("logits") else rng.uniform(0.1, 1.0, (5, 4))
    return (labels if kind.startswith("sparse") else _onehot(labels, 4).astype("float64")), p


@pytest.mark.parametrize("name,make,kind", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_matches_central_differences(name, make, kind, weighted):
    rng = np.random.default_rng(3)
    y_true, y_pred = _data(kind, rng)
    loss = make()
    w = rng.uniform(0.5, 2.0, y_pred.shape[0] if kind != "onehot_axis0" else 3) if weighted else None
    v = Variable(y_pred, dtype="float64")
    with GradientTape() as tape:
        value = loss(y_true, v, sample_weight=w)
    analytic = tape.gradient(value, v).numpy()
    numeric = _numeric_grad(lambda x: float(loss(y_true, x, sample_weight=w)), y_pred)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_gradient_reaches_y_true_and_respects_clipping():
    t = Variable(np.array([[0.2, 0.7]]), dtype="float64")
    p = np.array([[0.3, 0.6]])
    loss = losses.BinaryCrossentropy(dtype="float64")
    with GradientTape() as tape:
        value = loss(t, p)
    numeric = _numeric_grad(lambda x: float(loss(x, p)), t.numpy())
    np.testing.assert_allclose(tape.gradient(value, t).numpy(), numeric, rtol=1e-6)
    v = Variable(np.array([[0.0, 1.0, 0.5]], "float32"))  # outside the clip range: no gradient, as in Keras
    with GradientTape() as tape:
        value = losses.BinaryCrossentropy()(np.array([[1.0, 0.0, 1.0]]), v)
    g = tape.gradient(value, v).numpy()
    assert g[0, 0] == 0 and g[0, 1] == 0 and g[0, 2] != 0


# ---------------------------------------------------------------- get / serialize / errors

def test_get_names_match_keras_conventions():
    assert losses.get("mse") is losses.mean_squared_error
    assert losses.get("MAE") is losses.mean_absolute_error
    assert losses.get("binary_crossentropy") is losses.binary_crossentropy
    assert isinstance(losses.get("MeanSquaredError"), losses.MeanSquaredError)
    assert isinstance(losses.get(losses.CategoricalCrossentropy), losses.CategoricalCrossentropy)
    inst = losses.BinaryCrossentropy(from_logits=True)
    assert losses.get(inst) is inst and losses.get(None) is None
    got = losses.get({"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": True}})
    assert isinstance(got, losses.SparseCategoricalCrossentropy) and got.from_logits


def test_unknown_name_and_bad_arguments_raise_helpful_errors():
    with pytest.raises(ValueError, match=r"'mean_sqared_error'.*mean_squared_error"):
        losses.get("mean_sqared_error")
    with pytest.raises(ValueError, match="Dense"):
        losses.get("Dense")  # a registered layer is not a loss
    with pytest.raises(ValueError, match="reduction.*'avg'"):
        losses.MeanSquaredError(reduction="avg")
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3, 4\)"):
        losses.MeanSquaredError()(np.ones((3, 2)), np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3, 4\)"):
        losses.BinaryCrossentropy()(np.ones((3, 2)), np.ones((3, 4)) / 2)
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy instead"):
        losses.CategoricalCrossentropy()(np.array([0, 1, 2]), _probs((3, 4)))
    with pytest.raises(ValueError, match=r"label 5.*4 classes"):
        losses.SparseCategoricalCrossentropy()(np.array([0, 5]), _probs((2, 4)))
    with pytest.raises(ValueError, match="sample_weight of shape"):
        losses.MeanSquaredError()(np.ones((4, 2)), np.ones((4, 2)), sample_weight=np.ones(3))


def test_config_round_trip():
    for loss in [losses.MeanSquaredError(name="m"), losses.MeanAbsoluteError(reduction="sum"),
                 losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
                 losses.CategoricalCrossentropy(axis=1), losses.SparseCategoricalCrossentropy(ignore_class=3, axis=1),
                 losses.LossFunctionWrapper(losses.binary_crossentropy, name="w", from_logits=True)]:
        again = losses.deserialize(losses.serialize(loss))
        assert type(again) is type(loss) and again.get_config() == loss.get_config()
    wrapper = losses.deserialize(losses.serialize(losses.LossFunctionWrapper(losses.mae, name="w")))
    assert wrapper.fn is losses.mean_absolute_error


def test_serialized_dicts_equal_keras():
    # the dicts keras 3.15 writes for these objects (recorded from keras.losses.serialize)
    assert losses.serialize(losses.MeanSquaredError()) == {
        "module": "keras.losses", "class_name": "MeanSquaredError",
        "config": {"name": "mean_squared_error", "reduction": "sum_over_batch_size"}, "registered_name": None}
    assert losses.serialize(losses.mean_squared_error) == {
        "module": "builtins", "class_name": "function", "config": "mean_squared_error", "registered_name": "function"}
    assert losses.serialize(losses.SparseCategoricalCrossentropy(ignore_class=1))["config"] == {
        "name": "sparse_categorical_crossentropy", "reduction": "sum_over_batch_size", "from_logits": False,
        "ignore_class": 1}


# ---------------------------------------------------------------- Keras 3 as the oracle

KERAS_CASES = [
    ("MeanSquaredError", {}, "real"),
    ("MeanAbsoluteError", {}, "real"),
    ("BinaryCrossentropy", {}, "binary"),
    ("BinaryCrossentropy", {"label_smoothing": 0.15}, "binary"),
    ("BinaryCrossentropy", {"from_logits": True}, "binary_logits"),
    ("CategoricalCrossentropy", {}, "onehot"),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "onehot_logits"),
    ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logits"),
    ("SparseCategoricalCrossentropy", {"ignore_class": 1}, "sparse"),
]


@pytest.mark.keras
@pytest.mark.parametrize("cls,kwargs,kind", KERAS_CASES, ids=[f"{c[0]}-{c[1]}" for c in KERAS_CASES])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight", None])
def test_values_and_gradients_match_keras(keras, cls, kwargs, kind, reduction):
    rng = np.random.default_rng(11)
    y_true, y_pred = _data(kind, rng)
    y_true, y_pred = np.asarray(y_true).astype("float32"), y_pred.astype("float32")
    if kind == "binary":
        y_pred[0, 0], y_pred[1, 1] = 0.0, 1.0  # exercise the clipping
    w = rng.uniform(0.5, 2.0, y_pred.shape[0]).astype("float32")
    ours = getattr(losses, cls)(reduction=reduction, **kwargs)
    theirs = getattr(keras.losses, cls)(reduction=reduction, **kwargs)
    v = Variable(y_pred)
    with GradientTape() as tape:
        value = ours(y_true, v, sample_weight=w)
        total = value if reduction else losses.reduce_weighted_values(value, reduction="sum")
    grad = tape.gradient(total, v).numpy()
    if keras.backend.backend() != "torch":
        np.testing.assert_allclose(value.numpy(), keras.ops.convert_to_numpy(theirs(y_true, y_pred, w)), rtol=2e-6)
        return
    import torch
    tp = torch.tensor(y_pred, requires_grad=True)
    expected = theirs(torch.tensor(y_true), tp, sample_weight=torch.tensor(w))
    expected.sum().backward()
    np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-5, atol=1e-7)


def _np(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


@pytest.mark.keras
def test_rank_fixups_match_keras(keras):
    y, out = np.array([0.0, 1.0, 1.0], "float32"), np.array([[0.2], [0.9], [0.6]], "float32")
    for cls in ["BinaryCrossentropy", "MeanSquaredError", "MeanAbsoluteError"]:
        for args in [(y, out), (y[:, None], out[:, 0])]:
            expected = _np(getattr(keras.losses, cls)(reduction=None)(*args))
            np.testing.assert_allclose(getattr(losses, cls)(reduction=None)(*args).numpy(), expected, rtol=1e-6)
    probs = _probs((3, 2))
    for labels in [y, y[:, None]]:
        expected = _np(keras.losses.SparseCategoricalCrossentropy()(labels, probs))
        assert float(losses.SparseCategoricalCrossentropy()(labels, probs)) == pytest.approx(float(expected), rel=1e-6)


SERIALIZED = [
    losses.MeanSquaredError(), losses.MeanAbsoluteError(reduction="sum", name="l1"),
    losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
    losses.CategoricalCrossentropy(label_smoothing=0.2), losses.SparseCategoricalCrossentropy(ignore_class=2),
]


@pytest.mark.keras
@pytest.mark.parametrize("loss", SERIALIZED, ids=repr)
def test_keras_reads_our_config_and_we_read_its(keras, loss):
    rebuilt = keras.losses.deserialize(losses.serialize(loss))
    assert type(rebuilt).__name__ == type(loss).__name__
    assert keras.losses.serialize(rebuilt) == losses.serialize(loss)
    assert losses.serialize(losses.deserialize(keras.losses.serialize(rebuilt))) == losses.serialize(loss)


@pytest.mark.keras
@pytest.mark.parametrize("name", ["mean_squared_error", "mean_absolute_error", "binary_crossentropy",
                                  "categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_functions_serialize_as_keras(keras, name):
    assert losses.serialize(getattr(losses, name)) == keras.losses.serialize(getattr(keras.losses, name))
    assert losses.get(name) is getattr(losses, name)
