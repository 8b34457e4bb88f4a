"""Trackable: objects whose state is Variables reachable through named children.

Layers, models, optimizers and metrics are Trackables. `checkpoint/` walks any Trackable through
`_trackable_children()` to give every Variable a path made of attribute names
(`model/dense_1/kernel`), and `saving/` does the same walk in Keras's order.
"""
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


def child_created(parent, name, value):
    """Called when `parent` gains the child `name` (a new weight or a sub-layer); applies held values."""


def slot_created(optimizer, slot_name, reference_variable, slot_variable):
    """Called when an optimizer creates a slot for `reference_variable`; applies held values."""
