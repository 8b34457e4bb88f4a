"""History: per-epoch logs, model.history, state."""
from kerasckpt.callbacks import CallbackList, History


def test_records_epochs_and_sets_model_history(model, run):
    history = History()
    run([history], model, [{"loss": 1.0, "val_loss": 2.0}, {"loss": 0.5, "val_loss": 1.0}])
    assert history.epoch == [0, 1]
    assert history.history == {"loss": [1.0, 0.5], "val_loss": [2.0, 1.0]}
    assert model.history is history


def test_history_accumulates_across_fits_but_epoch_restarts(model, run):
    history = History()
    run([history], model, [{"loss": 1.0}])
    run([history], model, [{"loss": 0.5}])
    assert history.history == {"loss": [1.0, 0.5]} and history.epoch == [0]


def test_state_round_trip_keeps_the_whole_record_apart_from_this_calls(model):
    first = History()
    cbs = CallbackList([first], model=model)
    cbs.on_train_begin()
    cbs.on_epoch_end(0, {"loss": 1.0})
    second = History()
    second.set_state(first.get_state())
    cbs = CallbackList([second], model=model)
    cbs.on_train_begin()
    cbs.on_epoch_end(1, {"loss": 0.5})
    assert second.epoch == [1] and second.history == {"loss": [0.5]}  # this call's epochs, as in Keras
    assert second.run_epoch == [0, 1] and second.run_history == {"loss": [1.0, 0.5]}
    assert second.get_state() == {"epoch": [0, 1], "history": {"loss": [1.0, 0.5]}}


def test_without_a_resume_the_run_record_is_this_calls(model, run):
    history = History()
    run([history], model, [{"loss": 1.0}, {"loss": 0.5}])
    assert history.run_epoch == history.epoch == [0, 1]
    assert history.run_history == history.history == {"loss": [1.0, 0.5]}
    run([history], model, [{"loss": 0.25}])  # a new run: Keras keeps adding to `history`
    assert history.run_epoch == [0] and history.run_history == {"loss": [0.25]}


def test_real_fit_returns_the_history_on_the_model(real_fit):
    model, history = real_fit(None, epochs=2)
    assert model.history is history and history.epoch == [0, 1]
    assert sorted(history.history) == ["loss", "mae", "val_loss", "val_mae"]
    assert all(type(v) is float for values in history.history.values() for v in values)
