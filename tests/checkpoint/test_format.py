"""The native format: exact round trips of every dtype and shape, sharding, alignment, the index header,
overwrite generations, and list_variables / load_variable on files alone."""
import json
import os
import struct

import numpy as np
import pytest

from kerasckpt.checkpoint import Checkpoint, CheckpointOptions, CheckpointReader, list_variables, load_variable
from kerasckpt.checkpoint import files
from kerasckpt.errors import CheckpointFormatError, CheckpointKeyError, CheckpointNotFoundError
from kerasckpt.variables import Variable

VALUES = {
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "f64": np.array([np.pi, -0.0, np.inf, np.nan]),
    "f16": np.array([1.5, -2.25], dtype=np.float16),
    "i8": np.array([-128, 127], dtype=np.int8),
    "u16": np.array([[1, 65535]], dtype=np.uint16),
    "i64": np.array(2**62 + 3, dtype=np.int64),
    "boolean": np.array([True, False, True]),
    "c64": np.array([1 + 2j, -3j], dtype=np.complex64),
    "empty": np.zeros((0, 5), dtype=np.float32),
    "scalar": np.array(0.1, dtype=np.float32),
}


def _variables():
    return {k: Variable(v.copy(), dtype=v.dtype, name=k) for k, v in VALUES.items()}


def _zeroed():
    return {k: Variable(np.zeros_like(v), dtype=v.dtype, name=k) for k, v in VALUES.items()}


@pytest.mark.parametrize("max_shard_size", [None, 64, 100, 10**6])
def test_round_trip_every_dtype_bit_exact(tmp_path, max_shard_size):
    src = _variables()
    path = Checkpoint(v=src).write(tmp_path / "c", CheckpointOptions(max_shard_size=max_shard_size))
    dst = _zeroed()
    Checkpoint(v=dst).read(path).assert_consumed()
    for k, v in VALUES.items():
        got = dst[k].value
        assert got.dtype == v.dtype and got.shape == v.shape
        assert got.tobytes() == v.tobytes(), k  # bit-exact, NaN and -0.0 included


def test_big_endian_values_are_stored_little_endian(tmp_path):
    big = np.arange(6, dtype=">i4").reshape(2, 3)
    v = Variable(big, dtype=">i4", name="v")
    path = Checkpoint(v=v).write(tmp_path / "c")
    with CheckpointReader(path) as reader:
        assert reader.dtype("v").str == "<i4"
    assert np.array_equal(load_variable(path, "v"), big)


def test_values_are_aligned_and_mapped_without_copy(tmp_path):
    vs = {"a": Variable(np.ones(3, np.float32)), "b": Variable(np.arange(5.0), dtype="float64"),
          "c": Variable(np.ones(7, np.int8))}
    path = Checkpoint(v=vs).write(tmp_path / "c")
    with CheckpointReader(path) as reader:
        for key in reader.keys():
            for _, offset, _, _ in reader.entries[key][2]:
                assert offset % files.ALIGNMENT == 0
        view = reader.view("v/b")
        assert not view.flags.owndata and not view.flags.writeable  # a view of the mapped file
        assert np.array_equal(view, np.arange(5.0))


def test_value_larger_than_max_shard_size_spans_shards(tmp_path):
    big = np.random.default_rng(0).standard_normal(1000).astype(np.float32)  # 4000 bytes
    small = np.arange(10, dtype=np.float32)
    path = Checkpoint(small=Variable(small), big=Variable(big)).write(tmp_path / "c",
                                                                       CheckpointOptions(max_shard_size=1024))
    names = sorted(n for n in os.listdir(tmp_path) if ".data-" in n)
    n = len(names)
    assert n >= 4 and names == [f"c.data-{k:05d}-of-{n:05d}" for k in range(n)]
    assert all(os.path.getsize(tmp_path / name) <= 1024 for name in names)
    with CheckpointReader(path) as reader:
        assert len({c[0] for c in reader.entries["big"][2]}) >= 4
    out = {"small": Variable(np.zeros(10, np.float32)), "big": Variable(np.zeros(1000, np.float32))}
    Checkpoint(**out).read(path).assert_consumed()
    assert np.array_equal(out["big"].value, big) and np.array_equal(out["small"].value, small)


def test_index_header_and_format(tmp_path):
    path = Checkpoint(v=Variable(np.ones(3))).write(tmp_path / "c")
    blob = open(path + ".index", "rb").read()
    magic, version, _, length, _, _ = struct.unpack_from("<8sIIQII", blob)
    assert magic == b"KCKPTIDX" and version == files.FORMAT_VERSION and length == len(blob) - 32
    index = json.loads(blob[32:])
    assert index["values"]["v"]["dtype"] == "<f4" and index["values"]["v"]["shape"] == [3]
    assert index["shards"] == [{"file": "c.data-00000-of-00001", "size": 12}]
    assert index["graph"]["nodes"][0]["kind"] == "Checkpoint"


def test_newer_format_version_is_refused(tmp_path):
    path = Checkpoint(v=Variable(np.ones(3))).write(tmp_path / "c")
    blob = bytearray(open(path + ".index", "rb").read())
    struct.pack_into("<I", blob, 8, 99)
    struct.pack_into("<I", blob, 28, files._fileio.checksum(bytes(blob[:28])))
    open(path + ".index", "wb").write(blob)
    with pytest.raises(CheckpointFormatError, match="newer kerasckpt.*Upgrade"):
        list_variables(path)


def test_foreign_file_is_a_format_error(tmp_path):
    (tmp_path / "tf.index").write_bytes(b"\x00" * 40 + b"\x57\xfb\x80\x8b\x24\x75\x47\xdb")
    with pytest.raises(CheckpointFormatError, match="not a kerasckpt checkpoint index"):
        list_variables(tmp_path / "tf")


def test_list_variables_and_load_variable(tmp_path):
    path = Checkpoint(v=_variables(), step=Variable(7, dtype="int64")).save(tmp_path / "ck")
    listed = list_variables(path)
    assert listed == sorted(listed)
    assert ("v/f32", [3, 4]) in listed and ("step", []) in listed and ("save_counter", []) in listed
    step = load_variable(path, "step")
    assert isinstance(step, np.int64) and step == 7
    assert isinstance(load_variable(path, "v/scalar"), np.float32)
    assert np.array_equal(load_variable(path, "v/f32"), VALUES["f32"])
    assert np.array_equal(load_variable(path, "v/f32/.ATTRIBUTES/VARIABLE_VALUE"), VALUES["f32"])
    # a directory means its latest checkpoint
    assert list_variables(tmp_path) == listed
    assert load_variable(tmp_path, "step") == 7


def test_load_variable_unknown_key_suggests(tmp_path):
    path = Checkpoint(v=_variables()).write(tmp_path / "c")
    with pytest.raises(CheckpointKeyError, match="'v/f3'.*Did you mean 'v/f32'") as info:
        load_variable(path, "v/f3")
    assert isinstance(info.value, KeyError)


def test_missing_prefix_and_directory_errors(tmp_path):
    Checkpoint(v=Variable(1.0)).save(tmp_path / "ck")
    with pytest.raises(CheckpointNotFoundError, match="ck-9.*similar names: ck-1") as info:
        Checkpoint(v=Variable(1.0)).restore(tmp_path / "ck-9")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(CheckpointNotFoundError, match="missing the checkpoint number"):
        Checkpoint(v=Variable(1.0)).restore(tmp_path / "other")
    with pytest.raises(IsADirectoryError, match="is a directory.*ck-1"):
        Checkpoint(v=Variable(1.0)).restore(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointNotFoundError, match="no usable 'checkpoint' state file"):
        list_variables(tmp_path / "empty")


def test_index_or_data_path_accepted_for_prefix(tmp_path):
    path = Checkpoint(v=Variable(np.ones(2))).write(tmp_path / "c")
    assert list_variables(path + ".index") == list_variables(path)
    assert list_variables(path + ".data-00000-of-00001") == list_variables(path)


def test_overwrite_uses_a_new_data_generation(tmp_path):
    v = Variable(np.ones(4), dtype="float64")
    ck = Checkpoint(v=v)
    ck.write(tmp_path / "c")
    assert sorted(os.listdir(tmp_path)) == ["c.data-00000-of-00001", "c.index"]
    v.assign(np.full(4, 2.0))
    ck.write(tmp_path / "c")
    # the old data file is gone only after the new index names the new one
    assert sorted(os.listdir(tmp_path)) == ["c.data-00000-of-00001.g1", "c.index"]
    v.assign(np.full(4, 3.0))
    ck.write(tmp_path / "c")
    assert sorted(os.listdir(tmp_path)) == ["c.data-00000-of-00001.g2", "c.index"]
    assert np.array_equal(load_variable(tmp_path / "c", "v"), np.full(4, 3.0))


def test_non_numeric_values_are_refused(tmp_path):
    v = Variable(np.zeros(2))
    v._value = np.array(["a", "b"])
    with pytest.raises(TypeError, match="'v'.*not numeric"):
        Checkpoint(v=v).write(tmp_path / "c")
    assert not os.listdir(tmp_path)
