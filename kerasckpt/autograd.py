"""Reverse-mode autodiff over NumPy: Tensor graph nodes, GradientTape, unbroadcast.

An op computes its NumPy result and, while a tape is recording and some input needs a gradient,
links the result to its inputs with a `backward(grad)` closure. `GradientTape.gradient` walks
those links from the target back to the sources.
"""
import itertools
import operator

import numpy as np

from kerasckpt._operators import TensorOperators
from kerasckpt.variables import Variable

_recording = [0]  # number of tapes currently recording; a list so ops read it without `global`
_creation = itertools.count()  # creation order of recorded nodes is a topological order of the graph


class Tensor(TensorOperators):
    """The value of an op: a NumPy array plus, when recorded, its parents and backward closure."""

    # `_keras_mask` (the Keras mask a layer attached to its output) is set only on masked outputs and read
    # with getattr(t, "_keras_mask", None), so unmasked tensors cost nothing extra.
    __slots__ = ("value", "parents", "backward", "watched", "_seq", "_keras_mask")

    def __init__(self, value, parents=None, backward=None):
        self.value = value
        self.parents = parents
        self.backward = backward
        self.watched = False
        self._seq = next(_creation) if parents is not None else -1

    def _array(self):
        return self.value

    def numpy(self):
        """The value as a NumPy array."""
        return self.value

    def __eq__(self, other):
        from kerasckpt import ops
        return ops.equal(self, other)

    def __ne__(self, other):
        from kerasckpt import ops
        return ops.not_equal(self, other)

    __hash__ = object.__hash__

    def __repr__(self):
        return f"<Tensor shape={self.value.shape} dtype={self.value.dtype}\n{self.value}>"


def value_of(x):
    """The NumPy value of a Tensor, a Variable, or anything array-like."""
    cls = x.__class__
    if cls is Tensor:
        return x.value
    if cls is Variable:
        return x._value
    if isinstance(x, Tensor):
        return x.value
    if isinstance(x, Variable):
        return x._value
    return x


def needs_grad(x):
    """Whether gradients flow into `x`: a variable, a recorded tensor, or a watched tensor."""
    cls = x.__class__
    if cls is Tensor:
        return x.parents is not None or x.watched
    if cls is Variable:
        return True
    if isinstance(x, Tensor):
        return x.parents is not None or x.watched
    return isinstance(x, Variable)


def recording():
    """Whether a GradientTape records now (ops link their results for gradients)."""
    return _recording[0] > 0


def record(value, parents, backward):
    """Wrap an op's result, linking it to `parents` when a tape records and a parent needs a grad."""
    if value.__class__ is not np.ndarray:
        value = np.asarray(value)  # NumPy scalars and Python numbers become 0-d arrays
    if _recording[0]:
        for p in parents:
            cls = p.__class__
            if cls is Tensor:
                if p.parents is not None or p.watched:
                    return Tensor(value, parents, backward)
            elif cls is Variable or (cls is not np.ndarray and needs_grad(p)):
                return Tensor(value, parents, backward)
    return Tensor(value)


class _OutputGrads:
    """The gradients that reached some outputs of a several-output op, by output index; `+` merges them
    (the tape adds the gradients a node receives)."""

    __slots__ = ("by_index",)

    def __init__(self, by_index):
        self.by_index = by_index

    def __add__(self, other):
        merged = dict(self.by_index)
        for i, g in other.by_index.items():
            merged[i] = g if i not in merged else merged[i] + g
        return _OutputGrads(merged)


def record_outputs(values, parents, backward):
    """Tensors for an op with several results (an RNN's outputs and final states).

    `backward(grads)` is called once, with one gradient per result (None for results no gradient
    reached), and returns one gradient per parent.
    """
    core = record(np.zeros(()), parents, lambda g: backward([g.by_index.get(i) for i in range(len(values))]))
    if core.parents is None:
        return [Tensor(v if v.__class__ is np.ndarray else np.asarray(v)) for v in values]
    return [Tensor(v, (core,), lambda g, i=i: (_OutputGrads({i: g}),)) for i, v in enumerate(values)]


def unbroadcast(grad, shape):
    """Sum `grad` over the axes NumPy broadcasting added or stretched, back to `shape`."""
    gshape = grad.shape
    if gshape == shape:
        return grad
    extra = len(gshape) - len(shape)
    if extra == 1 and gshape[1:] == shape:  # a bias added to a batch: the common case
        return np.add.reduce(grad, axis=0)
    if extra > 0:
        grad = np.add.reduce(grad, axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = np.add.reduce(grad, axis=axes, keepdims=True)
    return grad


def shape_of(x):
    return np.shape(value_of(x))


def _flatten(structure):
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in _flatten(item)]
    if isinstance(structure, dict):
        return [leaf for value in structure.values() for leaf in _flatten(value)]
    return [structure]


def _pack_like(structure, leaves):
    """`leaves` (an iterator) put back into the nesting of `structure`."""
    if isinstance(structure, (list, tuple)):
        packed = [_pack_like(item, leaves) for item in structure]
        if isinstance(structure, list):
            return packed
        return type(structure)(*packed) if hasattr(structure, "_fields") else type(structure)(packed)
    if isinstance(structure, dict):
        return type(structure)((key, _pack_like(value, leaves)) for key, value in structure.items())
    return next(leaves)


class GradientTape:
    """Record ops run inside `with GradientTape() as tape:` and differentiate them.

    Variables (trainable or not) are always differentiable; other tensors with `tape.watch(x)`.
    Recording is global: while any tape records, ops link their results, so an outer tape still
    sees what ran inside an inner one.

    Args:
        persistent: allow more than one `gradient()` call on this tape.
        watch_accessed_variables: kept for Keras/TensorFlow compatibility; variables are always
            differentiable.

    Example:
        with GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_weights)
    """

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self.persistent = persistent
        self._active = False
        self._paused = False
        self._used = False

    def __enter__(self):
        if self._active:
            raise RuntimeError("This GradientTape is already recording. Use a new GradientTape to nest tapes.")
        _recording[0] += 1
        self._active = True
        return self

    def __exit__(self, *exc):
        if self._active:
            if not self._paused:
                _recording[0] -= 1
            self._active = self._paused = False
        return False

    def watch(self, tensor):
        """Make gradients flow into `tensor` (a Tensor, a Variable, or a list of them)."""
        if isinstance(tensor, (list, tuple)):
            for t in tensor:
                self.watch(t)
            return
        if isinstance(tensor, Tensor):
            tensor.watched = True
        elif not isinstance(tensor, Variable):
            raise TypeError(
                f"GradientTape.watch needs a Tensor or Variable. Received: {type(tensor).__name__}. "
                "Wrap arrays with kerasckpt.ops.convert_to_tensor first.")

    def stop_recording(self):
        """A context in which ops run inside this tape are not recorded."""
        tape = self

        class _Paused:
            def __enter__(self):
                self.paused_here = tape._active and not tape._paused
                if self.paused_here:
                    _recording[0] -= 1
                    tape._paused = True

            def __exit__(self, *exc):
                if self.paused_here and tape._active:
                    _recording[0] += 1
                    tape._paused = False
                return False

        return _Paused()

    def gradient(self, target, sources, output_gradients=None, unconnected_gradients="none"):
        """Gradients of `target` (summed if not scalar) with respect to each of `sources`.

        Args:
            target: a Tensor computed while this tape recorded, or a list of them (gradients add up).
            sources: a Variable or Tensor, or a list, tuple or dict (possibly nested) of them.
            output_gradients: the gradient of the final loss with respect to `target` (a list for a
                list of targets); ones if None.
            unconnected_gradients: "none" (None for sources `target` does not depend on) or "zero".

        Returns a structure like `sources` holding a Tensor per source (None where unconnected).
        """
        if self._used and not self.persistent:
            raise RuntimeError(
                "This GradientTape was already used for a gradient and is not persistent. "
                "Create it with GradientTape(persistent=True) to call gradient() more than once.")
        if unconnected_gradients not in ("none", "zero"):
            raise ValueError(
                f"GradientTape.gradient got unconnected_gradients={unconnected_gradients!r}. "
                "Use 'none' or 'zero'.")
        self._used = True
        flat = isinstance(sources, list) and all(isinstance(s, (Tensor, Variable)) for s in sources)
        source_list = sources if flat else _flatten(sources)
        grads = backpropagate(target, source_list, output_gradients)
        out = []
        for s, g in zip(source_list, grads):
            if g is None and unconnected_gradients == "zero" and isinstance(s, (Tensor, Variable)):
                g = np.zeros_like(value_of(s))
            out.append(None if g is None else Tensor(g))
        return out if flat else _pack_like(sources, iter(out))


_by_creation = operator.attrgetter("_seq")


def _recorded_nodes(targets):
    """Recorded nodes reachable from `targets`, every consumer before the nodes it consumes."""
    nodes = [t for t in targets if isinstance(t, Tensor) and t.parents is not None]
    seen = {id(t) for t in nodes}
    stack = list(nodes)
    while stack:
        for p in stack.pop().parents:
            if p.__class__ is Tensor or isinstance(p, Tensor):
                if p.parents is not None and id(p) not in seen:
                    seen.add(id(p))
                    nodes.append(p)
                    stack.append(p)
    nodes.sort(key=_by_creation, reverse=True)  # a node is always created after its parents
    return nodes


def _seed(target, output_gradient):
    root = np.asarray(value_of(target))
    dtype = root.dtype if root.dtype.kind in "fc" else np.float32
    if output_gradient is None:
        seed = np.empty(root.shape, dtype=dtype)  # np.ones without its Python wrapper
        seed.fill(1)
        return seed
    seed = np.array(value_of(output_gradient), dtype=dtype)  # a copy: never hand the caller's array back
    return seed if seed.shape == root.shape else np.array(np.broadcast_to(seed, root.shape))


def backpropagate(target, sources, output_gradient=None):
    """Arrays of d(sum target)/d(source) for each source (None where unconnected).

    `target` may be a list of tensors (with a list of `output_gradient`s); their gradients add up.
    Every returned array is writable and owns its data, so optimizers may update it in place.
    """
    targets = list(target) if isinstance(target, (list, tuple)) else [target]
    seeds = output_gradient if isinstance(target, (list, tuple)) and output_gradient is not None \
        else [output_gradient] * len(targets)
    grads = {}
    for t, out_grad in zip(targets, seeds):
        if isinstance(t, (Tensor, Variable)):
            seed = _seed(t, out_grad)
            grads[id(t)] = seed if id(t) not in grads else grads[id(t)] + seed
    found = {}
    wanted = {id(s) for s in sources}
    pop, get = grads.pop, grads.get
    for node in _recorded_nodes(targets):
        key = id(node)
        g = pop(key, None)
        if g is None:
            continue
        if key in wanted:
            found[key] = g
        for parent, pg in zip(node.parents, node.backward(g)):
            if pg is None:
                continue
            cls = parent.__class__
            if cls is Tensor:
                if parent.parents is None and not parent.watched:
                    continue
            elif cls is not Variable and not needs_grad(parent):
                continue
            key = id(parent)
            prev = get(key)
            grads[key] = pg if prev is None else prev + pg
    result, handed_out = [], set()
    for s in sources:
        key = id(s)
        g = found.get(key)
        if g is None:
            g = grads.get(key)
            if g is None or not needs_grad(s):
                result.append(None)
                continue
        dtype = value_of(s).dtype
        if dtype.kind not in "fc":
            g = None  # no gradient for integer or boolean sources, as in TensorFlow
        elif g.__class__ is not np.ndarray or g.dtype != dtype:
            g = np.asarray(g).astype(dtype)
        elif g.base is not None or id(g) in handed_out:  # views and shared arrays are copied
            g = g.copy()
        if g is not None:
            handed_out.add(id(g))
        result.append(g)
    return result
