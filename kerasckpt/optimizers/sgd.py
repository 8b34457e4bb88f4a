"""SGD: gradient descent with optional momentum or Nesterov momentum (Keras 3's update rule)."""
import numpy as np

from kerasckpt._registry import builtin
from kerasckpt.optimizers.base import Optimizer, _is_number, f32_constants


@builtin()
class SGD(Optimizer):
    """Gradient descent with optional momentum or Nesterov momentum.

    `velocity = momentum * velocity - lr * g; w += velocity`, and with `nesterov=True`
    `w += momentum * velocity - lr * g`; without momentum `w -= lr * g`. Slots: one `momentum` per
    variable, only when `momentum > 0`.

    Args:
        learning_rate: a float or a `schedules.LearningRateSchedule`. Defaults to 0.01.
        momentum: a number in [0, 1]. Defaults to 0.0.
        nesterov: whether to apply Nesterov momentum.
        **kwargs: the base arguments of `Optimizer` (`weight_decay`, `clipnorm`, ..., `name`).

    Note: an integer `momentum` (e.g. `0`) is accepted; Keras raises for anything but a float.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        if not _is_number(momentum) or not 0 <= momentum <= 1:
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: momentum={momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = nesterov

    _checkpoint_slot_names = {**Optimizer._checkpoint_slot_names, "momentum": ("momentums", "momentum")}

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum") if self.momentum != 0 else []

    def _prepare_step(self, lr):
        self._consts = f32_constants(-lr, self.momentum)

    def update_step(self, grad, var, lr):
        i = self._index[id(var)]
        step = self._scratch[i][0]
        neg_lr, mu = self._consts
        np.multiply(grad, neg_lr, out=step)  # -lr * g
        w = var._value
        if self.momentum != 0:
            m = self.momentums[i]._value
            m *= mu
            m += step
            if self.nesterov:
                w += step
                np.multiply(m, mu, out=step)
                w += step
            else:
                w += m
        else:
            w += step

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config
