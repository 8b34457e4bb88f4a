"""TensorFlow's object graph: the `_CHECKPOINTABLE_OBJECT_GRAPH` entry of object-based checkpoints.

A serialized `TrackableObjectGraph` (tensorflow/core/protobuf/trackable_object_graph.proto): node 0 is
the root; each node lists its children (`node_id`, `local_name`), its saved tensors (`attributes`:
`name` such as `VARIABLE_VALUE`, `full_name` = the variable's own name, `checkpoint_key` = the bundle
key), legacy optimizer slots (`slot_variables`) and `has_checkpoint_values`. This module parses and
writes those bytes; it knows nothing of files (`parse` callers name the file in their errors).
"""
import functools

from kerasckpt.checkpoint import protowire as pw

GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
ATTRIBUTES = ".ATTRIBUTES"
VARIABLE_VALUE = "VARIABLE_VALUE"
VALUE_SUFFIX = f"/{ATTRIBUTES}/{VARIABLE_VALUE}"
SLOT_MARK = ".OPTIMIZER_SLOT"


class Attribute:
    """One saved tensor of a node (`SerializedTensor`)."""

    __slots__ = ("name", "full_name", "checkpoint_key", "optional_restore")

    def __init__(self, name, full_name="", checkpoint_key="", optional_restore=False):
        self.name, self.full_name, self.checkpoint_key = name, full_name, checkpoint_key
        self.optional_restore = bool(optional_restore)

    def __repr__(self):
        return f"Attribute({self.name!r}, full_name={self.full_name!r}, checkpoint_key={self.checkpoint_key!r})"


class SlotReference:
    """A legacy (OptimizerV2) slot: `original_variable_node_id`, `slot_name`, `slot_variable_node_id`."""

    __slots__ = ("original", "name", "slot")

    def __init__(self, original, name, slot):
        self.original, self.name, self.slot = original, name, slot

    def __repr__(self):
        return f"SlotReference({self.original}, {self.name!r}, {self.slot})"


class TrackableNode:
    """One `TrackableObject`: children `[(local_name, node_id)]`, attributes, slot references.

    `has_checkpoint_values` is None when the field is absent (older writers), else a bool.
    `registered_saver` is None or `(name, object_name)`.
    """

    __slots__ = ("children", "attributes", "slot_variables", "registered_saver", "has_checkpoint_values")

    def __init__(self, children=(), attributes=(), slot_variables=(), registered_saver=None,
                 has_checkpoint_values=None):
        self.children = list(children)
        self.attributes = list(attributes)
        self.slot_variables = list(slot_variables)
        self.registered_saver = registered_saver
        self.has_checkpoint_values = has_checkpoint_values

    def value_key(self):
        """The bundle key of the node's `VARIABLE_VALUE` attribute, or None."""
        for attribute in self.attributes:
            if attribute.name == VARIABLE_VALUE:
                return attribute.checkpoint_key
        return None

    def full_name(self):
        """The variable's own name (`dense/kernel`), or "" when the node holds no variable."""
        for attribute in self.attributes:
            if attribute.name == VARIABLE_VALUE:
                return attribute.full_name
        return ""


class GraphFormatError(ValueError):
    """Bytes that are not a TrackableObjectGraph (the caller names the file)."""


def parse(data):
    """The nodes of a serialized TrackableObjectGraph, node 0 first.

    Raises:
        GraphFormatError: malformed bytes, no root, or a reference to a node that does not exist.
    """
    try:
        nodes = [_parse_node(raw) for raw in pw.parse(bytes(data)).messages(1)]
    except pw.ProtoError as e:
        raise GraphFormatError(f"the object graph is not a valid TrackableObjectGraph message ({e})") from None
    if not nodes:
        raise GraphFormatError("the object graph has no nodes (not even the root)")
    count = len(nodes)
    for index, node in enumerate(nodes):
        refs = [i for _, i in node.children] + [i for s in node.slot_variables for i in (s.original, s.slot)]
        bad = [i for i in refs if not 0 <= i < count]
        if bad:
            raise GraphFormatError(f"node {index} of the object graph refers to node {bad[0]}, but the graph has "
                                   f"{count} nodes")
    return nodes


def _parse_node(fields):
    children = [(ref.text(2), pw.signed(ref.varint(1), 32)) for ref in fields.messages(1)]
    attributes = [Attribute(a.text(1), a.text(2), a.text(3), a.varint(4)) for a in fields.messages(2)]
    slots = [SlotReference(pw.signed(s.varint(1), 32), s.text(2), pw.signed(s.varint(3), 32))
             for s in fields.messages(3)]
    saver = None
    if 4 in fields:
        message = fields.message(4)
        saver = (message.text(1), message.text(2))
    has_values = bool(fields.message(5).varint(1)) if 5 in fields else None
    return TrackableNode(children, attributes, slots, saver, has_values)


def serialize(nodes):
    """The bytes of a TrackableObjectGraph with `nodes` (TrackableNodes, root first)."""
    return b"".join(_field(1, _serialize_node(node)) for node in nodes)


_SMALL = [bytes((i,)) for i in range(128)]


def _varint(value):
    return _SMALL[value] if 0 <= value < 128 else pw.encode_varint(value)


def _field(number, data):
    """A length-delimited field: a string or a sub-message (`number` < 16: a one-byte tag)."""
    return _SMALL[number << 3 | pw.LEN] + _varint(len(data)) + data


@functools.lru_cache(maxsize=4096)
def _text(number, text):
    return _field(number, text.encode("utf-8")) if text else b""


def _number(number, value):
    return _SMALL[number << 3] + _varint(value) if value else b""


def _serialize_node(node):
    out = [_field(1, _number(1, node_id) + _text(2, name)) for name, node_id in node.children]
    out += [_field(2, _text(1, a.name) + _text(2, a.full_name) + _text(3, a.checkpoint_key)
                   + _number(4, int(a.optional_restore))) for a in node.attributes]
    out += [_field(3, _number(1, s.original) + _text(2, s.name) + _number(3, s.slot)) for s in node.slot_variables]
    if node.registered_saver is not None:
        out.append(_field(4, _text(1, node.registered_saver[0]) + _text(2, node.registered_saver[1])))
    if node.has_checkpoint_values is not None:
        out.append(_field(5, _number(1, int(node.has_checkpoint_values))))
    return b"".join(out)


def escape_local_name(name):
    """A local name as one component of a checkpoint key, as TensorFlow escapes it (`.` -> `..`, `/` -> `.S`)."""
    return name.replace(".", "..").replace("/", ".S")


def first_paths(nodes):
    """`{node id: path}` of the first path to each reachable node (breadth-first, children in stored order).

    Components are escaped local names joined by `/`, as in TensorFlow's checkpoint keys; a legacy slot
    is `<variable path>/.OPTIMIZER_SLOT/<optimizer path>/<slot name>`.
    """
    paths, queue = {0: ""}, [0]
    for index in queue:  # the list grows while it is walked: a breadth-first queue
        for name, child in nodes[index].children:
            if child not in paths:
                paths[child] = f"{paths[index]}/{escape_local_name(name)}" if paths[index] else escape_local_name(name)
                queue.append(child)
    for index in list(queue):
        for slot in nodes[index].slot_variables:
            if slot.original in paths and slot.slot not in paths:
                paths[slot.slot] = (f"{paths[slot.original]}/{SLOT_MARK}/{paths[index]}/"
                                    f"{escape_local_name(slot.name)}")
    return paths


# ---------------------------------------------------------------------------------------------- restoring
# Optimizers of tf.keras (2.11+) and Keras 3 keep slots in positional lists (`_momentums/3`): the graph
# says which list (so which slot) but not which variable. Keras 3 also tracks `_trainable_variables`
# (position -> variable); tf.keras only names each slot after its variable (`full_name`
# `Adam/m/dense/kernel` for the variable `dense/kernel`). Legacy optimizers list `slot_variables`.
_POSITIONAL_SKIP = frozenset({"_variables", "_trainable_variables", "_index_dict", "_trainable_variables_indices"})


def restore_nodes(nodes, shapes=None):
    """The graph as the restore code walks it: one dict per node, as kerasckpt's own index stores it.

    `children` `[[local name, node id]]` (names escaped as `graph.escape` does); `key` (the bundle key of a
    variable's value); `slots` `[[variable node id, variable name, slot name, slot node id]]` from legacy
    `slot_variables` and from the positional lists of newer optimizers, the slot name being the list's
    (`_momentums`); `tf_keys` (other saved tensors, e.g. a tf.data iterator's); `unresolved_slots` (lines
    naming slots whose variable the graph does not determine). `shapes` (`{bundle key: shape}`) lets a
    slot's variable be checked.
    """
    from kerasckpt.checkpoint.graph import escape  # child names as kerasckpt's walk spells them (`a%2Fb`)
    out = []
    for index, node in enumerate(nodes):
        entry = {"kind": "tf"}
        if node.children:
            entry["children"] = [[escape(name), child] for name, child in node.children]
        key = node.value_key()
        if key:
            entry["key"] = key
        other = [a.checkpoint_key for a in node.attributes if a.name != VARIABLE_VALUE and a.checkpoint_key]
        if other:
            entry["tf_keys"] = other
        out.append(entry)
    if any(name == "save_counter" for name, _ in nodes[0].children):
        out[0]["kind"] = "Checkpoint"
    names = _variable_names(nodes)
    for index, node in enumerate(nodes):
        slots = [[s.original, nodes[s.original].full_name() or None, s.name, s.slot] for s in node.slot_variables]
        positional, unresolved = _positional_slots(nodes, index, names, shapes or {})
        slots += positional
        if slots:
            out[index]["slots"] = slots
        if unresolved:
            out[index]["unresolved_slots"] = unresolved
    return out


def _variable_names(nodes):
    """`{full_name: [node id, ...]}` of the variables that are not an optimizer's own."""
    own = set()
    for node in nodes:
        children = dict(node.children)
        if "_variables" in children:
            own.update(i for _, i in nodes[children["_variables"]].children)
        own.update(s.slot for s in node.slot_variables)
    names = {}
    for index, node in enumerate(nodes):
        name = node.full_name()
        if name and index not in own and node.value_key():
            names.setdefault(name, []).append(index)
    return names


def _positional_slots(nodes, index, names, shapes):
    children = {}
    for name, child in nodes[index].children:
        children.setdefault(name, child)
    if "_variables" not in children:
        return [], []
    own = {i for _, i in nodes[children["_variables"]].children}
    by_position = {}
    if "_trainable_variables" in children:
        by_position = {name: i for name, i in nodes[children["_trainable_variables"]].children}
    slots, unresolved = [], []
    for list_name, list_node in children.items():
        items = nodes[list_node].children
        if list_name in _POSITIONAL_SKIP or not items or not all(n.isdigit() and i in own for n, i in items):
            continue
        for position, slot in items:
            ref, why = by_position.get(position), None
            if ref is None:
                ref, why = _by_full_name(nodes[slot].full_name(), names)
            if ref is not None and shapes:
                slot_shape, ref_shape = shapes.get(nodes[slot].value_key()), shapes.get(nodes[ref].value_key())
                if slot_shape is not None and ref_shape is not None and tuple(slot_shape) != tuple(ref_shape):
                    ref, why = None, (f"its variable by name, '{nodes[ref].full_name()}', has shape "
                                      f"{tuple(ref_shape)}, the slot {tuple(slot_shape)}")
            if ref is None:
                unresolved.append(f"{nodes[slot].value_key()} (slot {list_name}/{position}, named "
                                  f"'{nodes[slot].full_name()}'): {why}")
                continue
            slots.append([ref, nodes[ref].full_name() or None, list_name, slot])
    return slots, unresolved


def _by_full_name(slot_name, names):
    """The variable a tf.keras slot belongs to: the longest variable name its name ends with (`Adam/m/<name>`)."""
    parts = slot_name.split("/")
    for start in range(1, len(parts)):
        found = names.get("/".join(parts[start:]))
        if found:
            if len(found) > 1:
                return None, (f"{len(found)} variables are named '{'/'.join(parts[start:])}', so the slot could "
                              "belong to any of them")
            return found[0], None
    return None, "no variable of the checkpoint has the name it ends with"


# ---------------------------------------------------------------------------------------------- writing
def from_object_graph(graph, key_of=lambda key: key + VALUE_SUFFIX):
    """The TrackableObjectGraph bytes of a kerasckpt `ObjectGraph`, for TensorFlow to restore from.

    kerasckpt's own edges come first (so its paths stay the keys), then every alias edge of
    `Trackable._checkpoint_aliases` (`_kernel`, `layer_with_weights-0`, Keras 3's `_operations`) and the
    positional lists of optimizers (`_variables`, `_trainable_variables`, `_momentums`, ...), new nodes
    standing for lists and views. `tf.train.Checkpoint(...).read()` and Keras 3 on TensorFlow then find
    each value under the names they use. kerasckpt-only state (random streams, slots of variables that
    are not in the checkpoint) is left out of this graph; kerasckpt restores it from its own index.

    Args:
        graph: the `ObjectGraph` being saved.
        key_of: the bundle key of a kerasckpt value key.
    """
    from kerasckpt.checkpoint.graph import UNREACHABLE_SLOTS, aliases_of, children_of
    from kerasckpt.random import SeedGenerator
    from kerasckpt.variables import Variable

    kept = [n for n in graph.nodes if not isinstance(n.obj, SeedGenerator) and n.kind != "field"
            and f"/{UNREACHABLE_SLOTS}/" not in n.path]
    ids = {n.index: i for i, n in enumerate(kept)}
    by_object = {id(n.obj): ids[n.index] for n in kept}
    nodes = []
    for n in kept:
        node = TrackableNode([(_unescape(name), ids[child]) for name, child in n.children.items() if child in ids])
        if isinstance(n.obj, Variable):
            node.attributes.append(Attribute(VARIABLE_VALUE, n.obj.path, key_of(n.key)))
        nodes.append(node)
    keep_alive = []  # views and lists made here: their ids must stay unique until the walk ends

    def node_for(value):
        known = by_object.get(id(value))
        if known is not None:
            return known
        if isinstance(value, Variable):
            return None  # a variable this checkpoint does not hold
        keep_alive.append(value)
        index = by_object[id(value)] = len(nodes)
        nodes.append(TrackableNode())
        nodes[index].children = _edges(children_of(value).items(), node_for)
        return index

    for n in kept:
        node = nodes[ids[n.index]]
        extra = list(aliases_of(n.obj).items())
        lists = getattr(n.obj, "_keras_positional_lists", None)
        if callable(lists):
            extra += list(lists().items())
        have = {name for name, _ in node.children}
        node.children += [edge for edge in _edges(extra, node_for) if edge[0] not in have]
    _mark_values(nodes)
    return serialize(nodes)


def _edges(items, node_for):
    edges = []
    for name, value in items:
        index = node_for(value)
        if index is not None:
            edges.append((_unescape(name), index))
    return edges


def _unescape(name):
    """A kerasckpt child name (`/` and `%` percent-escaped) as the raw name TensorFlow keeps in the graph."""
    return name.replace("%2F", "/").replace("%25", "%") if "%" in name else name


def _mark_values(nodes):
    """Set `has_checkpoint_values`: true on nodes with a value at or below them."""
    parents = [[] for _ in nodes]
    for index, node in enumerate(nodes):
        for _, child in node.children:
            parents[child].append(index)
    marked = [bool(node.attributes) for node in nodes]
    queue = [i for i, m in enumerate(marked) if m]
    for index in queue:
        for parent in parents[index]:
            if not marked[parent]:
                marked[parent] = True
                queue.append(parent)
    for node, value in zip(nodes, marked):
        node.has_checkpoint_values = value
