"""Damage to every file of TensorFlow-written checkpoints: a named CheckpointError, never different numbers.

Each byte of each file is flipped in turn (the guide's checkpoint with its string object graph and
variant entry, the two-shard TF1 checkpoint, the sliced three-shard TF2 checkpoint); files are cut
short, emptied and deleted. TensorFlow misses some of these (TF_BUNDLE.md §2.4): a damaged second index
block hides its keys, a truncated data file gives a bare IndexError.
"""
import os

import numpy as np
import pytest

from kerasckpt.checkpoint import sstable
from kerasckpt.checkpoint.bundle import CheckpointReader
from kerasckpt.errors import CheckpointDamagedError, CheckpointError, CheckpointNotFoundError
from tests.checkpoint.tf_fixtures import copy_part

CASES = [("guide", "tf_ckpts/ckpt-5"), ("tf1_sharded", "run/model.ckpt-7"), ("tf2_sharded", "ckpt")]


def read_all(prefix):
    """Every readable value (bytes of numbers, lists of strings), every CRC verified."""
    with CheckpointReader(prefix) as reader:
        reader.verify()
        out = {}
        for key in reader.keys():
            if reader.tf_dtype(key).readable:
                value = reader.read(key)
                out[key] = list(value.flat) if value.dtype == object else value.tobytes()
        return out


def files_of(prefix):
    with CheckpointReader(prefix) as reader:
        return [prefix + ".index"] + [os.path.join(reader.directory, n) for n in reader.data_files()]


@pytest.mark.slow
@pytest.mark.parametrize("part, rel", CASES)
def test_every_flipped_byte_is_caught_or_harmless(tmp_path, part, rel):
    prefix = str(copy_part(part, tmp_path) / rel)
    original = read_all(prefix)
    harmless = 0
    for path in files_of(prefix):
        data = open(path, "rb").read()
        for i in range(len(data)):
            damaged = bytearray(data)
            damaged[i] ^= 0x10
            with open(path, "wb") as f:
                f.write(damaged)
            try:
                got = read_all(prefix)
            except CheckpointDamagedError as e:
                assert os.path.basename(path) in str(e), (path, i, str(e))
                continue
            # only bytes nothing reads may change silently: the index footer's padding
            assert got == original, (path, i)
            assert path.endswith(".index") and len(data) - 48 <= i < len(data) - 8, (path, i)
            harmless += 1
        with open(path, "wb") as f:
            f.write(data)
    assert read_all(prefix) == original
    assert harmless <= 40


@pytest.mark.parametrize("part, rel", CASES)
def test_truncated_or_empty_files_are_named(tmp_path, part, rel):
    prefix = str(copy_part(part, tmp_path) / rel)
    for path in files_of(prefix):
        data = open(path, "rb").read()
        for size in sorted({0, 1, len(data) // 2, len(data) - 1}):
            with open(path, "wb") as f:
                f.write(data[:size])
            with pytest.raises(CheckpointDamagedError) as info:
                read_all(prefix)
            message = str(info.value)
            assert os.path.basename(path) in message and "is damaged" in message
            if not path.endswith(".index"):
                assert "cannot be read" in message and "'" in message  # the tensors it held are named
        with open(path, "wb") as f:
            f.write(data)


def test_missing_shard_is_named_and_listing_still_works(tmp_path):
    prefix = str(copy_part("tf1_sharded", tmp_path) / "run" / "model.ckpt-7")
    os.remove(prefix + ".data-00001-of-00002")
    with CheckpointReader(prefix) as reader:
        assert reader.keys() == ["b", "count", "d", "h", "names", "w"]
        np.testing.assert_array_equal(reader.read("b"), [1, 2, 3])  # shard 0 still reads
        with pytest.raises(CheckpointNotFoundError, match=r"model.ckpt-7.data-00001-of-00002' is missing: it holds "
                                                          r"'d', 'h', 'names'"):
            reader.read("d")
        with pytest.raises(CheckpointNotFoundError):
            reader.check_complete()


def test_string_length_damage_is_reported_as_such(tmp_path):
    prefix = str(copy_part("tf1_sharded", tmp_path) / "run" / "model.ckpt-7")
    with CheckpointReader(prefix) as reader:
        entry = reader.entry("names")
        path = os.path.join(reader.directory, reader.data_files()[entry.shard])
    data = bytearray(open(path, "rb").read())
    data[entry.offset] ^= 0x01  # the first length: 5 -> 4
    open(path, "wb").write(bytes(data))
    with pytest.raises(CheckpointDamagedError, match="string lengths") as info:
        read_all(prefix)
    assert "'names'" in str(info.value) and "model.ckpt-7.data-00001-of-00002" in str(info.value)


def test_damage_in_a_later_index_block_is_caught():
    # TensorFlow lists only the first block's keys when a later block is damaged; every block is checked here.
    items = [(f"layer_{i:04d}/kernel".encode(), bytes(40)) for i in range(200)]
    table = bytearray(sstable.build_table(items, block_size=1024))
    assert sstable.read_table(bytes(table)) == items
    second = len(table) // 2
    table[second] ^= 0x01
    with pytest.raises(sstable.TableError, match="block checksum mismatch in the data block"):
        sstable.read_table(bytes(table))


def test_sstable_round_trip_and_structure():
    items = [(b"", b"header")] + [(f"k{i:05d}".encode(), f"v{i}".encode() * (i % 7)) for i in range(3000)]
    for interval in (1, 16, 1000):
        data = sstable.build_table(items, block_size=4096, restart_interval=interval)
        assert sstable.read_table(data) == items
    empty = sstable.build_table([])
    assert sstable.read_table(empty) == [] and len(empty) == 48 + 2 * (8 + 5)
    with pytest.raises(ValueError, match="increasing"):
        sstable.build_table([(b"b", b""), (b"a", b"")])
    with pytest.raises(sstable.TableError, match="too short|shorter than"):
        sstable.read_table(b"\x00" * 10)
    with pytest.raises(sstable.TableError, match="magic"):
        sstable.read_table(b"\x00" * 100)


def test_snappy_blocks_of_tensorflow_1_1_are_read():
    # A block compressed with Snappy (literal + a back-reference), as TensorFlow 1.1 could write indexes.
    plain = sstable._finish_block([(b"aaaa", b"xyzxyzxyzxyz")], 16)
    literal = plain[:10]
    compressed = bytes([len(plain)]) + bytes([(len(literal) - 1) << 2]) + literal
    rest = plain[10:]
    compressed += bytes([((len(rest) - 1) << 2)]) + rest
    assert sstable.snappy_decompress(compressed) == plain
    copy = bytes([8]) + bytes([(4 - 1) << 2]) + b"abcd" + bytes([0b01 | ((4 - 4) << 2), 4])  # "abcd" + copy 4 back
    assert sstable.snappy_decompress(copy) == b"abcdabcd"
    with pytest.raises(sstable.TableError, match="Snappy"):
        sstable.snappy_decompress(bytes([8, 0b01, 9]))  # a copy from before the start


def test_errors_are_checkpoint_errors(tmp_path):
    prefix = str(copy_part("guide", tmp_path) / "tf_ckpts" / "ckpt-5")
    with open(prefix + ".index", "r+b") as f:
        f.truncate(0)
    with pytest.raises(CheckpointError, match="ckpt-5.index' is damaged: it is 0 bytes long"):
        CheckpointReader(prefix)
