"""The native format (a TensorFlow tensor bundle): exact round trips of every dtype and shape, slices over
shards, alignment, the index, overwrites, and list_variables / load_variable on files alone."""
import json
import os

import numpy as np
import pytest

from kerasckpt.checkpoint import Checkpoint, CheckpointOptions, CheckpointReader, list_variables, load_variable
from kerasckpt.checkpoint import bundle, sstable
from kerasckpt.checkpoint import protowire as pw
from kerasckpt.errors import CheckpointDamagedError, CheckpointFormatError, CheckpointKeyError, CheckpointNotFoundError
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
        assert reader.tf_dtype("v") == "int32" and not reader.big_endian
        entry = reader.entry("v")
        raw = open(os.path.join(reader.directory, reader.data_files()[entry.shard]), "rb").read()
        assert raw[entry.offset:entry.offset + entry.size] == big.astype("<i4").tobytes()
    assert np.array_equal(load_variable(path, "v"), big)


def test_values_are_aligned_and_mapped_without_copy(tmp_path):
    vs = {"a": Variable(np.ones(3, np.float32)), "b": Variable(np.arange(5.0), dtype="float64"),
          "c": Variable(np.ones(7, np.int8))}
    path = Checkpoint(v=vs).write(tmp_path / "c")
    with CheckpointReader(path) as reader:
        for key in reader.keys():
            assert reader.entry(key).offset % bundle.ALIGNMENT == 0
        view = reader.view("v/b")
        assert not view.flags.owndata and not view.flags.writeable  # a view of the mapped file
        assert np.array_equal(view, np.arange(5.0))


def test_value_larger_than_max_shard_size_is_sliced_over_shards(tmp_path):
    big = np.random.default_rng(0).standard_normal((1000, 2)).astype(np.float32)  # 8000 bytes
    small = np.arange(10, dtype=np.float32)
    path = Checkpoint(small=Variable(small), big=Variable(big)).write(tmp_path / "c",
                                                                       CheckpointOptions(max_shard_size=1024))
    names = sorted(n for n in os.listdir(tmp_path) if ".data-" in n)
    n = len(names)
    assert n >= 8 and names == [f"c.data-{k:05d}-of-{n:05d}" for k in range(n)]
    with CheckpointReader(path) as reader:
        entry = reader.entry("big/.ATTRIBUTES/VARIABLE_VALUE")
        assert len(entry.slices) >= 8 and all(e[1] == (0, None) for e in entry.slices)  # whole rows, as TF slices
        shards = {reader._leaves(entry.key)[i].shard for i in range(len(entry.slices))}
        assert len(shards) == len(entry.slices)
        assert all(os.path.getsize(tmp_path / names[k]) <= 1024 for k in shards)
    out = {"small": Variable(np.zeros(10, np.float32)), "big": Variable(np.zeros((1000, 2), np.float32))}
    Checkpoint(**out).read(path).assert_consumed()
    assert np.array_equal(out["big"].value, big) and np.array_equal(out["small"].value, small)


def test_files_are_a_tensorflow_tensor_bundle(tmp_path):
    path = Checkpoint(v=Variable(np.ones(3, np.float32))).write(tmp_path / "c")
    blob = open(path + ".index", "rb").read()
    assert blob[-8:] == b"\x57\xfb\x80\x8b\x24\x75\x47\xdb"  # the sorted table's magic number
    items = dict(sstable.read_table(blob))
    # BundleHeaderProto: 1 shard, version {producer: 1}, and a field TensorFlow skips: the name written as
    assert items[b""] == b"\x08\x01\x1a\x02\x08\x01" + b"\xc2\x3e\x01c"
    assert list(items) == sorted(items)
    with CheckpointReader(path) as reader:
        assert reader.keys() == ["_CHECKPOINTABLE_OBJECT_GRAPH", "_KERASCKPT_METADATA", "v/.ATTRIBUTES/VARIABLE_VALUE"]
        entry = reader.entry("v/.ATTRIBUTES/VARIABLE_VALUE")
        assert (entry.dtype.name, entry.shape, entry.size) == ("float32", (3,), 12)
        assert reader.file_metadata["format_version"] == bundle.FORMAT_VERSION
        assert reader.nodes[0]["kind"] == "Checkpoint" and reader.object_graph
    assert sorted(os.listdir(tmp_path)) == ["c.data-00000-of-00001", "c.index"]


def test_newer_format_versions_are_refused(tmp_path):
    record = json.dumps({"format": bundle.FORMAT, "version": 99}).encode()
    bundle.write_bundle(str(tmp_path / "k"), [(bundle.KERASCKPT_KEY, record)])
    assert list_variables(tmp_path / "k") == [(bundle.KERASCKPT_KEY, [])]  # TensorFlow lists it too
    with pytest.raises(CheckpointFormatError, match="newer kerasckpt.*Upgrade"):
        Checkpoint(v=Variable(1.0)).read(tmp_path / "k")
    # a bundle needing a newer reader (BundleHeaderProto.version.min_consumer = 2)
    header = pw.varint_field(1, 1) + pw.bytes_field(3, pw.varint_field(1, 2) + pw.varint_field(2, 2))
    (tmp_path / "t.index").write_bytes(sstable.build_table([(b"", header)]))
    with pytest.raises(CheckpointFormatError, match="newer TensorFlow"):
        list_variables(tmp_path / "t")


def test_foreign_file_is_refused_by_name(tmp_path):
    (tmp_path / "x.index").write_bytes(b"not an index at all, just some text" * 3)
    with pytest.raises(CheckpointDamagedError, match="x.index' is damaged.*magic number"):
        list_variables(tmp_path / "x")


def test_list_variables_and_load_variable(tmp_path):
    path = Checkpoint(v=_variables(), step=Variable(7, dtype="int64")).save(tmp_path / "ck")
    listed = list_variables(path)
    assert listed == sorted(listed)
    assert ("v/f32/.ATTRIBUTES/VARIABLE_VALUE", [3, 4]) in listed and ("step/.ATTRIBUTES/VARIABLE_VALUE", []) in listed
    assert ("save_counter/.ATTRIBUTES/VARIABLE_VALUE", []) in listed and ("_CHECKPOINTABLE_OBJECT_GRAPH", []) in listed
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


def test_overwrite_never_renames_data_over_the_current_checkpoints(tmp_path):
    # TensorFlow derives data file names from the prefix and the shard count N: an overwrite takes another N,
    # so the index in place never names the new data (see bundle.py), and the old data goes last.
    v = Variable(np.ones(4), dtype="float64")
    ck = Checkpoint(v=v)
    ck.write(tmp_path / "c")
    assert sorted(os.listdir(tmp_path)) == ["c.data-00000-of-00001", "c.index"]
    v.assign(np.full(4, 2.0))
    ck.write(tmp_path / "c")
    assert sorted(os.listdir(tmp_path)) == ["c.data-00000-of-00002", "c.data-00001-of-00002", "c.index"]
    assert os.path.getsize(tmp_path / "c.data-00001-of-00002") == 0
    v.assign(np.full(4, 3.0))
    ck.write(tmp_path / "c")
    assert sorted(os.listdir(tmp_path)) == ["c.data-00000-of-00001", "c.index"]
    assert np.array_equal(load_variable(tmp_path / "c", "v"), np.full(4, 3.0))


def test_overwrite_of_a_v0_1_checkpoint_keeps_clear_of_its_data(tmp_path):
    import shutil
    shutil.copytree(os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "v0_1", "weights"),
                    tmp_path / "w")
    assert sorted(os.listdir(tmp_path / "w")) == ["ckpt.data-00000-of-00001.g1", "ckpt.index"]
    with CheckpointReader(tmp_path / "w" / "ckpt") as reader:
        assert reader.format == "kerasckpt-0.1" and reader.data_files() == ["ckpt.data-00000-of-00001.g1"]
    Checkpoint(v=Variable(np.ones(2))).write(tmp_path / "w" / "ckpt")
    assert sorted(os.listdir(tmp_path / "w")) == ["ckpt.data-00000-of-00001", "ckpt.index"]


def test_non_numeric_values_are_refused(tmp_path):
    v = Variable(np.zeros(2))
    v._value = np.array(["a", "b"])
    with pytest.raises(TypeError, match="'v'.*not numeric"):
        Checkpoint(v=v).write(tmp_path / "c")
    assert not os.listdir(tmp_path)
