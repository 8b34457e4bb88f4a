"""Errors name the file and the variable, keep the built-in types Keras raises, and writes are atomic."""
import os

import h5py
import numpy as np
import pytest

import kerasckpt
from kerasckpt.errors import (CheckpointDamagedError, CheckpointError, CheckpointFormatError,
                              CheckpointMismatchError, CheckpointNotFoundError)
from kerasckpt import _fileio
from kerasckpt.saving import h5file

WEIGHT_NAMES = ["w.weights.h5", "w.h5", "m.keras"]


def save(model, path):
    (model.save if str(path).endswith((".keras",)) or path.name.startswith("m.") else model.save_weights)(path)


@pytest.mark.parametrize("name", ["missing.keras", "missing.h5"])
def test_missing_model_file(name, tmp_path):
    with pytest.raises(CheckpointNotFoundError, match=name) as info:
        kerasckpt.saving.load_model(tmp_path / name)
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("name", WEIGHT_NAMES)
def test_missing_weights_file(model, name, tmp_path):
    with pytest.raises(FileNotFoundError, match=name):
        model.load_weights(tmp_path / name)


@pytest.mark.parametrize("name", ["d.keras", "d.h5", "d.weights.h5"])
def test_directory_instead_of_file(model, name, tmp_path):
    (tmp_path / name).mkdir()
    with pytest.raises(OSError, match=name) as info:
        kerasckpt.saving.load_model(tmp_path / name) if not name.endswith(".weights.h5") else \
            model.load_weights(tmp_path / name)
    assert isinstance(info.value, CheckpointError)
    with pytest.raises(IsADirectoryError):
        model.save(tmp_path / name) if not name.endswith(".weights.h5") else model.save_weights(tmp_path / name)


def test_wrong_kinds_of_file(model, tmp_path):
    model.save_weights(tmp_path / "w.weights.h5")
    model.save(tmp_path / "m.keras")
    (tmp_path / "hdf5.keras").write_bytes((tmp_path / "w.weights.h5").read_bytes())
    (tmp_path / "zip.weights.h5").write_bytes((tmp_path / "m.keras").read_bytes())
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(CheckpointFormatError, match="HDF5 file, not a .keras"):
        kerasckpt.saving.load_model(tmp_path / "hdf5.keras")
    with pytest.raises(CheckpointFormatError, match="zip archive"):
        model.load_weights(tmp_path / "zip.weights.h5")
    with pytest.raises(CheckpointFormatError, match="not an HDF5 file"):
        kerasckpt.saving.load_model(tmp_path / "text.h5")
    with pytest.raises(CheckpointFormatError, match="weights only"):
        kerasckpt.saving.load_model(tmp_path / "w.weights.h5")
    model.save_weights(tmp_path / "legacy_weights.h5")
    with pytest.raises(CheckpointFormatError, match="weights only"):
        kerasckpt.saving.load_model(tmp_path / "legacy_weights.h5")
    with pytest.raises(ValueError, match="save_weights"):
        model.save_weights(tmp_path / "x.keras")
    with pytest.raises(ValueError, match="extension"):
        model.save(tmp_path / "x.weights.h5")


@pytest.mark.parametrize("name", WEIGHT_NAMES)
def test_weights_that_do_not_fit_name_file_and_variable(kit, model, name, tmp_path):
    save(model, tmp_path / name)
    other = kit.make_model("sequential", units=8)
    other.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = other.get_weights()
    with pytest.raises(CheckpointMismatchError, match=name) as info:
        other.load_weights(tmp_path / name)
    assert isinstance(info.value, ValueError)
    assert "sequential/dense/kernel" in str(info.value) or "dense" in str(info.value)
    assert "(6, 16)" in str(info.value) and "(6, 8)" in str(info.value)
    assert all(np.array_equal(a, b) for a, b in zip(other.get_weights(), before))  # nothing half-loaded


@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5"])
def test_skip_mismatch_skips_with_one_warning(kit, name, tmp_path):
    source = kit.make_model("sequential", classes=4)
    source.save_weights(tmp_path / name)
    target = kit.make_model("sequential", classes=3)
    head = target.layers[-1].get_weights()
    with pytest.warns(UserWarning, match=name) as record:
        target.load_weights(tmp_path / name, skip_mismatch=True)
    assert len([w for w in record if "do not fit" in str(w.message)]) == 1
    assert "(16, 4)" in str(record[0].message)
    np.testing.assert_array_equal(target.layers[0].kernel.numpy(), source.layers[0].kernel.numpy())
    assert all(np.array_equal(a, b) for a, b in zip(target.layers[-1].get_weights(), head))  # skipped


def test_legacy_layer_count_mismatch(kit, tmp_path):
    small = kerasckpt.Sequential([kerasckpt.layers.Input(shape=(6,)), kerasckpt.layers.Dense(3)])
    small.save_weights(tmp_path / "w.h5")
    with pytest.raises(CheckpointMismatchError, match="layer count mismatch"):
        kit.make_model("sequential").load_weights(tmp_path / "w.h5")


def test_unbuilt_model_and_overwrite_false(kit, model, tmp_path):
    model.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="not built"):
        kit.make_model("subclass").load_weights(tmp_path / "w.weights.h5")
    with pytest.raises(FileExistsError, match="overwrite"):
        model.save_weights(tmp_path / "w.weights.h5", overwrite=False)


def test_damaged_dataset_and_truncation_are_named(model, tmp_path):
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "r") as f:
        offset = f["layers/dense/vars/0"].id.get_offset()
    raw = bytearray(path.read_bytes())
    raw[offset + 5] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointDamagedError, match="layers/dense/vars/0") as info:
        model.load_weights(path)
    assert "w.weights.h5" in str(info.value)
    path.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(CheckpointDamagedError, match="truncated"):
        model.load_weights(path)


@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5", "m.keras", "m.h5"])
def test_crash_at_rename_keeps_the_old_file(kit, model, name, tmp_path, monkeypatch):
    path = tmp_path / name
    save(model, path)
    old = path.read_bytes()
    other = kit.make_model("sequential")
    other.compile(optimizer="adam", loss="sparse_categorical_crossentropy")

    def crash(*args, **kwargs):
        raise OSError("simulated crash at rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        save(other, path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == [name]


@pytest.mark.parametrize("name", ["w.weights.h5", "m.keras", "m.h5"])
def test_failing_write_keeps_the_old_file(model, name, tmp_path, monkeypatch):
    path = tmp_path / name
    save(model, path)
    old = path.read_bytes()
    calls = []
    real = _fileio.pwrite_all

    def disk_full(fd, view, offset):
        calls.append(len(view))
        if len(calls) > 3:
            raise OSError(28, "No space left on device")
        return real(fd, view, offset)

    monkeypatch.setattr(_fileio, "pwrite_all", disk_full)
    with pytest.raises(OSError):
        save(model, path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == [name]


def test_checksums_are_where_keras_ignores_them(model, tmp_path):
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    raw = path.read_bytes()
    assert raw.startswith(h5file.MAGIC)
    with h5py.File(path, "r") as f:
        assert f.userblock_size >= 512
        kernel = f["layers/dense/vars/0"]
        assert int(kernel.attrs["kerasckpt_crc32"]) == h5file.crc32(kernel[()])
