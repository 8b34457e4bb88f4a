"""A dataset's state as JSON: arrays exact, SeedGenerators found, anything else refused by name."""
import json

import numpy as np
import pytest

from kerasckpt.data import state as dstate
from kerasckpt.random import SeedGenerator

from pipeline_datasets import Augmented, arrays


def test_arrays_and_scalars_round_trip_exactly_through_json():
    value = {"order": np.array([3, 1, 2], dtype="int64"), "w": np.linspace(0, 1, 6, dtype="float32").reshape(2, 3),
             "flags": [np.bool_(True), np.array([], dtype="uint16")], "c": np.complex64(1 + 2j), "n": 3,
             "f": 2.5, "s": "text", "none": None, "nested": ({"deep": np.float64(np.pi)},)}
    back = dstate.decode(json.loads(json.dumps(dstate.encode(value, "D.get_state()"))))
    assert back["n"] == 3 and back["s"] == "text" and back["none"] is None and back["f"] == 2.5
    for got, want in [(back["order"], value["order"]), (back["w"], value["w"]), (back["flags"][1], value["flags"][1]),
                      (back["c"], value["c"]), (back["nested"][0]["deep"], value["nested"][0]["deep"]),
                      (back["flags"][0], value["flags"][0])]:
        got = np.asarray(got)
        assert got.dtype == np.asarray(want).dtype and got.shape == np.shape(want) and np.array_equal(got, want)


@pytest.mark.parametrize("value,match", [
    ({"f": open}, r"D.get_state\(\)\['f'\] is <built-in function open>"),
    ({1: 2}, r"dict key 1"),
    ({"a": [np.array(["x"])]}, r"D.get_state\(\)\['a'\]\[0\] is a NumPy value of dtype <U1"),
    ({"__ndarray__": 1}, "string keys")])
def test_values_a_state_cannot_hold_are_refused_by_place(value, match):
    with pytest.raises(TypeError, match=match):
        dstate.encode(value, "D.get_state()")


def test_a_stored_object_dtype_is_refused():
    with pytest.raises(ValueError, match="only arrays of numbers"):
        dstate.decode({"__ndarray__": ["|O", [1], "AAAAAAAAAAA="]})


def test_seed_generators_are_found_in_attributes_and_containers():
    data = Augmented(*arrays(8))
    data.more = [SeedGenerator(1), {"inner": SeedGenerator(2)}]
    data.same = data.seed_generator  # one generator under two names is found once per name
    found = dstate.seed_generators(data)
    assert sorted(found) == ["more/0", "more/1/inner", "same", "seed_generator"]
    assert found["same"] is found["seed_generator"]
