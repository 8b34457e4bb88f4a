"""LearningRateScheduler: both schedule forms, checks, logs, messages."""
import math

import numpy as np
import pytest

from kerasckpt.callbacks import CallbackList, LearningRateScheduler


def test_two_argument_schedule_sets_rate_each_epoch(capsys, fake_model):
    model = fake_model(learning_rate=1.0)
    cbs = CallbackList([LearningRateScheduler(lambda epoch, lr: lr * 0.5, verbose=1)], add_history=True, model=model)
    cbs.on_train_begin()
    for epoch in range(3):
        cbs.on_epoch_begin(epoch)
        cbs.on_epoch_end(epoch, {"loss": 1.0})
    assert model.optimizer.learning_rate == 0.125
    assert model.history.history["learning_rate"] == [0.5, 0.25, 0.125]
    assert capsys.readouterr().out == "".join(
        f"\nEpoch {e + 1}: LearningRateScheduler setting learning rate to {lr}.\n" for e, lr in
        enumerate([0.5, 0.25, 0.125]))


def test_epoch_only_schedule_and_numpy_or_int_results(fake_model):
    model = fake_model()
    cb = LearningRateScheduler(lambda epoch: [np.float32(0.5), 1, np.array(0.25)][epoch])
    cb.set_model(model)
    for epoch, expected in enumerate([0.5, 1.0, 0.25]):
        cb.on_epoch_begin(epoch)
        assert type(model.optimizer.learning_rate) is float and model.optimizer.learning_rate == expected


def test_type_error_inside_a_two_argument_schedule_is_not_swallowed(fake_model):
    def schedule(epoch, lr):
        return lr * "x"
    cb = LearningRateScheduler(schedule)
    cb.set_model(fake_model())
    with pytest.raises(TypeError, match="can't multiply sequence"):
        cb.on_epoch_begin(0)


def test_builtin_without_signature_uses_the_keras_fallback(fake_model):
    cb = LearningRateScheduler(math.exp)  # math.exp has no introspectable signature on some versions
    cb.set_model(fake_model())
    cb.on_epoch_begin(0)
    assert cb.model.optimizer.learning_rate == 1.0


@pytest.mark.parametrize("bad", ["0.1", None, True, np.array([0.1, 0.2])])
def test_non_float_result_raises(bad, fake_model):
    cb = LearningRateScheduler(lambda epoch, lr: bad)
    cb.set_model(fake_model())
    with pytest.raises(ValueError, match="should be a float. Got: .* at epoch 0. Return the learning rate"):
        cb.on_epoch_begin(0)


def test_schedule_must_be_callable():
    with pytest.raises(TypeError, match="callable `schedule"):
        LearningRateScheduler(0.1)


def test_real_fit_sets_the_optimizer_rate(real_fit):
    rates = [0.02, 0.01, 0.005]
    model, history = real_fit([LearningRateScheduler(lambda epoch: rates[epoch])], epochs=3)
    assert history.history["learning_rate"] == [float(np.float32(r)) for r in rates]
    assert model.optimizer.learning_rate == float(np.float32(0.005))
