"""Learning-rate schedules: a float32 learning rate computed from the optimizer's step count.

`LearningRateSchedule` is the base to subclass; `ExponentialDecay` is Keras's; `serialize` /
`deserialize` write and read Keras's `{"module", "class_name", "config", "registered_name"}` dicts.
"""
import numpy as np

from kerasckpt._registry import builtin, lookup, registered_names
from kerasckpt.autograd import value_of


class LearningRateSchedule:
    """Base class of learning-rate schedules: `schedule(step)` returns the learning rate at `step`.

    Subclasses override `__call__(self, step)` and `get_config()`; register them with
    `kerasckpt.saving.register_serializable()` so that a saved optimizer can rebuild them.
    The optimizer calls the schedule with its `iterations` Variable (the number of `apply` calls so
    far), so a schedule has no state of its own and resumes with the step counter.

    Example:
        class Halve(LearningRateSchedule):
            def __init__(self, lr): self.lr = lr
            def __call__(self, step): return self.lr * 0.5 ** (int(step) // 100)
            def get_config(self): return {"lr": self.lr}
    """

    def __call__(self, step):
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` in order to be "
            "serializable.")

    @classmethod
    def from_config(cls, config):
        """Instantiates the schedule from the output of `get_config()`."""
        return cls(**config)


@builtin()
class ExponentialDecay(LearningRateSchedule):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)`, computed in float32 like Keras.

    With `staircase=True` the exponent is floored, so the rate drops once every `decay_steps` steps.

    Args:
        initial_learning_rate: the learning rate at step 0.
        decay_steps: a positive number of steps for one factor of `decay_rate`.
        decay_rate: the decay factor.
        staircase: whether to decay at discrete intervals.
        name: kept in the config, as Keras does.

    Example:
        lr = ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.96, staircase=True)
        optimizer = SGD(learning_rate=lr)
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        super().__init__()
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        if self.decay_steps <= 0:
            raise ValueError(
                f"Argument `decay_steps` must be > 0. Received: decay_steps={decay_steps!r}. "
                "Pass the number of steps over which the rate decays by `decay_rate`.")

    def __call__(self, step):
        step = np.asarray(value_of(step), dtype=np.float32)
        p = step / np.float32(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return np.float32(self.initial_learning_rate) * np.power(np.float32(self.decay_rate), p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


def _own_registered_name(cls):
    return cls.__dict__.get("_registered_name")  # not inherited: a subclass of a built-in is not the built-in


def serialize_object(obj, builtin_module):
    """Keras's serialized form of a built-in or registered object (shared with the optimizers)."""
    registered = _own_registered_name(type(obj))
    if registered is not None and registered.startswith("kerasckpt>"):
        module, registered = builtin_module, None
    else:
        module, registered = type(obj).__module__, registered or type(obj).__name__
    return {"module": module, "class_name": type(obj).__name__, "config": obj.get_config(),
            "registered_name": registered}


def serialize(learning_rate_schedule):
    """The schedule as Keras's JSON-compatible dict (`module` is `keras.optimizers.schedules`).

    Args:
        learning_rate_schedule: the `LearningRateSchedule` to serialize.
    """
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise TypeError(
            f"serialize() needs a LearningRateSchedule. Received: {learning_rate_schedule!r} "
            f"of type {type(learning_rate_schedule).__name__}. Pass a schedule instance.")
    return serialize_object(learning_rate_schedule, "keras.optimizers.schedules")


def _valid_schedule_names():
    names = []
    for key in registered_names():
        cls = lookup(key)
        if isinstance(cls, type) and issubclass(cls, LearningRateSchedule):
            names.append(key.split(">")[-1])
    return sorted(set(names))


def deserialize(config, custom_objects=None):
    """A `LearningRateSchedule` from `{"class_name": ..., "config": {...}}` (the `module` is ignored).

    Only built-in schedules, classes registered with `register_serializable` and `custom_objects` are
    instantiated; the class is found by `class_name` (or `registered_name`) alone.

    Args:
        config: the serialized form, as written by `serialize` or by Keras.
        custom_objects: optional `{name: class}` for schedules that are not registered.
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"Cannot deserialize a learning rate schedule from {config!r}: expected a dict with "
            "'class_name' and 'config'. Pass the output of `schedules.serialize()`.")
    cls = None
    for name in (config.get("registered_name"), config["class_name"]):
        if isinstance(name, str):
            cls = lookup(name, custom_objects)
            if isinstance(cls, type) and issubclass(cls, LearningRateSchedule):
                break
            cls = None
    if cls is None:
        raise ValueError(
            f"Unknown learning rate schedule class_name={config['class_name']!r}. Known schedules: "
            f"{', '.join(_valid_schedule_names())}. Register custom schedules with "
            "`register_serializable()` or pass them in `custom_objects`.")
    return cls.from_config(dict(config.get("config") or {}))
