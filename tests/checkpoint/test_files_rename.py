"""The native files under another name: data files are found from the prefix the index is opened with
(renaming every file of a checkpoint keeps it readable, as in TensorFlow), a half-renamed checkpoint says
what happened, kerasckpt 0.1 indexes written before suffixes were stored still read, and the checkpoint
records who wrote it and when (`CheckpointReader.file_metadata`)."""
import datetime
import json
import os
import shutil

import numpy as np
import pytest

import kerasckpt
from kerasckpt import _fileio
from kerasckpt.checkpoint import (Checkpoint, CheckpointManager, CheckpointOptions, CheckpointReader, bundle, legacy,
                                  list_variables, load_variable)
from kerasckpt.errors import CheckpointFormatError, CheckpointNotFoundError
from kerasckpt.variables import Variable

ADVICE = "Restore an earlier entry of CheckpointManager.checkpoints"


def _values():
    rng = np.random.default_rng(3)
    return {"a": rng.standard_normal((16, 8)).astype(np.float32), "b": rng.standard_normal(50),
            "c": np.arange(7, dtype=np.int64)}


def _rename_all(directory, old, new):
    moved = []
    for name in sorted(os.listdir(directory)):
        if name.startswith(old + "."):
            os.rename(os.path.join(directory, name), os.path.join(directory, new + name[len(old):]))
            moved.append(new + name[len(old):])
    return moved


V0_1 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "v0_1", "sharded")


def _rewrite_index(prefix, edit):
    """Apply `edit(payload_dict)` to a kerasckpt 0.1 index and write it back with valid checksums."""
    blob = open(prefix + ".index", "rb").read()
    magic, version, flags, _, _, _ = legacy.HEADER.unpack_from(blob)
    index = json.loads(blob[legacy.HEADER.size:])
    edit(index)
    payload = json.dumps(index).encode("utf-8")
    header = legacy.HEADER.pack(magic, version, flags, len(payload), _fileio.checksum(payload), 0)
    header = header[:-4] + _fileio.checksum(header[:-4]).to_bytes(4, "little")
    with open(prefix + ".index", "wb") as f:
        f.write(header + payload)


@pytest.mark.parametrize("max_shard_size", [None, 300])  # one data file, or several
@pytest.mark.parametrize("overwritten", [False, True])   # data files as first written, or after two overwrites
def test_a_checkpoint_renamed_as_a_whole_restores_bit_exactly(tmp_path, max_shard_size, overwritten):
    values = _values()
    variables = {k: Variable(v, dtype=v.dtype) for k, v in values.items()}
    ckpt, options = Checkpoint(**variables), CheckpointOptions(max_shard_size=max_shard_size)
    manager = CheckpointManager(ckpt, tmp_path, max_to_keep=5, options=options)
    for _ in range(3):
        manager.save(checkpoint_number=3 if overwritten else None, options=options)
    moved = _rename_all(tmp_path, "ckpt-3", "best")
    assert "best.index" in moved and (len(moved) > 2) == bool(max_shard_size)
    best = str(tmp_path / "best")
    assert load_variable(best, "save_counter") == 3
    targets = {k: Variable(np.zeros_like(v), dtype=v.dtype) for k, v in values.items()}
    Checkpoint(**targets).restore(best).assert_consumed()
    for k, v in values.items():
        assert targets[k].value.tobytes() == v.tobytes(), k
    with CheckpointReader(best) as reader:
        assert all(name.startswith("best.data-") for name in reader.data_files())
        assert all(name.startswith("ckpt-3.data-") for name in reader._written_names)
        reader.check_complete()
    assert bundle.is_complete(best)


def test_a_checkpoint_moved_to_another_directory_as_a_whole_reads(tmp_path):
    path = Checkpoint(v=Variable(np.arange(5.0))).write(tmp_path / "a" / "ck")
    (tmp_path / "b").mkdir()
    for name in os.listdir(tmp_path / "a"):
        os.rename(tmp_path / "a" / name, tmp_path / "b" / name.replace("ck", "moved", 1))
    assert np.array_equal(load_variable(tmp_path / "b" / "moved", "v"), np.arange(5.0))
    assert not os.path.exists(path + ".index")


def test_renaming_only_the_index_says_the_checkpoint_seems_renamed(tmp_path):
    manager = CheckpointManager(Checkpoint(v=Variable(np.ones(4))), tmp_path, max_to_keep=5)
    for _ in range(3):
        manager.save()
    os.rename(tmp_path / "ckpt-3.index", tmp_path / "best.index")
    best = str(tmp_path / "best")
    with pytest.raises(CheckpointNotFoundError) as info:
        load_variable(best, "save_counter")
    message = str(info.value)
    assert f"'{best}.data-00000-of-00001' is missing" in message
    assert "seems renamed or moved" in message and f"written as '{tmp_path / 'ckpt-3'}'" in message
    assert "'ckpt-3.data-00000-of-00001' -> 'best.data-00000-of-00001'" in message
    assert f"rename '{best}.index' back to '{tmp_path / 'ckpt-3'}.index'" in message
    assert ADVICE not in message  # deleting it would be the wrong advice: the data is right there
    with pytest.raises(CheckpointNotFoundError, match="seems renamed"):
        Checkpoint(v=Variable(np.zeros(4))).restore(best)
    assert not bundle.is_complete(best)
    # the next save of the manager must not take the data file for an orphan: the renamed index names it
    with pytest.warns(UserWarning, match="ckpt-3"):
        CheckpointManager(Checkpoint(v=Variable(np.ones(4))), tmp_path, max_to_keep=5).save()
    assert (tmp_path / "ckpt-3.data-00000-of-00001").exists()
    os.rename(tmp_path / "ckpt-3.data-00000-of-00001", tmp_path / "best.data-00000-of-00001")
    assert load_variable(best, "save_counter") == 3


def test_an_index_without_its_data_files_names_both_names(tmp_path):
    Checkpoint(v=Variable(np.ones(4))).write(tmp_path / "a" / "ck")
    (tmp_path / "b").mkdir()
    os.rename(tmp_path / "a" / "ck.index", tmp_path / "b" / "other.index")
    other = str(tmp_path / "b" / "other")
    with pytest.raises(CheckpointNotFoundError) as info:
        load_variable(other, "v")
    message = str(info.value)
    assert f"'{other}.data-00000-of-00001' is missing" in message and "written as" in message
    assert "'ck.data-00000-of-00001' -> 'other.data-00000-of-00001'" in message and ADVICE in message


def test_a_missing_data_file_lists_the_expected_names(tmp_path):
    path = Checkpoint(v=Variable(np.arange(200, dtype=np.float32))).write(tmp_path / "ck",
                                                                      CheckpointOptions(max_shard_size=300))
    with CheckpointReader(path) as reader:
        names = reader.data_files()
        shard = reader._leaves("v")[1].shard  # the second slice of v
    assert len(names) >= 3
    os.remove(tmp_path / names[shard])
    with pytest.raises(CheckpointNotFoundError) as info:
        load_variable(path, "v")
    message = str(info.value)
    assert f"'{tmp_path / names[shard]}' is missing: it holds 'v/.ATTRIBUTES/VARIABLE_VALUE'" in message
    assert ", ".join(f"'{n}'" for n in names) in message
    assert ADVICE in message and "renamed" not in message


def _v0_1_copy(tmp_path):
    shutil.copytree(V0_1, tmp_path / "v")
    path = str(tmp_path / "v" / "c")
    values = {k: load_variable(path, k) for k, _ in list_variables(path)}
    return path, values


def test_v0_1_indexes_without_suffixes_still_read_and_may_be_renamed(tmp_path):
    """Indexes written before `data_suffixes` existed name their data files only in `shards`."""
    path, values = _v0_1_copy(tmp_path)
    _rewrite_index(path, lambda index: (index.pop("data_suffixes"), index.pop("written_by")))
    for k, v in values.items():
        assert np.asarray(load_variable(path, k)).tobytes() == np.asarray(v).tobytes()
    _rename_all(tmp_path / "v", "c", "renamed")
    renamed = str(tmp_path / "v" / "renamed")
    for k, v in values.items():
        assert np.asarray(load_variable(renamed, k)).tobytes() == np.asarray(v).tobytes()
    with CheckpointReader(renamed) as reader:
        assert reader.file_metadata == {"format_version": legacy.FORMAT_VERSION, "kerasckpt_version": None,
                                        "saved_at": None}


@pytest.mark.parametrize("bad", ["../x.data-00000-of-00001", ".index", "x", 3])
def test_malformed_v0_1_suffixes_are_refused(tmp_path, bad):
    path, _ = _v0_1_copy(tmp_path)
    _rewrite_index(path, lambda index: index.update(data_suffixes=[bad] * len(index["shards"])))
    with pytest.raises(CheckpointFormatError, match="suffixes are malformed"):
        list_variables(path)


def test_the_index_records_version_format_and_save_time(tmp_path):
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    path = Checkpoint(v=Variable(np.ones(2))).save(tmp_path / "ck")
    after = datetime.datetime.now(datetime.timezone.utc)
    with CheckpointReader(path) as reader:
        info = reader.file_metadata
        assert reader.metadata == {"save_counter": 1}  # what the saver attached is separate
    assert info["kerasckpt_version"] == kerasckpt.__version__ and info["format_version"] == bundle.FORMAT_VERSION
    assert info["saved_at"].endswith("Z")
    saved = datetime.datetime.fromisoformat(info["saved_at"].replace("Z", "+00:00"))
    assert saved.utcoffset() == datetime.timedelta(0) and before <= saved <= after
    with CheckpointReader(path) as reader:
        record = json.loads(reader.raw_bytes(bundle.KERASCKPT_KEY))
    assert record["written_by"] == {"kerasckpt_version": info["kerasckpt_version"], "saved_at": info["saved_at"]}
    assert record["version"] == info["format_version"]
