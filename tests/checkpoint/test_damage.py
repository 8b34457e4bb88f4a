"""Damage: flipped bytes in data or index, truncated or missing files. Each raises a CheckpointError that
names the file (and the variable when one is concerned) and what to do; nothing is half-restored."""
import os

import numpy as np
import pytest

from kerasckpt.checkpoint import Checkpoint, CheckpointManager, CheckpointOptions, list_variables, load_variable
from kerasckpt.errors import CheckpointDamagedError, CheckpointError, CheckpointNotFoundError
from kerasckpt.variables import Variable

ADVICE = "Restore an earlier entry of CheckpointManager.checkpoints or delete this one"


def _values():
    rng = np.random.default_rng(1)
    return {"a": rng.standard_normal((4, 3)).astype(np.float32), "b": rng.standard_normal(7).astype(np.float32),
            "c": np.arange(5, dtype=np.int64)}


def _save(tmp_path, **options):
    path = Checkpoint(**{k: Variable(v, dtype=v.dtype) for k, v in _values().items()}).write(
        tmp_path / "ck", CheckpointOptions(**options))
    return path


def _targets():
    return {k: Variable(np.full(v.shape, 42, v.dtype), dtype=v.dtype) for k, v in _values().items()}


def _untouched(targets):
    return all(np.all(t.value == 42) for t in targets.values())


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x10]))


def _offset_of(path, key):
    from kerasckpt.checkpoint import CheckpointReader
    with CheckpointReader(path) as reader:
        return reader.entry(key).offset


def test_flipped_byte_in_data_names_file_and_variable(tmp_path):
    path = _save(tmp_path)
    data = path + ".data-00000-of-00001"
    _flip(data, _offset_of(path, "b") + 5)
    targets = _targets()
    with pytest.raises(CheckpointDamagedError, match=f"'{data}' is damaged: checksum mismatch for 'b/.ATTRIBUTES/VARIABLE_VALUE'.*{ADVICE}"):
        Checkpoint(**targets).read(path)
    assert _untouched(targets)  # 'a' comes before 'b' and was not assigned either
    with pytest.raises(CheckpointDamagedError, match="'b/.ATTRIBUTES/VARIABLE_VALUE'"):
        load_variable(path, "b")
    assert np.array_equal(load_variable(path, "a"), _values()["a"])  # other values stay readable


def test_flipped_byte_in_index(tmp_path):
    path = _save(tmp_path)
    _flip(path + ".index", 12)  # inside the data block (the sorted table's first block)
    with pytest.raises(CheckpointDamagedError, match=f"'{path}.index' is damaged: block checksum mismatch.*{ADVICE}"):
        Checkpoint(**_targets()).read(path)
    _flip(path + ".index", 12)
    _flip(path + ".index", os.path.getsize(path + ".index") - 3)  # the footer's magic number
    with pytest.raises(CheckpointDamagedError, match="magic number"):
        list_variables(path)


@pytest.mark.parametrize("size", [0, 10, "half"])
def test_truncated_index(tmp_path, size):
    path = _save(tmp_path)
    index = path + ".index"
    n = os.path.getsize(index) // 2 if size == "half" else size
    os.truncate(index, n)
    with pytest.raises(CheckpointDamagedError, match=f"'{index}' is damaged"):
        Checkpoint(**_targets()).read(path)


def test_truncated_shard_names_file_and_variable(tmp_path):
    path = _save(tmp_path)
    data = path + ".data-00000-of-00001"
    os.truncate(data, _offset_of(path, "c") + 3)
    targets = _targets()
    with pytest.raises(CheckpointDamagedError, match=f"'{data}' is damaged: it is truncated.*'c/.ATTRIBUTES/VARIABLE_VALUE'.* cannot be read"):
        Checkpoint(**targets).read(path)
    assert _untouched(targets)


def test_missing_shard_names_file_and_variables(tmp_path):
    path = _save(tmp_path, max_shard_size=64)
    names = sorted(n for n in os.listdir(tmp_path) if ".data-" in n)
    assert len(names) >= 3
    from kerasckpt.checkpoint import CheckpointReader
    with CheckpointReader(path) as reader:
        shard = reader.entry("c").shard
    os.remove(tmp_path / names[shard])
    targets = _targets()
    with pytest.raises(CheckpointNotFoundError,
                       match=f"'{tmp_path / names[shard]}' is missing: it holds 'c/.ATTRIBUTES/VARIABLE_VALUE'") as info:
        Checkpoint(**targets).read(path)
    assert isinstance(info.value, FileNotFoundError) and _untouched(targets)


def test_damaged_latest_checkpoint_points_to_earlier_ones(tmp_path):
    v = Variable(np.arange(6, dtype=np.float32))
    m = CheckpointManager(Checkpoint(v=v), tmp_path, max_to_keep=3)
    m.save()
    v.assign(v.value * 2)
    latest = m.save()
    _flip(latest + ".data-00000-of-00001", 3)
    target = Variable(np.zeros(6, np.float32))
    with pytest.raises(CheckpointDamagedError, match=f"ckpt-2.data-00000-of-00001' is damaged.*'v/.ATTRIBUTES/VARIABLE_VALUE'.*{ADVICE}"):
        CheckpointManager(Checkpoint(v=target), tmp_path, max_to_keep=3).restore_or_initialize()
    assert np.all(target.value == 0)
    Checkpoint(v=target).restore(m.checkpoints[-2]).assert_consumed()
    assert np.array_equal(target.value, np.arange(6, dtype=np.float32))


def test_every_single_byte_flip_is_caught_or_harmless(tmp_path):
    """No flip anywhere in the files gives silently different numbers, a crash or a hang."""
    path = _save(tmp_path)
    expected = _values()
    for name in (path + ".index", path + ".data-00000-of-00001"):
        pristine = open(name, "rb").read()
        for offset in range(len(pristine)):
            _flip(name, offset)
            targets = _targets()
            try:
                Checkpoint(**targets).read(path)
            except CheckpointError:
                assert _untouched(targets), (name, offset)
            else:  # only alignment padding between values and the index footer's padding carry no checksum
                assert name.endswith("00001") or os.path.getsize(name) - 48 <= offset < os.path.getsize(name) - 8, \
                    (name, offset)
                assert all(np.array_equal(targets[k].value, v) for k, v in expected.items()), (name, offset)
            with open(name, "wb") as f:
                f.write(pristine)
