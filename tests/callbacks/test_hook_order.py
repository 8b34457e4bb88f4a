"""HOOK_ORDER is what a loop calls: recorded through CallbackList (and through fit() when available)."""
import numpy as np
import pytest

from kerasckpt.callbacks import ALL_HOOKS, HOOK_ORDER, Callback, CallbackList


class HookRecorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []


def _record(hook):
    indexed = "epoch" in hook or "batch" in hook

    def method(self, *args, **kwargs):
        self.calls.append((hook, args[0]) if indexed else (hook,))
    return method


for _hook in ALL_HOOKS:
    if _hook not in ("on_batch_begin", "on_batch_end"):
        setattr(HookRecorder, _hook, _record(_hook))


def expected_fit_calls(epochs, steps, val_steps):
    calls = [("on_train_begin",)]
    for epoch in range(epochs):
        calls.append(("on_epoch_begin", epoch))
        for batch in range(steps):
            calls += [("on_train_batch_begin", batch), ("on_train_batch_end", batch)]
        if val_steps:
            calls.append(("on_test_begin",))
            for batch in range(val_steps):
                calls += [("on_test_batch_begin", batch), ("on_test_batch_end", batch)]
            calls.append(("on_test_end",))
        calls.append(("on_epoch_end", epoch))
    return calls + [("on_train_end",)]


def test_hook_order_is_the_fit_sequence():
    fit_hooks = [h for h in HOOK_ORDER if "predict" not in h]
    first_seen = list(dict.fromkeys(c[0] for c in expected_fit_calls(1, 1, 1)))
    assert first_seen == fit_hooks
    assert HOOK_ORDER[-4:] == ("on_predict_begin", "on_predict_batch_begin", "on_predict_batch_end",
                               "on_predict_end")


def test_manual_loop_follows_hook_order(model):
    rec = HookRecorder()
    cbs = CallbackList([rec], model=model)
    cbs.on_train_begin()
    for epoch in range(2):
        cbs.on_epoch_begin(epoch)
        for batch in range(3):
            cbs.on_train_batch_begin(batch)
            cbs.on_train_batch_end(batch, {"loss": 1.0})
        cbs.on_test_begin()
        cbs.on_test_batch_begin(0)
        cbs.on_test_batch_end(0, {})
        cbs.on_test_end({})
        cbs.on_epoch_end(epoch, {"loss": 1.0})
    cbs.on_train_end()
    assert rec.calls == expected_fit_calls(2, 3, 1)


def _fit_model():
    kerasckpt = pytest.importorskip("kerasckpt")
    try:
        model = kerasckpt.Sequential([kerasckpt.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    except Exception as exc:  # the model stack is built by another issue
        pytest.skip(f"kerasckpt models are not usable yet: {exc!r}")
    return model


def test_fit_with_validation_follows_hook_order():
    model = _fit_model()
    x = np.linspace(0, 1, 20, dtype="float32").reshape(10, 2)
    y = x.sum(axis=1, keepdims=True)
    rec = HookRecorder()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[rec], validation_data=(x[:6], y[:6]))
    assert rec.calls == expected_fit_calls(2, 3, 2)


def test_evaluate_and_predict_hooks():
    model = _fit_model()
    x = np.ones((5, 2), "float32")
    rec = HookRecorder()
    model.evaluate(x, np.ones((5, 1), "float32"), batch_size=4, verbose=0, callbacks=[rec])
    model.predict(x, batch_size=4, verbose=0, callbacks=[rec])
    assert rec.calls == [("on_test_begin",), ("on_test_batch_begin", 0), ("on_test_batch_end", 0),
                         ("on_test_batch_begin", 1), ("on_test_batch_end", 1), ("on_test_end",),
                         ("on_predict_begin",), ("on_predict_batch_begin", 0), ("on_predict_batch_end", 0),
                         ("on_predict_batch_begin", 1), ("on_predict_batch_end", 1), ("on_predict_end",)]
