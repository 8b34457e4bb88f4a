"""Checkpoints written by kerasckpt 0.1 (JSON index, `.gN` data files) keep loading bit for bit.

The files in tests/data/v0_1 were made by tests/data/v0_1/make_v0_1_fixtures.py with kerasckpt 0.1.0.
"""
import os
import shutil

import numpy as np
import pytest

import kerasckpt
from kerasckpt.errors import CheckpointDamagedError
from conftest import make_model, tiny_data

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "v0_1")
EXPECTED = np.load(os.path.join(DATA, "expected.npz"))
PREFIXES = ["manager/ckpt-2", "manager/ckpt-3", "weights/ckpt", "sharded/c"]


@pytest.fixture
def data(tmp_path):
    shutil.copytree(DATA, tmp_path / "v0_1")
    return tmp_path / "v0_1"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_value_reads_bit_for_bit(data, prefix):
    expected = {k.split("::", 1)[1]: EXPECTED[k] for k in EXPECTED.files if k.startswith(prefix + "::")}
    listed = kerasckpt.list_variables(str(data / prefix))
    assert [k for k, _ in listed] == sorted(expected)
    for key, shape in listed:
        value = np.asarray(kerasckpt.load_variable(str(data / prefix), key))
        assert list(value.shape) == shape and value.dtype == expected[key].dtype
        assert value.tobytes() == expected[key].tobytes(), key


def test_manager_directory_restores_the_trained_model(data):
    assert kerasckpt.latest_checkpoint(str(data / "manager")) == str(data / "manager" / "ckpt-3")
    x, y = tiny_data(n=16)
    model = make_model("functional", units=4)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.build((None, 6))
    step = kerasckpt.Variable(0, dtype="int64", trainable=False)
    ckpt = kerasckpt.Checkpoint(model=model, optimizer=model.optimizer, step=step)
    manager = kerasckpt.CheckpointManager(ckpt, str(data / "manager"), max_to_keep=2)
    assert manager.restore_or_initialize() == str(data / "manager" / "ckpt-3")
    assert int(step.numpy()) == 3
    np.testing.assert_array_equal(model.predict(x, verbose=0), EXPECTED["manager_predictions"])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # the held Adam slots apply on the first step
    assert manager.save() == str(data / "manager" / "ckpt-4")  # a new checkpoint beside the 0.1 ones
    assert kerasckpt.latest_checkpoint(str(data / "manager")) == str(data / "manager" / "ckpt-4")


def test_overwritten_weights_load_into_a_subclassed_model(data):
    x, _ = tiny_data(n=16)
    model = make_model("subclass", units=4)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model(x[:1])
    model.load_weights(str(data / "weights" / "ckpt"))
    np.testing.assert_array_equal(model.predict(x, verbose=0), EXPECTED["weights_predictions"])


def test_damaged_v0_1_file_is_refused(data):
    path = data / "sharded" / "c.data-00001-of-00010"
    raw = bytearray(path.read_bytes())
    raw[5] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointDamagedError, match="c.data-00001-of-00010"):
        kerasckpt.load_variable(str(data / "sharded" / "c"), "f32")
