"""The `_CHECKPOINTABLE_OBJECT_GRAPH` entry kerasckpt writes: its object graph as TensorFlow's
TrackableObjectGraph message, so that `tf.train.Checkpoint(...).read(path)` restores kerasckpt checkpoints.

`serialize(graph)` -> bytes. Node 0 is the root; each node lists its children by name (one node per
object, reachable by every edge), a value node its `VARIABLE_VALUE` attribute with the bundle key, and an
optimizer node its slot variables (original variable node, slot name, slot node), as TensorFlow's legacy
optimizers record them.
"""
from kerasckpt.checkpoint import protowire as pw

VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def _unescape(name):
    """A child name as the program has it (graph.escape turned `/` into `%2F`, `%` into `%25`)."""
    return name.replace("%2F", "/").replace("%25", "%") if "%" in name else name


def value_key(key):
    """The bundle key of a kerasckpt graph value key (`model/dense/kernel` -> `.../.ATTRIBUTES/VARIABLE_VALUE`)."""
    return key + VALUE_SUFFIX


def serialize(graph):
    """The TrackableObjectGraph bytes of a kerasckpt `ObjectGraph`."""
    out = []
    for node in graph.nodes:
        fields = [pw.bytes_field(1, pw.varint_field(1, index) + pw.bytes_field(2, _unescape(name)))
                  for name, index in node.children.items()]
        if node.key is not None:
            fields.append(pw.bytes_field(2, pw.bytes_field(1, "VARIABLE_VALUE")
                                         + pw.bytes_field(2, getattr(node.obj, "path", None) or node.key)
                                         + pw.bytes_field(3, value_key(node.key))))
        for ref_index, _ref_path, slot_name, slot_index in node.slots:
            if ref_index is not None:
                fields.append(pw.bytes_field(3, pw.varint_field(1, ref_index) + pw.bytes_field(2, slot_name)
                                             + pw.varint_field(3, slot_index)))
        out.append(pw.bytes_field(1, b"".join(fields)))
    return b"".join(out)
