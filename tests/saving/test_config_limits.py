"""A config that cannot be rebuilt (a layer too big for the machine, damage no check foresaw) raises a
CheckpointFormatError naming the file, never a bare MemoryError or KeyError."""
import json
import zipfile

import h5py
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.errors import CheckpointFormatError

HUGE = 2 ** 58  # units: a (4, 2**58) float32 kernel needs 2**62 bytes, which numpy refuses without allocating


def small(kind="sequential"):
    if kind == "sequential":
        return kerasckpt.Sequential([layers.Input(shape=(4,)), layers.Dense(3, name="wide"), layers.Dense(2)])
    inp = layers.Input(shape=(4,))
    return kerasckpt.Model(inp, layers.Dense(2, name="out")(layers.Dense(3, name="wide")(inp)))


def rewrite_keras(path, edit):
    """The .keras archive at `path` with its config.json passed through `edit`."""
    with zipfile.ZipFile(path) as src:
        members = [(info, src.read(info.filename)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w") as dst:
        for info, data in members:
            if info.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            dst.writestr(info, data)


def rewrite_h5(path, edit):
    """The legacy .h5 at `path` with its model_config passed through `edit`, as Keras writes it (no checksums)."""
    original = path.with_name("original.h5")
    path.rename(original)
    with h5py.File(original, "r") as src, h5py.File(path, "w") as dst:
        for key in src:
            src.copy(src[key], dst, name=key)
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        config = json.loads(src.attrs["model_config"])
        edit(config)
        dst.attrs["model_config"] = json.dumps(config).encode()


def set_units(config):
    entry = next(e for e in config["config"]["layers"] if e["config"].get("name") == "wide")
    entry["config"]["units"] = HUGE


@pytest.mark.parametrize("kind", ["sequential", "functional"])
@pytest.mark.parametrize("name", ["huge.keras", "huge.h5"])
def test_a_layer_too_big_for_memory_is_a_checkpoint_error(kind, name, tmp_path):
    path = tmp_path / name
    small(kind).save(path)
    (rewrite_keras if name.endswith(".keras") else rewrite_h5)(path, set_units)
    with pytest.raises(CheckpointFormatError, match=name) as info:
        kerasckpt.saving.load_model(path)
    message = str(info.value)
    assert "layer 'wide' (Dense)" in message and f"(4, {HUGE})" in message and "EiB" in message
    assert "restore the file from a backup" in message
    assert not isinstance(info.value.__cause__, MemoryError)  # the traceback (and the model) are let go


def test_config_damage_no_check_foresaw_is_a_checkpoint_error(tmp_path):
    """A flipped bit turned "class_name" into "glass_name": the tensor became a dict, the layer a KeyError."""
    path = tmp_path / "damaged.keras"
    small("functional").save(path)

    def damage(config):
        entry = next(e for e in config["config"]["layers"] if e["name"] == "out")
        arg = entry["inbound_nodes"][0]["args"][0]
        arg["glass_name"] = arg.pop("class_name")
    rewrite_keras(path, damage)
    with pytest.raises(CheckpointFormatError, match=r"damaged\.keras.*config\.json.*cannot be rebuilt"):
        kerasckpt.saving.load_model(path)
