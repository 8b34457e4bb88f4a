"""Name-based TensorFlow 1 checkpoints (`tf.compat.v1.train.Saver`): `init_from_checkpoint` with TensorFlow's
assignment maps, and `Checkpoint.restore` falling back to matching variables by path."""
import gc
import os

import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.errors import CheckpointMismatchError

from tests.checkpoint.tf_fixtures import TF_DATA, decode, expected

PREFIX = os.path.join(TF_DATA, "tf1_saver", "run", "model.ckpt-3")


def tf_value(key):
    return decode(expected("tf1_saver")["checkpoints"]["run/model.ckpt-3"]["values"][key])


def dense(name="dense"):
    layer = layers.Dense(2, name=name)
    layer.build((None, 3))
    return layer


def test_scope_onto_a_layer_and_names_onto_variables():
    layer = dense("head")
    embeddings = kerasckpt.Variable(np.zeros((10, 4), "float32"))
    kerasckpt.init_from_checkpoint(PREFIX, {"dense/": layer, "bert/embeddings/word_embeddings": embeddings})
    assert np.array_equal(layer.kernel.numpy(), tf_value("dense/kernel"))
    assert np.array_equal(layer.bias.numpy(), tf_value("dense/bias"))
    assert np.array_equal(embeddings.numpy(), tf_value("bert/embeddings/word_embeddings"))  # a partitioned variable


def test_a_list_of_variables_takes_the_partitions_of_one_tensor():
    parts = [kerasckpt.Variable(np.zeros((4, 4), "float32")), kerasckpt.Variable(np.zeros((3, 4), "float32")),
             kerasckpt.Variable(np.zeros((3, 4), "float32"))]
    kerasckpt.init_from_checkpoint(PREFIX, [("bert/embeddings/word_embeddings", parts)])
    assert np.array_equal(np.concatenate([p.numpy() for p in parts]), tf_value("bert/embeddings/word_embeddings"))


def test_scope_onto_a_model_uses_its_checkpoint_paths():
    model = kerasckpt.Sequential([layers.Input((3,)), layers.Dense(2)])  # paths inside it: dense/kernel, dense/bias
    kerasckpt.init_from_checkpoint(PREFIX, {"/": model})
    assert np.array_equal(model.layers[0].kernel.numpy(), tf_value("dense/kernel"))


def test_names_and_scopes_of_live_variables():
    with kerasckpt.variables.name_scope("restored"):
        step = kerasckpt.Variable(0, dtype="int64", name="global_step")
        layer = dense()  # restored/dense/kernel, restored/dense/bias
    kerasckpt.init_from_checkpoint(PREFIX, {"global_step": "restored/global_step", "dense/": "restored/dense/"})
    assert int(step.numpy()) == 3
    assert np.array_equal(layer.kernel.numpy(), tf_value("dense/kernel"))
    with pytest.raises(ValueError, match="no Variable has the path 'elsewhere/x' or lies in the scope 'elsewhere/'"):
        kerasckpt.init_from_checkpoint(PREFIX, {"dense/": "elsewhere/x"})


def test_two_live_variables_of_one_path_are_refused():
    with kerasckpt.variables.name_scope("twice"):
        first, second = dense(), dense()
    first.kernel.path = second.kernel.path  # as two processes' models could be named alike
    with pytest.raises(ValueError, match="several live Variables have the path 'twice/dense/kernel'"):
        kerasckpt.init_from_checkpoint(PREFIX, {"dense/kernel": "twice/dense/kernel"})
    del first, second
    gc.collect()


@pytest.mark.parametrize("mapping, error, message", [
    ({"dense/kernl": "v"}, CheckpointMismatchError,
     r"Tensor 'dense/kernl' is not found in checkpoint '.*model.ckpt-3'\. "
                                                     r"Did you mean 'dense/kernel'\?"),
    ({"dense/kernel": "wrong"}, CheckpointMismatchError, r"'dense/kernel': the checkpoint holds shape \(3, 2\) but "
                                                         r"'variable' has shape \(2, 2\)"),
    ({"global_step": "int32"}, CheckpointMismatchError,
     r"'global_step': the checkpoint holds int64 but 'variable' is int32"),
    ({"dense": "layer"}, ValueError, r"should map to scope only 'dense'\. Should be 'scope/': 'other_scope/'"),
    ({"dense/": "unbuilt"}, ValueError, r"'unbuilt_dense' is not built yet"),
    ({"dense/": 3}, TypeError, r"must be a Variable, a list of Variables, a model or layer, or a name"),
])
def test_bad_assignment_maps_change_nothing(mapping, error, message):
    targets = {"v": kerasckpt.Variable(np.zeros((3, 2), "float32")),
               "wrong": kerasckpt.Variable(np.zeros((2, 2), "float32")),
               "int32": kerasckpt.Variable(0, dtype="int32"), "layer": dense("layer_x"),
               "unbuilt": layers.Dense(2, name="unbuilt_dense")}
    good = kerasckpt.Variable(np.zeros((2,), "float32"))
    assignment = {"dense/bias": good}
    assignment.update({k: targets.get(v, v) if isinstance(v, str) else v for k, v in mapping.items()})
    with pytest.raises(error, match=message):
        kerasckpt.init_from_checkpoint(PREFIX, assignment)
    assert np.array_equal(good.numpy(), np.zeros(2))  # the valid entry was not assigned either


def test_checkpoint_restore_falls_back_to_variable_paths():
    layer = dense()  # paths dense/kernel, dense/bias, as the TF1 graph named them
    step = kerasckpt.Variable(0, dtype="int64", name="global_step")
    status = kerasckpt.Checkpoint(layer=layer, step=step).restore(PREFIX)
    assert int(step.numpy()) == 3 and np.array_equal(layer.kernel.numpy(), tf_value("dense/kernel"))
    # As TensorFlow's NameBasedSaverStatus: the other names (optimizer slots) fail no assertion, save_counter
    # is not expected, and nothing is reported when the status goes.
    status.assert_consumed().assert_existing_objects_matched().assert_nontrivial_match()


def test_checkpoint_restore_by_path_names_what_did_not_match():
    other = dense("other")
    status = kerasckpt.Checkpoint(layer=other).restore(PREFIX)
    with pytest.raises(AssertionError, match=r"(?s)other/kernel  \(did you mean `dense/kernel`\?\).*has no object "
                                             r"graph.*init_from_checkpoint"):
        status.assert_consumed()
    assert not np.array_equal(other.kernel.numpy(), tf_value("dense/kernel"))
