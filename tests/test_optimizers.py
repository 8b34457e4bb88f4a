"""Optimizers: Keras 3 parity of the update math and slots, variable order and names, configs, errors."""
import contextlib
import math
import os
import warnings

import numpy as np
import pytest

from kerasckpt import optimizers
from kerasckpt.autograd import Tensor
from kerasckpt.optimizers import schedules
from kerasckpt.variables import Variable, name_scope

SHAPES = {"dense/kernel": (4, 3), "dense/bias": (3,), "block_1/conv/kernel": (2, 2, 5)}


def make_vars(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for path, shape in SHAPES.items():
        scope, name = path.rsplit("/", 1)
        with name_scope(scope):
            out.append(Variable(rng.normal(size=shape).astype("float32"), name=name))
    return out


def grad_sequence(steps=6, seed=1, scale=1.0, none_at=None):
    rng = np.random.default_rng(seed)
    seq = []
    for step in range(steps):
        grads = [(scale * rng.normal(size=shape)).astype("float32") for shape in SHAPES.values()]
        if none_at is not None and step == none_at:
            grads[1] = None
        seq.append(grads)
    return seq


def run_ours(opt, seq, seed=0):
    variables = make_vars(seed)
    for grads in seq:
        opt.apply_gradients(zip(grads, variables))
    return variables


# ------------------------------------------------------------------------------------ Keras parity
def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _kwargs_for(keras, kwargs):
    kwargs = dict(kwargs)
    lr = kwargs.get("learning_rate")
    if isinstance(lr, tuple):  # ("exp", initial, steps, rate, staircase)
        _, init, steps, rate, stair = lr
        kwargs["learning_rate"] = keras.optimizers.schedules.ExponentialDecay(init, steps, rate, staircase=stair)
    return kwargs


def _ours_kwargs(kwargs):
    kwargs = dict(kwargs)
    lr = kwargs.get("learning_rate")
    if isinstance(lr, tuple):
        _, init, steps, rate, stair = lr
        kwargs["learning_rate"] = schedules.ExponentialDecay(init, steps, rate, staircase=stair)
    return kwargs


def run_keras(keras, cls_name, kwargs, seq, seed=0):
    rng = np.random.default_rng(seed)
    variables = []
    for path, shape in SHAPES.items():
        scope, name = path.rsplit("/", 1)
        with contextlib.ExitStack() as stack:
            for part in scope.split("/"):
                stack.enter_context(keras.name_scope(part))
            variables.append(keras.Variable(rng.normal(size=shape).astype("float32"), name=name))
    opt = getattr(keras.optimizers, cls_name)(**_kwargs_for(keras, kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras's own "Gradients do not exist" warning
        for grads in seq:
            tensors = [None if g is None else keras.ops.convert_to_tensor(g) for g in grads]
            opt.apply_gradients(zip(tensors, variables))
    return ([keras.ops.convert_to_numpy(v.value) for v in variables],
            [(v.name, keras.ops.convert_to_numpy(v.value)) for v in opt.variables])


def assert_close_to_keras(ours, theirs, name):
    # Keras-on-torch fuses `a + alpha * b` (FMA) where NumPy rounds twice: allow a few float32 ulps
    # of the array's scale (measured: <= 2.2e-7 of max|value| over every case below).
    scale = float(np.max(np.abs(theirs))) if np.size(theirs) else 0.0
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6 * max(scale, 1e-30), err_msg=name)


PARITY = [
    ("SGD", {}),
    ("SGD", {"momentum": 0.9}),
    ("SGD", {"momentum": 0.9, "nesterov": True, "learning_rate": 0.05}),
    ("SGD", {"momentum": 0.5, "learning_rate": ("exp", 0.1, 2, 0.5, False)}),
    ("SGD", {"momentum": 0.9, "weight_decay": 0.05, "clipvalue": 0.3}),
    ("SGD", {"momentum": 0.9, "gradient_accumulation_steps": 2}),
    ("Adam", {}),
    ("Adam", {"amsgrad": True, "learning_rate": 0.01}),
    ("Adam", {"clipnorm": 0.5}),
    ("Adam", {"clipvalue": 0.1}),
    ("Adam", {"global_clipnorm": 1.0}),
    ("Adam", {"weight_decay": 0.01, "learning_rate": 0.01}),
    ("Adam", {"learning_rate": ("exp", 0.01, 3, 0.5, True)}),
    ("Adam", {"learning_rate": ("exp", 0.01, 3, 0.5, False), "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-3}),
    ("Adam", {"use_ema": True, "ema_momentum": 0.9, "ema_overwrite_frequency": 4}),
    ("Adam", {"loss_scale_factor": 4.0, "gradient_accumulation_steps": 3}),
    ("AdamW", {}),
    ("AdamW", {"weight_decay": 0.1, "amsgrad": True, "learning_rate": 0.01, "global_clipnorm": 2.0}),
    ("RMSprop", {}),
    ("RMSprop", {"momentum": 0.5}),
    ("RMSprop", {"centered": True, "rho": 0.8}),
    ("RMSprop", {"momentum": 0.5, "centered": True, "clipnorm": 1.0, "learning_rate": 0.01}),
]


@pytest.mark.keras
@pytest.mark.parametrize("cls_name,kwargs", PARITY, ids=[f"{c}-{'-'.join(k) or 'default'}" for c, k in PARITY])
def test_keras_parity_variables_and_slots(cls_name, kwargs):
    keras = _keras()
    none_at = None if kwargs.get("gradient_accumulation_steps") else 2  # a step where one gradient is None
    seq = grad_sequence(steps=6, scale=3.0, none_at=none_at)
    k_vars, k_opt = run_keras(keras, cls_name, kwargs, seq)
    opt = getattr(optimizers, cls_name)(**_ours_kwargs(kwargs))
    with pytest.warns(UserWarning, match="dense/bias") if none_at is not None else contextlib.nullcontext():
        ours = run_ours(opt, seq)
    for ours_v, theirs in zip(ours, k_vars):
        assert_close_to_keras(ours_v.numpy(), theirs, ours_v.path)
    assert [v.name for v in opt.variables] == [name for name, _ in k_opt]
    for v, (name, theirs) in zip(opt.variables, k_opt):
        assert_close_to_keras(v.numpy(), theirs, name)


@pytest.mark.keras
@pytest.mark.parametrize("cls_name,kwargs", [("SGD", {"momentum": 0.9, "nesterov": True}), ("Adam", {"amsgrad": True}),
                                             ("AdamW", {"weight_decay": 0.01}),
                                             ("RMSprop", {"momentum": 0.5, "centered": True}),
                                             ("Adam", {"learning_rate": ("exp", 0.1, 3, 0.5, True)})])
def test_keras_parity_config_and_serialize(cls_name, kwargs):
    keras = _keras()
    k_opt = getattr(keras.optimizers, cls_name)(name="opt", **_kwargs_for(keras, kwargs))
    opt = getattr(optimizers, cls_name)(name="opt", **_ours_kwargs(kwargs))
    assert opt.get_config() == k_opt.get_config()
    ours = optimizers.serialize(opt)
    assert ours["module"] == "keras.optimizers" and ours["registered_name"] is None
    rebuilt = keras.optimizers.deserialize(ours)  # Keras reads what we write
    assert rebuilt.get_config() == k_opt.get_config()
    back = optimizers.deserialize(keras.optimizers.serialize(k_opt))  # and we read what torch-Keras writes
    assert back.get_config() == opt.get_config()


@pytest.mark.keras
@pytest.mark.parametrize("staircase", [False, True])
def test_keras_parity_exponential_decay(staircase):
    keras = _keras()
    k = keras.optimizers.schedules.ExponentialDecay(0.1, 3, 0.7, staircase=staircase)
    ours = schedules.ExponentialDecay(0.1, 3, 0.7, staircase=staircase)
    for step in [0, 1, 2, 3, 4, 7, 100]:
        assert float(ours(step)) == pytest.approx(float(keras.ops.convert_to_numpy(k(step))), rel=1e-6)
    assert schedules.serialize(ours) == keras.optimizers.schedules.serialize(k)


# ------------------------------------------------------------------------------------ first steps by hand
def _one_step(opt, g):
    with name_scope("d"):
        w = Variable(np.array([1.0, -2.0, 0.5], "float32"), name="w")
    opt.apply_gradients([(np.asarray(g, "float32"), w)])
    return w, opt


def test_sgd_first_steps_by_hand():
    g = np.array([0.5, -1.0, 2.0])
    w, _ = _one_step(optimizers.SGD(learning_rate=0.1), g)
    np.testing.assert_allclose(w.numpy(), [1.0 - 0.05, -2.0 + 0.1, 0.5 - 0.2], rtol=1e-6)
    w, opt = _one_step(optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True), g)
    m = -0.1 * g
    np.testing.assert_allclose(opt.momentums[0].numpy(), m, rtol=1e-6)
    np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0, 0.5]) + 0.9 * m - 0.1 * g, rtol=1e-6)
    opt.apply_gradients([(g.astype("float32"), w)])
    np.testing.assert_allclose(opt.momentums[0].numpy(), 0.9 * m - 0.1 * g, rtol=1e-6)


def test_adam_first_step_by_hand():
    g = np.array([0.5, -1.0, 2.0])
    w, opt = _one_step(optimizers.Adam(learning_rate=0.01), g)
    m, v = 0.1 * g, 0.001 * g * g
    alpha = 0.01 * math.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0, 0.5]) - alpha * m / (np.sqrt(v) + 1e-7), rtol=1e-6)
    np.testing.assert_allclose(opt.variables[2].numpy(), m, rtol=1e-6)
    np.testing.assert_allclose(opt.variables[3].numpy(), v, rtol=1e-6)


def test_adamw_decays_before_the_adam_step():
    g = np.zeros(3)
    w, _ = _one_step(optimizers.AdamW(learning_rate=0.1, weight_decay=0.5), g)
    np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0, 0.5]) * (1 - 0.05), rtol=1e-6)


def test_rmsprop_first_step_by_hand():
    g = np.array([0.5, -1.0, 2.0])
    w, _ = _one_step(optimizers.RMSprop(learning_rate=0.01, rho=0.9), g)
    v = 0.1 * g * g
    np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0, 0.5]) - 0.01 * g / np.sqrt(v + 1e-7), rtol=1e-6)
    w, _ = _one_step(optimizers.RMSprop(learning_rate=0.01, rho=0.9, centered=True), g)
    a = 0.1 * g
    np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0, 0.5]) - 0.01 * g / np.sqrt(v + 1e-7 - a * a),
                               rtol=1e-5)


def test_clipnorm_and_global_clipnorm_by_hand():
    g = np.array([3.0, 4.0, 0.0])  # norm 5
    w, _ = _one_step(optimizers.SGD(learning_rate=1.0, clipnorm=1.0), g)
    np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0, 0.5]) - g / 5, rtol=1e-6)
    w, _ = _one_step(optimizers.SGD(learning_rate=1.0, global_clipnorm=2.5), g)
    np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0, 0.5]) - g / 2, rtol=1e-6)
    w, _ = _one_step(optimizers.SGD(learning_rate=1.0, clipvalue=3.5), g)
    np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0, 0.5]) - [3.0, 3.5, 0.0], rtol=1e-6)


def test_exclude_from_weight_decay():
    variables = make_vars()
    opt = optimizers.AdamW(learning_rate=0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    before = [v.numpy() for v in variables]
    opt.apply_gradients(zip([np.zeros(s, "float32") for s in SHAPES.values()], variables))
    np.testing.assert_allclose(variables[0].numpy(), before[0] * 0.95, rtol=1e-6)
    np.testing.assert_array_equal(variables[1].numpy(), before[1])
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["kernel"])


def test_ema_averages_and_finalize():
    variables = make_vars()
    opt = optimizers.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.5)
    seq = grad_sequence(2)
    opt.apply_gradients(zip(seq[0], variables))
    first = variables[0].numpy()
    np.testing.assert_array_equal(opt.variables[2].numpy(), first)  # step 0 copies the variable
    opt.apply_gradients(zip(seq[1], variables))
    expected = 0.5 * first + 0.5 * variables[0].numpy()
    np.testing.assert_allclose(opt.variables[2].numpy(), expected, rtol=1e-6)
    opt.finalize_variable_values(variables)
    np.testing.assert_allclose(variables[0].numpy(), expected, rtol=1e-6)


def test_update_is_in_place_and_accepts_tensors():
    variables = make_vars()
    arrays = [v._value for v in variables]
    opt = optimizers.Adam()
    opt.apply([Tensor(g) for g in grad_sequence(1)[0]], variables)
    slots = [v._value for v in opt.variables]
    opt.apply(grad_sequence(1, seed=5)[0])  # no variables: the built list, in order
    assert all(v._value is a for v, a in zip(variables, arrays))
    assert all(v._value is a for v, a in zip(opt.variables, slots))
    assert int(opt.iterations.numpy()) == 2


# ------------------------------------------------------------------------------------ variables, slots, tracking
def _names(opt):
    opt.build(make_vars())
    return [v.path for v in opt.variables]


def test_variables_order_and_names():
    assert _names(optimizers.SGD(name="s")) == ["s/iteration", "s/learning_rate"]
    assert _names(optimizers.SGD(momentum=0.9, name="s")) == [
        "s/iteration", "s/learning_rate", "s/dense_kernel_momentum", "s/dense_bias_momentum",
        "s/block_1_conv_kernel_momentum"]
    assert _names(optimizers.Adam(amsgrad=True, name="a")) == [
        "a/iteration", "a/learning_rate",
        "a/dense_kernel_momentum", "a/dense_kernel_velocity", "a/dense_bias_momentum", "a/dense_bias_velocity",
        "a/block_1_conv_kernel_momentum", "a/block_1_conv_kernel_velocity",
        "a/dense_kernel_velocity_hat", "a/dense_bias_velocity_hat", "a/block_1_conv_kernel_velocity_hat"]
    assert _names(optimizers.AdamW(name="w"))[2:4] == ["w/dense_kernel_momentum", "w/dense_kernel_velocity"]
    names = _names(optimizers.RMSprop(momentum=0.5, centered=True, name="r"))
    assert [n.rsplit("_", 1)[-1] for n in names[2:]] == ["velocity"] * 3 + ["momentum"] * 3 + ["gradient"] * 3
    assert _names(optimizers.Adam(schedules.ExponentialDecay(0.1, 10, 0.9), name="e"))[:2] == [
        "e/iteration", "e/dense_kernel_momentum"]
    opt = optimizers.SGD(momentum=0.9, use_ema=True, gradient_accumulation_steps=2, name="s")
    refs = ["s/dense_kernel_", "s/dense_bias_", "s/block_1_conv_kernel_"]
    assert _names(opt)[2:] == [r + slot for slot in ("average", "gradient_accumulator", "momentum") for r in refs]


def test_iteration_and_learning_rate_variables():
    opt = optimizers.Adam(learning_rate=0.01)
    it, lr = opt.variables
    assert it.name == "iteration" and it.dtype == np.int64 and it.shape == () and not it.trainable
    assert lr.name == "learning_rate" and lr.dtype == np.float32 and not lr.trainable
    assert opt.learning_rate == float(np.float32(0.01))
    assert opt.get_config()["learning_rate"] == float(np.float32(0.01))


def test_slot_variables_keyed_by_reference_path():
    variables = make_vars()
    opt = optimizers.Adam()
    opt.build(variables)
    slots = opt.slot_variables()
    assert [(name, ref.path) for name, ref, _ in slots[:2]] == [("momentum", "dense/kernel"),
                                                               ("velocity", "dense/kernel")]
    assert all(slot.shape == ref.shape and slot.name == f"{ref.path.replace('/', '_')}_{name}"
               for name, ref, slot in slots)
    assert len(slots) == len(opt.variables) - 2
    assert opt.variable_index(variables[2]) == 2


def test_trackable_children_are_named_not_positional():
    opt = optimizers.RMSprop(momentum=0.5)
    opt.build(make_vars())
    assert opt._trackable_children() == {"iterations": opt.variables[0], "learning_rate": opt.variables[1]}
    sched = optimizers.SGD(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.9))
    assert list(sched._trackable_children()) == ["iterations"]


def test_default_names_are_unique_snake_case():
    a, b = optimizers.Adam(), optimizers.Adam()
    assert a.name.startswith("adam") and a.name != b.name
    assert optimizers.RMSprop().name.startswith("rm_sprop")  # Keras's auto_name spelling


# ------------------------------------------------------------------------------------ iterations, learning rate
def test_iterations_count_applies_and_none_gradients():
    variables = make_vars()
    opt = optimizers.SGD()
    assert int(opt.iterations.numpy()) == 0
    for i, grads in enumerate(grad_sequence(4, none_at=1)):
        if grads[1] is None:
            with pytest.warns(UserWarning, match="dense/bias"):
                opt.apply_gradients(zip(grads, variables))
        else:
            opt.apply_gradients(zip(grads, variables))
        assert int(opt.iterations.numpy()) == i + 1
    opt.apply_gradients([])  # nothing to apply: no step
    assert int(opt.iterations.numpy()) == 4


def test_gradient_accumulation_counts_real_updates():
    variables = make_vars()
    before = variables[0].numpy()
    opt = optimizers.SGD(gradient_accumulation_steps=2)
    seq = grad_sequence(3)
    opt.apply_gradients(zip(seq[0], variables))
    np.testing.assert_array_equal(variables[0].numpy(), before)  # accumulated only
    assert int(opt.iterations.numpy()) == 0 and int(opt.variables[0].numpy()) == 1
    opt.apply_gradients(zip(seq[1], variables))
    np.testing.assert_allclose(variables[0].numpy(), before - 0.01 * (seq[0][0] + seq[1][0]) / 2, rtol=1e-5)
    assert int(opt.iterations.numpy()) == 1


def test_schedule_follows_iterations():
    variables = make_vars()
    opt = optimizers.SGD(learning_rate=schedules.ExponentialDecay(0.1, 2, 0.5, staircase=True))
    rates = []
    for grads in grad_sequence(5):
        rates.append(opt.learning_rate)
        opt.apply_gradients(zip(grads, variables))
    assert rates == [pytest.approx(r) for r in [0.1, 0.1, 0.05, 0.05, 0.025]]


def test_learning_rate_setter():
    opt = optimizers.Adam()
    lr_var = opt.variables[1]
    opt.learning_rate = 0.5
    assert opt.learning_rate == 0.5 and lr_var.numpy() == np.float32(0.5) and opt.variables[1] is lr_var
    opt.learning_rate = np.float32(0.25)
    assert opt.learning_rate == 0.25
    opt.learning_rate = schedules.ExponentialDecay(0.1, 10, 0.9)
    assert [v.name for v in opt.variables] == ["iteration"]
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1


# ------------------------------------------------------------------------------------ config
KERAS_BASE_KEYS = ["name", "learning_rate", "weight_decay", "clipnorm", "global_clipnorm", "clipvalue", "use_ema",
                   "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps"]


@pytest.mark.parametrize("opt,own_keys", [
    (optimizers.SGD(momentum=0.9, nesterov=True, clipnorm=1.0), ["momentum", "nesterov"]),
    (optimizers.Adam(amsgrad=True, weight_decay=0.1), ["beta_1", "beta_2", "epsilon", "amsgrad"]),
    (optimizers.AdamW(learning_rate=schedules.ExponentialDecay(0.1, 5, 0.5, True)),
     ["beta_1", "beta_2", "epsilon", "amsgrad"]),
    (optimizers.RMSprop(rho=0.8, momentum=0.1, centered=True), ["rho", "momentum", "epsilon", "centered"]),
])
def test_config_round_trip(opt, own_keys):
    config = opt.get_config()
    assert list(config) == KERAS_BASE_KEYS + own_keys
    assert type(opt).from_config(config).get_config() == config
    data = optimizers.serialize(opt)
    assert set(data) == {"module", "class_name", "config", "registered_name"}
    again = optimizers.deserialize(data)
    assert type(again) is type(opt) and again.get_config() == config
    assert optimizers.get(data).get_config() == config


def test_schedule_config_round_trip():
    s = schedules.ExponentialDecay(0.1, 7, 0.5, staircase=True, name="decay")
    data = schedules.serialize(s)
    assert data == {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
                    "config": {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.5,
                               "staircase": True, "name": "decay"}, "registered_name": None}
    assert schedules.deserialize(data).get_config() == s.get_config()


def test_get_by_name_and_instance():
    assert type(optimizers.get("adam")) is optimizers.Adam
    assert type(optimizers.get("RMSprop")) is optimizers.RMSprop
    assert type(optimizers.get("adamw")) is optimizers.AdamW
    assert type(optimizers.get({"class_name": "SGD", "config": {"momentum": 0.5},
                                "module": "keras.src.backend.torch.optimizers.torch_sgd"})) is optimizers.SGD
    opt = optimizers.SGD()
    assert optimizers.get(opt) is opt and optimizers.get(None) is None


# ------------------------------------------------------------------------------------ errors
def test_unknown_optimizer_name_lists_valid_names():
    with pytest.raises(ValueError, match="'nadamx'.*adam, adamw, rmsprop, sgd"):
        optimizers.get("nadamx")
    with pytest.raises(ValueError, match="Valid names"):
        optimizers.deserialize({"class_name": "Dense", "config": {}})
    with pytest.raises(ValueError, match="Valid names"):
        optimizers.get(42)


def test_wrong_gradient_shape_names_the_variable():
    variables = make_vars()
    grads = grad_sequence(1)[0]
    grads[2] = np.zeros((5, 2, 2), "float32")
    with pytest.raises(ValueError, match=r"'block_1/conv/kernel' has shape \(5, 2, 2\).*\(2, 2, 5\)"):
        optimizers.Adam().apply_gradients(zip(grads, variables))


def test_unknown_variable_names_its_path():
    variables = make_vars()
    opt = optimizers.SGD(momentum=0.9)
    opt.apply_gradients(zip(grad_sequence(1)[0][:2], variables[:2]))
    with pytest.raises(ValueError, match="'block_1/conv/kernel'.*new optimizer"):
        opt.apply_gradients(zip(grad_sequence(1)[0], variables))


def test_argument_errors():
    with pytest.raises(ValueError, match="not recognized"):
        optimizers.Adam(foo=1)
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.Adam(learning_rate="fast")
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        optimizers.SGD(gradient_accumulation_steps=1)
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="No gradients"):
        optimizers.SGD().apply_gradients([(None, v) for v in make_vars()])
    with pytest.raises(ValueError, match="build"):
        optimizers.SGD().apply(grad_sequence(1)[0])


# ------------------------------------------------------------------------------------ learning_rate is the Variable
def test_learning_rate_is_the_variable_with_assign_numpy_and_float():
    opt = optimizers.Adam(0.01)
    lr = opt.learning_rate
    assert isinstance(lr, Variable) and lr is opt.variables[1] and lr.path == f"{opt.name}/learning_rate"
    lr.assign(0.5)
    assert opt.learning_rate is lr and float(opt.learning_rate) == 0.5
    assert lr.numpy() == np.float32(0.5) and lr.numpy().dtype == np.float32
    assert opt.learning_rate == 0.5 and opt.learning_rate != 0.25 and not (opt.learning_rate == 0.25)
    assert float(opt.learning_rate * 2) == 1.0 and float(1 - opt.learning_rate) == 0.5
    assert f"{opt.learning_rate:.2f}" == "0.50" and np.isclose(opt.learning_rate, 0.5)
    assert opt.get_config()["learning_rate"] == 0.5


def test_learning_rate_compares_by_identity_with_variables():
    opt = optimizers.SGD(0.1)
    assert opt.learning_rate in opt.variables and opt.variables.index(opt.learning_rate) == 1
    assert (opt.learning_rate == opt.iterations) is False and (opt.learning_rate != opt.iterations) is True
    assert len({opt.learning_rate, opt.learning_rate}) == 1


def test_assigned_learning_rate_drives_the_next_step():
    variables = make_vars()
    before = variables[0].numpy()
    opt = optimizers.SGD(0.01)
    opt.learning_rate.assign(0.5)
    grads = grad_sequence(1)[0]
    opt.apply_gradients(zip(grads, variables))
    np.testing.assert_allclose(variables[0].numpy(), before - 0.5 * grads[0], rtol=1e-6)


def test_learning_rate_setter_keeps_the_same_variable():
    opt = optimizers.RMSprop(0.1)
    lr = opt.learning_rate
    opt.learning_rate = 0.2
    opt.learning_rate = opt.learning_rate * 0.5  # a Tensor from arithmetic on the Variable
    assert opt.learning_rate is lr and float(lr) == float(np.float32(0.1))


def test_scheduled_learning_rate_is_the_current_value_and_read_only():
    opt = optimizers.SGD(learning_rate=schedules.ExponentialDecay(0.1, 1, 0.5))
    variables = make_vars()
    first = opt.learning_rate
    assert isinstance(first, Tensor) and first.numpy() == np.float32(0.1) and first.numpy().dtype == np.float32
    opt.apply_gradients(zip(grad_sequence(1)[0], variables))
    assert float(opt.learning_rate) == float(np.float32(0.05)) and opt.learning_rate == np.float32(0.05)
    assert float(first) == float(np.float32(0.1))  # a snapshot, not a live view
    with pytest.raises(TypeError, match="not settable.*instantiate the optimizer with a float"):
        opt.learning_rate.assign(0.5)
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.5
    assert "learning_rate" not in [v.name for v in opt.variables]


def test_callable_learning_rate_reports_its_value():
    opt = optimizers.Adam(learning_rate=lambda: 0.125)
    assert float(opt.learning_rate) == 0.125 and opt.learning_rate.numpy() == np.float32(0.125)


def test_learning_rate_behaves_like_keras():
    keras = _keras()
    ours, theirs = optimizers.Adam(0.01), keras.optimizers.Adam(0.01)
    for opt in (ours, theirs):
        opt.learning_rate.assign(0.5)
        opt.learning_rate = 0.25
    assert float(ours.learning_rate) == float(theirs.learning_rate.numpy())
    assert float(ours.learning_rate.numpy()) == float(theirs.learning_rate.numpy())
    sched_ours = optimizers.SGD(schedules.ExponentialDecay(0.1, 3, 0.5))
    sched_theirs = keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 3, 0.5))
    assert float(sched_ours.learning_rate) == float(np.asarray(sched_theirs.learning_rate))


def test_lr_callbacks_drive_the_real_variable():
    import kerasckpt
    from kerasckpt.callbacks import LearningRateScheduler, ReduceLROnPlateau
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    model = kerasckpt.Sequential([kerasckpt.Input((3,)), kerasckpt.layers.Dense(1)])
    model.compile(optimizers.SGD(0.1), "mse")
    lr_var = model.optimizer.learning_rate
    history = model.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=[
        LearningRateScheduler(lambda epoch, lr: lr * 0.5),
        ReduceLROnPlateau(monitor="loss", patience=0, min_delta=1e9, factor=0.5)])
    assert model.optimizer.learning_rate is lr_var
    assert float(lr_var) == float(np.float32(0.1 * 0.5 ** 5))  # 3 scheduler halvings, 2 plateau cuts (epoch 0 sets best)
    assert all(type(r) is float for r in history.history["learning_rate"])


# ------------------------------------------------------------------------------------ small variables updated as one
class _OneAtATimeAdam(optimizers.Adam):
    """Adam with its own `update_step` (the same rule), so every variable is updated on its own."""

    def update_step(self, grad, var, lr):
        super().update_step(grad, var, lr)


class _OneAtATimeAdamW(optimizers.AdamW):
    def update_step(self, grad, var, lr):
        super().update_step(grad, var, lr)


@pytest.mark.parametrize("kwargs", [{}, {"amsgrad": True}, {"weight_decay": 0.1}, {"global_clipnorm": 0.5}])
def test_small_variables_updated_together_give_the_same_numbers(kwargs):
    # all three variables here are small, so Adam updates them as one flat array; the subclass with its own
    # update_step goes one variable at a time: the numbers must be the same, bit for bit
    seq = grad_sequence(steps=8, seed=3)
    fused, single = optimizers.Adam(1e-2, **kwargs), _OneAtATimeAdam(1e-2, **kwargs)
    ours, reference = run_ours(fused, seq), run_ours(single, seq)
    assert fused._small is not None and len(fused._small.variables) == 3
    assert single._small is not None  # built as well, but never used: the subclass has its own rule
    for a, b in zip(ours, reference):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(fused.variables, single.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_adamw_updates_small_variables_together_with_the_same_numbers():
    seq = grad_sequence(steps=5, seed=4)
    ours, reference = run_ours(optimizers.AdamW(1e-2), seq), run_ours(_OneAtATimeAdamW(1e-2), seq)
    for a, b in zip(ours, reference):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_large_and_small_variables_mixed(monkeypatch):
    # with a limit of 5 values, the (4, 3) and (2, 2, 5) kernels go one at a time and only the bias is small:
    # fewer than two small variables, so nothing is shared; with 12 the kernel (4, 3) joins the bias
    from kerasckpt.optimizers import adam
    seq = grad_sequence(steps=4, seed=5)
    reference = run_ours(_OneAtATimeAdam(1e-2), seq)
    for limit, together in ((5, None), (12, 2)):
        monkeypatch.setattr(adam, "_FUSE_MAX_SIZE", limit)
        opt = optimizers.Adam(1e-2)
        ours = run_ours(opt, seq)
        assert (opt._small and len(opt._small.variables)) == together
        for a, b in zip(ours, reference):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_small_variables_without_a_gradient_this_step():
    # a None gradient for one small variable: that step updates the others one at a time, as Keras does
    seq = grad_sequence(steps=5, seed=6, none_at=2)
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        ours = run_ours(optimizers.Adam(1e-2), seq)
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        reference = run_ours(_OneAtATimeAdam(1e-2), seq)
    for a, b in zip(ours, reference):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_slots_updated_together_are_the_slot_variables():
    # what the slots hold is what save, load and assign see; a replaced slot array is taken over
    variables = make_vars()
    opt = optimizers.Adam(1e-2)
    opt.build(variables)
    momentum = opt._momentums[1]
    momentum.assign(np.full(3, 0.5, np.float32))  # as a load does: in place
    reference_vars = make_vars()
    reference = _OneAtATimeAdam(1e-2)
    reference.build(reference_vars)
    reference._momentums[1].assign(np.full(3, 0.5, np.float32))
    seq = grad_sequence(steps=3, seed=7)
    for grads in seq[:2]:
        opt.apply_gradients(zip(grads, variables))
        reference.apply_gradients(zip(grads, reference_vars))
    momentum._value = momentum._value.copy()  # a slot given a new array: the next step shares it again
    opt.apply_gradients(zip(seq[2], variables))
    reference.apply_gradients(zip(seq[2], reference_vars))
    for a, b in zip(opt.variables + variables, reference.variables + reference_vars):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert opt._small.intact()
