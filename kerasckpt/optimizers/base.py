"""Optimizer: Keras 3's base class (step counter, learning rate, slot Variables, clipping, weight
decay, EMA, gradient accumulation), plus `get` / `serialize` / `deserialize` in Keras's format.

Update rules work in place on the live arrays (`Variable._value`) with per-step scalar factors
computed once per `apply`, so an optimizer step costs what a hand-written NumPy loop costs.
"""
import inspect
import re
import warnings

import numpy as np

from kerasckpt import initializers, tracking
from kerasckpt._registry import lookup, registered_names
from kerasckpt.autograd import Tensor, value_of
from kerasckpt.optimizers import schedules
from kerasckpt.tracking import Trackable
from kerasckpt.utils import get_uid, snake_case
from kerasckpt.variables import Variable, name_scope

_F32 = np.float32


def f32_constants(*values):
    """0-d float32 arrays: ufuncs take them faster than Python floats, and compute in float32 like Keras."""
    return tuple(np.array(v, dtype=np.float32) for v in values)


def _is_number(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


class _LearningRate(Variable):
    """The `learning_rate` Variable. Like a Keras variable it compares by value with numbers and arrays
    (`optimizer.learning_rate == 0.5`); with Variables and non-numbers it compares by identity."""

    def __eq__(self, other):
        return self._compare(other, "equal")

    def __ne__(self, other):
        return self._compare(other, "not_equal")

    def _compare(self, other, op):
        if not isinstance(other, Variable):
            from kerasckpt import ops
            try:
                return getattr(ops, op)(self, other)
            except TypeError:  # a string or other non-number: never equal
                pass
        return (self is other) == (op == "equal")

    __hash__ = Variable.__hash__


def _not_settable(value):
    return TypeError(
        "This optimizer was created with a `LearningRateSchedule` object (or a callable) as its `learning_rate` "
        f"constructor argument, hence its learning rate is not settable. Received: learning_rate={value!r}. "
        "If you need the learning rate to be settable, instantiate the optimizer with a float `learning_rate` "
        "argument.")


class _ScheduledRate(Tensor):
    """`optimizer.learning_rate` under a schedule: the current value, which cannot be assigned."""

    __slots__ = ()

    def assign(self, value):
        raise _not_settable(value)

    assign_add = assign_sub = assign


class Optimizer(Trackable):
    """Base class of optimizers, with Keras 3's arguments, variables and order of operations.

    A subclass creates its slots in `build(var_list)` (after `super().build(var_list)`) with
    `add_optimizer_variables`, and implements `update_step(grad, var, lr)`, which updates
    `var._value` in place. `apply` converts the gradients, drops `None`s, unscales by
    `loss_scale_factor`, clips, applies weight decay, calls `update_step` per variable, updates the
    EMA and finally adds 1 to `iterations`, in Keras's order.

    Args:
        learning_rate: a float, a `schedules.LearningRateSchedule`, or a callable with no argument.
        weight_decay: if set, each step first multiplies variables by `1 - weight_decay * lr`.
        clipnorm: clip each gradient to this L2 norm.
        clipvalue: clip each gradient element to `[-clipvalue, clipvalue]`.
        global_clipnorm: clip all gradients together to this global L2 norm.
        use_ema: keep an exponential moving average of the variables (`average` slots).
        ema_momentum: the EMA's momentum.
        ema_overwrite_frequency: every this many steps, copy the averages into the variables.
        loss_scale_factor: `scale_loss` multiplies the loss by it; gradients are divided by it.
        gradient_accumulation_steps: update once every this many calls, with the mean gradient.
        name: the optimizer's name, the first component of its variables' paths.

    Note: `learning_rate` accepts any real number (Keras insists on a Python float), and a gradient
    whose shape differs from its variable's raises an error naming the variable path.
    """

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored. Use a "
                          "`schedules.LearningRateSchedule` as `learning_rate` instead.", stacklevel=2)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}. Remove them; valid arguments are those of "
                             f"{type(self).__name__}.__init__.")
        for arg, value in (("weight_decay", weight_decay), ("clipnorm", clipnorm), ("clipvalue", clipvalue),
                           ("global_clipnorm", global_clipnorm), ("loss_scale_factor", loss_scale_factor)):
            if value is not None and not _is_number(value):
                raise ValueError(f"`{arg}` must be a number or None. Received: {arg}={value!r}")
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}. Keep one.")
        if gradient_accumulation_steps and (not _is_number(gradient_accumulation_steps)
                                            or int(gradient_accumulation_steps) != gradient_accumulation_steps
                                            or gradient_accumulation_steps < 2):
            raise ValueError("`gradient_accumulation_steps` must be an integer >= 2. Received: "
                             f"gradient_accumulation_steps={gradient_accumulation_steps!r}")
        if use_ema:
            if not _is_number(ema_momentum) or not 0 <= ema_momentum <= 1:
                raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum!r}")
            if ema_overwrite_frequency and (not isinstance(ema_overwrite_frequency, (int, np.integer))
                                            or ema_overwrite_frequency < 1):
                raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. Received: "
                                 f"ema_overwrite_frequency={ema_overwrite_frequency!r}")
        self.name = name if name is not None else get_uid(snake_case(type(self).__name__))
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.global_clipnorm = global_clipnorm
        self.clipvalue = clipvalue
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = int(gradient_accumulation_steps) if gradient_accumulation_steps else None
        self.built = False
        self._variables = []           # Keras's `optimizer.variables` order
        self._slots = []               # (slot_name, reference_variable, slot_variable) in creation order
        self._trainable_variables = []
        self._index = {}               # id(variable) -> position in the built list
        self._scratch = []             # per built variable: two scratch arrays of its shape (views of shared pools)
        self._exclude_ids, self._exclude_pattern, self._decay_cache = set(), None, {}
        with name_scope(self.name):
            self._iterations = Variable(0, dtype="int64", trainable=False, name="iteration")
        self._variables.append(self._iterations)
        if isinstance(learning_rate, schedules.LearningRateSchedule) or (
                callable(learning_rate) and not isinstance(learning_rate, (Variable, Tensor))):
            self._learning_rate = learning_rate
        else:
            value = value_of(learning_rate)
            if not (_is_number(value) or (isinstance(value, np.ndarray) and value.shape == ()
                                          and value.dtype.kind in "iuf")):
                raise ValueError(
                    "Argument `learning_rate` should be a float, a LearningRateSchedule or a callable that takes "
                    f"no argument. Received instead: learning_rate={learning_rate!r}")
            with name_scope(self.name):
                self._learning_rate = _LearningRate(float(value), dtype="float32", trainable=False,
                                                    name="learning_rate")
            self._variables.append(self._learning_rate)

    # ----------------------------------------------------------------------------------- state
    @property
    def iterations(self):
        """The number of optimizer steps taken: the `iteration` Variable (int64 scalar).

        With `gradient_accumulation_steps`, the stored Variable counts calls and this property returns
        the number of real updates (`calls // steps`) as a read-only Tensor, as in Keras.
        """
        if self.gradient_accumulation_steps:
            return Tensor(np.asarray(self._iterations._value // self.gradient_accumulation_steps))
        return self._iterations

    def _step_count(self):
        it = int(self._iterations._value)
        return it // self.gradient_accumulation_steps if self.gradient_accumulation_steps else it

    @property
    def learning_rate(self):
        """The learning rate, as Keras gives it.

        With a constant rate this is the `learning_rate` Variable itself: `assign(0.5)`, `numpy()`,
        `float()`, arithmetic and comparison with numbers (`optimizer.learning_rate == 0.5`) work.
        With a schedule (or a callable) it is the current scheduled value, a read-only float32 Tensor.
        Setting a number assigns the Variable; setting a schedule replaces it. An optimizer created
        with a schedule raises `TypeError` when given a number (or when its value is assigned).
        """
        lr = self._learning_rate
        if isinstance(lr, Variable):
            return lr
        return _ScheduledRate(np.asarray(self._current_lr(), dtype=np.float32))

    @learning_rate.setter
    def learning_rate(self, value):
        previous = self._learning_rate
        if isinstance(value, schedules.LearningRateSchedule) or (
                callable(value) and not isinstance(value, (Variable, Tensor))):
            self._learning_rate = value
            if isinstance(previous, Variable):
                self._variables.remove(previous)
            return
        if not isinstance(previous, Variable):
            raise _not_settable(value)
        previous.assign(np.asarray(value_of(value), dtype=np.float32))

    def _current_lr(self):
        lr = self._learning_rate
        if isinstance(lr, Variable):
            return float(lr._value)
        if isinstance(lr, schedules.LearningRateSchedule):
            return float(_F32(value_of(lr(self._iterations))))
        return float(_F32(value_of(lr())))

    @property
    def variables(self):
        """All state Variables in Keras's order: `iteration`, `learning_rate` (unless a schedule), slots."""
        return self._variables[:]

    def slot_variables(self):
        """`[(slot_name, reference_variable, slot_variable), ...]` in creation order.

        Checkpoints key each slot by the path of the variable it belongs to plus `slot_name`
        (`momentum`, `velocity`, ...), never by position.
        """
        return self._slots[:]

    def _trackable_children(self):
        children = {"iterations": self._iterations}
        if isinstance(self._learning_rate, Variable):
            children["learning_rate"] = self._learning_rate
        return children

    # Per slot name: the attribute holding that slot's list (Keras 3's and tf.keras's name, an edge in their
    # checkpoints), then the slot's name in the checkpoints of tf.keras's legacy optimizers.
    _checkpoint_slot_names = {"average": ("_model_variables_moving_average",),
                              "gradient_accumulator": ("_accumulated_gradients",)}

    def _keras_positional_lists(self):
        """Keras 3's lists of this optimizer's state, written as extra edges of the object graph so that Keras 3
        on TensorFlow restores kerasckpt checkpoints: `_variables` (Keras's `variables` order),
        `_trainable_variables` and one list per slot kind. Restores never match slots by these positions."""
        lists = {"_variables": self.variables, "_trainable_variables": list(self._trainable_variables)}
        for names in self._checkpoint_slot_names.values():
            value = getattr(self, names[0], None)
            if isinstance(value, list) and value:
                lists[names[0]] = list(value)
        return lists

    def _checkpoint_aliases(self):
        # Keras 3 and tf.keras name the counter `_iterations`, tf.keras's legacy optimizers `iter`.
        aliases = {"_iterations": self._iterations, "iter": self._iterations}
        if isinstance(self._learning_rate, Variable):
            aliases["_learning_rate"] = self._learning_rate
        return aliases

    # ----------------------------------------------------------------------------------- build
    def build(self, var_list):
        """Record the variables to optimize (their order fixes the slot order) and create base slots.

        Subclasses call `super().build(var_list)` first, then create their own slots; like Keras they
        return at once when already built.

        Args:
            var_list: the trainable Variables, usually `model.trainable_variables`.
        """
        var_list = list(var_list)
        for v in var_list:
            if not isinstance(v, Variable):
                raise ValueError(f"{type(self).__name__}.build() needs Variables. Received: {v!r} of type "
                                 f"{type(v).__name__}. Pass `model.trainable_variables`.")
        if self.use_ema:
            self._model_variables_moving_average = self.add_optimizer_variables(var_list, "average")
        if self.gradient_accumulation_steps:
            self._accumulated_gradients = self.add_optimizer_variables(var_list, "gradient_accumulator")
        self._trainable_variables = var_list
        self._index = {id(v): i for i, v in enumerate(var_list)}
        pools = {}
        for v in var_list:
            pools[v._value.dtype] = max(pools.get(v._value.dtype, 0), v._value.size)
        pools = {dt: (np.empty(n, dt), np.empty(n, dt)) for dt, n in pools.items()}
        self._scratch = [tuple(p[:v._value.size].reshape(v._value.shape) for p in pools[v._value.dtype])
                         for v in var_list]
        self.built = True

    def add_variable(self, shape, initializer="zeros", dtype=None, aggregation="none", layout=None, name=None):
        """A non-trainable Variable `<optimizer name>/<name>`, counted in `variables`."""
        init = initializers.get(initializer) if isinstance(initializer, (str, dict)) else initializer
        with name_scope(self.name):
            variable = Variable(init, shape=shape, dtype=dtype or "float32", trainable=False, name=name)
        self._variables.append(variable)
        return variable

    def add_variable_from_reference(self, reference_variable, name=None, initializer="zeros"):
        """A slot shaped like `reference_variable`, named `<its path with / as _>_<name>` like Keras."""
        slot_name = name or "var"
        path = getattr(reference_variable, "path", None) or str(reference_variable.name).replace(":", "_")
        variable = self.add_variable(reference_variable.shape, initializer, dtype=reference_variable.dtype,
                                     name=f"{path.replace('/', '_')}_{slot_name}")
        self._slots.append((slot_name, reference_variable, variable))
        tracking.slot_created(self, slot_name, reference_variable, variable)  # applies a held (deferred) restore
        return variable

    def add_optimizer_variables(self, trainable_variables, name, initializer="zeros"):
        """One slot per variable for each name; several names are interleaved per variable as in Keras.

        Args:
            trainable_variables: the reference Variables.
            name: a slot name, or a list of them (then a tuple of lists is returned).
            initializer: an initializer, or one per name.
        """
        names = [name] if isinstance(name, str) else list(name)
        inits = initializer if isinstance(initializer, (list, tuple)) else [initializer] * len(names)
        if len(inits) != len(names):
            raise ValueError(f"The number of provided names must match the number of provided initializers. "
                             f"Received name={name!r}, initializer={initializer!r}")
        out = tuple([] for _ in names)
        for variable in trainable_variables:
            for i, (slot_name, init) in enumerate(zip(names, inits)):
                out[i].append(self.add_variable_from_reference(variable, slot_name, init))
        return out[0] if isinstance(name, str) else out

    def variable_index(self, variable):
        """The position of `variable` in the built list (the index into every slot list)."""
        try:
            return self._index[id(variable)]
        except KeyError:
            raise self._unknown_variable(variable) from None

    _get_variable_index = variable_index  # Keras's private name, used by Keras-style custom optimizers

    def _unknown_variable(self, variable):
        known = ", ".join(repr(v.path) for v in self._trainable_variables[:8])
        more = ", ..." if len(self._trainable_variables) > 8 else ""
        return ValueError(
            f"Unknown variable {getattr(variable, 'path', variable)!r}: optimizer '{self.name}' was built with "
            f"{len(self._trainable_variables)} other variables ({known}{more}) and keeps slots for those only. "
            "Create a new optimizer to train a different set of variables.")

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exclude variables (or those whose name contains one of `var_names`) from weight decay."""
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before the optimizer is "
                             "built. Call it before the first `apply`.")
        self._exclude_ids = {id(v) for v in var_list or ()}
        self._exclude_pattern = re.compile("|".join(set(var_names))) if var_names else None
        self._decay_cache = {}

    def _use_weight_decay(self, variable):
        use = self._decay_cache.get(id(variable))
        if use is None:
            use = id(variable) not in self._exclude_ids and not (
                self._exclude_pattern is not None and self._exclude_pattern.search(variable.name))
            self._decay_cache[id(variable)] = use
        return use

    # ----------------------------------------------------------------------------------- update
    def update_step(self, grad, var, lr):
        """Update `var._value` (and this variable's slots) in place from `grad` at learning rate `lr`."""
        raise NotImplementedError(f"{type(self).__name__} must implement `update_step(grad, var, lr)`.")

    def _prepare_step(self, lr):
        """Per-step scalar factors (bias corrections, ...) shared by every `update_step` of one step."""

    def apply_gradients(self, grads_and_vars):
        """Apply `(gradient, variable)` pairs; returns the `iterations` Variable like Keras.

        Args:
            grads_and_vars: an iterable of `(gradient, Variable)`; a `None` gradient skips its variable.
        """
        pairs = list(grads_and_vars)
        if pairs:
            grads, variables = zip(*pairs)
            self.apply(grads, variables)
        return self._iterations

    def apply(self, grads, trainable_variables=None):
        """Update variables from their gradients, building the optimizer on the first call.

        Args:
            grads: gradients (Tensors or arrays), `None` for variables to skip.
            trainable_variables: the matching Variables; omit to mean the built list, in order.
        """
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError("When passing `grads` without `variables`, the optimizer must already be built "
                                 "on a list of variables. Call `optimizer.build(trainable_variables)` first.")
            trainable_variables = self._trainable_variables
        else:
            trainable_variables = list(trainable_variables)
            if not self.built:
                self.build(trainable_variables)
        if len(grads) != len(trainable_variables):
            raise ValueError(f"Received {len(grads)} gradients for {len(trainable_variables)} variables. Pass "
                             "exactly one gradient (or None) per variable, in the same order.")
        index = self._index
        pairs_g, pairs_v, missing = [], [], []
        for g, v in zip(grads, trainable_variables):
            if id(v) not in index:
                raise self._unknown_variable(v)
            if g is None:
                missing.append(v.path)
                continue
            w = v._value
            if type(g) is not np.ndarray or g.dtype != w.dtype:
                g = np.asarray(g.value if type(g) is Tensor else value_of(g), dtype=w.dtype)
            if g.shape != w.shape:
                raise ValueError(
                    f"The gradient for variable '{v.path}' has shape {g.shape} but the variable has shape "
                    f"{w.shape}. Pass gradients in the same order as the variables "
                    "(e.g. zip(tape.gradient(loss, weights), weights)).")
            pairs_g.append(g)
            pairs_v.append(v)
        if not pairs_g:
            raise ValueError("No gradients provided for any variable. Check that the loss depends on the "
                             "variables, e.g. that `compile()` was given a `loss`.")
        if missing:
            warnings.warn(f"Gradients do not exist for variables {missing} when minimizing the loss. If using "
                          "`model.compile()`, did you forget to provide a `loss` argument?", stacklevel=2)
        if self.loss_scale_factor is not None:
            scale = float(self.loss_scale_factor)
            pairs_g = [g / scale for g in pairs_g]
        self._backend_apply_gradients(pairs_g, pairs_v)
        for v in pairs_v:
            constraint = getattr(v, "constraint", None)
            if constraint is not None:
                v.assign(value_of(constraint(v)))
        self._iterations._value += 1

    def _backend_apply_gradients(self, grads, variables):
        steps = self.gradient_accumulation_steps
        if steps:
            accs = self._accumulated_gradients
            acc = [accs[self._index[id(v)]]._value for v in variables]
            if (int(self._iterations._value) + 1) % steps == 0:
                grads = [(g + a) / steps for g, a in zip(grads, acc)]
                self._update(grads, variables)
                for a in accs:
                    a._value.fill(0)
            else:
                for g, a in zip(grads, acc):
                    a += g
        else:
            self._update(grads, variables)
        if self.use_ema:
            self._update_model_variables_moving_average()

    def _update(self, grads, variables):
        grads = self._clip_gradients(grads)
        lr = self._current_lr()
        self._apply_weight_decay(variables, lr)
        self._prepare_step(lr)
        self._update_steps(grads, variables, lr)

    def _update_steps(self, grads, variables, lr):
        """`update_step` for each pair (an optimizer may update several variables at once instead)."""
        update_step = self.update_step
        for g, v in zip(grads, variables):
            update_step(g, v, lr)

    def _clip_gradients(self, grads):
        if self.clipnorm and self.clipnorm > 0:
            return [self._clip_by_norm(g) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            return clip_by_global_norm(grads, self.global_clipnorm)
        if self.clipvalue and self.clipvalue > 0:
            v = float(self.clipvalue)
            return [np.clip(g, -v, v) for g in grads]
        return grads

    def _clip_by_norm(self, g):
        clipnorm = float(self.clipnorm)
        l2sum = np.sum(np.square(g))
        l2norm = np.sqrt(l2sum) if l2sum > 0 else l2sum
        return (g * clipnorm) / np.maximum(l2norm, np.asarray(clipnorm, g.dtype))

    def _apply_weight_decay(self, variables, lr):
        if not self.weight_decay:  # None (Keras's "off") or 0, which would multiply by exactly 1
            return
        factor = _F32(1) - _F32(self.weight_decay) * _F32(lr)  # float32, as Keras computes it
        for v in variables:
            if self._use_weight_decay(v):
                v._value *= factor

    def _update_model_variables_moving_average(self):
        step = self._step_count()
        momentum = _F32(self.ema_momentum) if step != 0 else _F32(0)
        for i, (var, average) in enumerate(zip(self._trainable_variables, self._model_variables_moving_average)):
            scratch = self._scratch[i][0]
            np.multiply(var._value, _F32(1) - momentum, out=scratch)
            average._value *= momentum
            average._value += scratch
        if self.ema_overwrite_frequency and (step + 1) % self.ema_overwrite_frequency == 0:
            self._overwrite_model_variables_with_average_value(self._trainable_variables)

    def _overwrite_model_variables_with_average_value(self, var_list):
        if len(var_list) != len(self._model_variables_moving_average):
            raise ValueError(
                f"The length of model variables ({len(var_list)}) to override does not match the length of "
                f"model variables stored in the optimizer ({len(self._model_variables_moving_average)}). "
                "Pass the variables the optimizer was built with.")
        for var, average in zip(var_list, self._model_variables_moving_average):
            var.assign(average._value)

    def finalize_variable_values(self, var_list):
        """With `use_ema`, copy the moving averages into `var_list` (what `fit()` does at its end)."""
        if self.use_ema:
            self._overwrite_model_variables_with_average_value(list(var_list))

    def scale_loss(self, loss):
        """`loss * loss_scale_factor` when a factor is set, else `loss`."""
        return loss * self.loss_scale_factor if self.loss_scale_factor is not None else loss

    # Keras's assignment helpers, for Keras-style custom `update_step`s.
    def assign(self, variable, value):
        variable.assign(value_of(value))

    def assign_add(self, variable, value):
        variable.assign_add(value_of(value))

    def assign_sub(self, variable, value):
        variable.assign_sub(value_of(value))

    def set_weights(self, weights):
        """Assign every Variable of `variables`, in order, from a list of arrays."""
        if not self.built:
            raise ValueError("You are calling `set_weights()` on an optimizer that has not yet been built. Call "
                             "`optimizer.build(trainable_variables)` first.")
        for variable, weight in zip(self._variables, weights):
            variable.assign(weight)

    def save_own_variables(self, store):
        """Write `variables` into `store` as `"0"`, `"1"`, ... (Keras's `.weights.h5` layout)."""
        for i, variable in enumerate(self._variables):
            store[str(i)] = variable.numpy()

    def load_own_variables(self, store):
        """Read `variables` from `store`; warns and skips when the counts differ, as Keras does."""
        if len(store.keys()) != len(self._variables):
            warnings.warn(
                f"Skipping variable loading for optimizer '{self.name}', because it has {len(self._variables)} "
                f"variables whereas the saved optimizer has {len(store.keys())} variables. "
                + ("Build the optimizer (`optimizer.build(model.trainable_variables)`) before loading."
                   if not self.built else "Load into an optimizer built on the same model."), stacklevel=2)
            return
        for i, variable in enumerate(self._variables):
            variable.assign(store[str(i)])

    # ----------------------------------------------------------------------------------- config
    def get_config(self):
        """The constructor arguments, with exactly Keras's keys (`learning_rate`: current value or schedule)."""
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif isinstance(lr, Variable):
            lr = float(lr._value)
        else:
            raise TypeError(
                f"Optimizer '{self.name}' has a plain callable learning rate ({lr!r}), which cannot be saved. "
                "Use a `schedules.LearningRateSchedule` subclass registered with `register_serializable()`.")
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue,
                "use_ema": self.use_ema, "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency,
                "loss_scale_factor": self.loss_scale_factor,
                "gradient_accumulation_steps": self.gradient_accumulation_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new optimizer (without state) from `get_config()`'s output; unknown keys raise ValueError."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"], custom_objects=custom_objects)
        return cls(**config)


def clip_by_global_norm(grads, clip_norm):
    """Scale all gradients by `clip_norm / max(global_norm, clip_norm)` in float32, as Keras does."""
    norm = np.sqrt(np.sum(np.stack([np.sum(np.square(g)) for g in grads])))
    scale = _F32(clip_norm) * np.minimum(_F32(1) / norm, _F32(1.0 / clip_norm))
    scale = scale + (norm - norm)  # NaN when the norm is not finite, like Keras
    return [g * scale for g in grads]


# --------------------------------------------------------------------------------- get / (de)serialize
def _builtin_optimizers():
    found = {}
    for key in registered_names():
        cls = lookup(key)
        if key.startswith("kerasckpt>") and isinstance(cls, type) and issubclass(cls, Optimizer):
            found[cls.__name__.lower()] = cls
    return found


def _resolve(class_name, registered_name, custom_objects):
    for name in (registered_name, class_name):
        if not isinstance(name, str):
            continue
        if custom_objects and name in custom_objects:
            return custom_objects[name]
        builtin_cls = _builtin_optimizers().get(name.lower())
        if builtin_cls is not None:
            return builtin_cls
        cls = lookup(name, custom_objects)
        if isinstance(cls, type) and issubclass(cls, Optimizer):
            return cls
    return None


def _unknown_optimizer(identifier):
    names = sorted(_builtin_optimizers())
    custom = sorted(k for k in registered_names() if not k.startswith("kerasckpt>")
                    and isinstance(lookup(k), type) and issubclass(lookup(k), Optimizer))
    return ValueError(
        f"Could not interpret optimizer identifier: {identifier!r}. Valid names: {', '.join(names)} (any case)"
        + (f"; registered: {', '.join(custom)}" if custom else "")
        + ". Pass one of these, a config dict from `optimizers.serialize()`, or an Optimizer instance.")


def serialize(optimizer):
    """The optimizer as Keras's dict: `{"module": "keras.optimizers", "class_name", "config", "registered_name"}`.

    Built-ins are written as TensorFlow-backend Keras writes them (module `keras.optimizers`, no
    registered name), which every Keras backend can read.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"serialize() needs an Optimizer. Received: {optimizer!r} of type "
                        f"{type(optimizer).__name__}. Pass an optimizer instance.")
    return schedules.serialize_object(optimizer, "keras.optimizers")


def deserialize(config, custom_objects=None):
    """An optimizer from Keras's serialized dict (or a name); the class is resolved by `class_name` only.

    The `module` field is ignored, so files written by any Keras backend load. Names of built-ins are
    case-insensitive (`"adam"`, `"Adam"`); only registered classes and `custom_objects` are used.

    Args:
        config: `{"class_name": ..., "config": {...}}`, as written by `serialize` or by Keras, or a name.
        custom_objects: optional `{name: class}` for optimizers and schedules that are not registered.
    """
    if isinstance(config, str):
        config = {"class_name": config, "config": {}}
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"Cannot deserialize an optimizer from {config!r}: expected a dict with 'class_name' "
                         "and 'config'. Pass the output of `optimizers.serialize()`.")
    cls = _resolve(config["class_name"], config.get("registered_name"), custom_objects)
    if cls is None:
        raise _unknown_optimizer(config["class_name"])
    inner = dict(config.get("config") or {})
    if "custom_objects" in inspect.signature(cls.from_config).parameters:
        return cls.from_config(inner, custom_objects=custom_objects)
    return cls.from_config(inner)  # a custom optimizer with a one-argument from_config


def get(identifier):
    """An optimizer from a name (`"adam"`), a config dict, or an instance (returned as is); None stays None.

    Args:
        identifier: a built-in name in any case, a serialized dict, or an `Optimizer`.
    """
    if identifier is None or isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    raise _unknown_optimizer(identifier)
