"""TensorFlow's object graph (`_CHECKPOINTABLE_OBJECT_GRAPH`): the bytes TensorFlow 2.21 wrote, parsed and
written back identically; its key rule; which variable each optimizer slot belongs to; malformed graphs."""
import base64
import glob
import json
import os

import pytest

from kerasckpt.checkpoint import trackable_graph as tg

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "tf")


def graphs():
    """`{fixture/prefix: graph bytes}` as TensorFlow's load_variable returned them (expected.json)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(DATA, "*", "expected.json"))):
        with open(path) as f:
            expected = json.load(f)
        part = os.path.basename(os.path.dirname(path))
        for prefix, seen in expected.get("checkpoints", {}).items():
            value = seen["values"].get(tg.GRAPH_KEY)
            if value is not None:
                out[f"{part}/{prefix}"] = base64.b64decode(value["values"][0])
    return out


GRAPHS = graphs()


def graph(name):
    return tg.parse(GRAPHS[name])


def test_fixtures_have_graphs():
    assert {"guide/tf_ckpts/ckpt-5", "guide_legacy/tf_ckpts/ckpt-5", "tf_keras/sequential/training_1/cp.ckpt",
            "keras3_tf/sequential/ckpt-1", "dtypes/object/ckpt"} <= set(GRAPHS)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_parse_and_serialize_give_tensorflows_bytes(name):
    data = GRAPHS[name]
    assert tg.serialize(tg.parse(data)) == data


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_first_paths_are_tensorflows_keys(name):
    nodes = graph(name)
    paths = tg.first_paths(nodes)
    keyed = [(i, n.value_key()) for i, n in enumerate(nodes) if n.value_key()]
    assert keyed
    for index, key in keyed:
        assert key == paths[index] + tg.VALUE_SUFFIX


def test_guide_graph_content():
    nodes = graph("guide/tf_ckpts/ckpt-5")
    root = dict(nodes[0].children)
    assert list(root) == ["iterator", "net", "optimizer", "step", "save_counter"]
    assert nodes[root["iterator"]].attributes[0].name == "ITERATOR"
    kernel = nodes[dict(nodes[dict(nodes[root["net"]].children)["l1"]].children)["kernel"]]
    assert kernel.full_name() == "net/dense/kernel"
    assert kernel.value_key() == "net/l1/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    assert all(n.has_checkpoint_values is not None for n in nodes)


def test_escaped_local_names():
    nodes = graph("dtypes/object/ckpt")
    paths = tg.first_paths(nodes)
    table = dict(nodes[0].children)["table"]
    assert sorted(name for name, _ in nodes[table].children) == ["a/b", "c.d"]  # raw in the graph
    assert sorted(paths[i] for _, i in nodes[table].children) == ["table/a.Sb", "table/c..d"]  # escaped in keys


def slots_of(nodes, optimizer_path):
    restored = tg.restore_nodes(nodes)
    paths = tg.first_paths(nodes)
    index = next(i for i, p in paths.items() if p == optimizer_path)
    return {(paths[ref], name): paths[slot] for ref, _full, name, slot in restored[index].get("slots", [])}, \
        restored[index].get("unresolved_slots")


def test_slots_of_tf_keras_optimizer_found_by_name():
    slots, unresolved = slots_of(graph("guide/tf_ckpts/ckpt-5"), "optimizer")
    assert unresolved is None
    assert slots == {("net/l1/kernel", "_momentums"): "optimizer/_variables/1",
                     ("net/l1/kernel", "_velocities"): "optimizer/_variables/2",
                     ("net/l1/bias", "_momentums"): "optimizer/_variables/3",
                     ("net/l1/bias", "_velocities"): "optimizer/_variables/4"}


def test_slots_of_keras3_optimizer_found_by_position_in_trainable_variables():
    slots, unresolved = slots_of(graph("keras3_tf/subclassed/ckpt-1"), "optimizer")
    assert unresolved is None
    assert slots[("model/dense_1/_kernel", "_momentums")] == "optimizer/_variables/2"
    assert slots[("model/dense_2/bias", "_velocities")] == "optimizer/_variables/9"
    assert len(slots) == 8


def test_slots_of_legacy_optimizer():
    slots, unresolved = slots_of(graph("guide_legacy/tf_ckpts/ckpt-5"), "optimizer")
    assert unresolved is None
    assert slots == {(v, s): f"{v}/.OPTIMIZER_SLOT/optimizer/{s}" for v in ("net/l1/kernel", "net/l1/bias")
                     for s in ("m", "v")}


def _rename(nodes, old, new):
    for node in nodes:
        for attribute in node.attributes:
            if attribute.full_name == old:
                attribute.full_name = new


def test_slot_of_two_variables_with_one_name_is_unresolved():
    nodes = graph("guide/tf_ckpts/ckpt-5")
    _rename(nodes, "net/dense/bias", "net/dense/kernel")  # two variables now share the kernel's name
    _rename(nodes, "Adam/m/net/dense/bias", "Adam/m/net/dense/kernel")
    slots, unresolved = slots_of(nodes, "optimizer")
    assert len(unresolved) == 4 and "2 variables are named 'net/dense/kernel'" in unresolved[0]
    assert "optimizer/_variables/1/.ATTRIBUTES/VARIABLE_VALUE (slot _momentums/0" in unresolved[0]
    assert slots == {}


def test_slot_whose_name_names_no_variable_is_unresolved():
    nodes = graph("guide/tf_ckpts/ckpt-5")
    _rename(nodes, "Adam/v/net/dense/bias", "Adam/v/elsewhere/bias")
    slots, unresolved = slots_of(nodes, "optimizer")
    assert len(slots) == 3 and len(unresolved) == 1
    assert "optimizer/_variables/4" in unresolved[0] and "no variable of the checkpoint" in unresolved[0]


def test_slot_whose_variable_has_another_shape_is_unresolved():
    nodes = graph("guide/tf_ckpts/ckpt-5")
    shapes = {n.value_key(): (5,) for n in nodes if n.value_key()}
    shapes["net/l1/kernel/.ATTRIBUTES/VARIABLE_VALUE"] = (1, 5)  # the slots of the kernel say (5,)
    restored = tg.restore_nodes(nodes, shapes)
    unresolved = next(n["unresolved_slots"] for n in restored if "unresolved_slots" in n)
    assert len(unresolved) == 2 and "has shape (1, 5), the slot (5,)" in unresolved[0]


def test_restore_nodes_marks_tensorflow_only_values_and_the_checkpoint_root():
    nodes = graph("guide/tf_ckpts/ckpt-5")
    restored = tg.restore_nodes(nodes)
    assert restored[0]["kind"] == "Checkpoint"  # it has a save_counter
    assert restored[dict(nodes[0].children)["iterator"]]["tf_keys"] == ["iterator/.ATTRIBUTES/ITERATOR"]
    model_root = tg.restore_nodes(graph("tf_keras/sequential/training_1/cp.ckpt"))
    assert model_root[0]["kind"] == "tf"


def test_written_graph_round_trips():
    nodes = [tg.TrackableNode([("v", 1), ("d", 2)], has_checkpoint_values=True),
             tg.TrackableNode(attributes=[tg.Attribute("VARIABLE_VALUE", "v", "v/.ATTRIBUTES/VARIABLE_VALUE")],
                              has_checkpoint_values=True),
             tg.TrackableNode([("a/b", 1)], slot_variables=[tg.SlotReference(1, "m", 1)],
                              registered_saver=("saver", "obj"), has_checkpoint_values=False)]
    back = tg.parse(tg.serialize(nodes))
    assert back[0].children == [("v", 1), ("d", 2)] and back[0].has_checkpoint_values is True
    assert back[1].value_key() == "v/.ATTRIBUTES/VARIABLE_VALUE" and back[1].full_name() == "v"
    assert back[2].children == [("a/b", 1)] and back[2].registered_saver == ("saver", "obj")
    assert back[2].has_checkpoint_values is False
    assert (back[2].slot_variables[0].original, back[2].slot_variables[0].name) == (1, "m")


@pytest.mark.parametrize("data, message", [
    (b"", "no nodes"),
    (b"\x0a\x05\x0a\x03\x08", "not a valid TrackableObjectGraph"),  # a child reference cut short
    (b"\x0a\x04\x0a\x02\x08\x07", "refers to node 7, but the graph has 1 nodes"),
    (b"\x0a\x04\x1a\x02\x18\x03", "refers to node 3"),  # a slot pointing nowhere
    (b"\x0b", "not a valid TrackableObjectGraph"),  # wire type 3 (a group)
])
def test_malformed_graphs_are_refused(data, message):
    with pytest.raises(tg.GraphFormatError, match=message):
        tg.parse(data)


# ---------------------------------------------------------------------------------------------- writing
def _trained(kind):
    import numpy as np
    import kerasckpt
    from kerasckpt import layers
    kerasckpt.utils.set_random_seed(0)
    if kind == "sequential":
        model = kerasckpt.Sequential([layers.Input((3,)), layers.Dense(4), layers.Dropout(0.5), layers.Dense(2)])
    else:
        inputs = kerasckpt.Input((3,))
        model = kerasckpt.Model(inputs, layers.Dense(2)(layers.BatchNormalization()(layers.Dense(4)(inputs))))
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    model.fit(x, x[:, :2], epochs=1, batch_size=4, verbose=0)
    return model


def _written_graph(kind):
    import kerasckpt
    from kerasckpt.checkpoint.graph import ObjectGraph
    model = _trained(kind)
    graph = ObjectGraph(kerasckpt.Checkpoint(model=model, optimizer=model.optimizer))
    return model, graph, tg.parse(tg.from_object_graph(graph))


def _node_at(nodes, path):
    index = 0
    for name in path.split("/"):
        index = dict(nodes[index].children)[name]
    return index


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_written_graph_has_keras3_and_tf_keras_names_for_every_value(kind):
    model, graph, nodes = _written_graph(kind)
    kernel = model.layers[-1].kernel
    key = graph.node_of(kernel).key + tg.VALUE_SUFFIX
    last = len(model.layers) - 1
    keras3 = f"model/_functional/_operations/{last + 1}/_kernel" if kind == "sequential" else \
        f"model/_operations/{last}/_kernel"
    for path in ("model/dense_1/kernel", keras3, "model/layer_with_weights-1/kernel" if kind == "sequential"
                 else "model/layer_with_weights-2/kernel",
                 f"optimizer/_trainable_variables/{model.optimizer.variable_index(kernel)}"):
        assert nodes[_node_at(nodes, path)].value_key() == key, path
    optimizer = model.optimizer
    listed = dict(nodes[_node_at(nodes, "optimizer/_variables")].children)
    assert len(listed) == len(optimizer.variables)  # Keras 3's order: iterations, learning rate, the slots
    for position, variable in enumerate(optimizer.variables):
        expected_key = (graph.node_of(variable).key or "") + tg.VALUE_SUFFIX
        assert nodes[listed[str(position)]].value_key() == expected_key
        assert nodes[listed[str(position)]].full_name() == variable.path
    momentum = dict(nodes[_node_at(nodes, "optimizer/_momentums")].children)
    assert nodes[momentum["0"]].value_key() == graph.node_of(optimizer._momentums[0]).key + tg.VALUE_SUFFIX
    assert nodes[_node_at(nodes, "optimizer/_iterations")].value_key() == "optimizer/iterations" + tg.VALUE_SUFFIX


def test_written_graph_leaves_out_kerasckpt_only_state_and_marks_values():
    model, graph, nodes = _written_graph("sequential")
    keys = {n.value_key() for n in nodes if n.value_key()}
    assert not any("seed_generator" in k for k in keys)  # Dropout's random stream: kerasckpt's own index
    assert keys == {n.key + tg.VALUE_SUFFIX for n in graph.value_nodes() if "seed_generator" not in n.key}
    dropout = nodes[_node_at(nodes, "model/dropout")]
    input_layer = nodes[_node_at(nodes, "model/_functional/_operations/0")]
    assert dropout.has_checkpoint_values is False and input_layer.has_checkpoint_values is False
    assert nodes[0].has_checkpoint_values is True and not any(n.slot_variables for n in nodes)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_kerasckpt_restores_its_graph_as_tensorflow_sees_it(tmp_path, kind):
    """Without kerasckpt's own record, a checkpoint restores through the TensorFlow graph alone (slots included)."""
    import numpy as np
    import kerasckpt
    from kerasckpt.checkpoint import bundle
    model, graph, _ = _written_graph(kind)
    prefix = str(tmp_path / "ckpt")
    entries = [(n.key + tg.VALUE_SUFFIX, np.array(n.value())) for n in graph.value_nodes()]
    bundle.write_bundle(prefix, entries + [(tg.GRAPH_KEY, tg.from_object_graph(graph))])
    fresh = _trained(kind)
    for v in fresh.weights + fresh.optimizer.variables:
        v.assign(np.zeros(v.shape, v.dtype))
    kerasckpt.Checkpoint(model=fresh, optimizer=fresh.optimizer).restore(prefix).expect_partial()
    for ours, theirs in zip(fresh.weights + fresh.optimizer.variables, model.weights + model.optimizer.variables):
        assert np.array_equal(ours.numpy(), theirs.numpy()), ours.path


def _small_adam_model(seed=0):
    import kerasckpt
    from kerasckpt import layers
    kerasckpt.utils.set_random_seed(seed)
    model = kerasckpt.Sequential([layers.Input(shape=(4,)), layers.Dense(3), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _tf_graph_of(model, optimizer=True):
    from kerasckpt.checkpoint import checkpoint as ck
    from kerasckpt.checkpoint.graph import ObjectGraph
    roots = {"model": model, "optimizer": model.optimizer} if optimizer else {"model": model}
    graph = ObjectGraph(ck.Checkpoint(**roots))
    return ck._tensorflow_graph(graph, graph.to_json()), tg.from_object_graph(graph)


def test_the_tensorflow_graph_is_reused_only_for_the_same_objects_and_structure():
    model = _small_adam_model()
    first, fresh = _tf_graph_of(model)
    assert first == fresh
    again, fresh = _tf_graph_of(model)  # a new Checkpoint around the same objects: the same bytes, reused
    assert again is first and again == fresh
    model.optimizer.build(model.trainable_weights)  # slots appear: the structure changed
    built, fresh = _tf_graph_of(model)
    assert built == fresh and built != first
    other = _small_adam_model(seed=1)  # same architecture, other objects: built anew
    other.optimizer.build(other.trainable_weights)
    theirs, fresh = _tf_graph_of(other)
    assert theirs == fresh and theirs is not built
    alone, fresh = _tf_graph_of(model, optimizer=False)
    assert alone == fresh and alone != built


def test_the_tensorflow_graph_is_reused_through_new_lists_of_the_same_objects():
    from kerasckpt.checkpoint import checkpoint as ck
    from kerasckpt.checkpoint.graph import ObjectGraph
    model = _small_adam_model()
    graphs = []
    for _ in range(2):  # BackupAndRestore's roots: a new dict and a new list of metrics every backup
        graph = ObjectGraph({"model": model, "optimizer": model.optimizer, "metrics": list(model.metrics)})
        graphs.append(ck._tensorflow_graph(graph, graph.to_json()))
        assert graphs[-1] == tg.from_object_graph(graph)
    assert graphs[1] is graphs[0]
