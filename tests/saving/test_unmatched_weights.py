"""Weights in a file that the model has no place for are a mismatch, not silently dropped: a file of a bigger
model raises CheckpointMismatchError naming the file and the unmatched layer (skip_mismatch=True warns),
while the groups Keras writes for layers without weights never count."""
import h5py
import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers
from kerasckpt.errors import CheckpointMismatchError


def big():
    return kerasckpt.Sequential([layers.Input(shape=(4,)), layers.Dense(4), layers.BatchNormalization(),
                                 layers.Dense(2)])


def small():
    return kerasckpt.Sequential([layers.Input(shape=(4,)), layers.Dense(4), layers.Dense(2)])


@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5", "m.keras"])
def test_a_file_with_an_extra_layer_is_refused_naming_it(name, tmp_path):
    path = tmp_path / name
    (big().save if name.endswith(".keras") else big().save_weights)(path)
    model = small()
    before = model.get_weights()
    with pytest.raises(CheckpointMismatchError, match=name) as info:
        model.load_weights(path)
    message = str(info.value)
    assert "batch_normalization" in message and "skip_mismatch=True" in message
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))  # nothing half-loaded


def test_skip_mismatch_warns_about_the_extra_layer_and_loads_the_rest(tmp_path):
    source = big()
    source.save_weights(tmp_path / "w.weights.h5")
    model = small()
    with pytest.warns(UserWarning, match=r"w\.weights\.h5(.|\n)*layers/batch_normalization/vars"):
        model.load_weights(tmp_path / "w.weights.h5", skip_mismatch=True)
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), source.layers[0].kernel.numpy())
    np.testing.assert_array_equal(model.layers[1].kernel.numpy(), source.layers[2].kernel.numpy())


def test_an_unknown_group_with_datasets_is_refused(tmp_path):
    model = small()
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    plain = tmp_path / "plain.weights.h5"  # as a third-party writer would add it: no kerasckpt checksums
    with h5py.File(path, "r") as src, h5py.File(plain, "w") as dst:
        for key in src:
            src.copy(src[key], dst, name=key)
        dst.create_dataset("extra/stuff/vars/0", data=np.ones(3, "float32"))
    with pytest.raises(CheckpointMismatchError, match=r"plain\.weights\.h5(.|\n)*'extra/stuff/vars'"):
        model.load_weights(plain)


def test_legacy_group_missing_from_layer_names_is_refused(tmp_path):
    model = small()
    path = tmp_path / "w.h5"
    model.save_weights(path)
    plain = tmp_path / "plain.h5"
    with h5py.File(path, "r") as src, h5py.File(plain, "w") as dst:
        for key in src:
            src.copy(src[key], dst, name=key)
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        group = dst.create_group("orphan")
        group.attrs["weight_names"] = np.asarray([b"orphan/kernel"])
        group.create_dataset("orphan/kernel", data=np.ones((2, 2), "float32"))
    with pytest.raises(CheckpointMismatchError, match=r"plain\.h5(.|\n)*'orphan'"):
        model.load_weights(plain)


def test_empty_groups_of_layers_without_weights_do_not_count(tmp_path):
    """A Dropout leaves an empty `layers/dropout/vars` group; a model without it still loads the file."""
    with_dropout = kerasckpt.Sequential([layers.Input(shape=(4,)), layers.Dense(4), layers.Dropout(0.5),
                                         layers.Dense(2)])
    with_dropout.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "r") as f:
        assert "layers/dropout/vars" in f and not len(f["layers/dropout/vars"])
    model = small()
    model.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(model.get_weights(), with_dropout.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["seq_adam", "func_sgd", "nested_adamw"])
@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_keras_written_files_have_nothing_unmatched(data_dir, name, ext):
    """Keras writes empty groups (Dropout, Flatten, InputLayer, the model's own `vars`): all still load."""
    model = kerasckpt.saving.load_model(data_dir / f"{name}{ext}")
    model.load_weights(data_dir / f"{name}.weights.h5")
