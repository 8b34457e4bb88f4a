"""Trackable: objects whose state is Variables reachable through named children, and the registry
of restored values waiting for the objects they belong to (deferred restoration).

Layers, models, optimizers and metrics are Trackables. `checkpoint/` walks any Trackable through
`_trackable_children()` to give every Variable a path made of attribute names
(`model/dense_1/kernel`), and `saving/` does the same walk in Keras's order.
"""
import contextlib
import threading
import weakref

from kerasckpt.variables import Variable


def is_trackable_value(value):
    """Whether `value` holds state: a Variable, a Trackable, or a list/tuple/dict containing one."""
    if isinstance(value, (Variable, Trackable)):
        return True
    if isinstance(value, (list, tuple)):
        return any(is_trackable_value(v) for v in value)
    if isinstance(value, dict):
        return any(is_trackable_value(v) for v in value.values())
    return False


class Trackable:
    """Base of every object that owns Variables or other Trackables."""

    def _trackable_children(self):
        """Named children in a stable order: `{name: Variable | Trackable | list | dict}`.

        The default takes the public attributes, in assignment order, that hold state.
        """
        return {name: value for name, value in vars(self).items()
                if not name.startswith("_") and is_trackable_value(value)}

    def _checkpoint_aliases(self):
        """Other names of children, used by TensorFlow and Keras checkpoints: `{name: value}`.

        Restores match a checkpoint's edge by these names too (`_kernel` for `kernel`, tf.keras's
        `layer_with_weights-0`), and the object graph kerasckpt writes for TensorFlow carries them as
        extra edges to the same objects. Values are children, lists of them, or `AliasView`s.
        """
        return {}


class AliasView(Trackable):
    """A stand-in node with given children, for a structure TensorFlow or Keras has and kerasckpt does not
    (Keras 3's `Sequential._functional` holding `_operations`)."""

    def __init__(self, children):
        self._children = dict(children)

    def _trackable_children(self):
        return dict(self._children)


# ------------------------------------------------------------------------------------------------
# Deferred restoration. A restore that reaches a child which does not exist yet (an unbuilt layer's
# kernel, an optimizer's slots before its first step) leaves an entry here; the entry is applied and
# removed when the object is created. Parents are held weakly: a held value dies with its parent.
# An entry is any object with `apply(parent, name, value)` (children) or
# `apply_slot(optimizer, slot_name, reference_variable, slot_variable) -> bool` (slots).

_held_children = weakref.WeakKeyDictionary()  # parent -> {child name: entry}
_held_slots = weakref.WeakKeyDictionary()     # optimizer -> [entry, ...], newest last


def hold_child(parent, name, entry):
    """Hold `entry` until `parent` gains the child `name`; a later entry for the same child wins."""
    children = _held_children.setdefault(parent, {})
    previous = children.get(name, _NOTHING)
    children[name] = entry
    on_rollback(lambda: _put_child(parent, name, previous))


def hold_slots(optimizer, entry):
    """Hold `entry` for the slots `optimizer` will create; newer entries are tried first."""
    entries = _held_slots.setdefault(optimizer, [])
    if entry not in entries:
        entries.append(entry)
        on_rollback(lambda: release_slots(optimizer, entry))


def release_slots(optimizer, entry):
    """Forget a slot entry (it has nothing left to apply)."""
    entries = _held_slots.get(optimizer)
    if entries and entry in entries:
        position = entries.index(entry)
        entries.remove(entry)
        if not entries:
            del _held_slots[optimizer]
        on_rollback(lambda: _held_slots.setdefault(optimizer, []).insert(position, entry))


def held_children(parent):
    """`{child name: entry}` waiting for `parent` (a copy; empty when nothing waits)."""
    try:
        return dict(_held_children.get(parent, {}))
    except TypeError:  # unhashable or not weak-referenceable: nothing can be held for it
        return {}


def child_created(parent, name, value):
    """Called when `parent` gains the child `name` (a new weight or a sub-layer); applies held values.

    The application is part of the enclosing build transaction (one of its own when there is none):
    if the build fails, the entry is held again and whatever it assigned is undone.
    """
    if not _held_children:
        return
    try:
        children = _held_children.get(parent)
    except TypeError:
        return
    if not children:
        return
    if name not in children:  # held under another name of the same child (`_kernel` for `kernel`)
        aliases = getattr(parent, "_checkpoint_aliases", None)
        names = [a for a, v in aliases().items() if v is value and a in children] if aliases else []
        if not names:
            return
        name = names[0]
    with transaction():
        entry = children.pop(name)
        if not children:
            del _held_children[parent]
        on_rollback(lambda: _put_child(parent, name, entry))
        entry.apply(parent, name, value)


def slot_created(optimizer, slot_name, reference_variable, slot_variable):
    """Called when an optimizer creates a slot for `reference_variable`; applies held values."""
    if not _held_slots:
        return
    for entry in reversed(list(_held_slots.get(optimizer, ()))):
        if entry.apply_slot(optimizer, slot_name, reference_variable, slot_variable):
            return


_NOTHING = object()


def _put_child(parent, name, entry):
    children = _held_children.setdefault(parent, {})
    if entry is _NOTHING:
        children.pop(name, None)
        if not children:
            del _held_children[parent]
    else:
        children[name] = entry


# ------------------------------------------------------------------------------------------------
# Build transactions. A layer's first build (with the builds of its sub-layers nested in it) is one
# step: values held for the variables it creates are applied as they are created, so the first
# forward pass already uses them, but a value that does not fit is only reported, and at the end of
# the outermost build every reported problem is raised at once. Raising (that or anything else)
# rolls the whole step back: the layers are unbuilt again, their new variables untracked, the
# assigned values undone and the held values held again, so the same call fails the same way.

_local = threading.local()


class _Transaction:
    def __init__(self):
        self.undo = []       # callables, run newest first on rollback
        self.problems = {}   # make_error(lines) -> [line, ...]: values that did not fit, raised at the end
        self.touched = set()  # ids of objects that recorded their snapshot (kept alive by their undo)
        self.created = {}     # id -> variable created in this transaction (a rollback drops it)

    def rollback(self):
        for undo in reversed(self.undo):
            try:
                undo()
            except Exception:  # noqa: BLE001  undo the rest: the error that caused the rollback is the one to show
                pass
        self.undo.clear()


def active_transaction():
    """The build transaction in progress in this thread, or None."""
    return getattr(_local, "transaction", None)


def on_rollback(undo):
    """Record `undo()` to run if the transaction in progress fails; nothing happens outside one."""
    t = active_transaction()
    if t is not None:
        t.undo.append(undo)


def snapshot_once(obj, take):
    """Run `take()` (which records undos) once per transaction for `obj`; False outside one."""
    t = active_transaction()
    if t is None:
        return False
    if id(obj) not in t.touched:
        t.touched.add(id(obj))
        take()
    return True


def note_created(variable):
    """Record that `variable` was created by the build in progress (a rollback drops it)."""
    t = active_transaction()
    if t is not None:
        t.created[id(variable)] = variable  # held for the transaction's life, so the id stays its own


def created_in_transaction(variable):
    """Whether `variable` was created by the build in progress."""
    t = active_transaction()
    return t is not None and id(variable) in t.created


def report_problems(make_error, lines):
    """Report values that do not fit; raised (as `make_error(lines)`) at the end of the build.

    Outside a transaction the error is raised at once.
    """
    t = active_transaction()
    if t is None:
        raise make_error(list(lines))
    t.problems.setdefault(make_error, []).extend(lines)


def raise_problems():
    """Raise the first reported problem of the transaction in progress (called at the end of a build)."""
    t = active_transaction()
    if t is not None and t.problems:
        make_error, lines = next(iter(t.problems.items()))
        t.problems.clear()
        raise make_error(lines)


@contextlib.contextmanager
def transaction():
    """Run the block as one step: on an exception every change recorded with `on_rollback` is undone.

    Nested uses join the outermost one; problems reported inside it are raised when it ends.
    """
    if active_transaction() is not None:
        yield active_transaction()
        return
    t = _local.transaction = _Transaction()
    try:
        yield t
        raise_problems()
    except BaseException:
        _local.transaction = None
        t.rollback()
        raise
    finally:
        _local.transaction = None
