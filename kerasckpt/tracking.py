"""Trackable: objects whose state is Variables reachable through named children, and the registry
of restored values waiting for the objects they belong to (deferred restoration).

Layers, models, optimizers and metrics are Trackables. `checkpoint/` walks any Trackable through
`_trackable_children()` to give every Variable a path made of attribute names
(`model/dense_1/kernel`), and `saving/` does the same walk in Keras's order.
"""
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
    _held_children.setdefault(parent, {})[name] = entry


def hold_slots(optimizer, entry):
    """Hold `entry` for the slots `optimizer` will create; newer entries are tried first."""
    entries = _held_slots.setdefault(optimizer, [])
    if entry not in entries:
        entries.append(entry)


def release_slots(optimizer, entry):
    """Forget a slot entry (it has nothing left to apply)."""
    entries = _held_slots.get(optimizer)
    if entries and entry in entries:
        entries.remove(entry)
        if not entries:
            del _held_slots[optimizer]


def held_children(parent):
    """`{child name: entry}` waiting for `parent` (a copy; empty when nothing waits)."""
    try:
        return dict(_held_children.get(parent, {}))
    except TypeError:  # unhashable or not weak-referenceable: nothing can be held for it
        return {}


def child_created(parent, name, value):
    """Called when `parent` gains the child `name` (a new weight or a sub-layer); applies held values."""
    if not _held_children:
        return
    try:
        children = _held_children.get(parent)
    except TypeError:
        return
    if not children or name not in children:
        return
    entry = children.pop(name)
    if not children:
        del _held_children[parent]
    entry.apply(parent, name, value)


def slot_created(optimizer, slot_name, reference_variable, slot_variable):
    """Called when an optimizer creates a slot for `reference_variable`; applies held values."""
    if not _held_slots:
        return
    for entry in reversed(list(_held_slots.get(optimizer, ()))):
        if entry.apply_slot(optimizer, slot_name, reference_variable, slot_variable):
            return
