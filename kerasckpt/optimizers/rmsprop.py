"""RMSprop: divide the gradient by a moving root-mean-square of past gradients (Keras 3's rule)."""
import numpy as np

from kerasckpt._registry import builtin
from kerasckpt.optimizers.base import Optimizer, _is_number, f32_constants


@builtin()
class RMSprop(Optimizer):
    """RMSprop, with optional momentum and the centered variant, as Keras 3 computes it.

    `v = rho*v + (1-rho)*g*g; increment = lr*g / sqrt(v + epsilon)`; with `centered=True` the
    denominator is `sqrt(v + epsilon - a*a)` where `a = rho*a + (1-rho)*g`; with `momentum > 0`,
    `mom = momentum*mom + increment; w -= mom`, else `w -= increment`. Slots: `velocity` for every
    variable, then `momentum` for every variable (if `momentum > 0`), then `average_gradient` for
    every variable (if `centered`).

    Args:
        learning_rate: a float or a `schedules.LearningRateSchedule`. Defaults to 0.001.
        rho: discounting factor of the moving average of squared gradients. Defaults to 0.9.
        momentum: a number >= 0. Defaults to 0.0.
        epsilon: added inside the square root for numerical stability. Defaults to 1e-7.
        centered: normalize by the estimated variance instead of the second moment.
        **kwargs: the base arguments of `Optimizer` (`weight_decay`, `clipnorm`, ..., `name`).
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name, **kwargs)
        for arg, value in (("rho", rho), ("momentum", momentum), ("epsilon", epsilon)):
            if not _is_number(value) or value < 0:
                raise ValueError(f"`{arg}` must be a non-negative number. Received: {arg}={value!r}")
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    _checkpoint_slot_names = {**Optimizer._checkpoint_slot_names, "velocity": ("_velocities", "rms"),
                              "momentum": ("_momentums", "momentum"),
                              "average_gradient": ("_average_gradients", "mg")}

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._velocities = self.add_optimizer_variables(var_list, "velocity")
        self._momentums = self.add_optimizer_variables(var_list, "momentum") if self.momentum > 0 else []
        self._average_gradients = (self.add_optimizer_variables(var_list, "average_gradient")
                                   if self.centered else [])

    def _prepare_step(self, lr):
        rho = float(self.rho)
        self._consts = f32_constants(rho, 1 - rho, self.epsilon, self.momentum, lr)

    def update_step(self, grad, var, lr):
        i = self._index[id(var)]
        s, t = self._scratch[i]
        rho, c, eps, mu, lr = self._consts
        v = self._velocities[i]._value
        v *= rho
        np.multiply(grad, grad, out=s)
        s *= c
        v += s
        np.add(v, eps, out=s)  # the denominator, before its square root
        if self.centered:
            a = self._average_gradients[i]._value
            a *= rho
            np.multiply(grad, c, out=t)
            a += t
            np.multiply(a, a, out=t)
            s -= t
        np.sqrt(s, out=s)
        np.multiply(grad, lr, out=t)
        np.divide(t, s, out=t)  # the increment lr * g / denominator
        if self.momentum > 0:
            m = self._momentums[i]._value
            m *= mu
            m += t
            var._value -= m
        else:
            var._value -= t

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                       "centered": self.centered})
        return config
