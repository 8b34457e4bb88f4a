"""Damaged files written by kerasckpt: truncated at many offsets or with bytes flipped anywhere, every
load raises CheckpointError or gives back exactly the saved values; never a crash, a hang or other numbers."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kerasckpt
from kerasckpt.errors import CheckpointError

FORMATS = ("w.weights.h5", "w.h5", "m.keras", "m.h5")


@pytest.fixture(scope="module")
def saved(request, tmp_path_factory):
    """{name: (file bytes, expected values, a twin model to load weights into)} for each format."""
    kit = request.config.pluginmanager.get_plugin((request.config.rootpath / "tests" / "conftest.py").as_posix())
    kerasckpt.utils.set_random_seed(11)
    x, y = kit.tiny_data()
    model = kit.make_model("functional", dropout=0.2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    twin = kit.make_model("functional", dropout=0.2)
    twin.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    twin.optimizer.build(twin.trainable_weights)
    directory = tmp_path_factory.mktemp("damage")
    out = {}
    for name in FORMATS:
        path = directory / name
        (model.save if name.startswith("m.") else model.save_weights)(path)
        out[name] = path.read_bytes()
    return out, values(model), twin, directory


def values(model):
    return [w.numpy() for w in model.weights] + [v.numpy() for v in model.optimizer.variables]


def load_damaged(saved, name, data):
    files, expected, twin, directory = saved
    path = directory / f"damaged-{name}"
    path.write_bytes(data)
    for var in twin.weights + twin.optimizer.variables:
        var.assign(np.zeros(var.shape, var.dtype))
    try:
        if name.startswith("m."):
            loaded = kerasckpt.saving.load_model(path)
        else:
            twin.load_weights(path)
            loaded = twin
    except CheckpointError:
        return
    got = values(loaded)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


damage_settings = settings(max_examples=40, deadline=None, derandomize=True,
                           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("name", FORMATS)
@damage_settings
@given(fraction=st.floats(0, 1, exclude_max=True))
def test_truncated_anywhere(saved, name, fraction):
    data = saved[0][name]
    load_damaged(saved, name, data[: int(fraction * len(data))])


@pytest.mark.parametrize("name", FORMATS)
@damage_settings
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4))
def test_flipped_bytes_anywhere(saved, name, flips):
    data = bytearray(saved[0][name])
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    load_damaged(saved, name, bytes(data))


@pytest.mark.parametrize("name", FORMATS)
def test_every_truncation_of_the_header_region(saved, name):
    data = saved[0][name]
    for n in list(range(0, 700, 7)) + [len(data) - 1]:
        load_damaged(saved, name, data[:n])


@pytest.mark.parametrize("name", FORMATS)
def test_a_flip_in_each_region(saved, name):
    data = saved[0][name]
    for position in range(0, len(data), max(1, len(data) // 300)):
        damaged = bytearray(data)
        damaged[position] ^= 0x10
        load_damaged(saved, name, bytes(damaged))
