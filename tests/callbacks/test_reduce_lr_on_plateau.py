"""ReduceLROnPlateau: Keras 3 semantics (checked against Keras itself), logs, NaN, state."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kerasckpt.callbacks import CallbackList, ReduceLROnPlateau


def drive(callback, model, values):
    callback.set_model(model)
    callback.on_train_begin()
    rates, all_logs = [], []
    for epoch, value in enumerate(values):
        logs = {"val_loss": value}
        callback.on_epoch_end(epoch, logs)
        rates.append(model.optimizer.learning_rate)
        all_logs.append(logs)
    return rates, all_logs


def test_reduces_after_patience_and_respects_cooldown_and_min_lr(capsys, fake_model):
    model = fake_model(learning_rate=1.0)
    cb = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2, min_lr=0.2, verbose=1)
    rates, logs = drive(cb, model, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert rates == [1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]
    assert [entry["learning_rate"] for entry in logs] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2]
    assert capsys.readouterr().out.splitlines()[1] == "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.5."


def test_improvement_resets_wait(fake_model):
    model = fake_model(learning_rate=1.0)
    rates, _ = drive(ReduceLROnPlateau(factor=0.5, patience=2, min_delta=0), model, [3, 2, 2, 1, 1, 1])
    assert rates == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5]


def test_nan_never_counts_as_improvement(fake_model):
    model = fake_model(learning_rate=1.0)
    cb = ReduceLROnPlateau(factor=0.5, patience=2)
    rates, _ = drive(cb, model, [float("nan"), float("nan"), 0.5, float("nan")])
    assert rates == [1.0, 0.5, 0.5, 0.5] and cb.best == 0.5 and cb.wait == 1


def test_factor_must_be_below_one():
    with pytest.raises(ValueError, match=r"factor >= 1.0. Received factor=1.5. Pass a factor below 1.0"):
        ReduceLROnPlateau(factor=1.5)


def test_learning_rate_reaches_history_through_callbacklist(fake_model):
    model = fake_model(learning_rate=0.1)
    cbs = CallbackList([ReduceLROnPlateau(monitor="loss")], add_history=True, model=model)
    cbs.on_train_begin()
    cbs.on_epoch_end(0, {"loss": 1.0})
    assert model.history.history == {"loss": [1.0], "learning_rate": [0.1]}


def test_missing_monitor_warns(fake_model):
    cb = ReduceLROnPlateau()
    cb.set_model(fake_model())
    with pytest.warns(UserWarning, match="conditioned on metric `val_loss` which is not available. "
                                         "Available metrics are: loss,learning_rate"):
        cb.on_epoch_end(0, {"loss": 1.0})


def test_state_round_trip_resumes_exactly(fake_model):
    values = [1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8]
    whole, _ = drive(ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1), fake_model(learning_rate=1.0), values)
    model = fake_model(learning_rate=1.0)
    first = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1)
    head, _ = drive(first, model, values[:3])
    state = first.get_state()
    assert set(state) == {"best", "wait", "cooldown_counter"}
    second = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1)
    second.set_state(state)
    second.set_model(model)
    second.on_train_begin()
    tail = []
    for epoch in range(3, len(values)):
        second.on_epoch_end(epoch, {"val_loss": values[epoch]})
        tail.append(model.optimizer.learning_rate)
    assert head + tail == whole


VALUES = st.lists(st.sampled_from([0.125, 0.25, 0.5, 0.75, 1.0]), min_size=1, max_size=12)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=VALUES, factor=st.sampled_from([0.1, 0.5]), patience=st.integers(0, 3),
       mode=st.sampled_from(["auto", "min", "max"]), min_delta=st.sampled_from([0, 0.125]),
       cooldown=st.integers(0, 2), min_lr=st.sampled_from([0.0, 0.01]))
def test_matches_keras(keras_callbacks, capsys, fake_model, values, factor, patience, mode, min_delta, cooldown,
                       min_lr):
    kwargs = dict(monitor="val_loss", factor=factor, patience=patience, verbose=1, mode=mode, min_delta=min_delta,
                  cooldown=cooldown, min_lr=min_lr)
    capsys.readouterr()
    ours, logs_ours = drive(ReduceLROnPlateau(**kwargs), fake_model(learning_rate=1.0), values)
    out_ours = capsys.readouterr().out
    theirs, logs_theirs = drive(keras_callbacks.ReduceLROnPlateau(**kwargs), fake_model(learning_rate=1.0), values)
    assert ours == theirs and logs_ours == logs_theirs
    assert out_ours == capsys.readouterr().out


def test_real_fit_reduces_the_optimizer_rate(real_fit, scripted_logs):
    cb = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1)
    model, history = real_fit([scripted_logs("val_loss", [1.0, 1.0, 1.0, 0.5]), cb], epochs=4, learning_rate=0.1)
    expected = [0.1, 0.1, 0.05, 0.025]
    assert history.history["learning_rate"] == [float(np.float32(r)) for r in expected]
    assert model.optimizer.learning_rate == float(np.float32(0.025))
