"""Reverse-mode autodiff over NumPy: Tensor graph nodes, GradientTape, unbroadcast.

An op computes its NumPy result and, while a tape is recording and some input needs a gradient,
links the result to its inputs with a `backward(grad)` closure. `GradientTape.gradient` walks
those links from the target back to the sources.
"""
import numpy as np

from kerasckpt._operators import TensorOperators
from kerasckpt.variables import Variable

_recording = [0]  # number of tapes currently recording; a list so ops read it without `global`


class Tensor(TensorOperators):
    """The value of an op: a NumPy array plus, when recorded, its parents and backward closure."""

    __slots__ = ("value", "parents", "backward", "watched")

    def __init__(self, value, parents=None, backward=None):
        self.value = value
        self.parents = parents
        self.backward = backward
        self.watched = False

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
    if isinstance(x, Tensor):
        return x.value
    if isinstance(x, Variable):
        return x._value
    return x


def needs_grad(x):
    """Whether gradients flow into `x`: a variable, a recorded tensor, or a watched tensor."""
    if isinstance(x, Tensor):
        return x.parents is not None or x.watched
    return isinstance(x, Variable)


def record(value, parents, backward):
    """Wrap an op's result, linking it to `parents` when a tape records and a parent needs a grad."""
    if _recording[0]:
        for p in parents:
            if needs_grad(p):
                return Tensor(value, parents, backward)
    return Tensor(value)


def unbroadcast(grad, shape):
    """Sum `grad` over the axes NumPy broadcasting added or stretched, back to `shape`."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


def shape_of(x):
    return np.shape(value_of(x))


class GradientTape:
    """Record ops run inside `with GradientTape() as tape:` and differentiate them.

    Trainable variables are watched automatically; other tensors with `tape.watch(x)`.

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
        self._used = False

    def __enter__(self):
        _recording[0] += 1
        self._active = True
        return self

    def __exit__(self, *exc):
        if self._active:
            _recording[0] -= 1
            self._active = False
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
                if tape._active:
                    _recording[0] -= 1

            def __exit__(self, *exc):
                if tape._active:
                    _recording[0] += 1
                return False

        return _Paused()

    def gradient(self, target, sources, output_gradients=None):
        """Gradients of `target` (summed if not scalar) with respect to each of `sources`.

        Returns a structure like `sources` holding a Tensor per source, or None where the source
        does not affect the target.
        """
        if self._used and not self.persistent:
            raise RuntimeError(
                "This GradientTape was already used for a gradient and is not persistent. "
                "Create it with GradientTape(persistent=True) to call gradient() more than once.")
        self._used = True
        single = not isinstance(sources, (list, tuple))
        source_list = [sources] if single else list(sources)
        if isinstance(target, (list, tuple)):
            from kerasckpt import ops
            target = ops.add_n(list(target))
        grads = backpropagate(target, source_list, output_gradients)
        out = [None if g is None else Tensor(g) for g in grads]
        return out[0] if single else out


def backpropagate(target, sources, output_gradient=None):
    """Arrays of d(sum target)/d(source) for each source (None where unconnected)."""
    wanted = {id(s) for s in sources}
    order = _topological_order(target)
    root = value_of(target)
    seed = np.ones_like(root) if output_gradient is None else np.asarray(value_of(output_gradient), dtype=root.dtype)
    grads = {id(target): seed}
    found = {}
    for node in order:
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if id(node) in wanted:
            found[id(node)] = g
        if not isinstance(node, Tensor) or node.parents is None:
            continue
        for parent, pg in zip(node.parents, node.backward(g)):
            if pg is None or not needs_grad(parent):
                continue
            key = id(parent)
            prev = grads.get(key)
            grads[key] = pg if prev is None else prev + pg
    result = []
    for s in sources:
        g = found.get(id(s))
        if g is not None:
            dtype = value_of(s).dtype
            if g.dtype != dtype and dtype.kind == "f":
                g = g.astype(dtype)
        result.append(g)
    return result


def _topological_order(target):
    """Nodes reachable from `target`, each after every node that consumes it."""
    order, visited = [], set()
    stack = [(target, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if isinstance(node, Tensor) and node.parents is not None:
            for p in node.parents:
                if id(p) not in visited and needs_grad(p):
                    stack.append((p, False))
    order.reverse()
    return order
