"""Callback and CallbackList: dispatch table, params/model, exceptions, state keys."""
import numpy as np
import pytest

from kerasckpt.callbacks import (ALL_HOOKS, HOOK_ORDER, Callback, CallbackList, EarlyStopping, History,
                                 LambdaCallback, ProgbarLogger, ReduceLROnPlateau)


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("on_epoch_end", epoch, logs))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("on_train_batch_end", batch, logs))


class Boom(Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyError("boom")


def test_noop_callbacks_are_never_dispatched():
    cbs = CallbackList([Callback() for _ in range(10)])
    assert all(fns == [] for fns in cbs._dispatch.values())


def test_dispatch_only_to_overriding_callbacks_in_list_order():
    a, b = Recorder(), Recorder()
    cbs = CallbackList([a, Callback(), b])
    assert [f.__self__ for f in cbs._dispatch["on_epoch_end"]] == [a, b]
    assert cbs._dispatch["on_epoch_begin"] == []
    cbs.on_epoch_end(3, {"loss": np.float32(0.5), "b": 1})
    assert a.calls == b.calls == [("on_epoch_end", 3, {"b": 1.0, "loss": 0.5})]
    assert type(a.calls[0][2]["loss"]) is float


def test_logs_are_a_sorted_float_copy_shared_by_the_callbacks_of_one_call():
    seen = []
    first = LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update(extra=1.0))
    second = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(dict(logs)))
    original = {"val_loss": 2, "loss": np.array(1.0), "nested": {"acc": 0.5}, "vec": np.arange(2)}
    CallbackList([first, second]).on_epoch_end(0, original)
    assert list(seen[0]) == ["loss", "acc", "val_loss", "vec", "extra"]
    assert seen[0]["loss"] == 1.0 and isinstance(seen[0]["vec"], np.ndarray)
    assert "extra" not in original


def test_batch_alias_is_called_through_train_batch_hooks():
    calls = []

    class Old(Callback):
        def on_batch_end(self, batch, logs=None):
            calls.append(batch)

    cbs = CallbackList([Old()])
    cbs.on_train_batch_end(4, {})
    cbs.on_batch_end(5, {})
    assert calls == [4, 5]


def test_set_model_and_params_reach_every_callback_and_history(model):
    history, other = History(), Callback()
    cbs = CallbackList([other, history], model=model, epochs=3, steps=2, verbose=0)
    assert other.model is model and history.model is model and cbs.model is model
    assert other.params == {"epochs": 3, "steps": 2, "verbose": 0}
    assert model.history is history


def test_add_history_and_progbar_only_when_missing():
    cbs = CallbackList(add_history=True, add_progbar=True)
    assert [type(c) for c in cbs.callbacks] == [History, ProgbarLogger]
    h = History()
    assert CallbackList([h], add_history=True).callbacks == [h]


def test_append_sets_model_params_and_rebuilds_dispatch(model):
    cbs = CallbackList(model=model, epochs=2)
    rec = Recorder()
    cbs.append(rec)
    assert rec.model is model and rec.params == {"epochs": 2}
    cbs.on_epoch_end(0, {})
    assert rec.calls == [("on_epoch_end", 0, {})]


def test_callbacks_added_directly_are_picked_up_at_train_begin():
    cbs = CallbackList()
    rec = Recorder()
    cbs.callbacks.append(rec)
    cbs.on_train_begin()
    cbs.on_epoch_end(1, None)
    assert rec.calls == [("on_epoch_end", 1, {})]


def test_nested_lists_flatten_and_non_callbacks_are_refused():
    a, b = Callback(), Callback()
    assert CallbackList([a, [b]]).callbacks == [a, b]
    with pytest.raises(TypeError, match="item 1 is 'oops'.*LambdaCallback"):
        CallbackList([a, "oops"])


def test_exception_is_reraised_unchanged_with_callback_and_hook_recorded():
    boom = Boom()
    cbs = CallbackList([Recorder(), boom])
    with pytest.raises(KeyError) as info:
        cbs.on_epoch_end(2, {})
    exc = info.value
    assert exc.args == ("boom",)
    assert exc.callback is boom and exc.hook == "on_epoch_end"
    assert exc.__notes__ == ["Raised by callback Boom (state key 'Boom') in on_epoch_end(epoch=2)."]


def test_exception_from_lambda_and_nested_list_is_recorded_once():
    def fail(batch, logs):
        raise RuntimeError("bad batch")
    lam = LambdaCallback(on_train_batch_begin=fail)
    outer = CallbackList([CallbackList([lam])])
    with pytest.raises(RuntimeError, match="bad batch") as info:
        outer.on_train_batch_begin(7)
    assert info.value.callback is lam and info.value.hook == "on_train_batch_begin"
    assert info.value.__notes__ == ["Raised by callback LambdaCallback (state key 'LambdaCallback') in "
                                    "on_train_batch_begin(batch=7)."]


def test_every_hook_exists_on_callback_and_callbacklist():
    on_methods = {name for name in dir(Callback) if name.startswith("on_")}
    assert on_methods == set(ALL_HOOKS)
    assert set(HOOK_ORDER) | {"on_batch_begin", "on_batch_end"} == set(ALL_HOOKS)
    for hook in ALL_HOOKS:
        assert getattr(CallbackList, hook).__name__ == hook


def test_state_keys_disambiguate_duplicates_in_list_order():
    e1, e2, r, e3 = EarlyStopping(), EarlyStopping(), ReduceLROnPlateau(), EarlyStopping()
    e2.state_key = "EarlyStopping_1"  # an explicit key is kept; the next duplicate skips it
    keyed = CallbackList([e1, r, e3, e2]).callbacks_by_state_key()
    assert keyed == {"EarlyStopping": e1, "ReduceLROnPlateau": r, "EarlyStopping_2": e3, "EarlyStopping_1": e2}
    assert e1.state_key == "EarlyStopping"
    with pytest.raises(ValueError, match="non-empty string"):
        e1.state_key = ""


def test_callbacklist_state_round_trip_by_key():
    a, b = EarlyStopping(), EarlyStopping()
    a.wait, b.wait = 1, 2
    state = CallbackList([a, b, Callback()]).get_state()
    assert set(state) == {"EarlyStopping", "EarlyStopping_1"}
    c, d = EarlyStopping(), EarlyStopping()
    CallbackList([c, d]).set_state(state)
    assert (c.wait, d.wait) == (1, 2)
    with pytest.warns(UserWarning, match="EarlyStopping_1.*match no callback"):
        CallbackList([EarlyStopping()]).set_state(state)


def test_base_callback_state():
    cb = Callback()
    assert cb.get_state() is None
    cb.set_state(None)
    with pytest.raises(ValueError, match="keeps no state.*Override get_state"):
        cb.set_state({"x": 1})


def test_subclass_without_super_init_still_works():
    class Lazy(Callback):
        def __init__(self):
            pass

    cb = Lazy()
    assert cb.model is None and cb.state_key == "Lazy"
    CallbackList([cb]).on_epoch_end(0, {})


def test_per_batch_dispatch_stays_cheap():
    import timeit

    class NoOp(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            pass

        def on_train_batch_end(self, batch, logs=None):
            pass

    logs = {"loss": 0.5, "accuracy": 0.25}
    cbs = CallbackList([NoOp() for _ in range(10)], add_history=True)

    def batch():
        cbs.on_train_batch_begin(0)
        cbs.on_train_batch_end(0, logs)
    per_batch = min(timeit.repeat(batch, number=2000, repeat=5)) / 2000
    assert per_batch < 50e-6  # ~4 us on one shared core; a training step of a tiny model is ~1 ms
