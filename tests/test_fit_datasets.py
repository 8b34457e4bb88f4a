"""fit(), evaluate() and predict() on a PyDataset (with and without workers), a generator or an iterator:
the same numbers as arrays on the same batches, Keras's rules for steps and exhaustion, and the errors."""
import os
import threading
import warnings

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.callbacks import Callback

from pipeline_datasets import Batches, Endless, arrays, process_alive

WORKERS = [pytest.param({}, id="main-thread"), pytest.param({"workers": 2}, id="threads"),
           pytest.param({"workers": 2, "use_multiprocessing": True}, id="processes", marks=pytest.mark.slow)]


class Reversed(Batches):
    """A PyDataset defined in a test module: worker processes import it from here."""

    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        return x[::-1].copy(), y[::-1].copy()


def _model(seed=0):
    kerasckpt.utils.set_random_seed(seed)
    model = kerasckpt.Sequential([layers.Input((5,)), layers.Dense(8, activation="relu"), layers.Dropout(0.2),
                                  layers.Dense(3)])
    model.compile(kerasckpt.optimizers.Adam(0.01),
                  kerasckpt.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def _gen(x, y, batch_size=8, repeat=1):
    for _ in range(repeat):
        for i in range(0, len(x), batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]


def _equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)


def _no_workers_left():
    return not [t for t in threading.enumerate() if t.name.startswith("kerasckpt-data-worker")]


@pytest.mark.parametrize("settings", WORKERS)
def test_a_pydataset_trains_evaluates_and_predicts_as_arrays_do_on_the_same_batches(settings):
    x, y = arrays(44)
    reference = _model()
    ref_history = reference.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                                validation_data=(x[:16], y[:16]))
    model = _model()
    history = model.fit(Batches(x, y, batch_size=8, **settings), epochs=2, shuffle=False, verbose=0,
                        validation_data=Batches(x[:16], y[:16], batch_size=8, **settings))
    _equal(model.get_weights(), reference.get_weights())
    assert history.history == ref_history.history
    if settings.get("use_multiprocessing"):
        settings = dict(settings, workers=1)  # a process each for evaluate() and predict(): they start slowly
    data = Batches(x, y, batch_size=8, **settings)
    assert model.evaluate(data, verbose=0) == reference.evaluate(x, y, batch_size=8, verbose=0)
    np.testing.assert_array_equal(model.predict(data, verbose=0), reference.predict(x, batch_size=8, verbose=0))
    assert _no_workers_left()


@pytest.mark.parametrize("make", [lambda x, y: _gen(x, y), lambda x, y: iter(list(_gen(x, y)))],
                         ids=["generator", "iterator"])
def test_a_generator_or_iterator_trains_evaluates_and_predicts_as_arrays_do(make):
    x, y = arrays(44)
    reference = _model()
    reference.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model = _model()
    with pytest.warns(UserWarning, match="`shuffle=True` was passed, but will be ignored"):
        model.fit(make(x, y), epochs=1, verbose=0)  # shuffle=True is the default, as Keras warns
    _equal(model.get_weights(), reference.get_weights())
    assert model.evaluate(make(x, y), verbose=0) == reference.evaluate(x, y, batch_size=8, verbose=0)
    np.testing.assert_array_equal(model.predict(make(x, y), verbose=0), reference.predict(x, batch_size=8, verbose=0))


def test_shuffled_pydataset_batches_are_those_of_the_dataset_in_a_new_order_each_epoch():
    x, y = arrays(40)
    seen = []

    class Record(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append([e for e in data.events if e.startswith("get")][-1])
    data = Batches(x, y, batch_size=8)
    _model().fit(data, epochs=3, callbacks=[Record()], verbose=0)  # shuffle=True: the batch order, as Keras
    epochs = [seen[i:i + 5] for i in (0, 5, 10)]
    assert all(sorted(e) == [f"get {i}" for i in range(5)] for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1


def test_dataset_hooks_run_around_each_epoch_before_the_callbacks_epoch_end():
    x, y = arrays(16)
    data = Batches(x, y, batch_size=8)

    class Log(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            data.events.append(f"cb begin {epoch}")

        def on_epoch_end(self, epoch, logs=None):
            data.events.append(f"cb end {epoch}")
    _model().fit(data, epochs=2, shuffle=False, callbacks=[Log()], verbose=0)
    assert data.events == ["get 0",  # the build's sample: no hooks around it, no on_epoch_end before training
                           "cb begin 0", "begin", "get 0", "get 1", "end", "cb end 0",
                           "cb begin 1", "begin", "get 0", "get 1", "end", "cb end 1"]


def test_steps_per_epoch_runs_on_across_the_datasets_epochs():
    x, y = arrays(40)
    data = Batches(x, y, batch_size=8)  # 5 batches
    history = _model().fit(data, epochs=3, steps_per_epoch=4, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 3
    gets = [e for e in data.events[1:]]
    assert gets == (["begin"] + [f"get {i}" for i in range(5)] + ["end", "begin"] +
                    [f"get {i}" for i in range(5)] + ["end", "begin", "get 0", "get 1", "end"])


def test_an_endless_dataset_needs_steps_and_keeps_counting_its_indices():
    model = _model()
    data = Endless(batch_size=4)
    with pytest.warns(UserWarning, match="ignored since the data `x` was provided as an infinite PyDataset"):
        history = model.fit(data, epochs=2, steps_per_epoch=3, verbose=0)  # shuffle=True is the default
    assert len(history.history["loss"]) == 2
    with pytest.raises(ValueError, match=r"endless PyDataset \(Endless.num_batches is None\).*pass `steps`"):
        model.evaluate(Endless(), verbose=0)
    assert np.isfinite(model.evaluate(Endless(), steps=2, verbose=0)[0])
    assert model.predict(Endless(), steps=3, verbose=0).shape == (12, 3)


def test_a_generator_used_up_stops_training_before_an_epoch_without_batches():
    x, y = arrays(40)
    model = _model()
    with pytest.warns(UserWarning, match=r"ran out of data; interrupting training.*ended before epoch 2 of 3"):
        history = model.fit(_gen(x, y), epochs=3, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 1  # Keras runs epochs 2 and 3 on its first batches again
    model = _model()
    with pytest.warns(UserWarning, match=r"ended after batch 1 of epoch 3 of 4") as record:
        history = model.fit(_gen(x, y), epochs=4, steps_per_epoch=2, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 3 and len([w for w in record if "ran out" in str(w.message)]) == 1


def test_an_endless_generator_with_steps_per_epoch_feeds_every_epoch():
    x, y = arrays(40)
    history = _model().fit(_gen(x, y, repeat=100), epochs=3, steps_per_epoch=4, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 3


def test_a_validation_generator_used_up_leaves_later_epochs_without_val_logs():
    x, y = arrays(40)
    with pytest.warns(UserWarning, match="validation data .* is used up, so this epoch has no val_ logs"):
        history = _model().fit(x, y, epochs=2, validation_data=_gen(x[:16], y[:16]), verbose=0)
    assert len(history.history["val_loss"]) == 1 and len(history.history["loss"]) == 2
    history = _model().fit(x, y, epochs=3, validation_data=_gen(x[:16], y[:16], repeat=10), validation_steps=2,
                           verbose=0)
    assert len(history.history["val_loss"]) == 3


def test_validation_steps_take_the_first_batches_of_a_dataset_every_time():
    x, y = arrays(40)
    val = Batches(x, y, batch_size=8)
    _model().fit(x, y, epochs=2, validation_data=val, validation_steps=2, verbose=0)
    assert val.events == ["begin", "get 0", "get 1", "end"] * 2
    with pytest.warns(UserWarning, match="has 5 batches, fewer than the 9 steps"):
        _model().evaluate(Batches(x, y, batch_size=8), steps=9, verbose=0)


def test_class_weight_applies_to_a_pydatasets_batches_as_to_arrays():
    x, y = arrays(40)
    weights = {0: 1.0, 1: 3.0, 2: 0.5}
    reference = _model()
    reference.fit(x, y, batch_size=8, shuffle=False, class_weight=weights, verbose=0)
    model = _model()
    model.fit(Batches(x, y, batch_size=8), shuffle=False, class_weight=weights, verbose=0)
    _equal(model.get_weights(), reference.get_weights())
    with pytest.raises(ValueError, match="`class_weight` is not supported for Python generator inputs"):
        _model().fit(_gen(x, y), class_weight=weights, shuffle=False, verbose=0)


def test_sample_weights_in_a_datasets_batches_count_as_in_arrays():
    x, y = arrays(40)
    sw = np.linspace(0.5, 2, 40).astype("float32")
    reference = _model()
    reference.fit(x, y, sample_weight=sw, batch_size=8, shuffle=False, verbose=0)
    model = _model()
    model.fit(Batches(x, y, batch_size=8, sample_weight=sw), shuffle=False, verbose=0)
    _equal(model.get_weights(), reference.get_weights())


def test_batch_size_with_a_dataset_is_ignored_with_one_warning():
    x, y = arrays(40)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        history = _model().fit(Batches(x, y, batch_size=8), batch_size=64, validation_batch_size=4, epochs=1,
                               validation_data=Batches(x, y, batch_size=8), verbose=0)
    messages = [str(w.message) for w in record if "is ignored" in str(w.message)]
    assert messages == ["batch_size=64 and validation_batch_size=4 is ignored: the data is a dataset or generator, "
                        "whose batches are already made (their size is the one __getitem__ or the generator gives). "
                        "Leave it out, or change the batch size in the dataset."]
    assert len(history.history["loss"]) == 1
    with pytest.warns(UserWarning, match="batch_size=16 is ignored"):
        _model().predict(Batches(x, y, batch_size=8), batch_size=16, verbose=0)


@pytest.mark.parametrize("kwargs,match", [
    ({"y": np.zeros(40)}, "When providing `x` as a PyDataset \\(Batches\\), `y` should not be passed"),
    ({"sample_weight": np.ones(40)}, "`sample_weight` should not be passed"),
    ({"validation_split": 0.2}, "validation_split is only supported for NumPy arrays"),
    ({"validation_data": "same"}, "validation_data is the same object as x")])
def test_arguments_a_dataset_brings_itself_are_refused(kwargs, match):
    x, y = arrays(40)
    data = Batches(x, y, batch_size=8)
    if kwargs.get("validation_data") == "same":
        kwargs = {"validation_data": data}
    with pytest.raises(ValueError, match=match):
        _model().fit(data, verbose=0, **kwargs)


def test_bad_batches_are_refused_naming_the_batch():
    x, y = arrays(40)
    bad = x.copy()
    bad[27, 2] = np.nan
    with pytest.raises(ValueError, match=r"contains a non-finite value") as info:
        _model().fit(Batches(bad, y, batch_size=8), shuffle=False, verbose=0)
    assert any("the batch at index 3 of Batches" in note for note in info.value.__notes__)
    with pytest.raises(ValueError, match=r"fit\(\) needs targets .* the batch at index 0 of Batches .* inputs only"):
        _model().fit(Batches(x, None, batch_size=8), shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="tuple of 4 items"):
        _model().fit(iter([(x, y, y, y)]), shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="yields no batch"):
        _model().fit(iter([]), shuffle=False, verbose=0)
    model = _model()
    used = _gen(x, y)
    model.evaluate(used, verbose=0)
    with pytest.raises(ValueError, match="evaluate\\(\\) received no batch: the data of evaluate\\(\\) .* is used up"):
        model.evaluate(used, verbose=0)


def test_a_custom_train_step_may_train_on_inputs_alone():
    class AutoEncoder(kerasckpt.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(5)

        def call(self, x, training=False):
            return self.dense(x)

        def train_step(self, data):
            x = data[0] if isinstance(data, tuple) else data
            return super().train_step((x, x))
    x, _ = arrays(24)
    model = AutoEncoder()
    model.compile("sgd", "mse")
    history = model.fit(Batches(x, None, batch_size=8), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_dict_inputs_from_a_dataset():
    class TwoInputs(kerasckpt.Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = layers.Dense(3), layers.Dense(3)

        def build(self, input_shape):  # the default build() calls the model on zeros of one shape
            self.a.build(input_shape["a"])
            self.b.build(input_shape["b"])

        def call(self, inputs, training=False):
            return kerasckpt.ops.add(self.a(inputs["a"]), self.b(inputs["b"]))

    class Dicts(Batches):
        def __getitem__(self, index):
            xb, yb = super().__getitem__(index)
            return {"a": xb[:, :3], "b": xb[:, 3:]}, yb
    x, y = arrays(24)
    kerasckpt.utils.set_random_seed(0)
    model = TwoInputs()
    model.compile("sgd", kerasckpt.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(Dicts(x, y, batch_size=8), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(Dicts(x, y, batch_size=8), verbose=0).shape == (24, 3)


# ---------------------------------------------------------------------- the progress bar


def test_the_progress_bar_shows_batches_per_second_and_the_data_wait(capsys):
    x, y = arrays(40)
    _model().fit(Batches(x, y, batch_size=8, delay=0.01), epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert "5/5" in out and "step/s" in out or "s/step" in out
    assert "data wait" in out and "%)" in out
    _model().fit(_gen(x, y), epochs=1, shuffle=False, verbose=1)
    out = capsys.readouterr().out
    assert "/Unknown" in out and "data wait" in out
    _model().fit(Batches(x, y, batch_size=8), epochs=2, verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("5/5 - ")]
    assert len(lines) == 2 and all(" - data wait " in line for line in lines)
    _model().fit(x, y, epochs=1, verbose=2)
    assert "data wait" not in capsys.readouterr().out  # arrays: no data to wait for


# ---------------------------------------------------------------------- errors and interruptions


class Interrupt(Callback):
    def __init__(self, at, exc=KeyboardInterrupt):
        super().__init__()
        self.at, self.exc = at, exc

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.at:
            raise self.exc("stop here")


def _logged_pids(log_dir):
    return [int(p.stem) for p in log_dir.glob("*.log")]



@pytest.mark.parametrize("settings", WORKERS[1:])
@pytest.mark.parametrize("how", ["getitem error", "KeyboardInterrupt", "callback error"])
def test_errors_and_interruptions_leave_no_worker_behind(tmp_path, settings, how):
    x, y = arrays(120)
    data = Batches(x, y, batch_size=4, log_dir=str(tmp_path), delay=0.01,
                   fail_at=6 if how == "getitem error" else None, **settings)
    callbacks = {"getitem error": [], "KeyboardInterrupt": [Interrupt(4)],
                 "callback error": [Interrupt(4, RuntimeError)]}[how]
    expected = {"getitem error": KeyError, "KeyboardInterrupt": KeyboardInterrupt,
                "callback error": RuntimeError}[how]
    with pytest.raises(expected) as info:
        _model().fit(data, epochs=1, shuffle=False, callbacks=callbacks, verbose=0)
    if how == "getitem error":
        assert "Raised by Batches.__getitem__(6) (the batch at index 6)." in info.value.__notes__
    assert _no_workers_left()
    workers = [pid for pid in _logged_pids(tmp_path) if pid != os.getpid()]  # this process built the model
    if settings.get("use_multiprocessing"):
        assert len(workers) == 2 and not [pid for pid in workers if process_alive(pid)]


def test_evaluate_and_predict_show_the_data_wait_too(capsys):
    x, y = arrays(40)
    model = _model()
    model.evaluate(Batches(x, y, batch_size=8), verbose=1)
    assert "data wait" in capsys.readouterr().out
    model.predict(Batches(x, y, batch_size=8), verbose=1)
    assert "data wait" in capsys.readouterr().out


@pytest.mark.slow
def test_a_dataset_class_of_a_test_module_loads_in_worker_processes(tmp_path):
    x, y = arrays(32)
    data = Reversed(x, y, batch_size=8, workers=2, use_multiprocessing=True, log_dir=str(tmp_path))
    got = _model().predict(data, verbose=0)
    np.testing.assert_array_equal(got, _model().predict(Reversed(x, y, batch_size=8), verbose=0))
    assert [pid for pid in _logged_pids(tmp_path) if pid != os.getpid()]  # loaded in the workers


@pytest.mark.slow
def test_with_worker_processes_this_process_never_loads_a_batch(tmp_path):
    """Not even the one that builds the model: a dataset opening files in __getitem__ stays picklable."""
    x, y = arrays(32)
    data = Batches(x, y, batch_size=8, workers=2, use_multiprocessing=True, log_dir=str(tmp_path))
    _model().fit(data, epochs=1, verbose=0)
    assert data.events == ["begin", "end"]  # this process ran the hooks only
    workers = [pid for pid in _logged_pids(tmp_path) if pid != os.getpid()]
    assert len(workers) == 2 and all("get" in (tmp_path / f"{pid}.log").read_text() for pid in workers)
