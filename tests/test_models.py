"""Models: the three kinds train, predict and evaluate; functional graphs with several inputs and
outputs, shared layers and nested models; the everyday model surface (layers, get_layer, weights,
count_params, summary, build, calling on NumPy) and the `training` flag."""
import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.models import Functional

from conftest import MODEL_KINDS, make_model, tiny_data


def _keras():
    return pytest.importorskip("keras")


def _softmax_xent(probs, labels):
    return float(np.mean(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1 - 1e-7))))


def _two_branch_model():
    """Inputs a (6 features) and b (2 features); outputs cls (3-way softmax of a) and reg (linear of b)."""
    a, b = layers.Input((6,), name="a"), layers.Input((2,), name="b")
    cls = layers.Dense(3, activation="softmax", name="cls")(layers.Dense(8, activation="relu", name="h")(a))
    reg = layers.Dense(1, name="reg")(layers.Dense(4, name="mix")(b))
    return kerasckpt.Model([a, b], [cls, reg])


def _two_branch_data(n=64):
    x, y = tiny_data(n)
    xb = np.random.default_rng(1).normal(size=(n, 2)).astype("float32")
    return x, xb, y, xb.sum(1, keepdims=True)


# ---------------------------------------------------------------- the three kinds

@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_each_kind_trains_predicts_and_evaluates(kind):
    x, y = tiny_data()
    model = make_model(kind)
    model.compile(kerasckpt.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=25, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 25 and losses[-1] < 0.5 * losses[0]
    probs = model.predict(x, verbose=0)
    assert probs.shape == (64, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc == pytest.approx(np.mean(probs.argmax(1) == y))
    assert acc >= 0.95
    assert loss == pytest.approx(_softmax_xent(probs, y), rel=1e-4)


def test_model_of_inputs_and_outputs_is_functional():
    inp = layers.Input((3,))
    model = kerasckpt.Model(inp, layers.Dense(2)(inp))
    assert type(model) is Functional and isinstance(model, kerasckpt.Model)
    model = kerasckpt.Model(inputs=inp, outputs=layers.Dense(2)(inp))
    assert type(model) is Functional
    assert type(make_model("subclass")).__name__ == "SubMLP"


def test_functional_needs_symbolic_tensors():
    with pytest.raises(TypeError, match="ndarray"):
        kerasckpt.Model(layers.Input((3,)), np.zeros((1, 2)))


def test_functional_refuses_an_input_missing_from_inputs():
    a, b = layers.Input((3,), name="first"), layers.Input((3,), name="second")
    merged = layers.Dense(2)(a)
    other = layers.Dense(2)(b)
    with pytest.raises(ValueError, match="'second'"):
        kerasckpt.Model(a, [merged, other])


# ---------------------------------------------------------------- several inputs and outputs

def test_multi_input_multi_output_with_list_losses_and_loss_weights():
    x, xb, y, yb = _two_branch_data()
    model = _two_branch_model()
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5])
    probs, reg = model.predict([x, xb], verbose=0)
    assert probs.shape == (64, 3) and reg.shape == (64, 1)
    logs = model.evaluate([x, xb], [y, yb], verbose=0, return_dict=True)
    cls_loss, reg_loss = _softmax_xent(probs, y), float(np.mean((reg - yb) ** 2))
    assert list(logs) == ["loss", "cls_loss", "reg_loss"]
    assert logs["cls_loss"] == pytest.approx(cls_loss, rel=1e-5)
    assert logs["reg_loss"] == pytest.approx(reg_loss, rel=1e-5)
    assert logs["loss"] == pytest.approx(cls_loss + 0.5 * reg_loss, rel=1e-5)
    assert model.evaluate([x, xb], [y, yb], verbose=0) == pytest.approx(list(logs.values()))
    history = model.fit([x, xb], [y, yb], epochs=2, verbose=0, validation_split=0.25)
    assert set(history.history) == {"loss", "cls_loss", "reg_loss", "val_loss", "val_cls_loss", "val_reg_loss"}


def test_multi_output_dict_inputs_dict_losses_and_dict_loss_weights():
    x, xb, y, yb = _two_branch_data()
    model = _two_branch_model()
    model.compile("adam", {"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                  loss_weights={"cls": 2.0, "reg": 1.0})
    probs, reg = model.predict({"a": x, "b": xb}, verbose=0)
    np.testing.assert_array_equal(probs, model.predict([x, xb], verbose=0)[0])
    loss = model.evaluate({"a": x, "b": xb}, {"cls": y, "reg": yb}, verbose=0)[0]
    assert loss == pytest.approx(2 * _softmax_xent(probs, y) + np.mean((reg - yb) ** 2), rel=1e-5)
    history = model.fit({"a": x, "b": xb}, {"cls": y, "reg": yb}, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "cls_loss", "reg_loss"}


def test_multi_output_metrics_per_output_are_named_as_keras_names_them():
    x, xb, y, yb = _two_branch_data()
    model = _two_branch_model()
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"], metrics=[["acc"], ["mae", "mse"]])
    logs = model.evaluate([x, xb], [y, yb], verbose=0, return_dict=True)
    assert list(logs) == ["loss", "cls_loss", "reg_loss", "cls_acc", "reg_mae", "reg_mse"]
    probs, reg = model.predict([x, xb], verbose=0)
    assert logs["cls_acc"] == pytest.approx(np.mean(probs.argmax(1) == y))
    assert logs["reg_mae"] == pytest.approx(np.mean(np.abs(reg - yb)), rel=1e-5)
    assert model.metrics_names == list(logs)
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"], metrics={"reg": "mae"})
    assert list(model.evaluate([x, xb], [y, yb], verbose=0, return_dict=True)) == [
        "loss", "cls_loss", "reg_loss", "reg_mae"]


def test_multi_output_metric_objects_exist_before_the_first_callback():
    """Savers (BackupAndRestore) key metric state by position in model.metrics: it must not change mid-run."""
    x, xb, y, yb = _two_branch_data()
    seen = []

    class Names(kerasckpt.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(list(self.model.metrics_names))

    model = _two_branch_model()
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"], metrics=[["acc"], []])
    model.fit([x, xb], [y, yb], epochs=1, verbose=0, callbacks=[Names()])
    assert seen == [model.metrics_names] == [["loss", "cls_loss", "reg_loss", "cls_acc"]]


def test_multi_output_metric_keys_match_keras():
    keras = _keras()
    x, xb, y, yb = _two_branch_data()
    a, b = keras.Input((6,), name="a"), keras.Input((2,), name="b")
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(keras.layers.Dense(8, name="h")(a))
    reg = keras.layers.Dense(1, name="reg")(keras.layers.Dense(4, name="mix")(b))
    theirs = keras.Model([a, b], [cls, reg])
    ours = _two_branch_model()
    for model in (ours, theirs):
        model.compile("sgd", ["sparse_categorical_crossentropy", "mse"], metrics=[["accuracy"], ["mae"]],
                      weighted_metrics=[[], ["mae"]])
    ours_logs = ours.fit([x, xb], [y, yb], epochs=1, verbose=0, validation_split=0.5).history
    theirs_logs = theirs.fit([x, xb], [y, yb], epochs=1, verbose=0, validation_split=0.5).history
    assert set(ours_logs) == set(theirs_logs)


def test_a_flat_metric_list_for_several_outputs_is_refused():
    x, xb, y, yb = _two_branch_data()
    model = _two_branch_model()
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"], metrics=["accuracy"])
    with pytest.raises(ValueError, match=r"2 outputs \['cls', 'reg'\].*metrics=\['accuracy'\]"):
        model.fit([x, xb], [y, yb], verbose=0)


def test_list_losses_count_must_match_outputs():
    x, xb, y, yb = _two_branch_data()
    model = _two_branch_model()
    model.compile("adam", ["mse"])
    with pytest.raises(ValueError, match="1 losses but the model has 2 outputs"):
        model.fit([x, xb], [y, yb], verbose=0)
    model.compile("adam", {"cls": "mse", "value": "mse"})
    with pytest.raises(ValueError, match=r"\['value'\].*\['cls', 'reg'\]"):
        model.fit([x, xb], [y, yb], verbose=0)


def test_multi_branch_layers_are_ordered_as_keras_orders_them():
    model = _two_branch_model()
    assert [layer.name for layer in model.layers] == ["a", "b", "h", "mix", "cls", "reg"]
    assert [w.path for w in model.weights][:4] == ["h/kernel", "h/bias", "mix/kernel", "mix/bias"]


def test_functional_layer_order_matches_keras_for_a_diamond():
    keras = _keras()

    def build(lib):
        i = lib.Input((3,), name="i")
        p = lib.layers.Dense(2, name="p")(i)
        q = lib.layers.Dense(2, name="q")(i)
        r = lib.layers.Dense(2, name="r")(p)
        return lib.Model(i, [lib.layers.Activation("relu", name="c")(r), lib.layers.Dense(1, name="d")(q)])

    ours, theirs = build(kerasckpt), build(keras)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]


def test_shared_layer_weights_are_counted_once_and_get_both_gradients():
    a, b = layers.Input((3,), name="left"), layers.Input((3,), name="right")
    shared = layers.Dense(2, name="shared")
    model = kerasckpt.Model([a, b], [shared(a), shared(b)])
    assert [w.path for w in model.weights] == ["shared/kernel", "shared/bias"]
    assert model.count_params() == 8
    assert [layer.name for layer in model.layers] == ["left", "right", "shared"]
    x = np.random.default_rng(2).normal(size=(4, 3)).astype("float32")
    left, right = model.predict([x, 2 * x], verbose=0)
    kernel, bias = shared.get_weights()
    np.testing.assert_allclose(left, x @ kernel + bias, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(right, 2 * x @ kernel + bias, rtol=1e-5, atol=1e-6)
    model.compile("sgd", ["mse", "mse"])
    model.fit([x, 2 * x], [np.zeros((4, 2)), np.zeros((4, 2))], epochs=1, verbose=0)
    # one SGD step on the sum of both branches' mean squared errors
    grad = (x.T @ (2 * left / 8) + (2 * x).T @ (2 * right / 8))
    np.testing.assert_allclose(shared.kernel.numpy(), kernel - 0.01 * grad, rtol=1e-4, atol=1e-6)


def test_nested_sequential_inside_a_functional_model():
    block = kerasckpt.Sequential([layers.Dense(4, activation="relu"), layers.Dropout(0.5, seed=1), layers.Dense(2)],
                                 name="block")
    inp = layers.Input((3,))
    model = kerasckpt.Model(inp, layers.Dense(1, name="head")(block(inp)))
    assert [layer.name for layer in model.layers] == ["input_layer", "block", "head"]
    assert [w.path for w in model.weights] == ["block/dense/kernel", "block/dense/bias", "block/dense_1/kernel",
                                               "block/dense_1/bias", "head/kernel", "head/bias"]
    x = np.ones((8, 3), "float32")
    inference = model(x).numpy()
    assert np.all(inference == inference[0])  # no dropout: identical rows
    training = model(x, training=True).numpy()
    assert not np.all(training == training[0])  # training reached the Dropout inside the block
    model.compile("adam", "mse")
    before = block.layers[0].kernel.numpy()
    model.fit(x, np.ones((8, 1)), epochs=1, verbose=0)
    assert not np.array_equal(before, block.layers[0].kernel.numpy())


def test_nested_paths_match_keras():
    keras = _keras()
    keras.utils.clear_session()

    def build(lib):
        block = lib.Sequential([lib.layers.Dense(4), lib.layers.Dense(2)], name="block")
        inp = lib.Input((3,))
        return lib.Model(inp, lib.layers.Dense(1)(block(inp)))

    assert [w.path for w in build(kerasckpt).weights] == [w.path for w in build(keras).weights]


# ---------------------------------------------------------------- the model surface

@pytest.mark.parametrize("kind, names", [
    ("sequential", ["dense", "batch_normalization", "dropout", "dense_1"]),
    ("functional", ["input_layer", "dense", "batch_normalization", "dropout", "dense_1"]),
    ("subclass", ["dense", "batch_normalization", "dropout", "dense_1"]),
])
def test_layers_and_get_layer(kind, names):
    model = make_model(kind)
    assert [layer.name for layer in model.layers] == names
    assert model.get_layer("batch_normalization") is model.layers[names.index("batch_normalization")]
    assert model.get_layer(index=-1) is model.layers[-1]
    assert model.get_layer(index=0).name == names[0]
    with pytest.raises(ValueError, match=r"'dense_9'.*'batch_normalization'"):
        model.get_layer("dense_9")
    with pytest.raises(ValueError, match=f"index=7.*{len(names)} layers"):
        model.get_layer(index=7)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_get_weights_set_weights_and_their_errors(kind):
    model = make_model(kind)
    model.build((None, 6))
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(6, 16), (16,), (16,), (16,), (16,), (16,), (16, 3), (3,)]
    new = [np.full_like(w, i) for i, w in enumerate(weights)]
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    weights[0][...] = 99  # get_weights returns copies
    assert model.get_weights()[0][0, 0] == 0
    with pytest.raises(ValueError, match=r"8 weights but set_weights received 7.*dense/kernel"):
        model.set_weights(new[:-1])
    bad = list(new)
    bad[6] = np.zeros((16, 4), "float32")
    with pytest.raises(ValueError, match=r"'[a-z_]*/?dense_1/kernel' has shape \(16, 3\).*\(16, 4\)"):
        model.set_weights(bad)
    np.testing.assert_array_equal(model.get_weights()[0], new[0])  # nothing assigned on error


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_count_params(kind):
    model = make_model(kind)
    if kind == "subclass":
        with pytest.raises(ValueError, match="not built"):
            model.count_params()
        model.build((None, 6))
    assert model.count_params() == 6 * 16 + 16 + 4 * 16 + 16 * 3 + 3 == 227


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_summary_rows_and_totals(kind):
    model = make_model(kind)
    model.build((None, 6))
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert text.splitlines()[0] == f'Model: "{model.name}"'
    rows = [line for line in text.splitlines() if line.startswith("│")]
    first_dense = next(r for r in rows if "dense (Dense)" in r)
    assert "(None, 16)" in first_dense and first_dense.rstrip("│ ").endswith("112")
    assert any("batch_normalization (BatchNormalization)" in r and r.rstrip("│ ").endswith("64") for r in rows)
    assert any("dropout (Dropout)" in r and r.rstrip("│ ").endswith(" 0") for r in rows)
    assert any("dense_1 (Dense)" in r and "(None, 3)" in r and r.rstrip("│ ").endswith("51") for r in rows)
    if kind == "functional":
        assert any("input_layer (InputLayer)" in r and "(None, 6)" in r for r in rows)
    assert " Total params: 227 (908.00 B)" in text.splitlines()
    assert " Trainable params: 195 (780.00 B)" in text.splitlines()
    assert " Non-trainable params: 32 (128.00 B)" in text.splitlines()


def test_summary_totals_match_keras():
    keras = _keras()
    theirs = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                               keras.layers.BatchNormalization(), keras.layers.Dropout(0.0),
                               keras.layers.Dense(3, activation="softmax")])
    keras_lines, our_lines = [], []
    theirs.summary(print_fn=lambda text, line_break=False: keras_lines.extend(text.splitlines()))
    make_model("sequential").summary(print_fn=lambda text: our_lines.extend(text.splitlines()))
    totals = [line.rstrip() for line in keras_lines if "params:" in line]
    assert len(totals) == 3 and totals == [line.rstrip() for line in our_lines if "params:" in line]


def test_summary_prints_to_stdout_by_default(capsys):
    make_model("sequential").summary()
    assert "Total params: 227" in capsys.readouterr().out


def _nested_for_summary(mod):
    """The same nested Sequential in Keras or kerasckpt: its first Dense frozen, a Sequential inside."""
    inner = mod.Sequential([mod.layers.Dense(3, name="dense")], name="inner")
    model = mod.Sequential([mod.Input((4,)), mod.layers.Dense(5, name="dense_1"),
                            mod.layers.BatchNormalization(name="batch_normalization"),
                            mod.layers.Dropout(0.1, name="dropout"), inner], name="outer")
    model.layers[0].trainable = False
    return model


def _summary_lines(model, **kwargs):
    lines = []
    model.summary(print_fn=lambda text, line_break=False: lines.extend(text.rstrip("\n").splitlines()), **kwargs)
    return lines


@pytest.mark.parametrize("kwargs", [
    {"line_length": 70}, {"line_length": 40}, {"line_length": 120, "show_trainable": True},
    {"line_length": 60, "show_trainable": True, "expand_nested": True}, {"positions": [0.5, 0.75, 1.0]},
    {"line_length": 40, "show_trainable": True, "expand_nested": True}, {"line_length": 30},
    {"line_length": 100, "positions": [30, 60, 100], "expand_nested": True}])
def test_summary_layout_matches_keras(kwargs, monkeypatch):
    """line_length/positions give Keras's column widths; long cells wrap between words as in Keras."""
    keras = _keras()
    monkeypatch.setenv("COLUMNS", "250")  # Keras's table must not be narrowed to the test's terminal
    if all(p <= 1 for p in kwargs.get("positions", [1])):
        theirs = _summary_lines(_nested_for_summary(keras), **kwargs)
    else:  # Keras 3 takes only fractions; the same columns as fractions of the line
        theirs = _summary_lines(_nested_for_summary(keras), **{**kwargs, "positions": [0.3, 0.6, 1.0]})
    ours = _summary_lines(_nested_for_summary(kerasckpt), **kwargs)
    assert ours == theirs
    width = kwargs.get("line_length", 88)
    assert all(len(line) == width for line in ours[1:] if line[0] in "┏┃┡│├└")


def test_summary_show_trainable_column():
    lines = _summary_lines(_nested_for_summary(kerasckpt), show_trainable=True, expand_nested=True)
    assert lines[2].split("┃")[-2].strip() == "Trainable"
    marks = {line.split("│")[1].split("(")[0].strip(): line.split("│")[-2].strip() for line in lines
             if line.startswith("│")}
    assert marks == {"dense_1": "N", "batch_normalization": "Y", "dropout": "-", "inner": "Y", "└ dense": "Y"}


def test_summary_expand_nested_lists_inner_layers_indented():
    plain = _summary_lines(_nested_for_summary(kerasckpt))
    nested = _summary_lines(_nested_for_summary(kerasckpt), expand_nested=True)
    assert not any("└ dense (Dense)" in line for line in plain)
    assert any(line.startswith("│    └ dense (Dense) ") and line.rstrip("│ ").endswith("18") for line in nested)
    assert plain[-3:] == nested[-3:]  # the totals count each weight once


def test_summary_optimizer_params_once_built():
    model = make_model("sequential")
    model.compile(kerasckpt.optimizers.Adam(), "sparse_categorical_crossentropy")
    assert not any("Optimizer params" in line for line in _summary_lines(model))
    model.fit(*tiny_data(8), verbose=0)
    lines = _summary_lines(model)
    slots = 2 * 195  # Adam: momentum and velocity per trainable parameter
    size = ((slots + 1) * 4 + 8) / 1024  # slots and learning rate in float32, iteration in int64
    assert lines[-1] == f" Optimizer params: {slots + 2} ({size:.2f} KB)"
    assert lines[-4].startswith(f" Total params: {227 + slots + 2} ")


@pytest.mark.parametrize("kwargs,match", [
    ({"line_length": 10}, "Insufficient console width.*line_length=10.*larger `line_length`"),
    ({"line_length": 80, "positions": [0.5, 1.0]}, "prints 3 columns, so `positions` needs 3 entries"),
])
def test_summary_layout_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_model("sequential").summary(print_fn=lambda text: None, **kwargs)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_build_creates_every_weight(kind):
    model = make_model(kind)
    model.build((None, 6))
    assert model.built and len(model.weights) == 8
    before = model.get_weights()
    model.predict(np.ones((2, 6), "float32"), verbose=0)
    for a, b in zip(before, model.get_weights()):  # building never reruns and never changes weights
        np.testing.assert_array_equal(a, b)


def test_sequential_without_input_builds_on_first_call_and_by_build():
    model = kerasckpt.Sequential([layers.Dense(4), layers.Dense(2)])
    assert not model.built and model.weights == []
    model(np.ones((3, 5), "float32"))
    assert model.built and [w.shape for w in model.weights] == [(5, 4), (4,), (4, 2), (2,)]
    other = kerasckpt.Sequential([layers.Dense(4), layers.Dense(2)])
    other.build((None, 5))
    assert [w.path for w in other.weights] == ["sequential_1/dense_2/kernel", "sequential_1/dense_2/bias",
                                               "sequential_1/dense_3/kernel", "sequential_1/dense_3/bias"]
    with pytest.raises(ValueError, match="input shape"):
        kerasckpt.Sequential([layers.Dense(1)]).build()


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_calling_a_model_on_numpy_gives_a_tensor_with_numpy_and_float(kind):
    x, _ = tiny_data(5)
    model = make_model(kind)
    out = model(x)
    assert out.numpy().shape == (5, 3) and out.numpy().dtype == np.float32
    assert isinstance(float(out[0, 0]), float)
    np.testing.assert_allclose(np.sum(out, axis=1), np.ones(5), rtol=1e-5)
    np.testing.assert_allclose(out.numpy(), model.predict(x, verbose=0), rtol=1e-6)
    assert model(x.astype("float64")).numpy().dtype == np.float32  # float64 input is autocast


def test_losses_and_metrics_offer_numpy_and_float():
    loss = kerasckpt.losses.MeanSquaredError()(np.ones((2, 3)), np.zeros((2, 3)))
    assert float(loss) == 1.0 and loss.numpy() == np.float32(1.0)
    assert float(np.sqrt(loss)) == 1.0
    metric = kerasckpt.metrics.Mean()
    metric.update_state([1.0, 2.0, 6.0])
    assert float(metric.result()) == 3.0 and metric.result().numpy() == np.float32(3.0)


class NoTrainingArg(kerasckpt.Model):
    """call() neither takes nor passes `training`; the nested layers must still see it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bn = layers.BatchNormalization(momentum=0.5)
        self.drop = layers.Dropout(0.5, seed=4)

    def call(self, inputs):
        return self.drop(self.bn(inputs))


class Block(layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.drop = layers.Dropout(0.5, seed=4)

    def call(self, inputs):
        return self.drop(inputs)


class NotForwarding(kerasckpt.Model):
    """call() takes `training` but calls its block without it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = Block()

    def call(self, inputs, training=False):
        return self.block(inputs)


@pytest.mark.parametrize("cls", [NoTrainingArg, NotForwarding])
def test_training_reaches_nested_layers_without_being_passed(cls):
    model = cls()
    x = np.random.default_rng(3).normal(size=(8, 4)).astype("float32") + 2
    np.testing.assert_array_equal(model(x).numpy() == 0, np.zeros((8, 4), bool))
    assert np.count_nonzero(model(x, training=True).numpy() == 0) > 0
    assert np.count_nonzero(model(x, training=False).numpy() == 0) == 0


def test_fit_trains_nested_layers_in_training_mode_without_passing_training():
    model = NoTrainingArg()
    x = np.random.default_rng(3).normal(size=(16, 4)).astype("float32") + 5
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((16, 4)), epochs=1, batch_size=16, verbose=0, shuffle=False)
    # one training batch moved the moving mean halfway to the batch mean; predict stays in inference mode
    np.testing.assert_allclose(model.bn.moving_mean.numpy(), 0.5 * x.mean(0), rtol=1e-5)
    counter = model.drop.seed_generator.counter
    model.predict(x, verbose=0)
    assert model.drop.seed_generator.counter == counter
