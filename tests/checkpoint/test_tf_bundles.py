"""Reading TensorFlow-written checkpoints: every name, shape, dtype and value as TensorFlow returns it."""
import os

import numpy as np
import pytest

from kerasckpt.checkpoint.bundle import DType, CheckpointReader, slice_key
from kerasckpt.errors import CheckpointFormatError, CheckpointKeyError
from tests.checkpoint.tf_fixtures import TF_DATA, all_checkpoints, decode, expected


@pytest.mark.parametrize("part, rel", all_checkpoints())
def test_every_value_equals_tensorflow_bit_for_bit(part, rel):
    want = expected(part)["checkpoints"][rel]
    with CheckpointReader(os.path.join(TF_DATA, part, rel)) as reader:
        assert [[k, list(reader.shape(k))] for k in reader.keys()] == want["list_variables"]
        assert {k: reader.tf_dtype(k).name for k in reader.keys()} == want["dtypes"]
        reader.verify()  # every CRC, variant entries included
        for key, value in want["values"].items():
            ref = decode(value)
            if value["dtype"] == "string":
                got = reader.read(key)
                assert got.dtype == object and list(got.shape) == value["shape"] and list(got.flat) == ref
            elif value["dtype"] == "bfloat16":
                raw = reader.read(key, raw=True)
                assert raw.dtype == np.uint16 and raw.tobytes() == ref.tobytes()
                widened = reader.read(key)  # float32, exactly the bfloat16 values
                assert widened.dtype == np.float32
                assert np.array_equal((raw.astype(np.uint32) << 16).view(np.float32), widened, equal_nan=True)
            else:
                got = reader.read(key)
                assert got.dtype == ref.dtype and got.shape == ref.shape and got.tobytes() == ref.tobytes(), key
        for key in want["errors"]:  # the tf.data iterator state: TF cannot convert it either
            with pytest.raises(CheckpointFormatError, match="variant") as info:
                reader.read(key)
            assert key in str(info.value)


def test_sliced_tensors_are_assembled():
    # TF1 partitioned variable (3 slices) and TF2 MaxShardSizePolicy (slices over 3 data files)
    with CheckpointReader(os.path.join(TF_DATA, "tf1_saver", "run", "model.ckpt-3")) as reader:
        entry = reader.entry("bert/embeddings/word_embeddings")
        assert entry.slices == [[(0, 4), (0, 4)], [(4, 3), (0, 4)], [(7, 3), (0, 4)]]
        assert slice_key("bert/embeddings/word_embeddings", entry.slices[1]) == \
            b"\x00bert/embeddings/word_embeddings\x00\x01\x01\x02\x84\x83\x80\x84"
    with CheckpointReader(os.path.join(TF_DATA, "tf2_sharded", "ckpt")) as reader:
        assert reader.num_shards == 3 and len(reader.data_files()) == 3
        assert any(len(reader.entry(k).slices) > 1 for k in reader.keys())
        np.testing.assert_array_equal(reader.read("v4/.ATTRIBUTES/VARIABLE_VALUE"), np.arange(400, 500, dtype=np.float32))


def test_slice_key_encoding_of_large_and_negative_numbers():
    # OrderedCode SignedNumIncreasing: one byte in [-64, 64), longer with length bits (TF_BUNDLE.md examples)
    assert slice_key("a", [(75, 94)]).endswith(b"\x01\x01\xc0\x4b\xc0\x5e")
    assert slice_key("a", [(0, None)]).endswith(b"\x80\x7f")
    assert slice_key(b"a\x00b\xff", [(0, None)]).startswith(b"\x00a\x00\xffb\xff\x00\x00\x01")


def test_reader_api_and_dtype_objects():
    path = os.path.join(TF_DATA, "dtypes", "savev2", "bundle")
    with CheckpointReader(path) as reader:
        bf16 = reader.tf_dtype("bfloat16")
        assert isinstance(bf16, DType) and bf16 == "bfloat16" and bf16.as_datatype_enum == 14
        assert bf16.as_numpy_dtype == np.float32 and bf16.size == 2 and repr(bf16) == "<dtype: 'bfloat16'>"
        assert reader.tf_dtype("float32") == np.float32 and reader.tf_dtype("string").as_numpy_dtype == object
        assert "float32" in reader and "nope" not in reader
        assert reader.get("scalar_int32") == np.int32(42) and isinstance(reader.get("scalar_int32"), np.int32)
        assert reader.get("string_scalar") == b"x" * 300
        assert reader.nodes is None and reader.metadata == {} and reader.object_graph is None
        with pytest.raises(CheckpointKeyError, match="Did you mean 'float32'"):
            reader.read("float23")
    with CheckpointReader(os.path.join(TF_DATA, "guide", "tf_ckpts", "ckpt-5")) as reader:
        graph = reader.object_graph
        assert isinstance(graph, bytes) and graph == reader.read("_CHECKPOINTABLE_OBJECT_GRAPH")[()]


def test_meta_file_is_ignored(tmp_path):
    # A TF1 Saver's .meta (a MetaGraphDef) beside the checkpoint changes nothing; neither does its absence.
    prefix = os.path.join(TF_DATA, "tf1_sharded", "run", "model.ckpt-7")
    assert os.path.exists(prefix + ".meta")
    with CheckpointReader(prefix) as reader:
        assert reader.keys() == ["b", "count", "d", "h", "names", "w"]
        assert reader.data_files() == ["model.ckpt-7.data-00000-of-00002", "model.ckpt-7.data-00001-of-00002"]
