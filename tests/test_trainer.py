"""The training loop: every fit() argument with exact expectations, evaluate/predict and the
*_on_batch methods (against Keras's return conventions), stop_training, "accuracy" resolution,
metric names in logs, and the errors of bad calls."""
import math

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers, utils
from kerasckpt.callbacks import Callback

from conftest import make_model, tiny_data
from crashing import Crash


def _keras():
    return pytest.importorskip("keras")


class IndexModel(kerasckpt.Model):
    """Column 0 of x is the sample's index: records the indices of every training batch."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(1)
        self.batches = []

    def call(self, inputs, training=False):
        if training:
            self.batches.append(np.asarray(inputs)[:, 0].astype(int).tolist())
        return self.dense(inputs)


def _index_data(n):
    x = np.stack([np.arange(n), np.zeros(n)], axis=1).astype("float32")
    return x, np.zeros((n, 1), "float32")


def _index_model():
    model = IndexModel()
    model.compile(kerasckpt.optimizers.SGD(learning_rate=0.0), "mse")  # the weights never matter here
    return model


class Recorder(Callback):
    """Records every hook with its index and the keys of its logs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def _record(self, hook, index=None, logs=None):
        self.calls.append((hook, index, sorted(logs or {})))

    def on_train_begin(self, logs=None):
        self._record("train_begin", logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._record("epoch_begin", epoch)

    def on_train_batch_end(self, batch, logs=None):
        self._record("batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._record("test_begin")

    def on_epoch_end(self, epoch, logs=None):
        self._record("epoch_end", epoch, logs)
        self.last_epoch_logs = dict(logs)

    def on_train_end(self, logs=None):
        self._record("train_end", logs=logs)

    def batches_per_epoch(self):
        counts = []
        for hook, _, _ in self.calls:
            if hook == "epoch_begin":
                counts.append(0)
            elif hook == "batch_end":
                counts[-1] += 1
        return counts

    def epochs(self):
        return [index for hook, index, _ in self.calls if hook == "epoch_end"]


def _compiled(kind="sequential", metrics=("accuracy",), optimizer="sgd"):
    model = make_model(kind)
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=list(metrics))
    return model


# ---------------------------------------------------------------- fit arguments

@pytest.mark.parametrize("batch_size, batches, last", [(None, 2, 32), (10, 7, 4), (64, 1, 64), (100, 1, 64),
                                                      (1, 64, 1)])
def test_batch_size_sets_batches_per_epoch_and_the_last_partial_batch(batch_size, batches, last):
    x, y = _index_data(64)
    model = _index_model()
    model.fit(x, y, batch_size=batch_size, epochs=2, shuffle=False, verbose=0)
    assert len(model.batches) == 2 * batches
    assert [len(b) for b in model.batches[:batches]] == [batch_size or 32] * (batches - 1) + [last]
    assert sorted(sum(model.batches[:batches], [])) == list(range(64))  # each sample once per epoch


def test_epochs_history_and_hook_sequence():
    x, y = tiny_data()
    recorder = Recorder()
    history = _compiled().fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[recorder])
    assert history.epoch == [0, 1, 2]
    assert history.params == {"verbose": 0, "epochs": 3, "steps": 4}
    assert {k: len(v) for k, v in history.history.items()} == {"loss": 3, "accuracy": 3}
    assert recorder.batches_per_epoch() == [4, 4, 4]
    assert recorder.calls[0][0] == "train_begin" and recorder.calls[-1][0] == "train_end"
    assert [c[1] for c in recorder.calls if c[0] == "batch_end"] == [0, 1, 2, 3] * 3
    assert all(c[2] == ["accuracy", "loss"] for c in recorder.calls if c[0] in ("batch_end", "epoch_end"))
    assert recorder.last_epoch_logs == {"loss": history.history["loss"][-1],
                                        "accuracy": history.history["accuracy"][-1]}


def test_epoch_loss_is_the_batch_size_weighted_mean_of_the_batches():
    x, y = tiny_data(40)

    class BatchLosses(Callback):
        def __init__(self):
            super().__init__()
            self.running = []

        def on_train_batch_end(self, batch, logs=None):
            self.running.append(logs["loss"])

    model = _compiled(metrics=())
    cb = BatchLosses()
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    assert history.history["loss"] == [cb.running[-1]]  # the epoch's log is the final running mean
    # running means over batches of 16, 16 and 8 samples, unrolled to the batches' own losses
    per_batch = [cb.running[0], 2 * cb.running[1] - cb.running[0], (40 * cb.running[2] - 32 * cb.running[1]) / 8]
    assert history.history["loss"][0] == pytest.approx((16 * per_batch[0] + 16 * per_batch[1] + 8 * per_batch[2]) / 40)


def test_zero_epochs_trains_nothing():
    x, y = tiny_data()
    model = _compiled()
    model.build((None, 6))
    before = model.get_weights()
    history = model.fit(x, y, epochs=0, verbose=0)
    assert history.history == {} and history.epoch == []
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("verbose", [0, 1, 2, "auto"])
def test_verbose_output(verbose, capsys):
    x, y = tiny_data()
    _compiled().fit(x, y, batch_size=16, epochs=2, verbose=verbose, validation_split=0.25)
    out = capsys.readouterr().out
    if verbose == 0:
        assert out == ""
        return
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "val_loss" in out and "accuracy" in out
    if verbose == 2:
        assert "3/3 - " in out and "|" not in out  # one line per epoch, no bar
    else:
        assert "3/3 |" in out


def test_evaluate_and_predict_verbose_output(capsys):
    x, y = tiny_data()
    model = _compiled()
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y, batch_size=16, verbose=2)
    assert "4/4 - " in capsys.readouterr().out


def test_callbacks_see_the_model_and_params():
    x, y = tiny_data()
    seen = {}

    class Check(Callback):
        def on_train_begin(self, logs=None):
            seen["model"], seen["params"] = self.model, dict(self.params)

    model = _compiled()
    model.fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[Check()])
    assert seen["model"] is model and seen["params"] == {"verbose": 0, "epochs": 2, "steps": 7}


def test_validation_split_takes_the_last_fraction_before_shuffling():
    x, y = _index_data(10)
    model = _index_model()
    recorder = Recorder()
    model.fit(x, y, batch_size=3, epochs=3, validation_split=0.2, verbose=0, callbacks=[recorder])
    seen = sorted(set(sum(model.batches, [])))
    assert seen == list(range(8))  # samples 8 and 9 are the validation set
    assert recorder.batches_per_epoch() == [3, 3, 3]  # 8 training samples in batches of 3
    val_loss = model.evaluate(x[8:], y[8:], verbose=0)
    assert recorder.last_epoch_logs["val_loss"] == pytest.approx(val_loss, rel=1e-6)


def test_validation_split_matches_keras_split_sizes():
    x, y = _index_data(10)
    model = _index_model()
    model.fit(x, y, batch_size=100, epochs=1, validation_split=0.25, verbose=0)
    assert len(model.batches[0]) == 7  # int(10 * 0.75) = 7 training samples, as Keras


def test_validation_data_two_and_three_tuples():
    x, y = tiny_data()
    xv, yv = tiny_data(20, seed=5)
    weights = np.linspace(0, 2, 20).astype("float32")
    model = _compiled()
    history = model.fit(x, y, epochs=2, verbose=0, validation_data=(xv, yv))
    assert {k: len(v) for k, v in history.history.items()} == {
        "loss": 2, "accuracy": 2, "val_loss": 2, "val_accuracy": 2}
    loss, acc = model.evaluate(xv, yv, verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(loss, rel=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(acc)
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(xv, yv, weights))
    weighted = model.evaluate(xv, yv, sample_weight=weights, verbose=0)[0]
    assert history.history["val_loss"][-1] == pytest.approx(weighted, rel=1e-6)
    assert weighted != pytest.approx(model.evaluate(xv, yv, verbose=0)[0], rel=1e-3)


def test_validation_data_wins_over_validation_split():
    x, y = _index_data(10)
    model = _index_model()
    model.fit(x, y, batch_size=10, epochs=1, validation_split=0.5, validation_data=(x[:2], y[:2]), verbose=0)
    assert sorted(model.batches[0]) == list(range(10))


def test_shuffle_off_keeps_the_order_and_on_permutes_each_epoch():
    x, y = _index_data(12)
    model = _index_model()
    model.fit(x, y, batch_size=5, epochs=2, shuffle=False, verbose=0)
    assert model.batches == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]] * 2
    model = _index_model()
    model.fit(x, y, batch_size=5, epochs=2, shuffle=True, verbose=0)
    first, second = sum(model.batches[:3], []), sum(model.batches[3:], [])
    assert sorted(first) == sorted(second) == list(range(12))
    assert first != list(range(12)) and first != second


def test_initial_epoch_numbers_epochs_from_there():
    x, y = tiny_data()
    recorder = Recorder()
    history = _compiled().fit(x, y, epochs=5, initial_epoch=3, verbose=0, callbacks=[recorder])
    assert recorder.epochs() == [3, 4]
    assert history.epoch == [3, 4] and len(history.history["loss"]) == 2


def test_initial_epoch_at_epochs_runs_no_epoch():
    x, y = tiny_data()
    recorder = Recorder()
    history = _compiled().fit(x, y, epochs=2, initial_epoch=2, verbose=0, callbacks=[recorder])
    assert recorder.epochs() == [] and history.history == {}


def test_steps_per_epoch_fewer_than_one_pass_continues_where_it_stopped():
    x, y = _index_data(12)
    model = _index_model()
    recorder = Recorder()
    model.fit(x, y, batch_size=5, epochs=2, steps_per_epoch=2, shuffle=False, verbose=0, callbacks=[recorder])
    assert recorder.batches_per_epoch() == [2, 2]
    assert model.batches == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11], [0, 1, 2, 3, 4]]


def test_steps_per_epoch_more_than_one_pass_draws_further_passes():
    x, y = _index_data(10)
    model = _index_model()
    recorder = Recorder()
    history = model.fit(x, y, batch_size=4, epochs=2, steps_per_epoch=5, shuffle=True, verbose=0,
                        callbacks=[recorder])
    assert recorder.batches_per_epoch() == [5, 5] and history.params["steps"] == 5
    sizes = [len(b) for b in model.batches]
    assert sizes == [4, 4, 2, 4, 4, 2, 4, 4, 2, 4]  # passes of 10 samples: 4 + 4 + 2
    seen = sum(model.batches, [])
    for start in (0, 10, 20):  # every complete pass is a permutation
        assert sorted(seen[start:start + 10]) == list(range(10))


def test_validation_freq_int_and_list():
    x, y = tiny_data()
    xv, yv = tiny_data(10, seed=3)
    recorder = Recorder()
    history = _compiled().fit(x, y, epochs=4, verbose=0, validation_data=(xv, yv), validation_freq=2,
                              callbacks=[recorder])
    assert len(history.history["loss"]) == 4 and len(history.history["val_loss"]) == 2
    assert [("val_loss" in keys) for hook, _, keys in recorder.calls if hook == "epoch_end"] == [
        False, True, False, True]
    assert sum(hook == "test_begin" for hook, _, _ in recorder.calls) == 2
    recorder = Recorder()
    _compiled().fit(x, y, epochs=4, verbose=0, validation_data=(xv, yv), validation_freq=[1, 4],
                    callbacks=[recorder])
    assert [("val_loss" in keys) for hook, _, keys in recorder.calls if hook == "epoch_end"] == [
        True, False, False, True]


def test_class_weight_equals_the_matching_sample_weight():
    x, y = tiny_data()
    class_weight = {0: 1.0, 1: 3.0, 2: 0.5}
    runs = []
    for kwargs in ({"class_weight": class_weight},
                   {"sample_weight": np.array([class_weight[c] for c in y], "float32")}):
        utils.set_random_seed(7)
        model = _compiled()
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, **kwargs)
        runs.append((model.get_weights(), history.history))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]
    utils.set_random_seed(7)
    plain = _compiled()
    plain.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert not np.array_equal(plain.get_weights()[0], runs[0][0][0])


def test_class_weight_with_one_hot_targets_uses_the_argmax():
    x, y = tiny_data()
    model = make_model("sequential")
    model.compile("sgd", "categorical_crossentropy")
    model.build((None, 6))
    one_hot = np.eye(3, dtype="float32")[y]
    start = model.get_weights()
    by_class = model.train_on_batch(x, one_hot, class_weight={0: 1.0, 1: 4.0, 2: 1.0})
    after_class_weight = model.get_weights()
    model.set_weights(start)
    by_sample = model.train_on_batch(x, one_hot, sample_weight=np.where(y == 1, 4.0, 1.0))
    assert by_class == by_sample
    for a, b in zip(after_class_weight, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.set_weights(start)
    assert model.train_on_batch(x, one_hot) != pytest.approx(by_class, rel=1e-3)


def test_sample_weight_weights_the_loss_as_keras_does():
    x, y = tiny_data(20)
    weights = np.linspace(0, 1, 20).astype("float32")
    model = _compiled(metrics=())
    model.build((None, 6))
    probs = model.predict(x, verbose=0)
    per_sample = -np.log(probs[np.arange(20), y])
    # Keras's "sum_over_batch_size": sum(w * loss) / batch size, then batches weighted by their size
    assert model.evaluate(x, y, sample_weight=weights, batch_size=20, verbose=0) == pytest.approx(
        float(np.sum(weights * per_sample) / 20), rel=1e-5)
    by_batch = [np.sum(weights[i:i + 8] * per_sample[i:i + 8]) / len(per_sample[i:i + 8]) for i in (0, 8, 16)]
    assert model.evaluate(x, y, sample_weight=weights, batch_size=8, verbose=0) == pytest.approx(
        float((8 * by_batch[0] + 8 * by_batch[1] + 4 * by_batch[2]) / 20), rel=1e-5)


def test_metrics_are_unweighted_and_weighted_metrics_weighted():
    x, y = tiny_data(20)
    weights = np.where(np.arange(20) < 10, 1.0, 0.0).astype("float32")
    model = make_model("sequential")
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"])
    model.build((None, 6))
    logs = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    correct = model.predict(x, verbose=0).argmax(1) == y
    assert list(logs) == ["loss", "accuracy", "weighted_accuracy"]
    assert logs["accuracy"] == pytest.approx(correct.mean())
    assert logs["weighted_accuracy"] == pytest.approx(correct[:10].mean())


def test_sample_weight_and_metrics_match_keras():
    keras = _keras()
    x, y = tiny_data(30)
    weights = np.linspace(0.1, 2, 30).astype("float32")
    ours = kerasckpt.Sequential([layers.Input((6,)), layers.Dense(3, activation="softmax")])
    theirs = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    theirs.set_weights(ours.get_weights())
    for model in (ours, theirs):
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["acc"], weighted_metrics=["acc"])
    a = ours.evaluate(x, y, sample_weight=weights, batch_size=8, verbose=0, return_dict=True)
    b = theirs.evaluate(x, y, sample_weight=weights, batch_size=8, verbose=0, return_dict=True)
    assert set(a) == set(b)
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-5), key


# ---------------------------------------------------------------- evaluate / predict / *_on_batch

def test_evaluate_return_forms():
    x, y = tiny_data()
    model = _compiled(metrics=())
    loss = model.evaluate(x, y, verbose=0)
    assert isinstance(loss, float)
    assert model.evaluate(x, y, verbose=0, return_dict=True) == {"loss": loss}
    model = _compiled(metrics=("accuracy", "sparse_categorical_crossentropy"))
    values = model.evaluate(x, y, verbose=0)
    assert isinstance(values, list) and len(values) == 3
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "accuracy", "sparse_categorical_crossentropy"] == model.metrics_names
    assert list(logs.values()) == values
    assert logs["sparse_categorical_crossentropy"] == pytest.approx(logs["loss"], rel=1e-5)


def test_evaluate_is_independent_of_batch_size_and_steps_limits_batches():
    x, y = tiny_data()
    model = _compiled()
    a = model.evaluate(x, y, batch_size=7, verbose=0)
    b = model.evaluate(x, y, batch_size=64, verbose=0)
    assert a == pytest.approx(b, rel=1e-5)
    first_half = model.evaluate(x[:32], y[:32], batch_size=16, verbose=0)
    assert model.evaluate(x, y, batch_size=16, steps=2, verbose=0) == pytest.approx(first_half, rel=1e-6)


def test_predict_shapes_and_batching():
    x, _ = tiny_data(37)
    model = _compiled()
    out = model.predict(x, batch_size=10, verbose=0)
    assert isinstance(out, np.ndarray) and out.shape == (37, 3)
    np.testing.assert_allclose(out, model.predict(x, batch_size=37, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(out, model.predict_on_batch(x), rtol=1e-6)
    assert model.predict(x, batch_size=10, steps=2, verbose=0).shape == (20, 3)


def test_predict_multi_output_returns_a_list_of_arrays():
    a = layers.Input((4,))
    hidden = layers.Dense(5)(a)
    model = kerasckpt.Model(a, [layers.Dense(2)(hidden), layers.Dense(1)(hidden)])
    out = model.predict(np.ones((9, 4), "float32"), batch_size=4, verbose=0)
    assert isinstance(out, list) and [o.shape for o in out] == [(9, 2), (9, 1)]
    on_batch = model.predict_on_batch(np.ones((9, 4), "float32"))
    assert [type(o) for o in on_batch] == [np.ndarray, np.ndarray]


def test_predict_does_not_need_compile():
    model = make_model("functional")
    assert model.predict(np.ones((3, 6), "float32"), verbose=0).shape == (3, 3)


def test_on_batch_return_conventions():
    x, y = tiny_data()
    model = _compiled(metrics=())
    assert isinstance(model.train_on_batch(x, y), float)
    assert isinstance(model.test_on_batch(x, y), float)
    assert list(model.train_on_batch(x, y, return_dict=True)) == ["loss"]
    model = _compiled(metrics=("accuracy",))
    result = model.train_on_batch(x, y)
    assert isinstance(result, list) and len(result) == 2
    assert list(model.test_on_batch(x, y, return_dict=True)) == ["loss", "accuracy"]
    out = model.predict_on_batch(x[:5])
    assert isinstance(out, np.ndarray) and out.shape == (5, 3)


def test_train_on_batch_reports_this_batch_alone():
    x, y = tiny_data()
    a, b = (kerasckpt.Sequential([layers.Input((6,)), layers.Dense(3, activation="softmax")]) for _ in range(2))
    b.set_weights(a.get_weights())
    for model in (a, b):
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.train_on_batch(x[:32], y[:32])
    expected = b.test_on_batch(x[32:], y[32:])  # the same forward pass: no Dropout or BatchNormalization
    # the first call's batch must not leak into the second call's result
    np.testing.assert_allclose(a.train_on_batch(x[32:], y[32:]), expected, rtol=1e-6)


def test_on_batch_methods_match_keras():
    keras = _keras()
    x, y = tiny_data(16)
    ours = kerasckpt.Sequential([layers.Input((6,)), layers.Dense(3, activation="softmax")])
    theirs = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    theirs.set_weights(ours.get_weights())
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    for step in range(2):
        a, b = ours.train_on_batch(x, y), theirs.train_on_batch(x, y)
        assert len(a) == len(b) == 2
        np.testing.assert_allclose(a, b, rtol=1e-5)
    for got, want in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.test_on_batch(x, y), theirs.test_on_batch(x, y), rtol=1e-5)
    assert set(ours.test_on_batch(x, y, return_dict=True)) == set(theirs.test_on_batch(x, y, return_dict=True))
    np.testing.assert_allclose(ours.predict_on_batch(x), theirs.predict_on_batch(x), rtol=1e-5)
    # without metrics a bare float (a fresh Keras model: Keras keeps stale metrics across a re-compile)
    theirs = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    theirs.set_weights(ours.get_weights())
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    a, b = ours.train_on_batch(x, y), theirs.train_on_batch(x, y)
    assert isinstance(a, float) and isinstance(b, float) and a == pytest.approx(b, rel=1e-5)


# ---------------------------------------------------------------- stop_training

def test_stop_training_from_a_callback_stops_after_the_current_batch():
    x, y = _index_data(20)

    class StopAt(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.params and batch == 1 and len(self.model.batches) == 7:  # epoch 1, batch 1
                self.model.stop_training = True

    model = _index_model()
    recorder = Recorder()
    history = model.fit(x, y, batch_size=4, epochs=5, shuffle=False, verbose=0, callbacks=[StopAt(), recorder],
                        validation_data=(x[:4], y[:4]))
    assert recorder.batches_per_epoch() == [5, 2]
    assert recorder.epochs() == [0, 1]  # the stopped epoch still ends, with its validation
    assert len(history.history["val_loss"]) == 2
    assert recorder.calls[-1][0] == "train_end"


def test_stop_training_is_reset_by_the_next_fit():
    x, y = tiny_data()
    model = _compiled()
    model.stop_training = True
    history = model.fit(x, y, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


# ---------------------------------------------------------------- "accuracy" resolution and names

ACCURACY_CASES = [
    ("binary_crossentropy", 1, "sigmoid", lambda y: (y % 2).reshape(-1, 1).astype("float32"), "BinaryAccuracy"),
    ("categorical_crossentropy", 3, "softmax", lambda y: np.eye(3, dtype="float32")[y], "CategoricalAccuracy"),
    ("sparse_categorical_crossentropy", 3, "softmax", lambda y: y, "SparseCategoricalAccuracy"),
    ("sparse_categorical_crossentropy", 3, "softmax", lambda y: y.reshape(-1, 1), "SparseCategoricalAccuracy"),
    ("mse", 3, None, lambda y: np.eye(3, dtype="float32")[y], "CategoricalAccuracy"),
    ("mse", 1, None, lambda y: (y % 2).reshape(-1, 1).astype("float32"), "BinaryAccuracy"),
]


@pytest.mark.parametrize("name", ["accuracy", "acc"])
@pytest.mark.parametrize("loss, units, activation, target, expected", ACCURACY_CASES)
def test_accuracy_is_resolved_from_the_shapes(loss, units, activation, target, expected, name):
    x, y = tiny_data(20)
    model = kerasckpt.Sequential([layers.Input((6,)), layers.Dense(units, activation=activation)])
    model.compile("sgd", loss, metrics=[name])
    logs = model.evaluate(x, target(y), verbose=0, return_dict=True)
    metric = model.metrics[-1]
    assert type(metric).__name__ == expected and metric.name == name
    assert list(logs) == ["loss", name]
    preds = model.predict(x, verbose=0)
    t = target(y)
    if expected == "BinaryAccuracy":
        want = np.mean((preds > 0.5) == t)
    elif expected == "SparseCategoricalAccuracy":
        want = np.mean(preds.argmax(1) == t.reshape(-1))
    else:
        want = np.mean(preds.argmax(1) == t.argmax(1))
    assert logs[name] == pytest.approx(want)


@pytest.mark.parametrize("loss, units, activation, target, expected", ACCURACY_CASES)
def test_accuracy_values_match_keras(loss, units, activation, target, expected):
    keras = _keras()
    x, y = tiny_data(20)
    ours = kerasckpt.Sequential([layers.Input((6,)), layers.Dense(units, activation=activation)])
    theirs = keras.Sequential([keras.Input((6,)), keras.layers.Dense(units, activation=activation)])
    theirs.set_weights(ours.get_weights())
    for model in (ours, theirs):
        model.compile("sgd", loss, metrics=["accuracy"])
    a = ours.evaluate(x, target(y), verbose=0, return_dict=True)
    b = theirs.evaluate(x, target(y), verbose=0, return_dict=True)
    assert set(a) == set(b) == {"loss", "accuracy"}
    assert a["accuracy"] == pytest.approx(b["accuracy"])
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def test_metric_names_in_logs():
    x, y = tiny_data()
    model = make_model("sequential")
    model.compile("sgd", "sparse_categorical_crossentropy",
                  metrics=["acc", kerasckpt.metrics.SparseCategoricalAccuracy(name="sca"), "mae"])
    recorder = Recorder()
    model.fit(x, y.reshape(-1, 1).astype("float32"), epochs=1, verbose=0, validation_split=0.25,
              callbacks=[recorder])
    assert sorted(recorder.last_epoch_logs) == sorted(
        ["loss", "acc", "sca", "mae", "val_loss", "val_acc", "val_sca", "val_mae"])
    assert model.metrics_names == ["loss", "acc", "sca", "mae"]


# ---------------------------------------------------------------- errors

def test_fit_evaluate_before_compile():
    x, y = tiny_data()
    model = make_model("sequential")
    for method in (model.fit, model.evaluate, model.train_on_batch, model.test_on_batch):
        with pytest.raises(RuntimeError, match=r"compile\(\) before"):
            method(x, y)


def test_compile_without_loss():
    x, y = tiny_data()
    model = make_model("sequential")
    model.compile("adam")
    with pytest.raises(ValueError, match="without a loss"):
        model.fit(x, y, verbose=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "mean_squared_errr"}, "'mean_squared_errr'"),
    ({"loss": "mse", "optimizer": "adamm"}, "'adamm'"),
    ({"loss": "mse", "metrics": ["accurracy"]}, "'accurracy'"),
])
def test_unknown_names_are_refused_naming_the_value(kwargs, match):
    x, y = tiny_data()
    model = make_model("sequential")
    with pytest.raises(ValueError, match=match):
        model.compile(**kwargs)
        model.fit(x, np.eye(3)[y], verbose=0)


def test_x_y_length_mismatch_names_the_sizes():
    x, y = tiny_data()
    with pytest.raises(ValueError, match=r"x: \[64\], y: \[63\]"):
        _compiled().fit(x, y[:-1], verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight: \[10\]"):
        _compiled().fit(x, y, sample_weight=np.ones(10), verbose=0)


@pytest.mark.parametrize("where", [(5, 2), (63, 0)])
def test_nan_in_x_names_the_index(where):
    x, y = tiny_data()
    x[where] = np.nan
    with pytest.raises(ValueError, match=rf"nan\) at index \({where[0]}, {where[1]}\)"):
        _compiled().fit(x, y, verbose=0)


def test_nan_in_y_names_the_index():
    x, y = tiny_data()
    targets = np.eye(3, dtype="float32")[y]
    targets[7, 1] = np.inf
    model = make_model("sequential")
    model.compile("sgd", "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"`y`.*inf\) at index \(7, 1\)"):
        model.fit(x, targets, verbose=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size=0"),
    ({"batch_size": -4}, "batch_size=-4"),
    ({"batch_size": 2.5}, "batch_size=2.5"),
    ({"epochs": -1}, "epochs=-1"),
    ({"epochs": 1.5}, "epochs=1.5"),
    ({"validation_split": 1.0}, "1.0"),
    ({"validation_split": -0.2}, "-0.2"),
    ({"validation_split": 0.999}, "no samples"),
    ({"validation_data": (np.ones((2, 6)),)}, "validation_data"),
])
def test_bad_fit_arguments(kwargs, match):
    x, y = tiny_data()
    with pytest.raises(ValueError, match=match):
        _compiled().fit(x, y, verbose=0, **kwargs)


def test_fit_without_targets():
    x, _ = tiny_data()
    with pytest.raises(ValueError, match="y=None"):
        _compiled().fit(x, verbose=0)


def test_class_weight_for_a_multi_output_model_is_refused():
    a = layers.Input((3,))
    model = kerasckpt.Model(a, [layers.Dense(2, name="p")(a), layers.Dense(2, name="q")(a)])
    model.compile("sgd", ["mse", "mse"])
    with pytest.raises(ValueError, match="single output"):
        model.fit(np.ones((4, 3)), [np.ones((4, 2)), np.ones((4, 2))], class_weight={0: 1.0}, verbose=0)


def test_ragged_batch_count_from_steps_matches_math():
    x, y = tiny_data(50)
    recorder = Recorder()
    _compiled().fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[recorder])
    assert recorder.batches_per_epoch() == [math.ceil(50 / 8)]


@pytest.mark.parametrize("freq", [0, -2, 1.5, True, [0, 2], [1, "2"], "every"])
def test_invalid_validation_freq_is_refused_before_anything_trains(freq):
    """Keras divides by validation_freq only at the first epoch's end (ZeroDivisionError for 0)."""
    x, y = tiny_data()
    model = _compiled()
    before = [w.copy() for w in model.get_weights()]
    recorder = Recorder()
    with pytest.raises(ValueError, match=r"validation_freq must be a positive integer.*Received: validation_freq="):
        model.fit(x, y, epochs=2, verbose=0, validation_data=tiny_data(10, seed=3), validation_freq=freq,
                  callbacks=[recorder])
    assert recorder.calls == [] and all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


@pytest.mark.parametrize("size,batch_size,batches,shuffle", [
    (10, 3, 0, True), (10, 3, 2, True), (10, 3, 4, True), (10, 3, 9, False), (64, 64, 5, True), (7, 10, 3, True)])
def test_batch_stream_skip_equals_drawing_the_batches(size, batch_size, batches, shuffle):
    from kerasckpt.models.data import BatchStream
    drawn, skipped = BatchStream(size, batch_size, shuffle, seed=5), BatchStream(size, batch_size, shuffle, seed=5)
    drawn.next()
    skipped.next()
    for _ in range(batches):
        drawn.next()
    skipped.skip(batches)
    assert skipped.get_state() == drawn.get_state()
    for _ in range(7):
        assert np.array_equal(skipped.next(), drawn.next())


@pytest.mark.parametrize("kind", ["sequential", "subclass"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_load_model_of_a_model_checkpoint_file_continues_training_exactly(tmp_path, kind, shuffle):
    """fit(initial_epoch=k) on the model saved after epoch k sees the batches the straight run saw."""
    x, y = tiny_data(80)

    def model():
        m = make_model(kind, dropout=0.3)
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m
    utils.set_random_seed(3)
    straight = model()
    straight.fit(x, y, batch_size=16, epochs=4, shuffle=shuffle, verbose=0, callbacks=[
        kerasckpt.callbacks.ModelCheckpoint(str(tmp_path / "m{epoch}.keras"))])
    utils.set_random_seed(3)  # load_model draws from the global generator as building the model did
    resumed = kerasckpt.models.load_model(str(tmp_path / "m2.keras"))
    resumed.fit(x, y, batch_size=16, epochs=4, initial_epoch=2, shuffle=shuffle, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(resumed.get_weights(), straight.get_weights()))


@pytest.mark.parametrize("changed,first,second", [
    ("class_weight", {"class_weight": {0: 1.0, 1: 1.0, 2: 1.0}}, {"class_weight": {0: 5.0, 1: 1.0, 2: 1.0}}),
    ("sample_weight", {"sample_weight": np.ones(64)}, {"sample_weight": np.linspace(0.5, 1.5, 64)}),
    ("validation_batch_size", {"validation_batch_size": 8}, {"validation_batch_size": 16}),
])
def test_resuming_with_other_weighting_arguments_is_refused_naming_them(tmp_path, changed, first, second):
    x, y = tiny_data()
    backup = kerasckpt.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=1)
    with pytest.raises(KeyboardInterrupt):
        _compiled().fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[backup, Crash(0, 1)], **first)
    backup = kerasckpt.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=1)
    with pytest.raises(kerasckpt.errors.CheckpointMismatchError, match=f"fit argument {changed}"):
        _compiled().fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[backup], **second)


def test_train_on_batch_honours_a_layer_frozen_after_the_first_call():
    x, y = tiny_data()
    model = _compiled()
    model.train_on_batch(x, y)
    frozen = model.layers[0]
    frozen.trainable = False
    before = [w.copy() for w in frozen.get_weights()]
    model.train_on_batch(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(frozen.get_weights(), before))
    frozen.trainable = True
    model.train_on_batch(x, y)
    assert not all(np.array_equal(a, b) for a, b in zip(frozen.get_weights(), before))


class _KerasStyleSteps(kerasckpt.Model):
    """train_step/test_step overridden with Keras 3's signature `(self, data)`."""

    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(1)

    def call(self, inputs, training=False):
        return self.dense(inputs)

    def train_step(self, data):
        x, y, sample_weight = kerasckpt.utils.unpack_x_y_sample_weight(data)
        self.seen.append(len(data))
        with kerasckpt.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        for metric in self.metrics:
            metric.update_state(loss) if metric.name == "loss" else metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        return {"custom_val": np.float32(np.mean(np.abs(np.asarray(self(x)) - y)))}


def test_train_step_and_test_step_overrides_take_keras_data_tuples():
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 3)).astype("float32"), rng.random((32, 1)).astype("float32")
    model = _KerasStyleSteps()
    model.seen = []
    model.compile("sgd", "mse", metrics=["mae"])
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, validation_data=(x, y))
    assert set(history.history) == {"loss", "mae", "val_custom_val"}
    assert history.history["loss"][1] < history.history["loss"][0]
    assert all(isinstance(v, float) for v in history.history["val_custom_val"])
    assert set(model.seen) == {2}  # (x, y): no sample weights given
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, sample_weight=np.ones(32))
    assert model.seen[-1] == 3
    assert isinstance(model.evaluate(x, y, verbose=0), float)


def test_a_step_returning_something_else_than_a_dict_is_refused():
    class Bad(_KerasStyleSteps):
        def train_step(self, data):
            return 1.0
    model = Bad()
    model.compile("sgd", "mse")
    with pytest.raises(TypeError, match=r"train_step\(\) must return a dict of logs"):
        model.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), verbose=0)


def test_unpack_and_pack_x_y_sample_weight_match_keras():
    x, y, w = np.ones(2), np.zeros(2), np.full(2, 0.5)
    assert kerasckpt.utils.pack_x_y_sample_weight(x) == (x,)
    assert kerasckpt.utils.pack_x_y_sample_weight(x, y) == (x, y)
    assert kerasckpt.utils.pack_x_y_sample_weight(x, y, w) == (x, y, w)
    assert kerasckpt.utils.unpack_x_y_sample_weight((x,)) == (x, None, None)
    assert kerasckpt.utils.unpack_x_y_sample_weight(x) == (x, None, None)
    assert kerasckpt.utils.unpack_x_y_sample_weight([x, y]) == (x, y, None)
    with pytest.raises(ValueError, match="a tuple of 4 items"):
        kerasckpt.utils.unpack_x_y_sample_weight((x, y, w, w))


def _dict_output_model():
    inputs = layers.Input(shape=(4,), name="inp")
    hidden = layers.Dense(8, activation="relu")(inputs)
    return kerasckpt.Model(inputs, {"cls": layers.Dense(3, activation="softmax", name="c")(hidden),
                                    "reg": layers.Dense(1, name="r")(hidden)})


def test_a_model_with_dict_outputs_trains_evaluates_and_predicts_by_key():
    rng = np.random.default_rng(0)
    x, yc, yr = rng.random((20, 4)).astype("float32"), rng.integers(0, 3, 20), rng.random((20, 1)).astype("float32")
    model = _dict_output_model()
    model.compile("adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"], "reg": ["mae"]})
    history = model.fit(x, {"cls": yc, "reg": yr}, epochs=2, verbose=0, validation_split=0.25)
    assert {"loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae", "val_loss"} <= set(history.history)
    logs = model.evaluate(x, {"cls": yc, "reg": yr}, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0)
    assert set(pred) == {"cls", "reg"} and pred["cls"].shape == (20, 3) and pred["reg"].shape == (20, 1)
    mse = float(np.mean((pred["reg"] - yr) ** 2))
    assert logs["reg_loss"] == pytest.approx(mse, rel=1e-5)
    with pytest.raises(ValueError, match=r"without the outputs \['reg'\]"):
        model.fit(x, {"cls": yc}, verbose=0)


def test_evaluate_refuses_non_finite_inputs_naming_the_index():
    x, y = tiny_data()
    x[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"`x` contains a non-finite value \(nan\) at index \(5, 2\)"):
        _compiled().evaluate(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"`validation x` contains a non-finite value"):
        _compiled().fit(*tiny_data(), validation_data=(x, y), verbose=0)
