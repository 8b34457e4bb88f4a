"""Adam and AdamW (Adam with decoupled weight decay), with Keras 3's update rule and slot order."""
import numpy as np

from kerasckpt._registry import builtin
from kerasckpt.optimizers.base import Optimizer, f32_constants

_F32 = np.float32
# float32 variables of at most this many values are updated together, as one array: each NumPy call costs
# about a microsecond whatever its size, and below this size copying the gradient in costs less than the
# ten calls it saves (a model's biases and small kernels).
_FUSE_MAX_SIZE = 16384


@builtin()
class Adam(Optimizer):
    """Adam: adaptive moment estimation, Keras 3's formulation.

    `m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g; w -= alpha*m / (sqrt(v) + epsilon)` with
    `alpha = lr * sqrt(1 - b2**t) / (1 - b1**t)` computed once per step in float32 (`t` is
    `iterations + 1`). Slots, interleaved per variable: `momentum`, `velocity`; then, with
    `amsgrad=True`, `velocity_hat` for every variable (the maximum of past velocities).

    Args:
        learning_rate: a float or a `schedules.LearningRateSchedule`. Defaults to 0.001.
        beta_1: decay rate of the first-moment estimates. Defaults to 0.9.
        beta_2: decay rate of the second-moment estimates. Defaults to 0.999.
        epsilon: added to `sqrt(v)` for numerical stability. Defaults to 1e-7.
        amsgrad: whether to apply the AMSGrad variant.
        **kwargs: the base arguments of `Optimizer` (`weight_decay`, `clipnorm`, ..., `name`).
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad

    _checkpoint_slot_names = {**Optimizer._checkpoint_slot_names, "momentum": ("_momentums", "m"),
                              "velocity": ("_velocities", "v"), "velocity_hat": ("_velocity_hats", "vhat")}

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])
        self._velocity_hats = self.add_optimizer_variables(var_list, "velocity_hat") if self.amsgrad else []
        self._small = _SmallVariables.of(self)

    def _prepare_step(self, lr):
        t = _F32(self._step_count() + 1)
        key = (float(self.beta_1), float(self.beta_2), float(self.epsilon))  # may be set between steps
        cached = self.__dict__.get("_fixed_consts")
        if cached is None or cached[0] != key:
            b1, b2, eps = key
            cached = self._fixed_consts = (key, f32_constants(b1, 1 - b1, b2, 1 - b2, eps), _F32(b1), _F32(b2))
        (b1, c1, b2, c2, eps), f_b1, f_b2 = cached[1], cached[2], cached[3]
        alpha = _F32(lr) * np.sqrt(_F32(1) - np.power(f_b2, t)) / (_F32(1) - np.power(f_b1, t))
        self._consts = (b1, c1, b2, c2, np.array(alpha, dtype=np.float32), eps)

    def update_step(self, grad, var, lr):
        i = self._index[id(var)]
        s, t = self._scratch[i]
        v_hat = self._velocity_hats[i]._value if self.amsgrad else None
        _moments_and_step(grad, self._momentums[i]._value, self._velocities[i]._value, v_hat, s, t, self._consts)
        var._value -= t

    def _update_steps(self, grads, variables, lr):
        small = self.__dict__.get("_small")
        if small is None or type(self).update_step is not Adam.update_step:  # a subclass's own rule
            return super()._update_steps(grads, variables, lr)
        if not small.intact():  # a slot's array was replaced since: share the slots' current values again
            small = self._small = _SmallVariables.of(self)
        rest = small.gather(grads, variables) if small is not None else None
        if rest is None:  # not every small variable has a gradient this step: one at a time
            return super()._update_steps(grads, variables, lr)
        small.update(self._consts, self.amsgrad)
        update_step = self.update_step
        for g, v in rest:
            update_step(g, v, lr)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                       "amsgrad": self.amsgrad})
        return config


def _moments_and_step(grad, m, v, v_hat, s, t, consts):
    """Adam's rule in place: update the moments `m`, `v` (and `v_hat` with AMSGrad) and leave in `t` the step
    to subtract from the variable. `s` and `t` are scratch arrays: no temporaries are allocated."""
    b1, c1, b2, c2, alpha, eps = consts
    m *= b1
    np.multiply(grad, c1, out=s)
    m += s
    v *= b2
    np.multiply(grad, grad, out=s)
    s *= c2
    v += s
    if v_hat is not None:
        np.maximum(v_hat, v, out=v_hat)
        v = v_hat
    np.sqrt(v, out=s)
    s += eps
    np.multiply(m, alpha, out=t)
    np.divide(t, s, out=t)


class _SmallVariables:
    """Adam's update of the small float32 variables as one: their slots are views of shared flat arrays, and
    each step copies their gradients into one array, runs `update_step`'s arithmetic on the flat arrays (the
    same float32 operations element by element, so the same numbers), and subtracts each variable's part."""

    @classmethod
    def of(cls, optimizer):
        """The small variables of a built Adam, or None when fewer than two would be updated together."""
        members = [i for i, v in enumerate(optimizer._trainable_variables)
                   if v._value.dtype == np.float32 and v._value.size <= _FUSE_MAX_SIZE]
        return cls(optimizer, members) if len(members) > 1 else None

    def __init__(self, optimizer, members):
        self.variables = [optimizer._trainable_variables[i] for i in members]
        self.position = {id(v): k for k, v in enumerate(self.variables)}
        slot_lists = [optimizer._momentums, optimizer._velocities] + ([optimizer._velocity_hats]
                                                                       if optimizer.amsgrad else [])
        self.slots = [[slots[i] for i in members] for slots in slot_lists]
        shapes = [v._value.shape for v in self.variables]
        sizes = [v._value.size for v in self.variables]
        starts = np.cumsum([0] + sizes)
        total = int(starts[-1])
        views = lambda flat: [flat[a:b].reshape(shape) for a, b, shape in zip(starts, starts[1:], shapes)]  # noqa: E731
        self.flat = [np.zeros(total, np.float32) for _ in self.slots]  # momentums, velocities[, velocity_hats]
        self.views = [views(flat) for flat in self.flat]
        self.shared = [(slot, view) for slots, flat_views in zip(self.slots, self.views)
                       for slot, view in zip(slots, flat_views)]
        for slot, view in self.shared:
            view[...] = slot._value  # the slot's value so far (a restored one) is kept
            slot._value = view
        self.grad, self.s, self.t = (np.empty(total, np.float32) for _ in range(3))
        self.grad_views, self.t_views = views(self.grad), views(self.t)

    def intact(self):
        """Whether every slot still holds its view (nothing replaced a slot's array since)."""
        for slot, view in self.shared:
            if slot._value is not view:
                return False
        return True

    def gather(self, grads, variables):
        """Copy the small variables' gradients into the flat array; returns the other `(grad, variable)` pairs,
        or None when a small variable has no gradient here."""
        position, grad_views = self.position, self.grad_views
        rest, seen = [], 0
        for g, v in zip(grads, variables):
            k = position.get(id(v))
            if k is None:
                rest.append((g, v))
            else:
                np.copyto(grad_views[k], g)
                seen += 1
        return rest if seen == len(self.variables) else None

    def update(self, consts, amsgrad):
        """`Adam.update_step` on the flat arrays, then each variable minus its part of the step."""
        _moments_and_step(self.grad, self.flat[0], self.flat[1], self.flat[2] if amsgrad else None, self.s, self.t,
                          consts)
        for variable, step in zip(self.variables, self.t_views):
            variable._value -= step


@builtin()
class AdamW(Adam):
    """Adam with decoupled weight decay: each step first scales variables by `1 - weight_decay * lr`.

    The update is Adam's; the decay is the base optimizer's `weight_decay`, applied before the Adam
    step and skipped for variables passed to `exclude_from_weight_decay`. Slots as in `Adam`.

    Args:
        learning_rate: a float or a `schedules.LearningRateSchedule`. Defaults to 0.001.
        weight_decay: the decoupled decay rate (a number, required). Defaults to 0.004.
        beta_1: decay rate of the first-moment estimates. Defaults to 0.9.
        beta_2: decay rate of the second-moment estimates. Defaults to 0.999.
        epsilon: added to `sqrt(v)` for numerical stability. Defaults to 1e-7.
        amsgrad: whether to apply the AMSGrad variant.
        **kwargs: the other base arguments of `Optimizer` (`clipnorm`, ..., `name`).
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        if self.weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None. Pass a "
                             "number, or use Adam for no weight decay.")
