"""ProgbarLogger: verbose 0/1/2 output, validation metrics at epoch end, evaluate and predict bars."""
import re

from kerasckpt.callbacks import CallbackList, ProgbarLogger


def fit_like(model, verbose, epochs=2, steps=3, validation=True):
    cbs = CallbackList(add_progbar=True, model=model, verbose=verbose, epochs=epochs, steps=steps)
    cbs.on_train_begin()
    for epoch in range(epochs):
        cbs.on_epoch_begin(epoch)
        for batch in range(steps):
            cbs.on_train_batch_begin(batch)
            cbs.on_train_batch_end(batch, {"loss": 0.5 + batch, "accuracy": 0.0001})
        logs = {"loss": 1.5, "accuracy": 0.0001}
        if validation:
            cbs.on_test_begin()
            cbs.on_test_batch_end(0, {"loss": 9.0})
            cbs.on_test_end({"loss": 2.0})
            logs.update(val_loss=2.0)
        cbs.on_epoch_end(epoch, logs)
    cbs.on_train_end()


def test_verbose_2_prints_one_keras_line_per_epoch(model, capsys):
    fit_like(model, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert re.fullmatch(r"3/3 - \d+s - \d+[mu]?s/step - accuracy: 1\.0000e-04 - loss: 1\.5000 - val_loss: 2\.0000",
                        lines[1])


def test_verbose_1_shows_a_live_bar_with_metrics_and_validation_at_the_end(model, capsys):
    fit_like(model, verbose="auto", epochs=1)
    out = capsys.readouterr().out
    assert "Epoch" not in out  # no header for a single epoch, as in Keras
    final = out.split("\r")[-1]
    assert final.startswith("3/3 |") and final.endswith(" - accuracy: 1.0000e-04 - loss: 1.5000 - val_loss: 2.0000\n")
    assert "9.0000" not in out  # validation inside fit() has no bar of its own


def test_verbose_0_is_silent(model, capsys):
    fit_like(model, verbose=0)
    assert capsys.readouterr().out == ""


def test_evaluate_outside_fit_has_its_own_bar(model, capsys):
    cbs = CallbackList(add_progbar=True, model=model, verbose=2, epochs=1, steps=2)
    cbs.on_test_begin()
    cbs.on_test_batch_end(0, {"loss": 1.0})
    cbs.on_test_batch_end(1, {"loss": 1.0})
    cbs.on_test_end({"loss": 1.25})
    assert re.fullmatch(r"2/2 - \d+s - \d+[mu]?s/step - loss: 1\.2500\n", capsys.readouterr().out)


def test_predict_bar_with_unknown_steps_never_shows_outputs(model, capsys):
    cbs = CallbackList(add_progbar=True, model=model, verbose=1, epochs=1, steps=None)
    cbs.on_predict_begin()
    for batch in range(4):
        cbs.on_predict_batch_end(batch, {"outputs": [[-4321.5]]})  # a rate or time never has a minus
    cbs.on_predict_end()
    out = capsys.readouterr().out
    assert out.split("\r")[-1].startswith("4/Unknown") and "-4321" not in out


def test_params_defaults_and_auto():
    bar = ProgbarLogger()
    bar.set_params({"verbose": "auto", "epochs": 4, "steps": 7})
    assert (bar.verbose, bar.epochs, bar.target) == (1, 4, 7)
    bar.set_params({})
    assert (bar.verbose, bar.epochs, bar.target) == (1, 1, None)


def test_real_fit_verbose_2(real_fit, capsys):
    real_fit(None, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert re.fullmatch(r"3/3 - \d+s - \d+[mu]?s/step - loss: \S+ - mae: \S+ - val_loss: \S+ - val_mae: \S+",
                        lines[3])
