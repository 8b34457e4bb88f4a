"""The structure index in kerasckpt's HDF5 header: loads read it instead of walking the file with h5py, and
it says exactly what the walk would find."""
import json
import os
import struct

import h5py
import numpy as np
import pytest

import kerasckpt
from kerasckpt import _fileio
from kerasckpt.errors import CheckpointDamagedError
from kerasckpt.saving import h5file, keras_zip

WRITERS = {"weights.h5": ("w.weights.h5", "save_weights"), "legacy weights": ("w.h5", "save_weights"),
           "legacy model": ("m.h5", "save"), "keras": ("m.keras", "save")}


def _open(path):
    """An H5Source of the HDF5 file at `path` (the weights member of a `.keras`); close `fd` after it."""
    fd = os.open(path, os.O_RDONLY)
    if str(path).endswith(".keras"):
        archive = keras_zip.Archive(str(path), fd)
        return fd, archive.weights_source()
    return fd, h5file.H5Source(str(path), fd)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


@pytest.mark.parametrize("writer", list(WRITERS))
def test_the_index_says_what_walking_the_file_finds(model, tmp_path, writer):
    name, method = WRITERS[writer]
    path = tmp_path / name
    getattr(model, method)(path)
    fd, indexed = _open(path)
    _, walked = _open(path)
    try:
        assert indexed._index is not None and indexed._file is None  # h5py never opened it
        walked._open_h5()
        assert walked._index is None
        assert indexed.children == walked.children
        assert {k: sorted(v) for k, v in indexed.attr_names.items()} == \
            {k: sorted(v) for k, v in walked.attr_names.items()}
        assert {k: v[1:] for k, v in indexed.datasets.items()} == {k: v[1:] for k, v in walked.datasets.items()}
        for obj, names in walked.attr_names.items():
            for key in names + ["layer_names", "weight_names"]:
                assert indexed.attr(obj, key) == _plain(walked.attr(obj, key)), (obj, key)
        paths = sorted(walked.datasets)
        for a, b in zip(indexed.read_many(paths), walked.read_many(paths)):
            np.testing.assert_array_equal(a, b)
    finally:
        indexed.close()
        walked.close()
        os.close(fd)


def test_loads_do_not_open_hdf5(model, tmp_path, monkeypatch):
    for name, method in WRITERS.values():
        getattr(model, method)(tmp_path / name)
    monkeypatch.setattr(h5file.H5Source, "_open_h5", lambda self: pytest.fail("h5py opened a kerasckpt file"))
    for name, _ in WRITERS.values():
        model.load_weights(tmp_path / name)
    kerasckpt.models.load_model(tmp_path / "m.keras")
    kerasckpt.models.load_model(tmp_path / "m.h5")


def test_hdf5_is_opened_and_checked_when_asked_for(model, tmp_path):
    model.save_weights(tmp_path / "w.weights.h5")
    fd, src = _open(tmp_path / "w.weights.h5")
    try:
        kernel = src.file["layers/dense/vars/0"]  # the CLI reads through h5py: opened (and walked) on demand
        assert src._file is not None and kernel.shape == src.shape("layers/dense/vars/0")
    finally:
        src.close()
        os.close(fd)


def test_files_without_an_index_are_walked(model, tmp_path, monkeypatch):
    monkeypatch.setattr(h5file, "_index", lambda *args: None)  # as kerasckpt wrote them before the index
    model.save_weights(tmp_path / "w.weights.h5")
    monkeypatch.undo()
    fd, src = _open(tmp_path / "w.weights.h5")
    try:
        assert src._index is None and src._file is not None
    finally:
        src.close()
        os.close(fd)
    before = [v.numpy().copy() for v in model.weights]
    for v in model.weights:
        v.assign(np.zeros(v.shape, v.dtype))
    model.load_weights(tmp_path / "w.weights.h5")
    for v, b in zip(model.weights, before):
        np.testing.assert_array_equal(v.numpy(), b)


def test_attributes_the_index_cannot_carry_leave_it_out(tmp_path):
    path = str(tmp_path / "x.h5")
    entries = [("group", "g", {"flag": True}), ("dataset", "g/0", np.arange(4, dtype=np.float32), None)]
    with _fileio.atomic_fd(path) as fd:
        h5file.write_h5(fd, entries)
    fd, src = _open(path)
    try:
        assert src._index is None and src._file is not None  # walked with h5py
        assert src.has_attr("g", "flag") and bool(src.file["g"].attrs["flag"])
        np.testing.assert_array_equal(src.read("g/0"), np.arange(4, dtype=np.float32))
    finally:
        src.close()
        os.close(fd)


def _rewrite_header(path, change):
    """Edit the JSON header of a kerasckpt HDF5 file and fix its checksum (a file forged, not damaged)."""
    raw = bytearray(open(path, "rb").read())
    magic, userblock, length, _ = h5file._FIXED.unpack_from(raw, 0)
    header = json.loads(bytes(raw[h5file._FIXED.size:h5file._FIXED.size + length]))
    change(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    block = bytearray(userblock)
    block[h5file._FIXED.size:h5file._FIXED.size + len(text)] = text
    h5file._FIXED.pack_into(block, 0, magic, userblock, len(text), 0)
    struct.pack_into("<I", block, 24, h5file.crc32(block))
    raw[:userblock] = block
    open(path, "wb").write(bytes(raw))


@pytest.mark.parametrize("edit", ["offset", "shape", "dtype", "checksum", "missing group"])
def test_an_index_that_disagrees_with_the_extents_is_refused(model, tmp_path, edit):
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    key = "layers/dense/vars/0"

    def change(header):
        entry = header["index"]["datasets"][key]
        if edit == "offset":
            entry[3] += 4
        elif edit == "shape":
            entry[0][0] += 1
        elif edit == "dtype":
            entry[1] = ">f4"
        elif edit == "checksum":
            entry[2][h5file.CHECKSUM_ATTR] ^= 1
        else:
            del header["index"]["groups"]["layers/dense"]
    _rewrite_header(path, change)
    with pytest.raises(CheckpointDamagedError, match="structure index"):
        model.load_weights(path)


def test_datasets_created_through_hdf5_calls_make_the_file_h5py_makes(model, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    entries = [("group", "layers/dense/vars", {"name": "dense"}),
               ("dataset", "layers/dense/vars/0", rng.random((5, 3), np.float32), None),
               ("dataset", "layers/dense/vars/1", rng.random(3), None),
               ("dataset", "optimizer/vars/0", np.array(3, np.int64), None),  # scalar: through h5py
               ("dataset", "empty", np.zeros((0, 2), np.float32), None),
               ("dataset", "x/\u00fc", np.ones(2, np.float32), None)]  # a non-ASCII name: through h5py

    def write(name):
        path = str(tmp_path / name)
        with _fileio.atomic_fd(path) as fd:
            h5file.write_h5(fd, entries, root_attrs={"a": "b"})
        return open(path, "rb").read()
    fast = write("fast.h5")

    def through_h5py(h5, path, arr, attrs):
        dset = h5.create_dataset(path, shape=arr.shape, dtype=arr.dtype,
                                 dcpl=h5file._early_dcpl() if arr.nbytes else None)
        return dset.id, dset
    monkeypatch.setattr(h5file, "_create_dataset", through_h5py)
    monkeypatch.setattr(h5file, "_set_checksum", lambda dsid, value: h5py.Dataset(dsid).attrs.__setitem__(
        h5file.CHECKSUM_ATTR, np.uint32(value)))
    assert fast == write("h5py.h5")
    with h5py.File(tmp_path / "fast.h5", "r") as f:
        np.testing.assert_array_equal(f["layers/dense/vars/0"][()], entries[1][2])
        assert int(f["layers/dense/vars/0"].attrs[h5file.CHECKSUM_ATTR]) == h5file.crc32(entries[1][2])
