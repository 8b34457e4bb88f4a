"""kerasckpt.metrics: values, sample weights, state in Variables, configs; Keras 3 as the oracle."""
import os

import numpy as np
import pytest

from kerasckpt import losses, metrics
from kerasckpt.autograd import GradientTape, Tensor
from kerasckpt.variables import Variable


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


# ---------------------------------------------------------------- documented values (no Keras)

def test_mean_and_sum():
    m = metrics.Mean()
    m.update_state([1, 3, 5, 7])
    assert float(m.result()) == 4.0
    m.reset_state()
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert float(m.result()) == 2.0
    s = metrics.Sum()
    assert float(s([1, 3, 5, 7])) == 16.0
    s.reset_state()
    assert float(s([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])) == 4.0
    assert float(metrics.Mean().result()) == 0.0  # divide_no_nan before any update


@pytest.mark.parametrize("cls,y_true,y_pred,weights,plain,weighted", [
    (metrics.Accuracy, [[1], [2], [3], [4]], [[0], [2], [3], [4]], [1, 1, 0, 0], 0.75, 0.5),
    (metrics.BinaryAccuracy, [[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], [1, 0, 0, 1], 0.75, 0.5),
    (metrics.CategoricalAccuracy, [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], [0.7, 0.3], 0.5, 0.3),
    (metrics.SparseCategoricalAccuracy, [[2], [1]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], [0.7, 0.3], 0.5, 0.3),
    (metrics.MeanSquaredError, [[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0], 0.25, 0.5),
    (metrics.MeanAbsoluteError, [[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0], 0.25, 0.5),
])
def test_documented_values(cls, y_true, y_pred, weights, plain, weighted):
    m = cls()
    assert float(m(np.array(y_true), np.array(y_pred, "float32"))) == pytest.approx(plain)
    m.reset_state()
    m.update_state(np.array(y_true), np.array(y_pred, "float32"), sample_weight=np.array(weights))
    assert float(m.result()) == pytest.approx(weighted, rel=1e-6)


def test_metric_functions():
    np.testing.assert_array_equal(metrics.binary_accuracy([[1], [0]], [[0.7], [0.7]]).numpy(), [[1.0], [0.0]])
    np.testing.assert_array_equal(metrics.binary_accuracy([1, 0], [0.2, 0.2], threshold=0.1).numpy(), [1.0, 0.0])
    np.testing.assert_array_equal(metrics.categorical_accuracy([[0, 1], [1, 0]], [[0.2, 0.8], [0.3, 0.7]]).numpy(),
                                  [1.0, 0.0])
    got = metrics.sparse_categorical_accuracy(np.array([[1], [0]]), np.array([[0.2, 0.8], [0.3, 0.7]]))
    assert got.numpy().shape == (2,) and got.numpy().dtype == np.float32
    np.testing.assert_array_equal(got.numpy(), [1.0, 0.0])


def test_accumulates_across_batches_with_weights():
    m = metrics.SparseCategoricalAccuracy()
    m.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]], sample_weight=[1.0, 3.0])  # 1 of 4 weight correct
    m.update_state([1], [[0.1, 0.9]])  # + 1 of 1
    assert float(m.result()) == pytest.approx(2 / 5)
    assert [v.numpy().item() for v in m.variables] == [2.0, 5.0]


def test_crossentropy_metrics_and_ignore_class():
    p = np.array([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2]], "float32")
    m = metrics.SparseCategoricalCrossentropy(ignore_class=-1)
    m.update_state(np.array([0, -1]), p)  # the ignored entry takes no weight
    assert float(m.result()) == pytest.approx(-np.log(0.5), rel=1e-6)
    bce = metrics.BinaryCrossentropy(from_logits=True)
    bce.update_state(np.array([1.0, 0.0]), np.array([[0.0], [0.0]], "float32"))
    assert float(bce.result()) == pytest.approx(np.log(2.0), rel=1e-6)


# ---------------------------------------------------------------- state, tapes, tracking

def test_state_is_only_variables_and_restores_exactly():
    rng = np.random.default_rng(0)
    m = metrics.MeanAbsoluteError()
    batches = [(rng.random((8, 3)).astype("float32"), rng.random((8, 3)).astype("float32"), rng.random(8))
               for _ in range(4)]
    for t, p, w in batches[:2]:
        m.update_state(t, p, sample_weight=w)
    saved = [v.numpy() for v in m.variables]
    fresh = metrics.MeanAbsoluteError()
    for v, value in zip(fresh.variables, saved):
        v.assign(value)
    assert fresh.result().numpy() == m.result().numpy()
    for t, p, w in batches[2:]:
        m.update_state(t, p, sample_weight=w)
        fresh.update_state(t, p, sample_weight=w)
    assert [v.numpy() for v in fresh.variables] == [v.numpy() for v in m.variables]
    assert all(not v.trainable for v in m.variables)
    assert [v.path for v in metrics.Mean(name="loss").variables] == ["loss/total", "loss/count"]
    assert set(m._trackable_children()) == {"total", "count"}


def test_result_does_not_alias_state():
    m = metrics.Mean()
    first = m([1.0, 2.0])
    m.update_state([10.0])
    assert float(first) == 1.5 and float(m.result()) == pytest.approx(13 / 3)
    assert isinstance(first, Tensor) and first.numpy().shape == ()


def test_updates_accept_tensors_and_variables_and_never_record():
    y_pred = Variable(np.array([[0.2, 0.8], [0.6, 0.4]], "float32"))
    m, mse = metrics.CategoricalAccuracy(), metrics.MeanSquaredError()
    with GradientTape() as tape:
        doubled = y_pred * 2.0
        m.update_state(Tensor(np.array([[0.0, 1.0], [0.0, 1.0]])), doubled)
        value = mse(np.zeros((2, 2)), y_pred)
    assert float(m.result()) == 0.5
    assert value.parents is None  # the result is not linked into the tape
    assert tape.gradient(doubled, y_pred) is not None


def test_direction_and_custom_metric():
    assert metrics.Accuracy()._direction == "up" and metrics.MeanSquaredError()._direction == "down"
    assert metrics.MeanMetricWrapper(losses.mean_absolute_error)._direction == "down"
    assert getattr(metrics.Mean(), "_direction", None) is None

    class Positives(metrics.Metric):
        def __init__(self, name="positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.count = self.add_variable(shape=(), initializer="zeros", name="count")

        def update_state(self, values):
            self.count.assign_add(np.sum(np.asarray(values) > 0))

        def result(self):
            return Tensor(self.count.numpy())

    p = Positives()
    assert float(p([1, -1, 2])) == 2.0 and len(p.variables) == 1
    p.reset_state()
    assert float(p.result()) == 0.0

    class Forgot(metrics.Metric):
        def __init__(self):
            pass

    with pytest.raises(RuntimeError, match="super"):
        Forgot().add_variable((), "zeros", name="x")


# ---------------------------------------------------------------- get / serialize / errors

def test_get():
    assert isinstance(metrics.get("mse"), metrics.MeanSquaredError)
    assert isinstance(metrics.get("mean_absolute_error"), metrics.MeanAbsoluteError)
    assert isinstance(metrics.get("binary_accuracy"), metrics.BinaryAccuracy)
    assert isinstance(metrics.get("SparseCategoricalAccuracy"), metrics.SparseCategoricalAccuracy)
    assert isinstance(metrics.get("accuracy"), metrics.Accuracy)
    assert isinstance(metrics.get("bce"), metrics.BinaryCrossentropy)
    got = metrics.get({"class_name": "BinaryAccuracy", "config": {"threshold": 0.3}})
    assert got.threshold == 0.3
    fn = metrics.get(metrics.binary_accuracy)
    assert fn is metrics.binary_accuracy and metrics.get(None) is None
    with pytest.raises(ValueError, match=r"'acuracy'.*accuracy"):
        metrics.get("acuracy")
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,"):
        metrics.Mean().update_state(np.ones((4, 2)), sample_weight=np.ones(3))


def test_config_round_trip():
    for m in [metrics.Mean(name="m"), metrics.Sum(), metrics.MeanSquaredError(), metrics.Accuracy(),
              metrics.BinaryAccuracy(threshold=0.7), metrics.CategoricalAccuracy(),
              metrics.SparseCategoricalAccuracy(name="acc"), metrics.MeanAbsoluteError(),
              metrics.MeanMetricWrapper(losses.binary_crossentropy, name="w", from_logits=True),
              metrics.CategoricalCrossentropy(label_smoothing=0.1)]:
        again = metrics.deserialize(metrics.serialize(m))
        assert type(again) is type(m) and again.get_config() == m.get_config()
    assert metrics.serialize(metrics.BinaryAccuracy()) == {
        "module": "keras.metrics", "class_name": "BinaryAccuracy",
        "config": {"name": "binary_accuracy", "dtype": "float32", "threshold": 0.5}, "registered_name": None}


# ---------------------------------------------------------------- Keras 3 as the oracle

def _np(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _batches(kind, rng):
    out = []
    for i in range(3):
        if kind == "real":
            t, p = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
        elif kind == "labels":
            t = rng.integers(0, 3, (6, 1))
            p = np.where(rng.random((6, 1)) > 0.5, t, rng.integers(0, 3, (6, 1)))
        elif kind == "binary":
            t, p = (rng.random((6, 1)) > 0.5) * 1.0, rng.random((6, 1))
        elif kind == "onehot":
            t, p = np.eye(4)[rng.integers(0, 4, 6)], rng.random((6, 4)) + 0.05
        else:  # sparse
            t, p = rng.integers(0, 4, 6), rng.random((6, 4)) + 0.05
        w = rng.random(6).astype("float32") if i != 1 else None
        out.append((np.asarray(t).astype("float32"), np.asarray(p).astype("float32"), w))
    return out


KERAS_CASES = [
    ("MeanSquaredError", {}, "real"), ("MeanAbsoluteError", {}, "real"), ("Accuracy", {}, "labels"),
    ("BinaryAccuracy", {}, "binary"), ("BinaryAccuracy", {"threshold": 0.3}, "binary"),
    ("CategoricalAccuracy", {}, "onehot"), ("SparseCategoricalAccuracy", {}, "sparse"),
    ("BinaryCrossentropy", {"label_smoothing": 0.1}, "binary"), ("CategoricalCrossentropy", {}, "onehot"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse"),
]


@pytest.mark.keras
@pytest.mark.parametrize("cls,kwargs,kind", KERAS_CASES, ids=[f"{c[0]}-{c[1]}" for c in KERAS_CASES])
def test_matches_keras(keras, cls, kwargs, kind):
    ours, theirs = getattr(metrics, cls)(**kwargs), getattr(keras.metrics, cls)(**kwargs)
    for t, p, w in _batches(kind, np.random.default_rng(5)):
        ours.update_state(t, p, sample_weight=w)
        theirs.update_state(t, p, sample_weight=w)
        np.testing.assert_allclose(ours.result().numpy(), _np(theirs.result()), rtol=2e-6)
    for mine, other in zip(ours.variables, theirs.variables):
        np.testing.assert_allclose(mine.numpy(), _np(other.value), rtol=2e-6)
    assert [v.name for v in ours.variables] == [v.name for v in theirs.variables]
    assert ours._direction == theirs._direction
    assert metrics.serialize(ours) == keras.metrics.serialize(theirs)


@pytest.mark.keras
def test_mean_and_sum_match_keras_with_rank_2_values_and_weights(keras):
    rng = np.random.default_rng(1)
    for cls in ["Mean", "Sum"]:
        ours, theirs = getattr(metrics, cls)(), getattr(keras.metrics, cls)()
        for w in [None, rng.random(5), rng.random((5, 1)), rng.random((5, 3))]:
            values = rng.random((5, 3)).astype("float32")
            ours.update_state(values, sample_weight=w)
            theirs.update_state(values, sample_weight=w)
            np.testing.assert_allclose(ours.result().numpy(), _np(theirs.result()), rtol=2e-6)
        assert metrics.serialize(ours) == keras.metrics.serialize(theirs)


@pytest.mark.keras
@pytest.mark.parametrize("name", ["mse", "mae", "accuracy", "bce", "binary_accuracy", "categorical_accuracy",
                                  "SparseCategoricalAccuracy", "mean_squared_error", "mean"])
def test_get_matches_keras(keras, name):
    ours, theirs = metrics.get(name), keras.metrics.get(name)
    assert type(ours).__name__ == type(theirs).__name__ and ours.name == theirs.name
    rebuilt = keras.metrics.deserialize(metrics.serialize(ours))
    assert keras.metrics.serialize(rebuilt) == metrics.serialize(ours)
