"""The training loop: compile, fit, evaluate, predict and the *_on_batch methods."""
import math
import zlib

import numpy as np

from kerasckpt import losses as losses_module
from kerasckpt import metrics as metrics_module
from kerasckpt import optimizers as optimizers_module
from kerasckpt.autograd import GradientTape, Tensor, backpropagate, value_of
from kerasckpt.callbacks import CallbackList, History
from kerasckpt.layers.base import flatten, map_structure
from kerasckpt.models.data import ArrayData, BatchStream, unpack_validation
from kerasckpt.random import draw_seed
from kerasckpt.utils import pack_x_y_sample_weight, unpack_x_y_sample_weight


def _resolve_metric(identifier, y_true, y_pred):
    """A Metric for `identifier`, with "accuracy"/"acc" chosen from the shapes as Keras does."""
    if isinstance(identifier, metrics_module.Metric):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        true_shape, pred_shape = np.shape(y_true), np.shape(y_pred)
        if pred_shape[-1:] == (1,):
            cls = metrics_module.BinaryAccuracy
        elif len(true_shape) < len(pred_shape) or (true_shape[-1:] == (1,) and pred_shape[-1] > 1):
            cls = metrics_module.SparseCategoricalAccuracy
        else:
            cls = metrics_module.CategoricalAccuracy
        return cls(name=identifier)
    metric = metrics_module.get(identifier)
    if not isinstance(metric, metrics_module.Metric):  # a plain function, wrapped as Keras does
        metric = metrics_module.MeanMetricWrapper(metric, name=getattr(metric, "__name__", None))
    if isinstance(identifier, str):
        metric.name = identifier
    return metric


def _metrics_per_output(spec, output_names, argument):
    """`metrics` or `weighted_metrics` as one list of identifiers per output, read as Keras reads them."""
    n = len(output_names)
    if not spec:
        return [[] for _ in range(n)]
    if n == 1:  # every metric applies to the only output
        return [[m for m in flatten(spec) if m is not None]]
    if isinstance(spec, dict) and set(spec) <= set(output_names):
        return [[m for m in flatten([spec.get(name)]) if m is not None] for name in output_names]
    if isinstance(spec, (list, tuple)) and len(spec) == n:
        return [[m for m in flatten([entry]) if m is not None] for entry in spec]
    raise ValueError(
        f"The model has {n} outputs {output_names}, so `{argument}` needs one entry (a metric or a list of "
        f"metrics) per output, as a list of {n} entries or a dict keyed by output name. Received: {argument}={spec!r}")


def _loss_object(identifier):
    """A Loss for a name, config, function or Loss; plain functions are wrapped as Keras does."""
    loss = losses_module.get(identifier)
    if loss is None or isinstance(loss, losses_module.Loss):
        return loss
    return losses_module.LossFunctionWrapper(loss, name=getattr(loss, "__name__", None))


def _float_logs(metrics):
    return {m.name: float(m.result()) for m in metrics}


class Trainer:
    """The Keras training API, mixed into `Model`."""

    def _init_trainer(self):
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self.stop_training = False
        self.history = None
        self._compile_config = None
        self._loss_fns = None
        self._loss_weights = None
        self._metric_ids = []
        self._metric_args = (None, None)
        self._compiled_metrics = None
        self._metric_routes = []
        self._loss_tracker = None
        self._output_loss_trackers = None
        self._train_vars = None

    # ------------------------------------------------------------------ compile

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Configure the model for training.

        Args:
            optimizer: a name (`"adam"`) or an Optimizer.
            loss: a name (`"mse"`, `"sparse_categorical_crossentropy"`), a Loss, a function, or a
                list/dict of these for several outputs.
            loss_weights: scalars weighting the losses of several outputs.
            metrics: names or Metric objects; `"accuracy"` is resolved from the targets' shapes. With
                several outputs, a list with one entry per output or a dict keyed by output name; their
                logs are named `<output>_<metric>`, as are the unweighted per-output `<output>_loss`.
            weighted_metrics: like `metrics`, but weighted by `sample_weight` / `class_weight`
                (`metrics` are not, as in Keras).
        """
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = loss
        self._loss_weights = loss_weights
        self._loss_fns = self._resolve_losses(loss)
        self._metric_ids = [m for m in flatten([metrics or [], weighted_metrics or []]) if m is not None]
        self._metric_args = (metrics, weighted_metrics)
        self._compiled_metrics = None  # resolved at the first batch, when shapes are known
        self._metric_routes = []  # (output index, weighted) of each compiled metric
        self._loss_tracker = metrics_module.Mean(name="loss")
        self._output_loss_trackers = None  # `<output>_loss` of multi-output models, made by compute_loss
        self._compile_config = {"optimizer": optimizer, "loss": loss, "loss_weights": loss_weights,
                                "metrics": metrics, "weighted_metrics": weighted_metrics,
                                "run_eagerly": run_eagerly, "steps_per_execution": steps_per_execution,
                                "jit_compile": jit_compile}
        self._train_vars = None
        self.compiled = True

    def _resolve_losses(self, loss):
        if loss is None:
            return None
        if isinstance(loss, dict):
            return {k: _loss_object(v) for k, v in loss.items()}
        if isinstance(loss, (list, tuple)):
            return [_loss_object(v) for v in loss]
        return _loss_object(loss)

    def _assert_compiled(self, what):
        if not self.compiled or self.optimizer is None:
            raise RuntimeError(f"You must call compile() before {what}(). "
                               "For example: model.compile(optimizer='adam', loss='mse').")
        if self._loss_fns is None:
            raise ValueError(f"The model was compiled without a loss, so {what}() has nothing to minimize. "
                             "Pass loss=... to compile().")

    @property
    def metrics(self):
        """The loss tracker, per-output loss trackers, then the compiled metrics (resolved by the first batch)."""
        out = [self._loss_tracker] if self._loss_tracker is not None else []
        return out + list(self._output_loss_trackers or []) + list(self._compiled_metrics or [])

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The total loss of a batch: the compiled loss(es), weighted and summed over outputs."""
        fns = self._loss_fns
        weights = self._loss_weights
        if not isinstance(fns, (list, dict)):
            loss = fns(y, y_pred, sample_weight=sample_weight)
            return loss if weights is None else loss * flatten(weights)[0]
        preds = self._per_output(y_pred)
        pairs = self._loss_pairs(len(preds))
        ys = self._targets_per_output(y)
        total = None
        for n, (fn, i, key) in enumerate(pairs):
            term = fn(ys[i], preds[i], sample_weight=sample_weight)
            if self._output_loss_trackers:
                self._output_loss_trackers[n].update_state(value_of(term), sample_weight=len(value_of(preds[i])))
            if weights is not None:
                term = term * (weights[key] if isinstance(weights, dict) else weights[i])
            total = term if total is None else total + term
        return total

    def _loss_pairs(self, n_outputs):
        """`(loss, output index, loss_weights key)` per output that has a loss; makes the `<output>_loss`
        trackers (Keras logs each output's unweighted loss when there are several)."""
        fns = self._loss_fns
        if isinstance(fns, dict):
            names = self._output_keys()
            missing = [k for k in fns if k not in names]
            if missing:
                raise ValueError(f"compile(loss=...) names outputs {missing} that the model does not have. "
                                 f"Its outputs are {names}.")
            pairs = [(fns.get(n), i, n) for i, n in enumerate(names)]
        else:
            if len(fns) != n_outputs:
                raise ValueError(f"compile(loss=...) has {len(fns)} losses but the model has {n_outputs} outputs. "
                                 "Pass one loss per output.")
            pairs = [(fn, i, i) for i, fn in enumerate(fns)]
        pairs = [pair for pair in pairs if pair[0] is not None]
        if self._output_loss_trackers is None:
            self._output_loss_trackers = [metrics_module.Mean(name=f"{self._output_keys()[i]}_loss")
                                          for _, i, _ in pairs] if len(pairs) > 1 else []
        return pairs

    @property
    def output_names(self):
        return [getattr(t, "name", None) or f"output_{i}" for i, t in enumerate(getattr(self, "outputs", []) or [])]

    def _output_keys(self):
        """The name of each output as targets, losses and metrics are keyed: the keys of a dict of
        outputs (`Model(inputs, {"cls": ..., "reg": ...})`), else `output_names`."""
        struct = getattr(self, "_outputs_struct", None)
        return list(struct) if isinstance(struct, dict) else self.output_names

    def _per_output(self, y_pred):
        """Predictions as a list with one entry per output (a dict of outputs in the model's order)."""
        if isinstance(y_pred, dict):
            return [y_pred[k] for k in self._output_keys()]
        return list(y_pred) if isinstance(y_pred, (list, tuple)) else [y_pred]

    # ------------------------------------------------------------------ steps

    def _targets_per_output(self, y):
        """`y` as a list with one target per output (a dict is read by output name)."""
        if isinstance(y, dict):
            missing = [n for n in self._output_keys() if n not in y]
            if missing:
                raise ValueError(f"The targets are a dict without the outputs {missing}. Its keys are {list(y)}; "
                                 f"give one target per output: {self._output_keys()}.")
            return [y[n] for n in self._output_keys()]
        return list(y) if isinstance(y, (list, tuple)) else [y]

    def _ensure_metrics(self, y, y_pred):
        """Resolve the compiled metrics from a batch's shapes, named as Keras names them."""
        if self._compiled_metrics is not None:
            return
        preds = self._per_output(y_pred)
        ys = self._targets_per_output(y)
        names = self._output_keys() if len(preds) > 1 else [None]
        compiled, routes, taken = [], [], {"loss"}
        for spec, argument, weighted in zip(self._metric_args, ("metrics", "weighted_metrics"), (False, True)):
            for i, identifiers in enumerate(_metrics_per_output(spec, names, argument)):
                prefix = "" if names[i] is None else f"{names[i]}_"
                for identifier in identifiers:
                    metric = _resolve_metric(identifier, ys[i], preds[i])
                    name = prefix + metric.name
                    if name in taken and weighted:
                        name = f"{prefix}weighted_{metric.name}"
                    base, k = name, 1
                    while name in taken:
                        name, k = f"{base}_{k}", k + 1
                    metric.name = name
                    taken.add(name)
                    compiled.append(metric)
                    routes.append((i, weighted))
        self._compiled_metrics, self._metric_routes = compiled, routes

    def _update_metrics(self, loss_value, y, y_pred, sample_weight, batch_size):
        self._loss_tracker.update_state(loss_value, sample_weight=batch_size)
        if self._metric_ids:
            preds = [_detached(p) for p in self._per_output(y_pred)]
            self._ensure_metrics(y, preds)
            ys = self._targets_per_output(y)
            for metric, (i, weighted) in zip(self._compiled_metrics, self._metric_routes):
                metric.update_state(ys[i], preds[i], sample_weight=sample_weight if weighted else None)

    def _trainable_variables_for_step(self):
        if self._train_vars is None:
            self._train_vars = self.trainable_weights
        return self._train_vars

    def train_step(self, data):
        """One optimizer step on a batch; returns the running logs (`loss` and metrics).

        `data` is `(x, y)`, or `(x, y, sample_weight)` when there are sample weights, as in Keras 3:
        override it with the same signature (unpack with `kerasckpt.utils.unpack_x_y_sample_weight`).
        """
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        with GradientTape():
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        variables = self._trainable_variables_for_step()
        grads = backpropagate(loss, variables)
        self.optimizer.apply(grads, variables)
        self._update_metrics(loss.value, y, y_pred, sample_weight, len(flatten(x)[0]))
        return _float_logs(self.metrics)

    def test_step(self, data):
        """Loss and metrics of a batch in inference mode; returns the running logs. `data` as in `train_step`."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self.compute_loss(x, y, y_pred, sample_weight, training=False)
        self._update_metrics(value_of(loss), y, y_pred, sample_weight, len(flatten(x)[0]))
        return _float_logs(self.metrics)

    def _build_from_data(self, data):
        """Build the model, and resolve the compiled metrics, from one sample (inference mode, no randomness).

        Every metric object exists afterwards, before any callback runs, so `model.metrics` has the
        same entries when a run's state is saved and when it is restored."""
        loss_trackers_due = self._output_loss_trackers is None and isinstance(self._loss_fns, (list, dict))
        if not self.built or loss_trackers_due or (
                self._metric_ids and self._compiled_metrics is None and data.y is not None):
            sample = map_structure(lambda a: a[:1], data.x)
            y_pred = self(sample, training=False)
            if loss_trackers_due:
                self._loss_pairs(len(flatten(y_pred)))
            if self._metric_ids and data.y is not None:
                self._ensure_metrics(map_structure(lambda a: a[:1], data.y),
                                     [value_of(p) for p in self._per_output(y_pred)])

    # ------------------------------------------------------------------ fit

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train for `epochs` epochs on arrays; returns the `History`.

        Args are Keras's: `batch_size` defaults to 32; `validation_split` takes the last fraction of
        the samples (before shuffling); `validation_data` is `(x, y)` or `(x, y, sample_weight)`;
        `steps_per_epoch` draws that many batches per epoch from a stream of shuffled passes;
        `validation_freq` validates every N epochs (or at the listed 1-based epochs).

        Returns the `History` of this call's epochs, as Keras: resumed by `BackupAndRestore` at epoch 4
        of 10, it holds epochs 4 to 9 (`history.run_history` holds the whole run).

        Note: inputs containing NaN or infinity are refused with an error naming the index, and the
        shuffle order comes from a counter-based stream saved with the loop state, so a resumed run
        sees exactly the batches the uninterrupted run would; resumed inside an epoch, that epoch
        still begins with `on_epoch_begin` (SPEC §3) and goes on at the next batch.
        """
        self._assert_compiled("fit")
        batch_size = self._check_batch_size(batch_size)
        validation_freq = _check_validation_freq(validation_freq)
        data = ArrayData(x, y, sample_weight)
        if data.y is None:
            raise ValueError("fit() needs targets `y` for the compiled loss. Received: y=None.")
        val = None
        if validation_data is not None:
            val = unpack_validation(validation_data)
        elif validation_split:
            data, val = data.split(validation_split)
        data.check_finite()
        if val is not None:
            val.check_finite("validation ")
        if class_weight is not None:
            data.sample_weight = _class_weights_to_sample_weights(class_weight, data.y, data.sample_weight)
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer. Received: epochs={epochs!r}")
        self._build_from_data(data)  # before the shuffle seed is drawn, as in a model built beforehand or loaded
        stream = BatchStream(len(data), batch_size, shuffle=bool(shuffle), seed=draw_seed())
        steps = steps_per_epoch or stream.batches_per_pass()
        stream.skip(initial_epoch * steps)  # epoch k sees the same batches whether or not fit() started at 0
        verbose = 1 if verbose == "auto" else verbose
        cbs = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=epochs,
            steps=steps)
        history = next((c for c in cbs.callbacks if isinstance(c, History)), None)
        self._train_vars = None
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_weights)
        self.stop_training = False
        validates = val is not None and _validates_between(initial_epoch, epochs, validation_freq)
        loop = FitLoop(self, cbs, stream, initial_epoch, validates=validates, fingerprint={
            "epochs": epochs, "batch_size": batch_size, "steps_per_epoch": steps_per_epoch, "shuffle": bool(shuffle),
            "samples": len(data), "validation_samples": None if val is None else len(val),
            "validation_freq": validation_freq, "validation_steps": validation_steps,
            "validation_batch_size": validation_batch_size, "initial_epoch": initial_epoch,
            "class_weight": None if class_weight is None else sorted([int(k), float(v)] for k, v in class_weight.items()),
            "sample_weight": _digest(sample_weight)})
        self._fit_loop = loop
        training_logs = None
        try:
            cbs.on_train_begin()  # BackupAndRestore may move `loop` to where an earlier run stopped
            while loop.epoch < epochs and not self.stop_training:
                epoch = loop.epoch
                if loop.step == 0:  # a run resumed mid-epoch keeps the restored metric accumulators
                    self.reset_metrics()
                cbs.on_epoch_begin(epoch)  # every epoch that runs batches begins here, a resumed one too
                loop.epoch_began()
                self._train_vars = None  # layers frozen or unfrozen before this epoch count from here on
                logs = {}
                while loop.step < steps:
                    step = loop.step
                    cbs.on_train_batch_begin(step)
                    logs = _float_step_logs(self.train_step(pack_x_y_sample_weight(*data.take(stream.next()))),
                                            "train_step")
                    loop.step += 1
                    cbs.on_train_batch_end(step, logs)
                    loop.consistent_point("batch", epoch, step)
                    if self.stop_training:
                        break
                epoch_logs = (dict(logs) if logs else _float_logs(self.metrics)) if loop.step else {}
                if val is not None and _should_validate(epoch, validation_freq):
                    val_logs = self.evaluate(val.x, val.y, sample_weight=val.sample_weight,
                                             batch_size=validation_batch_size or batch_size, steps=validation_steps,
                                             callbacks=cbs, return_dict=True, verbose=0, _data=val)
                    epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
                loop.epoch, loop.step = epoch + 1, 0
                cbs.on_epoch_end(epoch, epoch_logs)
                loop.consistent_point("epoch", epoch, None)
                training_logs = epoch_logs
            self.optimizer.finalize_variable_values(self.trainable_weights)  # EMA weights, as Keras
            cbs.on_train_end(logs=training_logs)
        finally:
            self._fit_loop = None
        if history is not None:
            self.history = history
        return self.history

    @staticmethod
    def _check_batch_size(batch_size):
        if batch_size is None:
            return 32
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
        return int(batch_size)

    # ------------------------------------------------------------------ evaluate / predict

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, _data=None):
        """Loss and metrics on data in inference mode.

        Returns the loss alone when there are no metrics, else `[loss, *metrics]`, or a dict with
        `return_dict=True`.
        """
        self._assert_compiled("evaluate")
        batch_size = self._check_batch_size(batch_size)
        data = _data if _data is not None else ArrayData(x, y, sample_weight)
        if data.y is None:
            raise ValueError("evaluate() needs targets `y` for the compiled loss. Received: y=None.")
        if _data is None:  # fit() checks its validation data once
            data.check_finite()
        self._build_from_data(data)
        n_batches = math.ceil(len(data) / batch_size) if steps is None else min(steps, math.ceil(len(data) / batch_size))
        verbose = 1 if verbose == "auto" else verbose
        cbs = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=n_batches)
        self.reset_metrics()
        cbs.on_test_begin()
        logs = {}
        for step in range(n_batches):
            cbs.on_test_batch_begin(step)
            logs = _float_step_logs(self.test_step(pack_x_y_sample_weight(
                *data.take(slice(step * batch_size, (step + 1) * batch_size)))), "test_step")
            cbs.on_test_batch_end(step, logs)
        logs = dict(logs) if logs else _float_logs(self.metrics)  # an overridden test_step's own logs too
        cbs.on_test_end(logs)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for `x` in inference mode, batch by batch, as NumPy arrays."""
        batch_size = self._check_batch_size(batch_size)
        data = ArrayData(x)
        n_batches = math.ceil(len(data) / batch_size) if steps is None else steps
        verbose = 1 if verbose == "auto" else verbose
        cbs = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=n_batches)
        cbs.on_predict_begin()
        outputs = []
        for step in range(n_batches):
            cbs.on_predict_batch_begin(step)
            batch = data.take(slice(step * batch_size, (step + 1) * batch_size))[0]
            out = map_structure(lambda t: np.asarray(value_of(t)), self(batch, training=False))
            outputs.append(out)
            cbs.on_predict_batch_end(step, {"outputs": out})
        cbs.on_predict_end()
        if not outputs:
            raise ValueError("predict() received no samples. Pass at least one sample in `x`.")
        if isinstance(outputs[0], (list, tuple)):
            return [np.concatenate([o[i] for o in outputs]) for i in range(len(outputs[0]))]
        if isinstance(outputs[0], dict):
            return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
        return np.concatenate(outputs)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch; returns that batch's loss (and metrics), as Keras does."""
        self._assert_compiled("train_on_batch")
        data = ArrayData(x, y, sample_weight)
        if class_weight is not None:
            data.sample_weight = _class_weights_to_sample_weights(class_weight, data.y, data.sample_weight)
        self._build_from_data(data)
        self._train_vars = None  # layers frozen or unfrozen since the last call count from this step on
        self.reset_metrics()  # the logs are this batch's alone, not a running mean over earlier calls
        logs = _float_step_logs(self.train_step(pack_x_y_sample_weight(data.x, data.y, data.sample_weight)),
                                "train_step")
        return _logs_result(logs, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss (and metrics) on one batch in inference mode."""
        self._assert_compiled("test_on_batch")
        self.reset_metrics()
        data = ArrayData(x, y, sample_weight)
        logs = _float_step_logs(self.test_step(pack_x_y_sample_weight(data.x, data.y, data.sample_weight)),
                                "test_step")
        return _logs_result(logs, return_dict)

    def predict_on_batch(self, x):
        """Outputs for one batch in inference mode, as NumPy arrays."""
        data = ArrayData(x)
        return map_structure(lambda t: np.asarray(value_of(t)), self(data.x, training=False))


class FitLoop:
    """Where `fit()` is, as one object: what an exact resume needs besides the variables.

    Holds the epoch and next batch, the batch stream (shuffle seed, pass, offset), `stop_training`, every
    callback's state (the History's too), and the fingerprint of the run's arguments. Savers registered with
    `add_saver` (BackupAndRestore) run at consistent points: after every callback has finished a batch
    or an epoch, so a backup never misses an update that a later callback in the list makes.
    """

    def __init__(self, model, callbacks, stream, initial_epoch, fingerprint, validates=True):
        self.model, self.callbacks, self.stream = model, callbacks, stream
        self.epoch, self.step = initial_epoch, 0
        self.fingerprint = fingerprint
        self.validates = validates  # whether some epoch of this fit() runs validation
        self._savers = []
        self._after_epoch_begin = []

    def add_saver(self, saver):
        """`saver(kind, epoch, batch)` runs at each consistent point; kind is "batch" or "epoch"."""
        self._savers.append(saver)

    def after_epoch_begin(self, fn):
        """Run `fn()` once, right after the next `on_epoch_begin` (a resume inside an epoch puts back there
        what that hook changed: the backup was made after the hook had run for that epoch)."""
        self._after_epoch_begin.append(fn)

    def epoch_began(self):
        pending, self._after_epoch_begin = self._after_epoch_begin, []
        for fn in pending:
            fn()

    def consistent_point(self, kind, epoch, batch):
        for saver in self._savers:
            saver(kind, epoch, batch)

    def get_state(self):
        """The loop's position and the other callbacks' states, as JSON-ready data."""
        return {"epoch": self.epoch, "step": self.step, "stream": self.stream.get_state(),
                "stop_training": bool(self.model.stop_training), "callbacks": self.callbacks.get_state(),
                "fingerprint": self.fingerprint}

    def set_state(self, state):
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.stream.set_state(state["stream"])
        self.model.stop_training = bool(state["stop_training"])
        self.callbacks.set_state(state["callbacks"])


def _detached(prediction):
    """A prediction's array for the metrics; a masked one stays a (detached) Tensor carrying its mask, which
    metrics respect as Keras's do."""
    mask = getattr(prediction, "_keras_mask", None)
    if mask is None:
        return value_of(prediction)
    out = Tensor(value_of(prediction))
    out._keras_mask = mask
    return out


def _float_step_logs(logs, step):
    """A step's logs as `{name: float}`; an overridden step may return tensors, arrays or NumPy scalars."""
    if not isinstance(logs, dict):
        raise TypeError(f"{step}() must return a dict of logs such as {{'loss': value}}; it returned "
                        f"{type(logs).__name__}. Return e.g. {{m.name: m.result() for m in self.metrics}}.")
    out = {}
    for name, value in logs.items():
        if type(value) is float:  # the built-in steps' logs
            out[name] = value
            continue
        try:
            out[name] = float(np.asarray(value_of(value)))
        except (TypeError, ValueError):
            out[name] = value  # non-scalar logs pass through, as Keras passes them to callbacks
    return out


def _logs_result(logs, return_dict):
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _digest(value):
    """A short text that changes when the numbers of an array argument (or a structure of them) do."""
    if value is None:
        return None
    crc = 0
    for leaf in flatten(value):
        crc = zlib.crc32(memoryview(np.ascontiguousarray(leaf, dtype=np.float64)).cast("B"), crc)
    return f"crc32:{crc:08x}"


def _check_validation_freq(validation_freq):
    """`validation_freq` as an int >= 1 or a list of 1-based epochs; refused before training starts."""
    if isinstance(validation_freq, (int, np.integer)) and not isinstance(validation_freq, bool):
        if validation_freq >= 1:
            return int(validation_freq)
    elif isinstance(validation_freq, (list, tuple, set, range)) and all(
            isinstance(e, (int, np.integer)) and not isinstance(e, bool) and e >= 1 for e in validation_freq):
        return sorted(int(e) for e in validation_freq)
    raise ValueError(f"validation_freq must be a positive integer (validate every N epochs) or a list of 1-based "
                     f"epoch numbers such as [1, 5, 10]. Received: validation_freq={validation_freq!r}")


def _should_validate(epoch, validation_freq):
    if isinstance(validation_freq, int):
        return (epoch + 1) % validation_freq == 0
    return (epoch + 1) in validation_freq


def _validates_between(first, end, validation_freq):
    """Whether `validation_freq` validates at some 0-based epoch in `[first, end)`."""
    if isinstance(validation_freq, int):
        return (end // validation_freq) > (first // validation_freq)  # a multiple of it in [first + 1, end]
    return any(first < e <= end for e in validation_freq)


def _class_weights_to_sample_weights(class_weight, y, sample_weight):
    if isinstance(y, (list, tuple, dict)):
        raise ValueError("class_weight is only supported for models with a single output. "
                         "Pass per-sample weights with `sample_weight` instead.")
    y = np.asarray(y)
    labels = y.argmax(axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else np.round(y.reshape(len(y), -1)[:, 0]).astype(int)
    missing = sorted(set(np.unique(labels).tolist()) - set(class_weight))
    if missing:
        raise ValueError(f"class_weight has no entry for classes {missing} present in y. "
                         "Give a weight for every class.")
    weights = np.array([class_weight[int(c)] for c in labels], dtype="float32")
    return weights if sample_weight is None else weights * sample_weight


