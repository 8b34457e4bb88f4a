"""LambdaCallback: functions per hook, validation of names."""
import pytest

from kerasckpt.callbacks import CallbackList, LambdaCallback


def test_functions_are_called_with_keras_arguments(model, run):
    calls = []
    cb = LambdaCallback(on_train_begin=lambda logs: calls.append("begin"),
                        on_epoch_end=lambda epoch, logs: calls.append(("epoch", epoch, logs["loss"])),
                        on_train_batch_end=lambda batch, logs: calls.append(("batch", batch)),
                        on_test_end=lambda logs: calls.append("test_end"))
    run([cb], model, [{"loss": 1.0}], steps=2, validation=True)
    assert calls == ["begin", ("batch", 0), ("batch", 1), "test_end", ("epoch", 0, 1.0)]


def test_batch_alias_keyword():
    seen = []
    CallbackList([LambdaCallback(on_batch_begin=lambda batch, logs: seen.append(batch))]).on_train_batch_begin(3)
    assert seen == [3]


def test_only_given_hooks_are_dispatched():
    cbs = CallbackList([LambdaCallback(on_epoch_end=lambda e, l: None)])
    assert [h for h, fns in cbs._dispatch.items() if fns] == ["on_epoch_end"]


def test_unknown_hook_name_raises_with_suggestion():
    with pytest.raises(TypeError, match="unknown hook 'on_epoch_ends'. Did you mean 'on_epoch_end'"):
        LambdaCallback(on_epoch_ends=print)


def test_non_callable_raises():
    with pytest.raises(TypeError, match="needs a function for on_epoch_end. Received: on_epoch_end=3"):
        LambdaCallback(on_epoch_end=3)
