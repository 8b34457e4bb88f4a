"""BatchNormalization and LayerNormalization."""
import numpy as np

from kerasckpt import initializers, ops
from kerasckpt._registry import builtin
from kerasckpt.autograd import record, value_of
from kerasckpt.layers.arguments import refuse_unsupported
from kerasckpt.layers.base import Layer


@builtin()
class BatchNormalization(Layer):
    """Normalize by the batch's statistics in training and by moving averages in inference.

    The moving mean and variance are non-trainable weights, updated during training as
    `moving = moving * momentum + batch_stat * (1 - momentum)`, as in Keras.

    Args:
        axis: the feature axis (last by default).
        momentum: momentum of the moving averages.
        epsilon: added to the variance before the square root.
        center: learn an offset `beta`.
        scale: learn a scale `gamma`.
    """

    _autocast_integers = True  # integer inputs become float32, as in Keras (an int epsilon would be 0)

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, synchronized=False, **kwargs):
        for key in ("renorm", "renorm_clipping", "renorm_momentum"):
            if kwargs.pop(key, None) not in (None, False, 0.99):
                raise ValueError(f"BatchNormalization does not support `{key}` in kerasckpt. Remove the argument.")
        super().__init__(**kwargs)
        self.supports_masking = True
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise ValueError(f"BatchNormalization supports a single axis. Received: axis={axis!r}")
            axis = axis[0]
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.synchronized = synchronized

    def build(self, input_shape):
        dim = input_shape[self.axis]
        if dim is None:
            raise ValueError(f"BatchNormalization '{self.name}' needs axis {self.axis} of its input to be known. "
                             f"Received input_shape={tuple(input_shape)}.")
        self._ndim = len(input_shape)
        self.gamma = self.add_weight((dim,), self.gamma_initializer, name="gamma") if self.scale else None
        self.beta = self.add_weight((dim,), self.beta_initializer, name="beta") if self.center else None
        self.moving_mean = self.add_weight((dim,), self.moving_mean_initializer, name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight((dim,), self.moving_variance_initializer, name="moving_variance",
                                               trainable=False)

    def call(self, inputs, training=False):
        xv = np.asarray(value_of(inputs))
        axis = self.axis % xv.ndim
        if xv.ndim != self._ndim or xv.shape[axis] != self.moving_mean.shape[0]:
            raise ValueError(
                f"BatchNormalization layer '{self.name}' was built for inputs of rank {self._ndim} with "
                f"{self.moving_mean.shape[0]} features on axis {self.axis}, but received input of shape {xv.shape}. "
                "Check the model's input shape.")
        reduce_axes = tuple(i for i in range(xv.ndim) if i != axis)
        bshape = [1] * xv.ndim
        bshape[axis] = xv.shape[axis]
        gamma = self.gamma._value.reshape(bshape) if self.gamma is not None else None
        if training and self.trainable:
            mean = xv.mean(axis=reduce_axes, keepdims=True)
            centered = xv - mean
            var = np.mean(centered * centered, axis=reduce_axes, keepdims=True)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean._value * m + mean.reshape(-1) * (1 - m))
            self.moving_variance.assign(self.moving_variance._value * m + var.reshape(-1) * (1 - m))
        else:
            mean = self.moving_mean._value.reshape(bshape)
            var = self.moving_variance._value.reshape(bshape)
            centered = xv - mean
        inv = 1.0 / np.sqrt(var + np.asarray(self.epsilon, dtype=xv.dtype))
        normed = centered * inv
        out = normed * gamma if gamma is not None else normed
        if self.beta is not None:
            out = out + self.beta._value.reshape(bshape)
        batch_stats = bool(training and self.trainable)
        n = int(np.prod([xv.shape[i] for i in reduce_axes]))

        def backward(g):
            g_gamma = np.sum(g * normed, axis=reduce_axes) if gamma is not None else None
            g_beta = np.sum(g, axis=reduce_axes) if self.beta is not None else None
            g_normed = g * gamma if gamma is not None else g
            if batch_stats:  # the statistics depend on the inputs too
                gx = inv / n * (n * g_normed - np.sum(g_normed, axis=reduce_axes, keepdims=True)
                                - normed * np.sum(g_normed * normed, axis=reduce_axes, keepdims=True))
            else:
                gx = g_normed * inv
            return gx, g_gamma, g_beta

        return record(out, (inputs, self.gamma, self.beta), backward)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                "gamma_constraint": None, "synchronized": self.synchronized, "renorm": False, "renorm_clipping": None,
                "renorm_momentum": 0.99}


@builtin()
class LayerNormalization(Layer):
    """Normalize each sample over `axis` to mean 0 and variance 1, then scale by `gamma` and shift by `beta`.

    Args:
        axis: the axis or list of axes to normalize over (the last by default); it becomes a sorted list
            when the layer is built, as in Keras.
        epsilon: added to the variance before the square root.
        center: learn an offset `beta`.
        scale: learn a scale `gamma`.
        beta_initializer, gamma_initializer: zeros and ones by default.
        rms_scaling: Keras's deprecated option: scale by `1/sqrt(variance + epsilon)` and `gamma` only.
    """

    _autocast_integers = True

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        rms_scaling = bool(kwargs.pop("rms_scaling", False))
        refuse_unsupported("LayerNormalization", beta_regularizer=beta_regularizer,
                           gamma_regularizer=gamma_regularizer, beta_constraint=beta_constraint,
                           gamma_constraint=gamma_constraint)
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            axis = [int(a) for a in axis]
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
            axis = int(axis)
        else:
            raise TypeError(f"Expected an int or a list/tuple of ints for the argument 'axis', but received: {axis!r}")
        self.axis, self.epsilon, self.center, self.scale = axis, float(epsilon), bool(center), bool(scale)
        self.rms_scaling = rms_scaling
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        axes = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        for a in axes:
            if not -len(input_shape) <= a < len(input_shape):
                raise ValueError(f"LayerNormalization '{self.name}': axis {a} is out of bounds for input shape "
                                 f"{tuple(input_shape)}. Received: axis={self.axis}")
        shape = tuple(input_shape[a] for a in axes)
        if None in shape:
            raise ValueError(f"LayerNormalization '{self.name}' needs the normalized axes {axes} of its input to be "
                             f"known. Received input_shape={tuple(input_shape)}.")
        self.axis = axes
        self.gamma = self.add_weight(shape, self.gamma_initializer, name="gamma") \
            if self.scale or self.rms_scaling else None
        self.beta = self.add_weight(shape, self.beta_initializer, name="beta") \
            if self.center and not self.rms_scaling else None

    def call(self, inputs):
        if not self.rms_scaling:
            return ops.layer_normalization(inputs, self.gamma, self.beta, self.axis, self.epsilon)
        centered = ops.subtract(inputs, ops.mean(inputs, axis=self.axis, keepdims=True))
        variance = ops.mean(ops.square(centered), axis=self.axis, keepdims=True)
        out = ops.divide(inputs, ops.sqrt(ops.add(variance, self.epsilon)))
        if self.gamma is None:
            return out
        shape = [1] * len(ops.shape(inputs))
        for a in self.axis:
            shape[a] = ops.shape(inputs)[a]
        return ops.multiply(out, ops.reshape(self.gamma, shape))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "rms_scaling": self.rms_scaling,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                "gamma_constraint": None}
