"""EarlyStopping: Keras 3 semantics (checked against Keras itself), NaN, messages, state."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kerasckpt.callbacks import Callback, EarlyStopping


def test_stops_after_patience_epochs_without_improvement(model, drive_epochs):
    es = EarlyStopping(monitor="val_loss", patience=2)
    ran = drive_epochs(es, model, [1.0, 0.5, 0.6, 0.7, 0.4, 0.3])
    assert ran == 4 and es.stopped_epoch == 3 and model.stop_training
    assert (es.best, es.best_epoch, es.wait) == (0.5, 1, 2)


def test_min_delta_and_max_mode(model, drive_epochs):
    es = EarlyStopping(monitor="val_accuracy", min_delta=0.1, patience=1)
    ran = drive_epochs(es, model, [0.5, 0.55, 0.58, 0.9], monitor="val_accuracy")
    assert ran == 2 and es.best == 0.5  # "auto" found accuracy's direction "up"


def test_baseline_stops_when_never_beaten(model, drive_epochs):
    es = EarlyStopping(monitor="val_loss", patience=2, baseline=0.1)
    # as in Keras, improvements over `best` are tracked and do not stop, but never restart the wait
    assert drive_epochs(es, model, [0.5, 0.4, 0.45, 0.3]) == 3
    assert es.best == 0.4 and es.stopped_epoch == 2


def test_start_from_epoch_ignores_warm_up(model, drive_epochs):
    es = EarlyStopping(monitor="val_loss", patience=0, start_from_epoch=2)
    assert drive_epochs(es, model, [0.1, 0.5, 0.9, 1.0, 1.1]) == 4
    assert es.best == 0.9 and es.best_epoch == 2


def test_restore_best_weights_at_the_end(model, drive_epochs, capsys):
    es = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True, verbose=1)
    drive_epochs(es, model, [0.9, 0.2, 0.5, 0.6])
    assert np.all(model.weights[0] == 1) and es.best_epoch == 1
    assert capsys.readouterr().out == ("Epoch 3: early stopping\n"
                                       "Restoring model weights from the end of the best epoch: 2.\n")


def test_restores_best_weights_also_without_stopping(model, drive_epochs):
    es = EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    drive_epochs(es, model, [0.9, 0.2, 0.5])
    assert es.stopped_epoch == 0 and np.all(model.weights[1] == 1)


def test_nan_never_counts_as_improvement(model, drive_epochs):
    es = EarlyStopping(monitor="val_loss", patience=1)
    assert drive_epochs(es, model, [float("nan"), 0.5, 0.4, float("nan"), 0.1]) == 4
    assert es.best == 0.4 and es.stopped_epoch == 3
    es = EarlyStopping(monitor="val_loss", patience=0)
    assert drive_epochs(es, model, [0.5, float("nan"), 0.1]) == 2 and es.best == 0.5


def test_missing_monitor_warns_with_available_keys(model, drive_epochs):
    es = EarlyStopping(monitor="val_loss")
    with pytest.warns(UserWarning, match="`val_loss` which is not available. Available metrics are: loss,acc"):
        es.set_model(model)
        es.on_train_begin()
        es.on_epoch_end(0, {"loss": 1.0, "acc": 0.5})
    assert es.wait == 0 and not model.stop_training


def test_unknown_mode_warns_and_falls_back_to_auto():
    with pytest.warns(UserWarning, match="EarlyStopping mode 'maximum' is unknown, fallback to auto mode"):
        es = EarlyStopping(mode="maximum")
    assert es.mode == "auto"


def test_auto_mode_without_direction_raises(model, drive_epochs):
    es = EarlyStopping(monitor="val_f1")
    es.set_model(model)
    with pytest.raises(ValueError, match="monitor=val_f1.*metrics: loss, accuracy, mae.*mode='max'"):
        es.on_epoch_end(0, {"val_f1": 0.3})


def test_state_round_trip_resumes_exactly(model, drive_epochs, fake_model):
    values = [0.9, 0.5, 0.6, 0.4, 0.45, 0.47, 0.5, 0.3]
    whole = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    ran_whole = drive_epochs(whole, fake_model(), values)

    first = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    first.set_model(model)
    first.on_train_begin()
    for epoch in range(4):
        model.set_weights([np.full_like(w, epoch) for w in model.weights])
        first.on_epoch_end(epoch, {"val_loss": values[epoch]})
    state = first.get_state()
    assert isinstance(state["best_weights"], list) and state["wait"] == 0 and state["best"] == 0.4

    second = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    second.set_state(state)
    second.set_model(model)
    second.on_train_begin()  # a restored state survives on_train_begin
    for epoch in range(4, len(values)):
        model.set_weights([np.full_like(w, epoch) for w in model.weights])
        second.on_epoch_end(epoch, {"val_loss": values[epoch]})
        if model.stop_training:
            break
    second.on_train_end()
    assert second.get_state()["stopped_epoch"] == whole.stopped_epoch == ran_whole - 1
    assert second.best == whole.best and second.best_epoch == whole.best_epoch
    second.on_train_begin()  # a later fit() starts over
    assert second.wait == 0 and second.best is None


# values and deltas are dyadic so that Keras's float32 comparisons and ours agree exactly
VALUES = st.lists(st.sampled_from([0.125, 0.25, 0.375, 0.5, 0.75, 1.0]), min_size=1, max_size=10)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=VALUES, patience=st.integers(0, 3), min_delta=st.sampled_from([0, 0.125, 0.25]),
       mode=st.sampled_from(["auto", "min", "max"]), baseline=st.sampled_from([None, 0.25, 0.5]),
       restore=st.booleans(), start=st.integers(0, 2), monitor=st.sampled_from(["val_loss", "val_accuracy"]))
def test_matches_keras(keras_callbacks, capsys, drive_epochs, fake_model, values, patience, min_delta, mode, baseline,
                       restore, start, monitor):
    assume(monitor == "val_loss" or mode != "auto")  # Keras reads directions only inside compile containers
    kwargs = dict(monitor=monitor, min_delta=min_delta, patience=patience, verbose=1, mode=mode, baseline=baseline,
                  restore_best_weights=restore, start_from_epoch=start)
    ours, theirs = EarlyStopping(**kwargs), keras_callbacks.EarlyStopping(**kwargs)
    m1, m2 = fake_model([("accuracy", "up")]), fake_model([("accuracy", "up")])
    capsys.readouterr()
    ran_ours = drive_epochs(ours, m1, values, monitor)
    out_ours = capsys.readouterr().out
    ran_theirs = drive_epochs(theirs, m2, values, monitor)
    assert ran_ours == ran_theirs
    assert out_ours == capsys.readouterr().out
    assert (ours.stopped_epoch, ours.wait, ours.best_epoch) == (theirs.stopped_epoch, theirs.wait, theirs.best_epoch)
    assert ours.best == (None if theirs.best is None else float(theirs.best))
    assert all(np.array_equal(a, b) for a, b in zip(m1.weights, m2.weights))


def test_real_fit_stops_at_the_expected_epoch_and_restores_best(real_fit, scripted_logs):
    snapshots = []

    class Snapshot(Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.model.get_weights())

    es = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    model, history = real_fit([scripted_logs("val_loss", [3.0, 1.0, 2.0, 2.5, 0.5, 0.1]), es, Snapshot()], epochs=6)
    assert history.epoch == [0, 1, 2, 3] and es.stopped_epoch == 3 and es.best_epoch == 1
    assert history.history["val_loss"] == [3.0, 1.0, 2.0, 2.5]
    assert not all(np.array_equal(a, b) for a, b in zip(snapshots[1], snapshots[3]))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), snapshots[1]))


def test_real_fit_auto_mode_reads_the_metric_direction(real_fit, scripted_logs):
    es = EarlyStopping(monitor="val_mae", patience=0)
    real_fit([scripted_logs("val_mae", [1.0, 2.0, 0.5]), es], epochs=3)
    assert es.stopped_epoch == 1 and es.monitor_op(0, 1)  # mae goes down
