"""TerminateOnNaN: graceful stop or error on a NaN/Inf batch loss."""
import pytest

from kerasckpt.callbacks import CallbackList, TerminateOnNaN


@pytest.mark.parametrize("loss", [float("nan"), float("inf"), -float("inf")])
def test_stops_on_invalid_loss(model, capsys, loss):
    cbs = CallbackList([TerminateOnNaN()], model=model)
    cbs.on_train_batch_end(0, {"loss": 1.0})
    assert not model.stop_training
    cbs.on_train_batch_end(1, {"loss": loss})
    assert model.stop_training
    assert capsys.readouterr().out == f"Batch 1: Invalid loss, terminating training (loss={loss})\n"


def test_raise_error(model):
    cbs = CallbackList([TerminateOnNaN(raise_error=True)], model=model)
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 2. Loss value: nan") as info:
        cbs.on_train_batch_end(2, {"loss": float("nan")})
    assert info.value.hook == "on_train_batch_end"


def test_stops_the_scripted_loop(model, run):
    assert run([TerminateOnNaN()], model, [{"loss": 1.0}, {"loss": float("nan")}, {"loss": 1.0}]) == 2
