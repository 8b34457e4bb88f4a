"""Crafted files: each refused case raises UnsafeCheckpointError (or names the unknown class), runs no
code, imports nothing and writes nothing."""
import json
import pickle
import struct
import sys
import zipfile

import h5py
import numpy as np
import pytest

import kerasckpt
from kerasckpt.errors import CheckpointFormatError, UnknownObjectError, UnsafeCheckpointError


def plain_weights(model, tmp_path, name="plain.weights.h5"):
    """The model's weights as Keras would write them (no user block), to be tampered with."""
    ours = tmp_path / "ours.weights.h5"
    model.save_weights(ours)
    path = tmp_path / name
    with h5py.File(ours, "r") as src, h5py.File(path, "w") as dst:
        for key in src:
            src.copy(src[key], dst, name=key)
    return path


def tamper(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


KERNEL = "layers/dense/vars/0"


def _replace(f, key, make):
    del f[key]
    make(f, key)


H5_CASES = {
    "soft link": lambda f: _replace(f, KERNEL, lambda f, k: f.__setitem__(k, h5py.SoftLink("/layers/dense/vars/1"))),
    "external link": lambda f: _replace(f, KERNEL, lambda f, k: f.__setitem__(k, h5py.ExternalLink("/etc/passwd", "/x"))),
    "external file": lambda f: _replace(f, KERNEL, lambda f, k: f.create_dataset(
        k, shape=(6, 16), dtype="f4", external=[("/etc/hostname", 0, 6 * 16 * 4)])),
    "virtual": lambda f: _replace(f, KERNEL, lambda f, k: f.create_virtual_dataset(k, _layout())),
    "numeric arrays": lambda f: _replace(f, KERNEL, lambda f, k: f.create_dataset(
        k, data=np.array([b"abc"], dtype=h5py.string_dtype()))),
    "pickled": lambda f: _replace(f, KERNEL, lambda f, k: f.create_dataset(
        k, data=np.void(pickle.dumps({"payload": 1})))),
    "decompression bomb": lambda f: f.create_dataset(
        "extra/bomb", shape=(1 << 28,), dtype="f4", chunks=(1 << 20,), compression="gzip"),
    "plugin": lambda f: _plugin_dataset(f, "extra/plugin"),
}


def _layout():
    layout = h5py.VirtualLayout(shape=(6, 16), dtype="f4")
    layout[:] = h5py.VirtualSource("/etc/other.h5", "data", shape=(6, 16))
    return layout


def _plugin_dataset(f, key):
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk((4,))
    dcpl.set_filter(32001, h5py.h5z.FLAG_OPTIONAL)  # a filter HDF5 would look for as a plugin library
    f.require_group("extra")
    h5py.h5d.create(f.id, key.encode(), h5py.h5t.NATIVE_FLOAT, h5py.h5s.create_simple((8,)), dcpl=dcpl)


@pytest.mark.parametrize("case", sorted(H5_CASES))
def test_hdf5_tricks_are_refused(model, case, tmp_path):
    path = tamper(plain_weights(model, tmp_path), H5_CASES[case])
    before = model.get_weights()
    with pytest.raises(UnsafeCheckpointError, match=case.split()[0] if case != "plugin" else "plugin") as info:
        model.load_weights(path)
    assert "plain.weights.h5" in str(info.value)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))  # nothing half-loaded


def test_the_untampered_plain_copy_loads(model, tmp_path):
    path = plain_weights(model, tmp_path)
    model.load_weights(path)


# ----------------------------------------------------------------------------------------- configs

def write_keras(path, config, weights_from=None, extra=()):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        if weights_from is not None:
            with zipfile.ZipFile(weights_from) as src:
                zf.writestr("model.weights.h5", src.read("model.weights.h5"))
        for name, data in extra:
            zf.writestr(name, data)
    return path


def seq_config(layer):
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": "s", "layers": [
                {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 4]}},
                layer]}}


CONFIG_CASES = {
    "lambda activation": ({"module": "keras.layers", "class_name": "Dense", "config": {
        "units": 2, "activation": {"class_name": "__lambda__", "config": {"code": "YWJj", "defaults": None}}}},
        UnsafeCheckpointError, "lambda"),
    "Lambda layer": ({"module": "keras.layers", "class_name": "Lambda", "config": {"function": "x"}},
                     UnsafeCheckpointError, "Lambda"),
    "built-in from another module": ({"module": "os", "class_name": "Dense", "config": {"units": 2}},
                                     UnsafeCheckpointError, "module 'os'"),
    "unknown class": ({"module": "kerasckpt_evil_module", "class_name": "system", "config": {}},
                      UnknownObjectError, "system"),
    "function as class": ({"module": "builtins", "class_name": "eval", "config": {}}, UnknownObjectError, "eval"),
    "nested object from another module": ({"module": "keras.layers", "class_name": "Dense", "config": {
        "units": 2, "kernel_initializer": {"module": "shutil", "class_name": "GlorotUniform", "config": {}}}},
        UnsafeCheckpointError, "module 'shutil'"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_configs_naming_code_or_other_modules_are_refused(case, tmp_path):
    layer, error, match = CONFIG_CASES[case]
    path = write_keras(tmp_path / "evil.keras", seq_config(layer))
    modules = set(sys.modules)
    with pytest.raises(error, match=match) as info:
        kerasckpt.saving.load_model(path, safe_mode=False)
    assert "evil.keras" in str(info.value)
    assert not {m for m in set(sys.modules) - modules if not m.startswith("encodings.")}  # zipfile's codec only


def test_legacy_h5_with_a_lambda_is_refused(model, tmp_path):
    model.save(tmp_path / "m.h5")
    path = tmp_path / "evil.h5"
    with h5py.File(tmp_path / "m.h5", "r") as src, h5py.File(path, "w") as dst:
        for key in src:
            src.copy(src[key], dst, name=key)
        config = json.loads(src.attrs["model_config"])
        config["config"]["layers"][1]["config"]["activation"] = {"class_name": "__lambda__", "config": {}}
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        dst.attrs["model_config"] = json.dumps(config)
    with pytest.raises(UnsafeCheckpointError, match="lambda"):
        kerasckpt.saving.load_model(path)


def test_compile_config_with_optimizer_from_another_module_is_refused(model, tmp_path):
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        config = json.loads(zf.read("config.json"))
    config["compile_config"]["optimizer"]["module"] = "subprocess"
    path = write_keras(tmp_path / "evil.keras", config, weights_from=tmp_path / "m.keras")
    with pytest.raises(UnsafeCheckpointError, match="subprocess"):
        kerasckpt.saving.load_model(path)
    kerasckpt.saving.load_model(path, compile=False)  # the architecture and weights are fine


# ----------------------------------------------------------------------------------------- zip

@pytest.fixture
def archive(model, tmp_path):
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil.txt", "assets/../../evil.txt", "C:/evil.txt"])
def test_member_paths_outside_the_archive_are_refused(archive, member, tmp_path):
    path = tmp_path / "evil.keras"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in archive.items():
            zf.writestr(name, data)
        zf.writestr(zipfile.ZipInfo(member), b"gotcha")
    with pytest.raises(UnsafeCheckpointError, match="evil.txt"):
        kerasckpt.saving.load_model(path)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_duplicate_members_are_refused(archive, tmp_path):
    path = tmp_path / "dup.keras"
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "w") as zf:
        for name, data in archive.items():
            zf.writestr(name, data)
        zf.writestr("config.json", b"{}")
    with pytest.raises(UnsafeCheckpointError, match="twice"):
        kerasckpt.saving.load_model(path)


def test_decompression_bomb_is_refused(archive, tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", archive["metadata.json"])
        zf.writestr("config.json", archive["config.json"] + b" " * (8 << 20), compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("model.weights.h5", archive["model.weights.h5"])
    with pytest.raises(UnsafeCheckpointError, match="bomb"):
        kerasckpt.saving.load_model(path)


def test_encrypted_member_is_refused(archive, tmp_path):
    path = tmp_path / "enc.keras"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in archive.items():
            zf.writestr(name, data)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"PK\x01\x02")  # first central directory entry: set "encrypted" in its flags
    struct.pack_into("<H", raw, at + 8, 1)
    path.write_bytes(bytes(raw))
    with pytest.raises(UnsafeCheckpointError, match="encrypted"):
        kerasckpt.saving.load_model(path)


def test_pickled_npz_weights_are_not_read(archive, tmp_path):
    import io
    buf = io.BytesIO()
    np.savez(buf, x=np.array([{"a": 1}], dtype=object))
    path = tmp_path / "npz.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", archive["config.json"])
        zf.writestr("model.weights.npz", buf.getvalue())
    with pytest.raises(CheckpointFormatError, match="npz"):
        kerasckpt.saving.load_model(path)
