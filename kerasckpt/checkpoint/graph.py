"""The object graph: walk trackables breadth-first from a root and give every object a path.

A value's key is the path of the first (shortest, then earliest) way to reach it: `model/dense_1/kernel`.
An object reachable twice is one node with two incoming edges, saved once. Optimizer slots are keyed
by the path of the variable they belong to: `model/dense_1/kernel/.OPTIMIZER_SLOT/optimizer/m`.
"""
from collections import deque

import numpy as np

from kerasckpt.random import SeedGenerator
from kerasckpt.tracking import Trackable, is_trackable_value
from kerasckpt.variables import Variable

SLOT_MARK = ".OPTIMIZER_SLOT"   # <reference variable path>/.OPTIMIZER_SLOT/<optimizer path>/<slot name>
UNREACHABLE_SLOTS = ".slots"    # <optimizer path>/.slots/<reference.path>/<slot name> (reference not reachable)
SEED_FIELDS = ("seed", "counter")


def is_checkpointable(value):
    """Whether `value` can be a node: a Variable, a Trackable, a SeedGenerator, or a container of those."""
    if isinstance(value, SeedGenerator):
        return True
    if isinstance(value, (list, tuple)):
        return any(is_checkpointable(v) for v in value)
    if isinstance(value, dict):
        return any(is_checkpointable(v) for v in value.values())
    return is_trackable_value(value)


def escape(name):
    """A child name usable as one path component (`/` would split it)."""
    name = str(name)
    return name.replace("%", "%25").replace("/", "%2F") if ("/" in name or "%" in name) else name


def children_of(obj):
    """`{name: child}` of a program object, in order; leaves (Variables, SeedGenerators) have none."""
    if isinstance(obj, (Variable, SeedGenerator)):
        return {}
    if isinstance(obj, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(obj))
    elif isinstance(obj, dict):
        items = ((escape(k), v) for k, v in obj.items())
    elif isinstance(obj, Trackable):
        children = obj._trackable_children()
        items = list((escape(k), v) for k, v in children.items())
        # A layer's random stream (Dropout's SeedGenerator) is state too: resuming must replay it.
        listed = {id(v) for v in children.values()}
        items += [(k, v) for k, v in vars(obj).items()
                  if isinstance(v, SeedGenerator) and not k.startswith("_") and id(v) not in listed]
    else:
        return {}
    return {name: value for name, value in items if is_checkpointable(value)}


def aliases_of(obj, own=None):
    """`{name: child}` of the other names TensorFlow and Keras checkpoints use for `obj`'s children
    (`Trackable._checkpoint_aliases`); names `children_of` (`own`, when given) already has are left out."""
    fn = getattr(obj, "_checkpoint_aliases", None)
    if fn is None or not isinstance(obj, Trackable):
        return {}
    own = children_of(obj) if own is None else own
    return {name: value for name, value in fn().items() if name not in own and is_checkpointable(value)}


def slot_names(optimizer, slot_name):
    """Every name the slot `slot_name` of `optimizer` may have in a checkpoint: its own, then the names of
    `Optimizer._checkpoint_slot_names` (Keras's list attribute, tf.keras's legacy slot name)."""
    table = getattr(optimizer, "_checkpoint_slot_names", None) or {}
    return (slot_name,) + tuple(n for n in table.get(slot_name, ()) if n != slot_name)


def slots_of(obj):
    """`[(slot_name, reference_variable, slot_variable)]` of an optimizer; `[]` for anything else."""
    fn = getattr(obj, "slot_variables", None)
    if not callable(fn) or isinstance(obj, (Variable, SeedGenerator)):
        return []
    return list(fn())


def kind_of(obj):
    if isinstance(obj, (list, tuple)):
        return "list"
    if isinstance(obj, dict):
        return "dict"
    return type(obj).__name__


class Node:
    """One object of the graph: its first path, its children `{name: node index}`, its value key."""

    __slots__ = ("index", "obj", "path", "kind", "children", "key", "slots", "field")

    def __init__(self, index, obj, path, kind, field=None):
        self.index, self.obj, self.path, self.kind, self.field = index, obj, path, kind, field
        self.children = {}
        self.slots = []  # optimizer nodes: [(reference node index | None, reference path, slot name, slot node index)]
        self.key = path if isinstance(obj, Variable) or field is not None else None

    def value(self):
        """The array to save (the live array of a Variable; no copy)."""
        if self.field is not None:
            return np.asarray(getattr(self.obj, self.field), dtype=np.int64)
        return self.obj._value


class ObjectGraph:
    """The graph reachable from `root`, walked breadth-first.

    Args:
        root: any trackable (usually a `Checkpoint`); its children are the top-level names.
    """

    def __init__(self, root):
        self.nodes = []
        self._by_id = {}
        self._keepalive = []  # ids are only unique while the objects live
        queue = deque([(self._node(root, ""), root)])
        while queue:
            node, obj = queue.popleft()
            if isinstance(obj, SeedGenerator):
                for field in SEED_FIELDS:
                    child = self._add(Node(len(self.nodes), obj, _join(node.path, field), "field", field=field))
                    node.children[field] = child.index
                continue
            for name, child in children_of(obj).items():
                known = self._by_id.get(id(child))
                if known is not None:
                    node.children[name] = known.index
                    continue
                child_node = self._node(child, _join(node.path, name))
                node.children[name] = child_node.index
                queue.append((child_node, child))
        for node in list(self.nodes):
            for slot_name, reference, slot in slots_of(node.obj):
                ref = self._by_id.get(id(reference))
                ref = ref if ref is not None and ref.key is not None else None
                if ref is not None:
                    path = f"{ref.path}/{SLOT_MARK}/{node.path}/{slot_name}"
                else:
                    path = f"{node.path}/{UNREACHABLE_SLOTS}/{getattr(reference, 'path', '?')}/{slot_name}"
                slot_node = self._by_id.get(id(slot)) or self._node(slot, path)
                node.slots.append((None if ref is None else ref.index, getattr(reference, "path", None),
                                   str(slot_name), slot_node.index))

    def _node(self, obj, path):
        return self._add(Node(len(self.nodes), obj, path, kind_of(obj)), obj)

    def _add(self, node, obj=None):
        self.nodes.append(node)
        if obj is not None:
            self._by_id[id(obj)] = node
            self._keepalive.append(obj)
        return node

    def node_of(self, obj):
        return self._by_id.get(id(obj))

    def value_nodes(self):
        """Nodes that hold a value (Variables and SeedGenerator fields), in walk order."""
        return [n for n in self.nodes if n.key is not None]

    def state_objects(self):
        """`[(path, object)]` for every object restored as a whole: Variables and SeedGenerators."""
        return [(n.path, n.obj) for n in self.nodes if isinstance(n.obj, (Variable, SeedGenerator))]

    def to_json(self):
        """The graph as JSON-ready data (stored in the index; used to restore through any path)."""
        out = []
        for n in self.nodes:
            entry = {"kind": n.kind}
            if n.children:
                entry["children"] = [[name, index] for name, index in n.children.items()]
            if n.key is not None:
                entry["key"] = n.key
            if n.slots:
                entry["slots"] = [list(s) for s in n.slots]
            out.append(entry)
        return {"nodes": out}


def _join(path, name):
    return f"{path}/{name}" if path else name
